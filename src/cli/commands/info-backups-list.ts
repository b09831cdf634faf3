import { WarningCode } from '../../events.js';
import { listBackups } from '../../store/list-backups.js';
import { deadRunNotice } from '../../maintenance/maintenance.js';
import { formatBytes, formatTime, renderTable } from '../../ui/format.js';
import type { CommandRun } from '../context.js';

export async function infoBackupsList(run: CommandRun): Promise<number> {
  const { dir, backups } = await listBackups(run.root);
  const dead = await deadRunNotice(run.root);
  if (dead) run.reporter.onEvent({ type: 'warning', code: WarningCode.DEAD_RUN, message: dead });
  const data = { type: 'result', command: 'info:backups:list', dir, backups };
  if (backups.length === 0) {
    run.reporter.result('No backup files found.', data);
    return 0;
  }
  const table = renderTable(
    ['Backup Filename', 'Backup Type', 'Size', 'Created'],
    backups.map((b) => [
      b.name,
      b.incomplete ? `${b.kind} (incomplete)` : b.kind,
      formatBytes(b.size),
      formatTime(b.created),
    ]),
  );
  const note = backups.some((b) => b.incomplete)
    ? '(incomplete): a run that is still writing, or that failed or was killed; never used for a rollback (backups:prune removes it)\n'
    : '';
  run.reporter.result(
    `Showing backup files in ${dir} (first part of the filename is the time it was taken) ...\n${table}${note}`,
    data,
  );
  return 0;
}
