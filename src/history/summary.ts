/**
 * One line for the history log from a command's result object (the one `--json` prints), shared by the CLI and
 * the web interface so an action reads the same from both.
 */
import type { RunBackupResult } from '../backup/run-backup.js';
import type { RunRollbackResult } from '../restore/run-rollback.js';
import type { PruneResult } from '../backup/prune.js';
import type { VerifyBackupsResult } from '../backup/verify-backups.js';
import { formatBytes } from '../ui/format.js';
import { resultOfExitCode, type HistoryEntry, type HistoryOrigin } from './history.js';

/** Commands whose runs go into the history (a prune dry run changes nothing and is left out). */
export const RECORDED_COMMANDS: ReadonlySet<string> = new Set([
  'setup:backup',
  'snapshot:create',
  'setup:rollback',
  'snapshot:restore',
  'backups:prune',
  'backups:verify',
  'maintenance:enable',
  'maintenance:disable',
]);

export interface Summary {
  message: string;
  id?: string;
}

function partsOf(parts: ReadonlyArray<{ part: string }>): string {
  return parts.map((p) => p.part).join(', ');
}

export function summarizeBackup(r: RunBackupResult): Summary {
  const size = r.parts.reduce((n, p) => n + p.size, 0);
  let message = `Backup ${r.timestamp}: ${partsOf(r.parts)} (${formatBytes(size)})`;
  if (r.warnings) message += `, ${r.warnings} warning(s)`;
  if (r.pruned) message += `; pruned ${r.pruned.removed.length} snapshot(s)`;
  return { message, id: String(r.timestamp) };
}

export function summarizeRollback(r: RunRollbackResult & { id?: string }): Summary {
  const files = r.parts.map((p) => p.file).join(', ');
  const id = r.id ?? /^(\d+)_/.exec(r.parts[0]?.file ?? '')?.[1];
  let message = `Restored ${partsOf(r.parts)} from ${files}`;
  if (r.warnings) message += `, ${r.warnings} warning(s)`;
  return { message, ...(id ? { id } : {}) };
}

export function summarizePrune(r: PruneResult): Summary {
  const ids = r.removed.map((d) => d.id);
  return {
    message:
      `Removed ${ids.length} snapshot(s)${ids.length ? ` (${ids.join(', ')})` : ''}` +
      `${r.strayPartials.length ? ` and ${r.strayPartials.length} partial file(s)` : ''}, ${formatBytes(r.freed)}; kept ${r.kept.length}`,
  };
}

export function summarizeVerify(r: VerifyBackupsResult): Summary {
  const ids = r.snapshots.map((s) => `${s.id} ${s.ok ? 'OK' : 'FAILED'}`);
  const only = r.snapshots.length === 1 ? r.snapshots[0]?.id : undefined;
  return {
    message: `${r.deep ? 'Deep verification' : 'Verification'}: ${ids.join(', ') || 'no snapshot'}`,
    ...(only ? { id: only } : {}),
  };
}

/** The summary of a command's `--json` result object; '' when it has none. */
export function summarize(command: string, data: unknown): Summary {
  if (!data || typeof data !== 'object') return { message: '' };
  switch (command) {
    case 'setup:backup':
    case 'snapshot:create':
      return summarizeBackup(data as RunBackupResult);
    case 'setup:rollback':
    case 'snapshot:restore':
      return summarizeRollback(data as RunRollbackResult);
    case 'backups:prune':
      return summarizePrune(data as PruneResult);
    case 'backups:verify':
      return summarizeVerify(data as VerifyBackupsResult);
    case 'maintenance:enable':
      return { message: 'Enabled maintenance mode' };
    case 'maintenance:disable':
      return { message: 'Disabled maintenance mode' };
    default:
      return { message: '' };
  }
}

/** A history entry for a finished action: from its result on success, from its error message otherwise. */
export function historyEntry(o: {
  origin: HistoryOrigin;
  command: string;
  exitCode: number;
  data?: unknown;
  error?: string;
  id?: string;
  now?: Date;
}): HistoryEntry {
  const s = o.data !== undefined ? summarize(o.command, o.data) : { message: '' };
  const id = s.id ?? o.id;
  return {
    time: (o.now ?? new Date()).toISOString(),
    origin: o.origin,
    command: o.command,
    result: resultOfExitCode(o.exitCode),
    exitCode: o.exitCode,
    message: o.error ?? s.message,
    ...(id !== undefined ? { id } : {}),
  };
}
