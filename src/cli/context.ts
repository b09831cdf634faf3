import type { Writable } from 'node:stream';
import { CliError, ExitCode, InterruptedError } from '../errors.js';
import { createReporter, type Reporter, type ReporterMode } from '../ui/reporter.js';

export interface Io {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** where SIGINT/SIGTERM come from; tests pass an EventEmitter */
  signals: Pick<NodeJS.Process, 'on' | 'off'>;
}

export interface GlobalOptions {
  root?: string;
  json?: boolean;
  quiet?: boolean;
  yes?: boolean;
  interaction?: boolean;
}

export interface CommandRun {
  reporter: Reporter;
  signal: AbortSignal;
  global: GlobalOptions;
  root: string;
  io: Io;
}

/** Runs one command: picks the reporter, turns SIGINT/SIGTERM into an abort, maps errors to exit codes once. */
export class RunContext {
  exitCode: number = ExitCode.OK;
  constructor(readonly io: Io) {}

  pickMode(global: GlobalOptions): ReporterMode {
    if (global.json) return 'json';
    // A pseudo-terminal without a size (e.g. `script` with no terminal behind it) reports 0 columns, and a
    // spinner that cannot measure its lines would redraw forever: such a terminal gets plain lines.
    const columns = (this.io.stderr as { columns?: number }).columns ?? 0;
    if (this.io.stderr.isTTY && columns > 0 && !this.io.env.CI && this.io.env.TERM !== 'dumb') return 'tty';
    return 'plain';
  }

  async run(global: GlobalOptions, fn: (run: CommandRun) => Promise<number | void>): Promise<void> {
    const mode = this.pickMode(global);
    const reporter = await createReporter({
      mode,
      quiet: global.quiet ?? false,
      stdout: this.io.stdout,
      stderr: this.io.stderr,
      color: mode === 'tty' && !('NO_COLOR' in this.io.env),
    });
    const controller = new AbortController();
    let signals = 0;
    const onSignal = (name: NodeJS.Signals) => {
      signals++;
      if (signals === 1) {
        controller.abort(name);
      } else if (signals >= 3) {
        // Third signal: the user insists. Cleanup normally takes milliseconds; this is a last resort.
        reporter.error(`${name} received three times: exiting without cleaning up`, ExitCode.INTERRUPTED);
        process.exit(ExitCode.INTERRUPTED);
      }
    };
    const onInt = () => onSignal('SIGINT');
    const onTerm = () => onSignal('SIGTERM');
    this.io.signals.on('SIGINT', onInt);
    this.io.signals.on('SIGTERM', onTerm);
    try {
      const code = await fn({
        reporter,
        signal: controller.signal,
        global,
        root: global.root ?? this.io.cwd,
        io: this.io,
      });
      this.exitCode = code ?? (reporter.warnings > 0 ? ExitCode.WARNINGS : ExitCode.OK);
    } catch (err) {
      this.exitCode = this.report(err, reporter, controller.signal);
    } finally {
      reporter.close();
      this.io.signals.off('SIGINT', onInt);
      this.io.signals.off('SIGTERM', onTerm);
    }
  }

  report(err: unknown, reporter: Reporter, signal?: AbortSignal): number {
    if (signal?.aborted && !(err instanceof CliError && !(err instanceof InterruptedError))) {
      const why = typeof signal.reason === 'string' ? signal.reason : 'a signal';
      reporter.error(
        `Interrupted by ${why}: the run was undone, nothing was left behind`,
        ExitCode.INTERRUPTED,
      );
      return ExitCode.INTERRUPTED;
    }
    if (err instanceof CliError) {
      reporter.error(err.message, err.exitCode);
      return err.exitCode;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    reporter.error(
      `Internal error (a bug in magebackup, please report it): ${e.message}`,
      ExitCode.FAILURE,
      e.stack,
    );
    return ExitCode.FAILURE;
  }
}
