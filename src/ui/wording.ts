/** How events read as text: Magento's wording (BEHAVIOR.md) for the plain and ora reporters. */
import type { StoreOutcome } from '../errors.js';
import type { MagebackupEvent, Operation, Part } from '../events.js';
import { KIND_LABEL } from '../store/backup-name.js';
import { formatBytes, formatCount } from './format.js';

const label = (part: Part) => KIND_LABEL[part];
const opWord: Record<Operation, string> = { backup: 'backup', rollback: 'rollback', verify: 'verification' };

export function progressText(e: Extract<MagebackupEvent, { type: 'progress' }>): string {
  const parts: string[] = [];
  if (e.files !== undefined) {
    parts.push(
      e.totalFiles !== undefined
        ? `${formatCount(e.files)} / ${formatCount(e.totalFiles)} files`
        : `${formatCount(e.files)} files`,
    );
  }
  if (e.table !== undefined) parts.push(`table ${e.table}`);
  if (e.rows !== undefined) parts.push(`${formatCount(e.rows)} rows`);
  parts.push(e.totalBytes ? `${formatBytes(e.bytes)} / ${formatBytes(e.totalBytes)}` : formatBytes(e.bytes));
  if (e.totalBytes) parts.push(`${Math.min(100, Math.floor((e.bytes / e.totalBytes) * 100))}%`);
  return `${label(e.part)} ${opWord[e.operation]}: ${parts.join(', ')}`;
}

export function doneStats(e: Extract<MagebackupEvent, { type: 'part-done' }>): string {
  const s: string[] = [];
  if (e.files !== undefined) s.push(`${formatCount(e.files)} files`);
  if (e.tables !== undefined) s.push(`${formatCount(e.tables)} tables`);
  if (e.rows !== undefined) s.push(`${formatCount(e.rows)} rows`);
  s.push(formatBytes(e.size));
  return s.join(', ');
}

/** The Magento wording of an event. Returns [stderrLines, stdoutLines]. */
export function magentoLines(e: MagebackupEvent): [string[], string[]] {
  switch (e.type) {
    case 'maintenance':
      return [
        [
          {
            enabled: 'Enabling maintenance mode',
            'already-enabled': 'Maintenance mode already enabled',
            disabled: 'Disabling maintenance mode',
            'left-enabled': 'Skipped disabling maintenance mode',
          }[e.state],
        ],
        [],
      ];
    case 'part-start':
      if (e.operation === 'verify') return [[`Verifying ${e.file} ...`], []];
      return [[`${label(e.part)} ${e.operation} is starting...`], []];
    case 'part-done':
      if (e.operation === 'backup') {
        return [
          [],
          [
            `${label(e.part)} backup filename: ${e.file}`,
            `${label(e.part)} backup path: ${e.path}`,
            `[SUCCESS]: ${label(e.part)} backup completed successfully.`,
          ],
        ];
      }
      if (e.operation === 'verify') return [[`${e.file}: OK (${doneStats(e)})`], []];
      return [[], [`[SUCCESS]: ${label(e.part)} rollback completed successfully.`]];
    case 'warning':
      return [[e.path !== undefined ? `Warning: ${e.path}: ${e.message}` : `Warning: ${e.message}`], []];
    case 'info':
      return [[e.message], []];
    case 'progress':
      return [[progressText(e)], []];
  }
}

/** How a run's interruption or failure is worded from the state the domain reports. */
export function describeOutcome(o: StoreOutcome): string {
  const parts: string[] = [
    {
      unchanged: 'nothing was changed',
      replaced: 'the rollback had completed',
      mixed: 'the live store is neither the old nor the new state',
    }[o.live],
  ];
  if (o.maintenance === 'left-on') parts.push('maintenance mode is ON');
  else if (o.live === 'mixed') parts.push('maintenance mode is as it was before the run');
  if (o.leftovers.length > 0) parts.push(`left behind: ${o.leftovers.join(', ')}`);
  else if (o.live !== 'mixed' && o.maintenance === 'as-before') parts.push('nothing was left behind');
  let text = parts.join('; ');
  if (o.finish) text += `. ${o.finish}`;
  return text;
}
