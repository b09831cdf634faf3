import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { resolveDbConfig, type DbFlags } from '../db/config.js';
import { openConnection } from '../db/connect.js';
import { RestoreError, RestoreInterruptedError, restoreDatabase } from '../db/restore.js';
import { verifyDump } from '../db/verify-dump.js';
import type { DbConnectionConfig } from '../db/types.js';
import { CliError, UsageError, throwIfAborted, errnoCode, withOutcome } from '../errors.js';
import { WarningCode, noEvents, type EventSink, type Part } from '../events.js';
import { ensureDir } from '../fs/atomic.js';
import { acquireLock } from '../fs/lock.js';
import { enterMaintenance, noMaintenance } from '../maintenance/maintenance.js';
import { commitStagedTree, discardStagedTree, stageTree, type StagedTree } from './tree-swap.js';
import { parseBackupName, type BackupKind } from './backup-name.js';
import { recoverStore } from './recover.js';
import { assertMagentoRoot, type StorePaths } from './store.js';
import { isIncompleteRun, runMarkerName } from './manifest.js';

export interface RunRollbackOptions {
  root: string;
  /** file names relative to var/backups, as info:backups:list shows them */
  codeFile?: string;
  mediaFile?: string;
  dbFile?: string;
  maintenance?: boolean;
  dropExtraTables?: boolean;
  /** archives: keep set-id bits and world-writable modes; restore symlinks leaving the tree (see extract.ts) */
  keepModes?: boolean;
  allowOutsideLinks?: boolean;
  db?: { flags: DbFlags; env: NodeJS.ProcessEnv };
  /**
   * Asked once everything has been validated and before anything changes; false cancels.
   * Receives one line per part ("code from var/backups/…").
   */
  confirm?: (plan: string[]) => Promise<boolean>;
  signal?: AbortSignal;
  onEvent?: EventSink;
  command?: string;
}

export interface RollbackPartResult {
  part: Part;
  file: string;
  path: string;
  entries?: number;
  tables?: number;
  mode?: 'shadow' | 'in-place';
}

export interface RunRollbackResult {
  parts: RollbackPartResult[];
  warnings: number;
  /** what earlier interrupted runs left and this run cleaned up or finished */
  recovered: string[];
}

const OPTION_OF: Record<Exclude<BackupKind, 'manifest'>, string> = {
  code: '-c/--code-file',
  media: '-m/--media-file',
  db: '-d/--db-file',
};
const KIND_HINT: Record<Exclude<BackupKind, 'manifest'>, string> = {
  code: 'a code backup (<ts>_filesystem.tgz or <ts>_filesystem_code.tgz)',
  media: 'a media backup (<ts>_filesystem_media.tgz)',
  db: 'a database backup (<ts>_db.sql or <ts>_db.sql.gz)',
};

/** The file must exist in var/backups and be of the kind its option asks for (Magento restored the wrong one). */
export async function resolveBackupFile(
  paths: StorePaths,
  name: string,
  kind: Exclude<BackupKind, 'manifest'>,
): Promise<string> {
  const option = OPTION_OF[kind];
  if (name === '' || name !== path.basename(name)) {
    throw new UsageError(
      `${option}: give a file name from var/backups (as info:backups:list shows it), not a path: ${name}`,
    );
  }
  const parsed = parseBackupName(name);
  if (!parsed || parsed.kind !== kind) {
    const is = parsed ? `a ${parsed.kind} backup` : 'not a backup file name';
    throw new UsageError(`${option} expects ${KIND_HINT[kind]}, but ${name} is ${is}`);
  }
  const file = path.join(paths.backupsDir, name);
  const st = await fsp.stat(file).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  });
  if (!st) throw new CliError(`Backup file ${file} not found (see info:backups:list)`);
  if (!st.isFile()) throw new CliError(`Backup file ${file} is not a regular file`);
  if (await isIncompleteRun(paths.backupsDir, parsed.timestamp)) {
    throw new CliError(
      `Backup file ${file} belongs to a run that did not complete (${runMarkerName(parsed.timestamp)} and no manifest): it is never restored`,
    );
  }
  return file;
}

