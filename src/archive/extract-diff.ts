/**
 * `backups:diff [<id>]`: what changed in the code tree and pub/media since a backup, read-only. Each archive of
 * the snapshot is read to its end (the same reader and path rules as a rollback, nothing written) and every entry
 * compared with the live tree exactly as a selective rollback compares it (extract-compare.ts): files added since
 * the backup, removed since, and modified (type, mode, owner, mtime, link target or bytes). Paths a rollback never
 * touches (var/, pub/static, pub/media in a code backup, .git, node_modules, ...) are left out.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { CliError, UsageError } from '../errors.js';
import { noEvents, type EventSink } from '../events.js';
import { listSnapshots, parseSnapshotId, type SnapshotInfo } from '../store/snapshot-list.js';
import { assertMagentoRoot } from '../store/paths.js';
import { realLiveDir, runArchiveWorker } from './extract.js';
import { changeCounts, type TreeChangeCounts } from './extract-summary.js';

export interface DiffPart {
  part: 'code' | 'media';
  file: string;
  counts: TreeChangeCounts;
  added: string[];
  removed: string[];
  modified: string[];
}

export interface DiffResult {
  id: string;
  parts: DiffPart[];
}

export interface DiffOptions {
  root: string;
  /** a snapshot id; default: the newest restorable snapshot with a code or media backup */
  id?: string;
  signal?: AbortSignal;
  onEvent?: EventSink;
}

const RESTORABLE = new Set(['complete', 'legacy']);

export async function diffBackup(o: DiffOptions): Promise<DiffResult> {
  const onEvent = o.onEvent ?? noEvents;
  const paths = await assertMagentoRoot(o.root);
  const { dir, snapshots } = await listSnapshots(paths.root);
  const hasTree = (s: SnapshotInfo): boolean => !!(s.partFiles.code ?? s.partFiles.media);
  let snap: SnapshotInfo | undefined;
  if (o.id !== undefined) {
    const ts = parseSnapshotId(o.id);
    snap = snapshots.find((s) => s.timestamp === ts);
    if (!snap) throw new CliError(`No snapshot ${o.id} in ${dir} (see snapshot:list)`);
    if (!RESTORABLE.has(snap.status))
      throw new CliError(`Snapshot ${snap.id} is ${snap.status}: ${snap.problems.join('; ')}`);
    if (!hasTree(snap))
      throw new UsageError(`Snapshot ${snap.id} has no code or media backup: nothing to compare`);
  } else {
    snap = snapshots.find((s) => RESTORABLE.has(s.status) && hasTree(s));
    if (!snap) throw new CliError(`No code or media backup in ${dir} to compare with`);
  }
  const parts: DiffPart[] = [];
  for (const part of ['code', 'media'] as const) {
    const name = snap.partFiles[part];
    if (!name) continue;
    const file = path.join(dir, name);
    const liveDir = part === 'code' ? paths.root : await mediaDir(paths.root);
    // what a rollback gives its files: the owner of the directory it replaces (see tree-swap.ts)
    const ownerSt = (await fsp.stat(liveDir).catch(() => null)) ?? (await fsp.stat(paths.root));
    onEvent({ type: 'part-start', part, operation: 'verify', file: name, path: file });
    const r = await runArchiveWorker(
      {
        mode: 'verify',
        file,
        filter: part,
        owner: { uid: ownerSt.uid, gid: ownerSt.gid },
        keepModes: false,
        allowOutsideLinks: false,
        limit: { dir },
        compare: { liveDir: await realLiveDir(liveDir) },
      },
      {
        ...(o.signal ? { signal: o.signal } : {}),
        onProgress: (p) =>
          onEvent({ type: 'progress', part, operation: 'verify', files: p.entries, bytes: p.bytes }),
      },
    );
    const c = r.changes ?? { added: [], removed: [], modified: [] };
    const sorted = (a: string[]): string[] => [...a].sort();
    onEvent({
      type: 'part-done',
      part,
      operation: 'verify',
      file: name,
      path: file,
      size: (await fsp.stat(file)).size,
      files: r.entries,
    });
    parts.push({
      part,
      file: name,
      counts: changeCounts(c),
      added: sorted(c.added),
      removed: sorted(c.removed),
      modified: sorted(c.modified),
    });
  }
  return { id: snap.id, parts };
}

/** pub/media, or the directory it links to (Magento #13218), without creating anything. */
async function mediaDir(root: string): Promise<string> {
  const media = path.join(root, 'pub', 'media');
  const st = await fsp.lstat(media).catch(() => null);
  if (st?.isSymbolicLink()) return fsp.realpath(media).catch(() => media);
  return media;
}

/** Plain text: per part the counts, then the paths ("+ added", "- removed", "M modified"). */
export function formatDiff(r: DiffResult): string {
  const lines: string[] = [];
  for (const p of r.parts) {
    const c = p.counts;
    lines.push(
      `${p.part} since ${p.file}: ${c.added} added, ${c.removed} removed, ${c.modified} modified (${c.total} file${c.total === 1 ? '' : 's'} a rollback would restore)`,
    );
    for (const f of p.added) lines.push(`  + ${f}`);
    for (const f of p.removed) lines.push(`  - ${f}`);
    for (const f of p.modified) lines.push(`  M ${f}`);
  }
  return lines.join('\n');
}
