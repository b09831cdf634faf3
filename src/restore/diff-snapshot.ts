/**
 * `backups:diff`: which snapshot to compare with. Apart from the database side (db-diff.ts) so that a diff of a
 * snapshot without a database backup never loads the database code (mysql2, the env.php parser: ~0.5 s of the
 * command's start).
 */
import { CliError } from '../errors.js';
import { listSnapshots, parseSnapshotId, type SnapshotInfo } from '../store/snapshot-list.js';

const RESTORABLE = new Set(['complete', 'legacy']);

/** The snapshot `id`, or the newest restorable one (any part). */
export async function chooseSnapshot(root: string, id: string | undefined): Promise<SnapshotInfo> {
  const { dir, snapshots } = await listSnapshots(root);
  if (id === undefined) {
    const snap = snapshots.find((s) => RESTORABLE.has(s.status) && s.parts.length > 0);
    if (!snap) throw new CliError(`No backup in ${dir} to compare with`);
    return snap;
  }
  const ts = parseSnapshotId(id);
  const snap = snapshots.find((s) => s.timestamp === ts);
  if (!snap) throw new CliError(`No snapshot ${id} in ${dir} (see snapshot:list)`);
  if (!RESTORABLE.has(snap.status))
    throw new CliError(`Snapshot ${snap.id} is ${snap.status}: ${snap.problems.join('; ')}`);
  return snap;
}
