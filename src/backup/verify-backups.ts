/**
 * `backups:verify`: is a snapshot restorable? For each of its files: size and SHA-256 against the manifest, every
 * archive read to its end (gzip CRCs, tar structure, the same path-safety rules as a rollback), every dump read
 * to its end and ending with its `-- Dump completed` line. `deep` also extracts each archive into a temporary
 * directory and loads each dump into a throwaway database on the store's server (dropped afterwards).
 * Never changes the store or a backup; returns the findings, each naming its file.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { extractArchive } from '../archive/extract.js';
import { verifyArchive } from '../archive/verify.js';
import { resolveDbConfig, type DbFlags } from '../db/config.js';
import { describeServer, openConnection } from '../db/connect.js';
import { restoreDatabase } from '../db/restore.js';
import { verifyDump } from '../db/verify-dump.js';
import type { DbConnectionConfig } from '../db/types.js';
import {
  CliError,
  InterruptedError,
  UsageError,
  throwIfAborted,
  unchangedOutcome,
  withOutcome,
} from '../errors.js';
import { WarningCode, noEvents, type EventSink, type Part } from '../events.js';
import { openVerifyRun, type VerifyRun } from './verify-leftovers.js';
import { checkAgainstManifest, type ManifestPart } from '../store/manifest.js';
import {
  listSnapshots,
  parseSnapshotId,
  type SnapshotInfo,
  type SnapshotStatus,
} from '../store/snapshot-list.js';
import { assertMagentoRoot } from '../store/paths.js';

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
  // --deep: its temporary directories and databases are registered in a private run directory first, so that
  // the next command of the store removes them if this run is killed (verify-leftovers.ts).
  const run = o.deep ? await openVerifyRun(dir) : undefined;
  try {
    for (const s of selected) {
      throwIfAborted(o.signal);
      results.push(await verifySnapshot(s, dir, { ...o, onEvent, dbConfig, run }));
    }
  } catch (err) {
    const leftovers = run ? await run.close() : [];
    throw withOutcome(err, {
      ...unchangedOutcome(leftovers),
      ...(leftovers.length ? { finish: 'The next magebackup command of this store removes them' } : {}),
    });
  }
  const leftovers = run ? await run.close() : [];
  if (leftovers.length > 0) {
    onEvent({
      type: 'warning',
      code: WarningCode.VERIFY_LEFTOVER,
      message: `Could not remove ${leftovers.join(', ')}: the next magebackup command of this store removes them`,
    });
  }
  return { ok: results.every((r) => r.ok), deep: o.deep ?? false, snapshots: results };
}

/** Every problem of a verification, one per line, each naming its file. */
export function verifyProblems(r: VerifyBackupsResult): string[] {
  return r.snapshots.flatMap((s) => [...s.problems, ...s.files.flatMap((f) => f.problems)]);
}

async function verifySnapshot(s: SnapshotInfo, dir: string, o: VerifyContext): Promise<SnapshotCheck> {
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

type VerifyContext = VerifyBackupsOptions & {
  onEvent: EventSink;
  dbConfig: DbConnectionConfig | undefined;
  run: VerifyRun | undefined;
};

/** The store's database user may not create databases (the usual Magento grant): --deep cannot run at all. */
class DeepNeedsPrivilegeError extends CliError {}

async function verifyFile(
  file: string,
  part: Part,
  expect: Expected | undefined,
  o: VerifyContext,
): Promise<FileCheck> {
  const name = path.basename(file);
  const size = (await fsp.stat(file)).size;
  const check: FileCheck = { file: name, part, ok: true, problems: [], size };
  const problem = (p: string) => {
    check.ok = false;
    check.problems.push(p.includes(name) ? p : `${name}: ${p}`);
  };
  const fail = (err: unknown) => {
    if (err instanceof InterruptedError || err instanceof DeepNeedsPrivilegeError) throw err;
    if (err instanceof CliError) problem(err.message);
    else throw err;
  };
  o.onEvent({ type: 'part-start', part, operation: 'verify', file: name, path: file });
  const signal = o.signal ? { signal: o.signal } : {};
  // The checksum first: a file that is not the one the manifest describes (a damaged or planted one, maybe a
  // decompression bomb) is reported without being inflated. The structural read then comes from the page cache.
  if (expect) {
    try {
      const c = await checkAgainstManifest(file, expect, signal);
      if (c.sha256 !== undefined) check.sha256 = c.sha256;
      if (c.problem) problem(c.problem);
    } catch (err) {
      fail(err);
    }
  }
  if (check.ok) {
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
  }
  if (o.deep && check.ok) {
    try {
      if (part === 'db') check.tables = await deepLoad(file, o);
      else check.extracted = await deepExtract(file, part, o);
    } catch (err) {
      fail(err);
    }
  }
  // "<file>: OK" only once every check on it passed; a failed file is named in the command's error.
  if (check.ok)
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
async function deepExtract(file: string, part: 'code' | 'media', o: VerifyContext) {
  if (!o.run) throw new Error('deepExtract without a verify run');
  const tmp = await fsp.mkdtemp(path.join(o.run.dir, `${part}-`));
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
async function deepLoad(file: string, o: VerifyContext) {
  if (!o.dbConfig)
    throw new UsageError('backups:verify --deep needs the database connection (app/etc/env.php or --db-*)');
  if (!o.run) throw new Error('deepLoad without a verify run');
  const config = o.dbConfig;
  const name = await o.run.newDatabase();
  const conn = await openConnection(config, { database: null });
  try {
    try {
      await conn.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
    } catch (err) {
      await o.run.databaseDropped(name);
      const code = (err as { code?: unknown }).code;
      if (
        code === 'ER_DBACCESS_DENIED_ERROR' ||
        code === 'ER_ACCESS_DENIED_ERROR' ||
        code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR'
      ) {
        throw new DeepNeedsPrivilegeError(
          `backups:verify --deep loads each dump into a throwaway database and needs the CREATE and DROP privileges on new databases (GRANT CREATE, DROP ON \`magebackup\\_verify\\_%\`.* TO …); user '${config.user}' on ${describeServer(config)} has not: run it with --db-user (and MAGEBACKUP_DB_PASSWORD) of a user that has, or without --deep`,
          { cause: err },
        );
      }
      throw err;
    }
    try {
      const r = await restoreDatabase({
        config: { ...config, database: name },
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
      await o.run.databaseDropped(name);
    }
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
}