/**
 * `setup:rollback`: verify every requested backup fully, then swap code/media trees and database in.
 * Nothing live changes until every part has been staged (archives extracted beside their target, dump verified);
 * the database is loaded into a shadow database and swapped with one RENAME TABLE. Never deletes a backup.
 */
export async function runRollback(o: RunRollbackOptions): Promise<RunRollbackResult> {
  const onEvent = o.onEvent ?? noEvents;
  if (!o.codeFile && !o.mediaFile && !o.dbFile) {
    throw new UsageError(
      'Not enough information provided to roll back: give -c/--code-file, -m/--media-file and/or -d/--db-file',
    );
  }
  const paths = await assertMagentoRoot(o.root);
  let warnings = 0;
  const emit: EventSink = (e) => {
    if (e.type === 'warning') warnings++;
    onEvent(e);
  };
  const files: Partial<Record<Part, string>> = {};
  if (o.codeFile) files.code = await resolveBackupFile(paths, o.codeFile, 'code');
  if (o.mediaFile) files.media = await resolveBackupFile(paths, o.mediaFile, 'media');
  if (o.dbFile) files.db = await resolveBackupFile(paths, o.dbFile, 'db');

  let dbConfig: DbConnectionConfig | undefined;
  if (files.db) {
    dbConfig = await resolveDbConfig({
      root: paths.root,
      flags: o.db?.flags ?? {},
      env: o.db?.env ?? {},
      onWarning: (w) => emit({ type: 'warning', ...w }),
    });
    // Log in now: refused credentials (exit 12) must stop us before anything changes.
    await (await openConnection(dbConfig)).end();
  }

  await ensureDir(paths.backupsDir, 0o700);
  const lock = await acquireLock(paths.backupsDir, {
    command: o.command ?? 'setup:rollback',
    onStale: (info) =>
      emit({
        type: 'info',
        message: `Took over the lock left by pid ${info.pid} (started ${info.started}), which is no longer running`,
      }),
  });
  try {
    const recovered = await recoverStore({ paths, db: dbConfig, onEvent: emit });

    if (o.confirm) {
      const plan = (Object.entries(files) as Array<[Part, string]>).map(
        ([part, file]) => `${part} from ${path.relative(paths.root, file)}`,
      );
      if (!(await o.confirm(plan))) throw new CliError('Rollback cancelled: nothing was changed');
    }
    throwIfAborted(o.signal);

    const maintenance = o.maintenance === false ? noMaintenance : await enterMaintenance(paths.root, emit);
    let keepMaintenance = false;
    // Once a part is being swapped in, a failure may leave live data neither old nor new (the error says so).
    let liveChanged = false;
    const staged: StagedTree[] = [];
    const cleanups: Array<() => Promise<void>> = [];
    let result: RunRollbackResult;
    try {
      const parts: RollbackPartResult[] = [];
      // 1. Stage: extracting into a staging directory IS the full verification of an archive.
      for (const part of ['code', 'media'] as const) {
        const file = files[part];
        if (!file) continue;
        const name = path.basename(file);
        emit({ type: 'part-start', part, operation: 'verify', file: name, path: file });
        const s = await stageTree({
          root: paths.root,
          target: part,
          archive: file,
          keepModes: o.keepModes ?? false,
          allowOutsideLinks: o.allowOutsideLinks ?? false,
          ...(o.signal ? { signal: o.signal } : {}),
          onProgress: (p: { entries: number; bytes: number }) =>
            emit({ type: 'progress', part, operation: 'verify', files: p.entries, bytes: p.bytes }),
          onWarning: (w: { code: string; path: string; message: string }) => emit({ type: 'warning', ...w }),
        });
        staged.push(s);
        const size = (await fsp.stat(file)).size;
        emit({
          type: 'part-done',
          part,
          operation: 'verify',
          file: name,
          path: file,
          size,
          files: s.entries,
        });
        parts.push({ part, file: name, path: file, entries: s.entries });
      }
      if (files.db) {
        const name = path.basename(files.db);
        emit({ type: 'part-start', part: 'db', operation: 'verify', file: name, path: files.db });
        const v = await verifyDump(files.db, {
          ...(o.signal ? { signal: o.signal } : {}),
          onProgress: (bytes: number) => emit({ type: 'progress', part: 'db', operation: 'verify', bytes }),
        });
        emit({
          type: 'part-done',
          part: 'db',
          operation: 'verify',
          file: name,
          path: files.db,
          size: v.bytes,
        });
      }
      throwIfAborted(o.signal);

      // 2. The database first: its load is the long, fallible step, and in shadow mode the live database is
      //    untouched until one atomic RENAME TABLE. If it fails, the staged trees are discarded: nothing changed.
      if (files.db && dbConfig) {
        const name = path.basename(files.db);
        emit({ type: 'part-start', part: 'db', operation: 'rollback', file: name, path: files.db });
        try {
          const r = await restoreDatabase({
            config: dbConfig,
            file: files.db,
            dropExtraTables: o.dropExtraTables ?? false,
            ...(o.signal ? { signal: o.signal } : {}),
            onEvent: emit,
          });
          liveChanged = true;
          const size = (await fsp.stat(files.db)).size;
          emit({
            type: 'part-done',
            part: 'db',
            operation: 'rollback',
            file: name,
            path: files.db,
            size,
            tables: r.tables,
          });
          parts.push({ part: 'db', file: name, path: files.db, tables: r.tables, mode: r.mode });
        } catch (err) {
          // A restore that could not put the old state back leaves a journal for the next run: stay offline.
          if ((err instanceof RestoreError || err instanceof RestoreInterruptedError) && err.liveDamaged)
            keepMaintenance = true;
          throw err;
        }
      }

      // 3. Trees: renames only, journaled, so a kill leaves old-or-new and the next run finishes it.
      for (const s of staged.splice(0)) {
        const part = s.target;
        const file = files[part]!;
        emit({ type: 'part-start', part, operation: 'rollback', file: path.basename(file), path: file });
        // The old tree (100k files take long to delete) goes after maintenance is off: the store is back sooner.
        liveChanged = true;
        const { cleanup } = await commitStagedTree(s, { removeOld: 'later' });
        cleanups.push(cleanup);
        const size = (await fsp.stat(file)).size;
        emit({
          type: 'part-done',
          part,
          operation: 'rollback',
          file: path.basename(file),
          path: file,
          size,
          files: s.entries,
        });
      }
      result = { parts, warnings, recovered };
    } catch (err) {
      // A database load that failed changed nothing live, unless it says so (keepMaintenance); a part swapped in
      // before the failure leaves the store neither old nor new.
      const mixed = keepMaintenance || liveChanged;
      throw withOutcome(err, {
        live: mixed ? 'mixed' : 'unchanged',
        maintenance: keepMaintenance ? 'left-on' : 'as-before',
        leftovers: [],
        ...(mixed ? { finish: 'Run the same setup:rollback again to finish' } : {}),
      });
    } finally {
      for (const s of staged) await discardStagedTree(s);
      if (keepMaintenance) {
        emit({
          type: 'warning',
          code: WarningCode.DB_HALF_RESTORED,
          message:
            'Maintenance mode stays ON: the database was partly restored in place; fix the error and run the rollback again',
        });
      } else {
        await maintenance.restore();
      }
      // Still under the lock: a later run must not see half-deleted old trees as its own business. The swap is
      // done by now: a failure here is a warning (the next run's recovery removes what is left), not a failure.
      for (const cleanup of cleanups) {
        await cleanup().catch((err: unknown) =>
          emit({
            type: 'warning',
            code: WarningCode.OLD_TREE_LEFT,
            message: `The replaced files could not all be deleted (${err instanceof Error ? err.message : String(err)}); the next magebackup run removes them`,
          }),
        );
      }
    }
    return { ...result, warnings };
  } finally {
    await lock.release();
  }
}
