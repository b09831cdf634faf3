/**
 * Backups grouped by run: every file in var/backups whose name starts with the same timestamp is one snapshot
 * (id = the timestamp). Its status comes from its manifest, without reading the parts (that is backups:verify):
 *   complete   — manifest present, every part it lists present with the recorded size
 *   corrupt    — manifest unreadable, or a part it lists is missing or has another size
 *   incomplete — no manifest, and the files are a magebackup run's (run marker or .partial left): a crashed or
 *                failed run; never restored, removed by backups:prune
 *   legacy     — no manifest and no sign of a magebackup run: Magento's own backups; listed and restorable
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { CliError, UsageError, errnoCode } from '../errors.js';
import type { Part } from '../events.js';
import { PARTIAL_SUFFIX } from '../fs/atomic.js';
import { parseBackupName } from './backup-name.js';
import { RUN_MARKER_SUFFIX, isRunMarkerLive, readManifest, type Manifest } from './manifest.js';
import { assertMagentoRoot } from './paths.js';

export type SnapshotStatus = 'complete' | 'incomplete' | 'corrupt' | 'legacy';

export interface SnapshotFile {
  name: string;
  path: string;
  /** a backup part, the manifest, a `.partial` left by a killed write, or a run marker */
  kind: Part | 'manifest' | 'partial' | 'marker';
  size: number;
}

export interface SnapshotInfo {
  id: string;
  timestamp: number;
  /** ISO time of the run (the timestamp) */
  created: string;
  /** seconds since the run, at the `now` given */
  age: number;
  status: SnapshotStatus;
  /** why it is not complete, each naming a file */
  problems: string[];
  /** parts present, in code/media/db order */
  parts: Part[];
  /** the part files (one per part; the manifest's if it has one) */
  partFiles: Partial<Record<Part, string>>;
  /** bytes of every file of the run */
  totalSize: number;
  /** every file of the run: what backups:prune removes */
  files: SnapshotFile[];
  manifest?: Manifest;
}

const PART_ORDER: readonly Part[] = ['code', 'media', 'db'];

/** Which timestamp a file of var/backups belongs to, and as what; null for files that are not ours to judge. */
export function classifyBackupFile(name: string): { timestamp: number; kind: SnapshotFile['kind'] } | null {
  if (name.startsWith('.')) return null;
  if (name.endsWith(RUN_MARKER_SUFFIX)) {
    const p = parseBackupName(name.slice(0, -RUN_MARKER_SUFFIX.length));
    return p?.kind === 'manifest' ? { timestamp: p.timestamp, kind: 'marker' } : null;
  }
  if (name.endsWith(PARTIAL_SUFFIX)) {
    const p = parseBackupName(name.slice(0, -PARTIAL_SUFFIX.length));
    return p ? { timestamp: p.timestamp, kind: 'partial' } : null;
  }
  const p = parseBackupName(name);
  return p ? { timestamp: p.timestamp, kind: p.kind } : null;
}

export function parseSnapshotId(id: string): number {
  if (!/^\d{1,12}$/.test(id)) {
    throw new UsageError(
      `Invalid snapshot id "${id}": an id is the timestamp the snapshot list shows (digits only)`,
    );
  }
  return Number(id);
}

/** Snapshots of the store, newest first. A missing var/backups is an empty list. */
export async function listSnapshots(
  root: string,
  o: { now?: () => number } = {},
): Promise<{ dir: string; exists: boolean; snapshots: SnapshotInfo[] }> {
  const dir = (await assertMagentoRoot(root)).backupsDir;
  const nowMs = (o.now ?? Date.now)();
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { dir, exists: false, snapshots: [] };
    throw err;
  }
  const groups = new Map<number, SnapshotFile[]>();
  await Promise.all(
    names.map(async (name) => {
      const c = classifyBackupFile(name);
      if (!c) return;
      const file = path.join(dir, name);
      const st = await fsp.lstat(file).catch(() => null);
      if (!st?.isFile()) return;
      let g = groups.get(c.timestamp);
      if (!g) groups.set(c.timestamp, (g = []));
      g.push({ name, path: file, kind: c.kind, size: st.size });
    }),
  );
  const snapshots = await Promise.all(
    [...groups.entries()].map(([ts, files]) =>
      judge(
        ts,
        files.sort((a, b) => a.name.localeCompare(b.name)),
        nowMs,
      ),
    ),
  );
  snapshots.sort((a, b) => b.timestamp - a.timestamp);
  return { dir, exists: true, snapshots };
}

