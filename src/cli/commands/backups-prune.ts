import { pruneBackups } from '../../backup/prune.js';
import { runInputs, type CommandRun } from '../context.js';
import { policyOf, type BackupsPruneOptions } from '../options.js';
import { pruneSummary } from '../prune-summary.js';

export async function backupsPrune(run: CommandRun, opts: BackupsPruneOptions): Promise<number> {
  const result = await pruneBackups({
    ...runInputs(run, 'backups:prune'),
    policy: policyOf(opts),
    dryRun: !!opts.dryRun,
  });
  run.reporter.result(pruneSummary(result), { type: 'result', command: 'backups:prune', ...result });
  return 0;
}
