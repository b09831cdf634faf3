import { diffBackup, formatDiff, type DiffResult } from '../../archive/extract-diff.js';
import type { DbDiff } from '../../restore/db-diff.js';
import { chooseSnapshot } from '../../restore/diff-snapshot.js';
import { parseSnapshotId } from '../../store/snapshot-list.js';
import type { CommandRun } from '../context.js';
import { dbFlags, type BackupsDiffOptions } from '../options.js';

/** `backups:diff [<id>]`: read-only; what a rollback of the snapshot's code, media and database would restore. */
export async function backupsDiff(
  run: CommandRun,
  id: string | undefined,
  opts: BackupsDiffOptions,
): Promise<number> {
  if (id !== undefined) parseSnapshotId(id); // a bad id is a usage error before anything is read
  const snap = await chooseSnapshot(run.root, id);
  const onEvent = run.reporter.onEvent.bind(run.reporter);
  const tree: DiffResult =
    snap.partFiles.code || snap.partFiles.media
      ? await diffBackup({ root: run.root, id: snap.id, signal: run.signal, onEvent })
      : { id: snap.id, parts: [] };
  // the database code (mysql2, the env.php parser) is loaded only for a snapshot with a database backup
  const dbDiff = snap.partFiles.db ? await import('../../restore/db-diff.js') : undefined;
  const db: DbDiff | undefined = dbDiff
    ? await dbDiff.diffSnapshotDatabase({
        root: run.root,
        snapshot: snap,
        db: { flags: dbFlags(opts), env: run.io.env },
        signal: run.signal,
        onEvent,
      })
    : undefined;
  const text = [formatDiff(tree), db && dbDiff ? dbDiff.formatDbDiff(db) : ''].filter(Boolean).join('\n');
  run.reporter.result(text, { type: 'result', command: 'backups:diff', ...tree, ...(db ? { db } : {}) });
  return 0;
}
