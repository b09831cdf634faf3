import { UsageError, ExitCode } from '../../errors.js';
import { runBackup } from '../../backup/run-backup.js';
import { runInputs, type CommandRun } from '../context.js';
import { backupInputs, prunePolicyOf, type SetupBackupOptions } from '../options.js';
import { pruneSummary } from '../prune-summary.js';

export async function setupBackup(run: CommandRun, opts: SetupBackupOptions): Promise<number> {
  const parts = { code: !!opts.code, media: !!opts.media, db: !!opts.db };
  if (!parts.code && !parts.media && !parts.db) {
    throw new UsageError('Not enough information provided to take backup: give --code, --media and/or --db');
  }
  const prune = prunePolicyOf(opts);
  const result = await runBackup({
    ...runInputs(run, 'setup:backup'),
    parts,
    ...backupInputs(opts, run.io.env),
    ...(prune ? { prune } : {}),
  });
  run.reporter.result(result.pruned ? pruneSummary(result.pruned) : '', {
    type: 'result',
    command: 'setup:backup',
    ...result,
  });
  return result.warnings > 0 ? ExitCode.WARNINGS : ExitCode.OK;
}
