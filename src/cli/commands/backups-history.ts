import { assertMagentoRoot } from '../../store/paths.js';
import { WarningCode } from '../../events.js';
import { readHistory } from '../../history/history.js';
import { renderTable } from '../../ui/format.js';
import type { CommandRun } from '../context.js';
import type { BackupsHistoryOptions } from '../options.js';

function when(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** `backups:history`: the history log, newest first. */
export async function backupsHistory(run: CommandRun, opts: BackupsHistoryOptions): Promise<number> {
  const limit = opts.limit ?? 50;
  await assertMagentoRoot(run.root);
  const { entries, skipped } = await readHistory(run.root);
  if (skipped > 0) {
    run.reporter.onEvent({
      type: 'warning',
      code: WarningCode.HISTORY,
      message: `${skipped} line(s) of the history log are not history entries (damaged or planted): skipped`,
    });
  }
  const newest = entries.reverse();
  const shown = limit === 0 ? newest : newest.slice(0, limit);
  const data = { type: 'result', command: 'backups:history', entries: shown, total: entries.length, skipped };
  if (shown.length === 0) {
    run.reporter.result('No history yet.', data);
    return 0;
  }
  const table = renderTable(
    ['Time', 'Origin', 'Command', 'Result', 'Message'],
    shown.map((e) => [when(e.time), e.origin, e.command, e.result, e.message]),
  );
  const more = shown.length < entries.length ? `(${entries.length - shown.length} older: --limit 0)\n` : '';
  run.reporter.result(`History, newest first:\n${table}${more}`, data);
  return 0;
}
