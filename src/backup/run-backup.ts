import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { CreateArchiveResult } from '../archive/create.js';
import { BACKUP_GZIP_LEVEL } from '../archive/gzip-parallel.js';
import { CODE_EXCLUDES, INTERNAL_EXCLUDES, compileExcludes } from '../archive/excludes.js';
import { resolveDbConfig, type DbFlags } from '../db/config.js';
import { openConnection } from '../db/connect.js';
import { dumpDatabase } from '../db/dump.js';
import type { DbConnectionConfig } from '../db/types.js';
import { CliError, throwIfAborted, errnoCode, unchangedOutcome, withOutcome } from '../errors.js';
import { noEvents, type EventSink } from '../events.js';
import { PARTIAL_SUFFIX, writeAtomic } from '../fs/atomic.js';
import { ensureFreeSpace, mapWriteError } from '../fs/disk.js';
import { StreamingHash } from '../fs/streaming-hash.js';
import { enterMaintenance, noMaintenance } from '../maintenance/maintenance.js';
import { backupFileName } from '../store/backup-name.js';
import { acquireStoreLock } from '../store/lock.js';
import {
  buildManifest,
  manifestParts,
  removeRunMarker,
  runMarkerName,
  writeManifest,
  writeRunMarker,
  type BackupPartResult,
  type FileSum,
} from '../store/manifest.js';
import { pruneLocked, type PruneResult, type RetentionPolicy } from './prune.js';
import { recoverStore } from '../restore/recover.js';
import { assertMagentoRoot, type StorePaths } from '../store/paths.js';

export interface BackupParts {
  code: boolean;
  media: boolean;
  db: boolean;
}

export interface RunBackupOptions {
  root: string;
  parts: BackupParts;
  /** extra gitignore-style code excludes (--exclude) */
  excludes?: readonly string[];
  /** toggle maintenance mode for the run (default true) */
  maintenance?: boolean;
  /** write <ts>_db.sql.gz */
  compress?: boolean;
  strip?: readonly string[];
  stripDefiners?: boolean;
  db?: { flags: DbFlags; env: NodeJS.ProcessEnv };
  /** the clock, in ms (tests inject it) */
  now?: () => number;
  signal?: AbortSignal;
  onEvent?: EventSink;
  /** how the lock file describes this run */
  command?: string;
  /** apply this retention policy after a successful run (backups:prune), under the same lock */
  prune?: RetentionPolicy;
}

export interface RunBackupResult {
  timestamp: number;
  parts: BackupPartResult[];
  warnings: number;
  /** <ts>_manifest.json, written last */
  manifest: string;
  /** what the `prune` option removed */
  pruned?: PruneResult;
}

/**
 * How often a backup file's write-back is started while it is written (writeAtomic's flushEveryMs): the final
 * fsync then writes only the last fraction of a second's data, not the whole file (a 170 MB dump: 0.14-0.19 s of
 * fsync after the last byte on the bench machine, ~0.01 s with this).
 */
const EARLY_FLUSH_MS = 250;

/** Staging directories of an interrupted rollback must never end up in a code backup. */
export function codeExcluder(extra: readonly string[] = []) {
  return compileExcludes([...CODE_EXCLUDES, ...INTERNAL_EXCLUDES, ...extra]);
}

/** One timestamp per run; a run within the same second as an earlier one takes the next free second. */
export async function pickTimestamp(backupsDir: string, nowMs: number): Promise<number> {
  const used = new Set<number>();
  for (const name of await fsp.readdir(backupsDir)) {
    const m = /^(\d+)_/.exec(name);
    if (m) used.add(Number(m[1]));
  }
  let ts = Math.floor(nowMs / 1000);
  while (used.has(ts)) ts++;
  return ts;
}

/** Remove `.partial` files left by a killed run. Only called while holding the lock. */
async function removeLeftoverPartials(backupsDir: string, onEvent: EventSink): Promise<void> {
  for (const name of await fsp.readdir(backupsDir)) {
    if (!name.endsWith(PARTIAL_SUFFIX)) continue;
    await fsp.rm(path.join(backupsDir, name), { force: true, recursive: true });
    onEvent({ type: 'info', message: `Removed ${name}, left by an interrupted run` });
  }
}

