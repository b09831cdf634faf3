import { WarningCode } from '../../events.js';
import { listSnapshots, type SnapshotInfo } from '../../store/snapshot-list.js';
import { deadRunNotice } from '../../maintenance/maintenance.js';
import { formatAge, formatBytes, formatTime, renderTable } from '../../ui/format.js';
import type { CommandRun } from '../context.js';

/** What --json shows of a snapshot: everything but absolute paths of each file and the raw manifest. */
function snapshotJson(s: SnapshotInfo) {
  return {
    id: s.id,
    timestamp: s.timestamp,
    created: s.created,
    age: s.age,
    status: s.status,
    parts: s.parts,
    partFiles: s.partFiles,
    totalSize: s.totalSize,
    problems: s.problems,
    files: s.files.map((f) => ({ name: f.name, kind: f.kind, size: f.size })),
    ...(s.manifest
      ? {
          manifest: {
            tool: s.manifest.tool,
            command: s.manifest.command,
            completed: s.manifest.completed,
            ...(s.manifest.serverVersion ? { serverVersion: s.manifest.serverVersion } : {}),
            parts: s.manifest.parts,
          },
        }
      : {}),
  };
}

export async function snapshotList(run: CommandRun): Promise<number> {
  const { dir, snapshots } = await listSnapshots(run.root);
  const dead = await deadRunNotice(run.root);
  if (dead) run.reporter.onEvent({ type: 'warning', code: WarningCode.DEAD_RUN, message: dead });
  const data = { type: 'result', command: 'snapshot:list', dir, snapshots: snapshots.map(snapshotJson) };
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
