import type { Reporter, ReporterMode } from '../ui/reporter.js';
import { JsonReporter } from '../ui/json-reporter.js';
import { PlainReporter } from '../ui/plain-reporter.js';
import type { Io } from './io.js';
import type { GlobalOptions } from './options.js';

/** --json → NDJSON; an interactive terminal → ora; anything else (pipes, cron, CI, TERM=dumb) → plain lines. */
export function pickMode(io: Pick<Io, 'stderr' | 'env'>, global: GlobalOptions): ReporterMode {
  if (global.json) return 'json';
  // A pseudo-terminal without a size (e.g. `script` with no terminal behind it) reports 0 columns, and a
  // spinner that cannot measure its lines would redraw forever: such a terminal gets plain lines.
  const columns = (io.stderr as { columns?: number }).columns ?? 0;
  if (io.stderr.isTTY && columns > 0 && !io.env.CI && io.env.TERM !== 'dumb') return 'tty';
  return 'plain';
}

/** The one reporter of a run. ora is loaded only for a terminal. */
export async function createReporter(
  io: Pick<Io, 'stdout' | 'stderr' | 'env'>,
  global: GlobalOptions,
): Promise<Reporter> {
  const mode = pickMode(io, global);
  const o = {
    quiet: global.quiet ?? false,
    stdout: io.stdout,
    stderr: io.stderr,
    color: mode === 'tty' && !('NO_COLOR' in io.env),
  };
  if (mode === 'json') return new JsonReporter(o);
  if (mode === 'tty') {
    const { OraReporter } = await import('../ui/ora-reporter.js');
    return new OraReporter(o);
  }
  return new PlainReporter(o);
}
