import { createSnapshot } from '../../backup/snapshot-create.js';
import { ExitCode } from '../../errors.js';
import { runInputs, type CommandRun } from '../context.js';
import { backupInputs, prunePolicyOf, type BackupOptions } from '../options.js';
import { pruneSummary } from '../prune-summary.js';

export async function snapshotCreate(run: CommandRun, opts: BackupOptions): Promise<number> {
  const prune = prunePolicyOf(opts);
  const result = await createSnapshot({
    ...runInputs(run, 'snapshot:create'),
    ...backupInputs(opts, run.io.env),
    ...(prune ? { prune } : {}),
  });
  const lines = [`Snapshot ${result.id} created (${result.parts.map((p) => p.file).join(', ')})`];
  if (result.pruned) lines.push(pruneSummary(result.pruned));
  run.reporter.result(lines.join('\n'), { type: 'result', command: 'snapshot:create', ...result });
  return result.warnings > 0 ? ExitCode.WARNINGS : ExitCode.OK;
}