/**
 * `setup:backup`: code, media and/or database of one store, one timestamp, files in var/backups.
 * Takes the store's lock, turns maintenance on and restores its previous state on success, error and abort.
 */
export async function runBackup(o: RunBackupOptions): Promise<RunBackupResult> {
  const onEvent = o.onEvent ?? noEvents;
  const now = o.now ?? Date.now;
  if (!o.parts.code && !o.parts.media && !o.parts.db)
    throw new CliError('Nothing to back up: no part selected');
  const paths = await assertMagentoRoot(o.root);
  let warnings = 0;
  const emit: EventSink = (e) => {
    if (e.type === 'warning') warnings++;
    onEvent(e);
  };

  // Everything that can be checked is checked before the store is touched.
  const excluder = codeExcluder(o.excludes);
  let dbConfig: DbConnectionConfig | undefined;
  if (o.parts.db) {
    dbConfig = await resolveDbConfig({
      root: paths.root,
      flags: o.db?.flags ?? {},
      env: o.db?.env ?? {},
      onWarning: (w) => emit({ type: 'warning', ...w }),
    });
  }
  if (o.parts.media) await assertMediaDir(paths);

  const lock = await acquireStoreLock(paths, { command: o.command ?? 'setup:backup', onEvent: emit });
  // What the undo of a failed run could not remove, and whether the maintenance flag is as it was: the error
  // carries both (StoreOutcome), so the message says exactly what is left.
  const leftovers: string[] = [];
  let maintenanceLeftOn = false;
  try {
    await recoverStore({ paths, db: dbConfig, onEvent: emit });
    await removeLeftoverPartials(paths.backupsDir, emit);
    let dbEstimate = 0;
    let serverVersion: string | undefined;
    if (dbConfig) ({ estimate: dbEstimate, serverVersion } = await checkDatabase(dbConfig));
    throwIfAborted(o.signal);
    const started = new Date(now());
    const timestamp = await pickTimestamp(paths.backupsDir, started.getTime());
    const command = o.command ?? 'setup:backup';
    // Until the manifest exists, this marks the timestamp as an unfinished magebackup run (snapshot:list).
    await writeRunMarker(paths.backupsDir, timestamp, { command, started: started.toISOString() });
    const parts: BackupPartResult[] = [];
    let manifest: string;
    // Each part is hashed while it is written (StreamingHash, on a worker thread): no second read.
    const sums: Array<Promise<FileSum>> = [];
    try {
      const done = ([p, sum]: [BackupPartResult, Promise<FileSum>]) => {
        parts.push(p);
        sums.push(sum);
      };
      const maintenance = o.maintenance === false ? noMaintenance : await enterMaintenance(paths.root, emit);
      let failed = true;
      try {
        if (o.parts.code) {
          done(await backupTree(paths, 'code', timestamp, paths.root, excluder, o.signal, emit));
        }
        if (o.parts.media) {
          // `.magebackup-*` names are never restored (and fail verification): planted in pub/media, they must
          // not make the media backups unverifiable
          const internal = compileExcludes(INTERNAL_EXCLUDES);
          done(await backupTree(paths, 'media', timestamp, paths.mediaDir, internal, o.signal, emit));
        }
        if (dbConfig) {
          done(await backupDb(paths, dbConfig, timestamp, dbEstimate, o, emit));
        }
        failed = false;
      } finally {
        try {
          await maintenance.restore();
        } catch (err) {
          maintenanceLeftOn = maintenance.wasEnabled === false;
          // A failure of the run itself is the one to report; this one only changes the state it leaves.
          if (!failed)
            throw new CliError(`Cannot restore maintenance mode: ${messageOf(err)}`, { cause: err });
        }
      }
      // The manifest is written last: its presence is what makes the run complete.
      const m = buildManifest({
        timestamp,
        started,
        completed: new Date(now()),
        command,
        root: paths.root,
        serverVersion,
        warnings,
        parts: manifestParts(parts, await Promise.all(sums), {
          excludes: [...CODE_EXCLUDES, ...INTERNAL_EXCLUDES, ...(o.excludes ?? [])],
          compress: o.compress ?? false,
          strip: [...(o.strip ?? [])],
          stripDefiners: o.stripDefiners ?? true,
          ...(dbConfig ? { database: dbConfig.database } : {}),
        }),
      });
      throwIfAborted(o.signal);
      manifest = await writeManifest(paths.backupsDir, m);
    } catch (err) {
      // A backup is complete or invisible: a failed or interrupted run takes back the parts it had finished
      // (only a crash, which cannot clean up, leaves parts and the marker: listed as incomplete, then pruned).
      await Promise.allSettled(sums);
      for (const p of parts) await removeOrRecord(p.path, leftovers);
      await removeOrRecord(path.join(paths.backupsDir, runMarkerName(timestamp)), leftovers);
      throw err;
    }
    await removeRunMarker(paths.backupsDir, timestamp);
    const result: RunBackupResult = { timestamp, parts, warnings, manifest };
    if (o.prune) {
      result.pruned = await pruneLocked({
        paths,
        policy: o.prune,
        nowMs: now(),
        onEvent: emit,
        signal: o.signal,
      });
    }
    return result;
  } catch (err) {
    await lock.release().catch(() => leftovers.push(lock.file));
    const out = unchangedOutcome(leftovers, maintenanceLeftOn);
    if (maintenanceLeftOn) out.finish = 'Switch it off with: magebackup maintenance:disable';
    else if (leftovers.length > 0) out.finish = 'The next magebackup run of this store removes them';
    throw withOutcome(err, out);
  } finally {
    await lock.release().catch(() => {});
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Remove a file of the failed run; one that cannot be removed is named in the outcome instead of hiding the error. */
async function removeOrRecord(file: string, leftovers: string[]): Promise<void> {
  try {
    await fsp.rm(file, { force: true });
  } catch {
    leftovers.push(file);
  }
}

async function assertMediaDir(paths: StorePaths): Promise<void> {
  // stat follows a symlinked pub/media (Magento #6470/#13218 archived the link itself: a 4 KB "backup").
  const st = await fsp.stat(paths.mediaDir).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  });
  if (!st) throw new CliError(`Media directory ${paths.mediaDir} does not exist`);
  if (!st.isDirectory()) throw new CliError(`Media path ${paths.mediaDir} is not a directory`);
}

