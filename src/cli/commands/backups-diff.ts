import { diffBackup, formatDiff } from '../../archive/extract-diff.js';
import { parseSnapshotId } from '../../store/snapshot-list.js';
import type { CommandRun } from '../context.js';

/** `backups:diff [<id>]`: read-only; what a rollback of the snapshot's code and media would restore. */
export async function backupsDiff(run: CommandRun, id: string | undefined): Promise<number> {
  if (id !== undefined) parseSnapshotId(id); // a bad id is a usage error before anything is read
  const result = await diffBackup({
    root: run.root,
    ...(id !== undefined ? { id } : {}),
    signal: run.signal,
    onEvent: (e) => run.reporter.onEvent(e),
  });
  run.reporter.result(formatDiff(result), { type: 'result', command: 'backups:diff', ...result });
  return 0;
}
