/**
 * What a rollback of a code or media archive changes, as counts and one line ("212 files will be restored: …"):
 * shared by the rollback's question and `backups:diff`. Pure.
 */
import type { TreeChanges } from './extract-compare.js';

export interface TreeChangeCounts {
  /** files in the live tree that the backup does not have (the rollback removes them) */
  added: number;
  /** files of the backup missing from the live tree */
  removed: number;
  /** files in both that differ (type, mode, owner, mtime, link target or bytes) */
  modified: number;
  /** every file the rollback writes or removes */
  total: number;
}

export function changeCounts(c: TreeChanges): TreeChangeCounts {
  const added = c.added.length;
  const removed = c.removed.length;
  const modified = c.modified.length;
  return { added, removed, modified, total: added + removed + modified };
}

function files(n: number): string {
  return `${n} file${n === 1 ? '' : 's'}`;
}

/** "212 files will be restored: 200 modified, 10 deleted since the backup, 2 added since the backup (removed)" */
export function describeChanges(c: TreeChangeCounts): string {
  if (c.total === 0) return 'no file differs from the backup: nothing will be restored';
  const parts = [
    c.modified ? `${c.modified} modified` : '',
    c.removed ? `${c.removed} deleted since the backup` : '',
    c.added ? `${c.added} added since the backup (removed)` : '',
  ].filter(Boolean);
  return `${files(c.total)} will be restored: ${parts.join(', ')}`;
}
