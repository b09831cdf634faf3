import { diffBackup, formatDiff, type DiffResult } from '../../archive/extract-diff.js';
import type { DbDiff } from '../../restore/db-diff.js';
import { ExitCode } from '../../errors.js';
import { WarningCode } from '../../events.js';
import { deadRunNotice, liveRollbackNotice } from '../../maintenance/maintenance.js';
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
  // a killed rollback not yet put back by the next run, or one running now: the live store may be half of it
  const dead = await deadRunNotice(run.root);
  if (dead) run.reporter.onEvent({ type: 'warning', code: WarningCode.DEAD_RUN, message: dead });
  const live = dead ? null : await liveRollbackNotice(run.root);
  if (live) run.reporter.onEvent({ type: 'warning', code: WarningCode.RUN_IN_PROGRESS, message: live });
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
  // what it compared may be half of a rollback: "completed with warnings"
  return dead || live ? ExitCode.WARNINGS : ExitCode.OK;
}