/** Log in once before anything changes (exit 12 on refused credentials); returns the data size estimate. */
async function checkDatabase(
  config: DbConnectionConfig,
): Promise<{ estimate: number; serverVersion: string }> {
  const conn = await openConnection(config);
  try {
    const [rows] = await conn.query(
      'SELECT COALESCE(SUM(DATA_LENGTH), 0) AS n, VERSION() AS v FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
      [config.database],
    );
    const row = (rows as Array<{ n: number | string; v: string }>)[0];
    return { estimate: Number(row?.n ?? 0), serverVersion: String(row?.v ?? '') };
  } finally {
    await conn.end();
  }
}

async function backupTree(
  paths: StorePaths,
  part: 'code' | 'media',
  timestamp: number,
  sourceDir: string,
  exclude: ((rel: string, isDir: boolean) => boolean) | undefined,
  signal: AbortSignal | undefined,
  emit: EventSink,
): Promise<[BackupPartResult, Promise<FileSum>]> {
  const file = backupFileName(timestamp, part);
  const finalPath = path.join(paths.backupsDir, file);
  emit({ type: 'part-start', part, operation: 'backup', file, path: finalPath });
  // the archiver (and its tar code) only for a code or media part: not for a database backup
  const { createArchive } = await import('../archive/create.js');
  let totals = { files: 0, bytes: 0 };
  let result: CreateArchiveResult;
  let sum: Promise<FileSum>;
  try {
    [result, sum] = await writeHashed(finalPath, (outFile, onWritten) =>
      createArchive({
        sourceDir,
        outFile,
        onWritten,
        ...(exclude ? { exclude } : {}),
        // A symlinked root (Deployer's current -> releases/N) or pub/media (Magento #13218) is followed.
        followRoot: true,
        // Images do not compress: spend no CPU on them (the archive stays a valid .tgz).
        level: part === 'media' ? 1 : BACKUP_GZIP_LEVEL,
        ...(signal ? { signal } : {}),
        onScan: async (t) => {
          totals = t;
          // Code compresses well; media hardly at all.
          const needed = part === 'media' ? t.bytes : Math.ceil(t.bytes * 0.5);
          await ensureFreeSpace(paths.backupsDir, needed + (1 << 20), `${part} backup ${file}`);
        },
        onProgress: (p) =>
          emit({
            type: 'progress',
            part,
            operation: 'backup',
            files: p.files,
            bytes: p.bytes,
            totalFiles: totals.files,
            totalBytes: totals.bytes,
          }),
        onWarning: (w) => emit({ type: 'warning', ...w }),
      }),
    );
  } catch (err) {
    throw mapWriteError(err, finalPath);
  }
  const size = (await fsp.stat(finalPath)).size;
  emit({ type: 'part-done', part, operation: 'backup', file, path: finalPath, size, files: result.files });
  return [{ part, file, path: finalPath, size, files: result.files, bytes: result.bytes }, sum];
}