/** One snapshot by id; a CliError if there is none. */
export async function getSnapshot(
  root: string,
  id: string,
  o: { now?: () => number } = {},
): Promise<SnapshotInfo> {
  const ts = parseSnapshotId(id);
  const { dir, snapshots } = await listSnapshots(root, o);
  const s = snapshots.find((x) => x.timestamp === ts);
  if (!s) throw new CliError(`No snapshot ${id} in ${dir} (see snapshot:list)`);
  return s;
}

async function judge(timestamp: number, files: SnapshotFile[], nowMs: number): Promise<SnapshotInfo> {
  const base = {
    id: String(timestamp),
    timestamp,
    created: new Date(timestamp * 1000).toISOString(),
    age: Math.max(0, Math.floor(nowMs / 1000) - timestamp),
    totalSize: files.reduce((n, f) => n + f.size, 0),
    files,
  };
  const problems: string[] = [];
  const byName = new Map(files.map((f) => [f.name, f]));
  const manifestFile = files.find((f) => f.kind === 'manifest');
  if (manifestFile) {
    let manifest: Manifest | null = null;
    try {
      manifest = await readManifest(manifestFile.path, timestamp);
    } catch (err) {
      problems.push(err instanceof Error ? err.message : String(err));
    }
    if (!manifest) {
      return { ...base, status: 'corrupt', problems, ...presentParts(files) };
    }
    const partFiles: Partial<Record<Part, string>> = {};
    for (const p of manifest.parts) {
      partFiles[p.part] = p.file;
      const f = byName.get(p.file);
      if (!f) problems.push(`${p.file} is missing (listed in ${manifestFile.name})`);
      else if (f.size !== p.size) problems.push(`${p.file} has ${f.size} bytes, its manifest says ${p.size}`);
    }
    const parts = PART_ORDER.filter((p) => partFiles[p] !== undefined);
    return {
      ...base,
      status: problems.length ? 'corrupt' : 'complete',
      problems,
      parts,
      partFiles,
      manifest,
    };
  }
  const leftovers = files.filter((f) => f.kind === 'partial' || f.kind === 'marker');
  const marker = files.find((f) => f.kind === 'marker');
  const live = marker ? await isRunMarkerLive(marker.path) : null;
  if (live) {
    problems.push(`no manifest yet: ${live.command} (pid ${live.pid}) is still writing this run`);
    return { ...base, status: 'incomplete', problems, ...presentParts(files) };
  }
  if (leftovers.length > 0) {
    problems.push(
      `no manifest: the run did not finish (${leftovers.map((f) => f.name).join(', ')} left behind)`,
    );
    return { ...base, status: 'incomplete', problems, ...presentParts(files) };
  }
  const present = presentParts(files);
  for (const part of present.parts) {
    const all = files.filter((f) => f.kind === part);
    if (all.length > 1)
      problems.push(`several ${part} backups with this timestamp: ${all.map((f) => f.name).join(', ')}`);
  }
  return { ...base, status: 'legacy', problems, ...present };
}

function presentParts(files: SnapshotFile[]): { parts: Part[]; partFiles: Partial<Record<Part, string>> } {
  const partFiles: Partial<Record<Part, string>> = {};
  for (const f of files) {
    if (f.kind === 'code' || f.kind === 'media' || f.kind === 'db') partFiles[f.kind] ??= f.name;
  }
  return { parts: PART_ORDER.filter((p) => partFiles[p] !== undefined), partFiles };
}
