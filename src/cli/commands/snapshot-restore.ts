import { restoreSnapshot } from '../../restore/snapshot-restore.js';
import { parseSnapshotId } from '../../store/snapshot-list.js';
import { ExitCode } from '../../errors.js';
import { runInputs, type CommandRun } from '../context.js';
import { confirmer } from '../confirm.js';
import { restoreInputs, type RestoreOptions } from '../options.js';

export async function snapshotRestore(run: CommandRun, id: string, opts: RestoreOptions): Promise<number> {
  parseSnapshotId(id); // a bad id is a usage error, whether or not there is a terminal to confirm on
  const confirm = confirmer(run);
  const result = await restoreSnapshot({
    ...runInputs(run, 'snapshot:restore'),
    id,
    ...restoreInputs(opts, run.io.env),
    ...(confirm ? { confirm } : {}),
  });
  run.reporter.result(`Snapshot ${result.id} restored (${result.parts.map((p) => p.part).join(', ')})`, {
    type: 'result',
    command: 'snapshot:restore',
    ...result,
  });
  return result.warnings > 0 ? ExitCode.WARNINGS : ExitCode.OK;
}
