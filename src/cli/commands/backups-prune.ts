import { pruneBackups } from '../../backup/prune.js';
import type { CommandRun } from '../context.js';
import { policyOf, type BackupsPruneOptions } from '../options.js';
import { pruneSummary } from '../prune-summary.js';

export async function backupsPrune(run: CommandRun, opts: BackupsPruneOptions): Promise<number> {
  const result = await pruneBackups({
    root: run.root,
    policy: policyOf(opts),
    dryRun: !!opts.dryRun,
    signal: run.signal,
    onEvent: (e) => run.reporter.onEvent(e),
    command: 'backups:prune',
  });
  run.reporter.result(pruneSummary(result), { type: 'result', command: 'backups:prune', ...result });
  return 0;
}
