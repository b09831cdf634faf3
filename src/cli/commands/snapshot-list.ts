import { WarningCode } from '../../events.js';
import { listSnapshots } from '../../store/snapshot-list.js';
import { publicSnapshot } from '../../store/snapshot-view.js';
import { deadRunNotice } from '../../maintenance/maintenance.js';
import { formatAge, formatBytes, formatTime, renderTable } from '../../ui/format.js';
import type { CommandRun } from '../context.js';

export async function snapshotList(run: CommandRun): Promise<number> {
  const { dir, snapshots } = await listSnapshots(run.root);
  const dead = await deadRunNotice(run.root);
  if (dead) run.reporter.onEvent({ type: 'warning', code: WarningCode.DEAD_RUN, message: dead });
  const data = { type: 'result', command: 'snapshot:list', dir, snapshots: snapshots.map(publicSnapshot) };
  if (snapshots.length === 0) {
    run.reporter.result(`No snapshots in ${dir}.`, data);
    return 0;
  }
  const table = renderTable(
    ['ID', 'Created', 'Age', 'Parts', 'Size', 'Status'],
    snapshots.map((s) => [
      s.id,
      formatTime(s.created),
      formatAge(s.age),
      s.parts.join(',') || '-',
      formatBytes(s.totalSize),
      s.status === 'legacy' ? 'complete (no manifest)' : s.status,
    ]),
  );
  const notes = snapshots.flatMap((s) => s.problems.map((p) => `  ${s.id}: ${p}`));
  run.reporter.result(
    `Snapshots in ${dir}, newest first:\n${table}${notes.length ? `Problems:\n${notes.join('\n')}\n` : ''}`,
    data,
  );
  return 0;
}
