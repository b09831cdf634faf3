/**
 * `backups:verify`: is a snapshot restorable? For each of its files: size and SHA-256 against the manifest, every
 * archive read to its end (gzip CRCs, tar structure, the same path-safety rules as a rollback), every dump read
 * to its end and ending with its `-- Dump completed` line. `deep` also extracts each archive into a temporary
 * directory and loads each dump into a throwaway database on the store's server (dropped afterwards).
 * Never changes the store or a backup; returns the findings, each naming its file.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { extractArchive } from '../archive/extract.js';
import { verifyArchive } from '../archive/verify.js';
import { resolveDbConfig, type DbFlags } from '../db/config.js';
import { openConnection } from '../db/connect.js';
import { restoreDatabase } from '../db/restore.js';
import { verifyDump } from '../db/verify-dump.js';
import type { DbConnectionConfig } from '../db/types.js';
import { CliError, InterruptedError, UsageError, throwIfAborted } from '../errors.js';
import { noEvents, type EventSink, type Part } from '../events.js';
import { hashFile, type ManifestPart } from './manifest.js';
import { listSnapshots, parseSnapshotId, type SnapshotInfo, type SnapshotStatus } from './snapshot-list.js';
import { assertMagentoRoot } from './store.js';

export interface FileCheck {
  file: string;
  part: Part;
  ok: boolean;
  /** each names the file */
  problems: string[];
  size: number;
  sha256?: string;
  /** what reading it found: archive entries / dump statements */
  entries?: number;
  statements?: number;
  /** deep: entries extracted / tables loaded */
  extracted?: number;
  tables?: number;
}

export interface SnapshotCheck {
  id: string;
  status: SnapshotStatus;
  ok: boolean;
  /** problems of the snapshot as a whole (no manifest, part missing), each naming a file */
  problems: string[];
  files: FileCheck[];
}

export interface VerifyBackupsResult {
  ok: boolean;
  deep: boolean;
  snapshots: SnapshotCheck[];
}

export interface VerifyBackupsOptions {
  root: string;
  /** snapshot ids; 'all'; or undefined for the newest snapshot */
  ids?: readonly string[] | 'all';
  deep?: boolean;
  /** how to reach the database server for `deep` (same resolution as setup:rollback) */
  db?: { flags: DbFlags; env: NodeJS.ProcessEnv };
  signal?: AbortSignal;
  onEvent?: EventSink;
  now?: () => number;
}

export async function verifyBackups(o: VerifyBackupsOptions): Promise<VerifyBackupsResult> {
  const onEvent = o.onEvent ?? noEvents;
  const paths = await assertMagentoRoot(o.root);
  const { dir, snapshots } = await listSnapshots(paths.root, o.now ? { now: o.now } : {});
  let selected: SnapshotInfo[];
  if (o.ids === 'all') {
    selected = snapshots;
    if (selected.length === 0) throw new CliError(`No backups in ${dir} to verify`);
  } else if (o.ids && o.ids.length > 0) {
    selected = o.ids.map((id) => {
      const ts = parseSnapshotId(id);
      const s = snapshots.find((x) => x.timestamp === ts);
      if (!s) throw new CliError(`No snapshot ${id} in ${dir} (see snapshot:list)`);
      return s;
    });
  } else {
    const newest = snapshots[0];
    if (!newest) throw new CliError(`No backups in ${dir} to verify`);
    selected = [newest];
  }

  let dbConfig: DbConnectionConfig | undefined;
  if (o.deep && selected.some((s) => s.partFiles.db !== undefined)) {
    dbConfig = await resolveDbConfig({
      root: paths.root,
      flags: o.db?.flags ?? {},
      env: o.db?.env ?? {},
      onWarning: (w) => onEvent({ type: 'warning', ...w }),
    });
  }

  const results: SnapshotCheck[] = [];
  for (const s of selected) {
    throwIfAborted(o.signal);
    results.push(await verifySnapshot(s, dir, { ...o, onEvent, dbConfig }));
  }
  return { ok: results.every((r) => r.ok), deep: o.deep ?? false, snapshots: results };
}

/** Every problem of a verification, one per line, each naming its file. */
export function verifyProblems(r: VerifyBackupsResult): string[] {
  return r.snapshots.flatMap((s) => [...s.problems, ...s.files.flatMap((f) => f.problems)]);
}

async function verifySnapshot(
  s: SnapshotInfo,
  dir: string,
  o: VerifyBackupsOptions & { onEvent: EventSink; dbConfig: DbConnectionConfig | undefined },
): Promise<SnapshotCheck> {
  const problems: string[] = [];
  if (s.status === 'incomplete') problems.push(`snapshot ${s.id}: ${s.problems.join('; ')}`);
  if (s.status === 'legacy') {
    o.onEvent({
      type: 'info',
      message: `Snapshot ${s.id} has no manifest (a Magento backup): checking structure only, no checksums`,
    });
    problems.push(...s.problems.map((p) => `snapshot ${s.id}: ${p}`));
  }
  const manifest = s.manifest;
  if (s.status === 'corrupt' && !manifest) problems.push(...s.problems);
  const files: FileCheck[] = [];
  const present = new Set(s.files.map((f) => f.name));
  const targets: Array<{ part: Part; file: string; expect?: Expected }> = manifest
    ? manifest.parts.map((p) => ({ part: p.part, file: p.file, expect: p }))
    : (['code', 'media', 'db'] as const).flatMap((part) =>
        s.files.filter((f) => f.kind === part).map((f) => ({ part, file: f.name })),
      );
  for (const t of targets) {
    throwIfAborted(o.signal);
    if (!present.has(t.file)) {
      problems.push(`${t.file} is missing (listed in ${s.id}_manifest.json)`);
      continue;
    }
    files.push(await verifyFile(path.join(dir, t.file), t.part, t.expect, o));
  }
  const ok = problems.length === 0 && files.every((f) => f.ok) && s.status !== 'incomplete';
  return { id: s.id, status: s.status, ok, problems, files };
}

