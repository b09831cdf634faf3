import { UsageError, ExitCode } from '../../errors.js';
import { runBackup } from '../../backup/run-backup.js';
import type { CommandRun } from '../context.js';
import { dbFlags, prunePolicyOf, splitList, type SetupBackupOptions } from '../options.js';
import { pruneSummary } from '../prune-summary.js';

export async function setupBackup(run: CommandRun, opts: SetupBackupOptions): Promise<number> {
  const parts = { code: !!opts.code, media: !!opts.media, db: !!opts.db };
  if (!parts.code && !parts.media && !parts.db) {
    throw new UsageError('Not enough information provided to take backup: give --code, --media and/or --db');
  }
  const prune = prunePolicyOf(opts);
  const result = await runBackup({
    root: run.root,
    ...(prune ? { prune } : {}),
    parts,
    excludes: opts.exclude ?? [],
    maintenance: opts.maintenance !== false,
    compress: !!opts.compress,
    strip: splitList(opts.strip),
    stripDefiners: opts.stripDefiners !== false,
    db: { flags: dbFlags(opts), env: run.io.env },
    signal: run.signal,
    onEvent: (e) => run.reporter.onEvent(e),
    command: 'setup:backup',
  });
  run.reporter.result(result.pruned ? pruneSummary(result.pruned) : '', {
    type: 'result',
    command: 'setup:backup',
    ...result,
  });
  return result.warnings > 0 ? ExitCode.WARNINGS : ExitCode.OK;
}