/**
 * writeAtomic, with the file's SHA-256 computed while `write` writes it (it calls `onWritten` with each buffer
 * once written, in file order). The sum is awaited later, after the other parts.
 */
async function writeHashed<T>(
  finalPath: string,
  write: (outFile: string, onWritten: (buf: Buffer) => void) => Promise<T>,
): Promise<[T, Promise<FileSum>]> {
  const hash = new StreamingHash();
  try {
    const result = await writeAtomic(finalPath, (outFile) => write(outFile, (buf) => hash.update(buf)), {
      flushEveryMs: EARLY_FLUSH_MS,
    });
    const sum = hash.digest();
    sum.catch(() => {}); // not awaited yet: a rejection meanwhile is not an unhandled one
    return [result, sum];
  } catch (err) {
    await hash.abandon();
    throw err;
  }
}

async function backupDb(
  paths: StorePaths,
  config: DbConnectionConfig,
  timestamp: number,
  estimate: number,
  o: RunBackupOptions,
  emit: EventSink,
): Promise<[BackupPartResult, Promise<FileSum>]> {
  const compress = o.compress ?? false;
  const file = backupFileName(timestamp, 'db', { compress });
  const finalPath = path.join(paths.backupsDir, file);
  emit({ type: 'part-start', part: 'db', operation: 'backup', file, path: finalPath });
  await ensureFreeSpace(
    paths.backupsDir,
    Math.ceil(compress ? estimate / 5 : estimate / 2),
    `database backup ${file}`,
  );
  let result;
  try {
    // the dumper hashes its file on its own hash worker, beside the tables' row hashes (no StreamingHash)
    result = await writeAtomic(
      finalPath,
      (outFile) =>
        dumpDatabase({
          config,
          outFile,
          compress,
          hashFile: true,
          ...(o.strip ? { strip: [...o.strip] } : {}),
          stripDefiners: o.stripDefiners ?? true,
          ...(o.signal ? { signal: o.signal } : {}),
          onEvent: emit,
        }),
      { flushEveryMs: EARLY_FLUSH_MS },
    );
  } catch (err) {
    throw mapWriteError(err, finalPath);
  }
  if (!result.file) throw new Error(`the dump of ${file} returned no SHA-256`);
  const sum = Promise.resolve(result.file);
  const size = (await fsp.stat(finalPath)).size;
  emit({
    type: 'part-done',
    part: 'db',
    operation: 'backup',
    file,
    path: finalPath,
    size,
    tables: result.tables,
    rows: result.rows,
  });
  return [
    {
      part: 'db',
      file,
      path: finalPath,
      size,
      tables: result.tables,
      rows: result.rows,
      bytes: result.bytes,
      ...(result.content ? { content: result.content } : {}),
    },
    sum,
  ];
}