type Expected = Pick<ManifestPart, 'size' | 'sha256' | 'files' | 'bytes'>;

async function verifyFile(
  file: string,
  part: Part,
  expect: Expected | undefined,
  o: VerifyBackupsOptions & { onEvent: EventSink; dbConfig: DbConnectionConfig | undefined },
): Promise<FileCheck> {
  const name = path.basename(file);
  const size = (await fsp.stat(file)).size;
  const check: FileCheck = { file: name, part, ok: true, problems: [], size };
  const problem = (p: string) => {
    check.ok = false;
    check.problems.push(p.includes(name) ? p : `${name}: ${p}`);
  };
  const fail = (err: unknown) => {
    if (err instanceof InterruptedError) throw err;
    if (err instanceof CliError) problem(err.message);
    else throw err;
  };
  o.onEvent({ type: 'part-start', part, operation: 'verify', file: name, path: file });
  if (expect && size !== expect.size) problem(`${name} has ${size} bytes, its manifest says ${expect.size}`);
  const signal = o.signal ? { signal: o.signal } : {};
  // The checksum and the structural read go over the same file at once: the second read comes from the cache.
  const sum = expect ? hashFile(file, signal) : undefined;
  sum?.catch(() => {});
  const structure = (async () => {
    try {
      if (part === 'db') {
        const v = await verifyDump(file, {
          ...signal,
          onProgress: (bytes) =>
            o.onEvent({ type: 'progress', part, operation: 'verify', bytes, totalBytes: size }),
        });
        check.statements = v.statements ?? 0;
      } else {
        const v = await verifyArchive(file, {
          ...signal,
          filter: part,
          onProgress: (p) =>
            o.onEvent({ type: 'progress', part, operation: 'verify', files: p.entries, bytes: p.bytes }),
          onWarning: (w) => o.onEvent({ type: 'warning', ...w, message: `${name}: ${w.message}` }),
        });
        check.entries = v.entries;
        // The archive holds what the manifest says was written: no member lost, none added.
        if (expect?.files !== undefined && v.files !== expect.files) {
          problem(`${name} holds ${v.files} files, its manifest says ${expect.files}`);
        }
        if (expect?.bytes !== undefined && v.bytes !== expect.bytes) {
          problem(`${name} holds ${v.bytes} bytes of file contents, its manifest says ${expect.bytes}`);
        }
      }
    } catch (err) {
      fail(err);
    }
  })();
  await structure;
  if (sum && expect) {
    try {
      const got = await sum;
      check.sha256 = got.sha256;
      if (got.sha256 !== expect.sha256) {
        problem(
          `${name}: SHA-256 ${got.sha256} does not match the manifest's ${expect.sha256} (the file changed or is corrupt)`,
        );
      }
    } catch (err) {
      fail(err);
    }
  }
  if (o.deep && check.ok) {
    try {
      if (part === 'db') check.tables = await deepLoad(file, o);
      else check.extracted = await deepExtract(file, part, o);
    } catch (err) {
      fail(err);
    }
  }
  o.onEvent({
    type: 'part-done',
    part,
    operation: 'verify',
    file: name,
    path: file,
    size,
    ...(check.entries !== undefined ? { files: check.entries } : {}),
    ...(check.tables !== undefined ? { tables: check.tables } : {}),
  });
  return check;
}

/** Extracts into a private directory beside the backups (same disk, 0700) and removes it again. */
async function deepExtract(
  file: string,
  part: 'code' | 'media',
  o: VerifyBackupsOptions & { onEvent: EventSink },
) {
  const tmp = await fsp.mkdtemp(path.join(path.dirname(file), '.magebackup-verify-'));
  try {
    const r = await extractArchive({
      file,
      destDir: tmp,
      filter: part,
      ...(o.signal ? { signal: o.signal } : {}),
      onProgress: (p) =>
        o.onEvent({ type: 'progress', part, operation: 'verify', files: p.entries, bytes: p.bytes }),
    });
    return r.entries;
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

/** Loads the dump into a new database on the store's server, counts its tables, and drops it. */
async function deepLoad(
  file: string,
  o: { signal?: AbortSignal; onEvent: EventSink; dbConfig: DbConnectionConfig | undefined },
) {
  if (!o.dbConfig)
    throw new UsageError('backups:verify --deep needs the database connection (app/etc/env.php or --db-*)');
  const name = `magebackup_verify_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const conn = await openConnection(o.dbConfig, { database: null });
  try {
    await conn.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
    try {
      const r = await restoreDatabase({
        config: { ...o.dbConfig, database: name },
        file,
        dropExtraTables: true,
        ...(o.signal ? { signal: o.signal } : {}),
        // Its progress is ours; its warnings (e.g. about extra tables) concern a throwaway database.
        onEvent: (e) => {
          if (e.type === 'progress') o.onEvent({ ...e, operation: 'verify' });
        },
      });
      return r.tables;
    } finally {
      await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
    }
  } finally {
    await conn.end();
  }
}
