/**
 * The rollback's orchestrator (`setup:rollback`, `snapshot:restore`, the web's restore). Why one file over 400
 * lines: runRollback reads top to bottom in the order a rollback runs (resolve, lock and recover, stage and compare,
 * ask, maintenance, prepare the database, commit, report), and every step is a call into its own module (staging,
 * operation journal, database delta and restore, maintenance); which files are used is in rollback-files.ts.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { resolveDbConfig, type DbFlags } from '../db/config.js';
import { openConnection } from '../db/connect.js';
import {
  isRestoreFailure,
  prepareDatabaseRestore,
  type PreparedRestore,
  type RestoreStep,
} from '../db/restore.js';
import { compareAndLoad } from '../db/selective-load.js';
import { verifyDump } from '../db/verify-dump.js';
import { compareLiveDatabase, describeDelta, restoredTables, type LiveComparison } from '../db/delta.js';
import type { DbConnectionConfig } from '../db/types.js';
import { CliError, UsageError, throwIfAborted, withOutcome } from '../errors.js';
import { WarningCode, noEvents, type EventSink, type Part } from '../events.js';
import { enterMaintenance, noMaintenance } from '../maintenance/maintenance.js';
import { OperationIncompleteError, RollbackOperation, type OperationHooks } from './operation.js';
import type { StagedTree } from './tree-swap.js';
import { recoverStore } from './recover.js';
import { acquireStoreLock } from '../store/lock.js';
import { assertMagentoRoot } from '../store/paths.js';
import { checkAgainstManifest } from '../store/manifest.js';
import { contentHashesOf, resolveBackupFile } from './rollback-files.js';
import { changeCounts, describeChanges, type TreeChangeCounts } from '../archive/extract-summary.js';

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
  /**
   * stage every file anew (default: files equal to the live ones are staged as hard links to them) and load
   * every table of the dump (default: with a manifest's table hashes, only the tables that differ)
   */
  full?: boolean;
  /**
   * how the replaced files are deleted once the store is back online: 'now' (before returning, under the lock)
   * or 'background' (a detached low-priority process the journal records; the next run waits for it if needed)
   */
  deleteReplaced?: 'now' | 'background';
  db?: { flags: DbFlags; env: NodeJS.ProcessEnv };
  /**
   * Asked once the archives are staged (read to their end and compared with the live trees) and before anything
   * changes; false cancels. Receives one line per part ("code from var/backups/…: 212 files will be restored…").
   */
  confirm?: (plan: string[]) => Promise<boolean>;
  signal?: AbortSignal;
  onEvent?: EventSink;
  command?: string;
  /** tests only: the database restore's steps (a crash test SIGKILLs itself at one) */
  onStep?: (step: RestoreStep) => void | Promise<void>;
  /** tests only: the operation's commit steps and tree renames */
  hooks?: OperationHooks;
}

export interface RollbackPartResult {
  part: Part;
  file: string;
  path: string;
  entries?: number;
  tables?: number;
  mode?: 'shadow' | 'in-place';
  /** code/media: what the rollback changed (files added since the backup are among those it removed) */
  changes?: TreeChangeCounts;
  /** code/media: files staged as hard links to their equal live twin (not rewritten) */
  linked?: number;
  /**
   * db: tables equal to the backup's, kept live (selective rollback); code: equal files left where they are,
   * neither linked nor written (a sparse selective rollback)
   */
  kept?: number;
  /** db, selective rollback: the tables loaded because they differed (or had no row hash) */
  restoredTables?: string[];
}

export interface RunRollbackResult {
  parts: RollbackPartResult[];
  warnings: number;
  /** what earlier interrupted runs left and this run cleaned up or finished */
  recovered: string[];
  /** the detached process deleting the replaced files (deleteReplaced: 'background') */
  deleterPid?: number;
}

/**
 * `setup:rollback`: verify every requested backup fully, then swap code/media trees and database in.
 * Nothing live changes until every part has been staged (archives extracted beside their target, dump verified);
 * the tables that differ (every table with --full or without the manifest's hashes) are loaded into shadow tables
 * in the store's database and swapped in with one RENAME TABLE. Never deletes a backup.
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
  // A dump with table hashes in its manifest is restored selectively (only the tables that differ), unless --full.
  let dbContent = files.db && !o.full ? await contentHashesOf(paths.backupsDir, files.db) : null;

  const lock = await acquireStoreLock(paths, { command: o.command ?? 'setup:rollback', onEvent: emit });
  try {
    const recovered = await recoverStore({ paths, db: dbConfig, onEvent: emit });
    throwIfAborted(o.signal);

    let maintenance = noMaintenance;
    let keepMaintenance = false;
    let deleterPid: number | undefined;
    let result: RunRollbackResult;
    let op: RollbackOperation | undefined;
    let prepared: PreparedRestore | undefined;
    let cleanup: (() => Promise<void>) | undefined;
    try {
      // One journaled operation: every part ends new, or every part old (operation.ts).
      op = await RollbackOperation.begin(paths, o.hooks);
      const parts: RollbackPartResult[] = [];
      const staged: StagedTree[] = [];
      // 1. Stage: extracting into a staging directory IS the full verification of an archive.
      for (const part of ['code', 'media'] as const) {
        const file = files[part];
        if (!file) continue;
        const name = path.basename(file);
        emit({ type: 'part-start', part, operation: 'verify', file: name, path: file });
        const s = await op.stage({
          root: paths.root,
          target: part,
          archive: file,
          keepModes: o.keepModes ?? false,
          allowOutsideLinks: o.allowOutsideLinks ?? false,
          full: o.full ?? false,
          ...(o.signal ? { signal: o.signal } : {}),
          onProgress: (p: { entries: number; bytes: number }) =>
            emit({ type: 'progress', part, operation: 'verify', files: p.entries, bytes: p.bytes }),
          onWarning: (w) => emit({ type: 'warning', ...w }),
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
        const changes = s.stats.changes ? changeCounts(s.stats.changes) : undefined;
        parts.push({
          part,
          file: name,
          path: file,
          entries: s.entries,
          ...(changes ? { changes } : {}),
          ...(s.stats.linked ? { linked: s.stats.linked.length } : {}),
          ...(s.stats.sparse ? { kept: s.stats.sparse.keptFiles } : {}),
        });
      }
      // What will change, before the question (and said anyway without one); the trees are staged by now,
      // compared with the live ones, and nothing live has changed yet. The database is compared here only for
      // the question (read-only); the comparison that decides is made again under maintenance.
      let dbPreview: LiveComparison | undefined;
      if (o.confirm && dbContent && dbConfig) {
        dbPreview = await compareLiveDatabase({
          config: dbConfig,
          backup: dbContent.hashes,
          ...(o.signal ? { signal: o.signal } : {}),
        });
      }
      const plan = (Object.entries(files) as Array<[Part, string]>).map(([part, file]) => {
        const c = parts.find((p) => p.part === part)?.changes;
        const what = c
          ? describeChanges(c)
          : part === 'db' && dbPreview
            ? describeDelta(dbPreview)
            : undefined;
        return `${part} from ${path.relative(paths.root, file)}${what ? `: ${what}` : ''}`;
      });
      if (o.confirm) {
        const total = summaryLine(parts, dbPreview, files.db !== undefined);
        if (!(await o.confirm(total ? [total, ...plan] : plan)))
          throw new CliError('Rollback cancelled: nothing was changed');
      } else {
        for (const line of plan) emit({ type: 'info', message: `Rolling back ${line}` });
      }
      throwIfAborted(o.signal);
      maintenance = o.maintenance === false ? noMaintenance : await enterMaintenance(paths.root, emit);

      let delta: LiveComparison | undefined;
      let rollbackStarted = false;
      const dbStart = (operation: 'verify' | 'rollback', file: string): void => {
        if (operation === 'rollback') rollbackStarted = true;
        emit({ type: 'part-start', part: 'db', operation, file: path.basename(file), path: file });
      };
      // Every table restored (--full, or no table hashes): the dump is verified in the same pass that loads it
      // into shadow tables (prepareDatabaseRestore refuses it before anything live changes unless it was read to
      // its complete end). Selective: the live tables are compared (read-only, two connections, each table in a
      // consistent snapshot of its own, now that maintenance is on) while the file is checked against its manifest
      // (the table hashes describe the file the manifest names), and a table found to differ starts loading into
      // its shadow table meanwhile (selective-load.ts); nothing is swapped unless both ended well.
      if (files.db && dbContent && dbConfig) {
        const file = files.db;
        const part = dbContent.part;
        dbStart('verify', file);
        // With the table sections in the manifest, the file's SHA-256 matching the manifest's is its verification
        // (the manifest is written once the dump is complete): the statements are read only where they are loaded.
        // If it does not match, every table is restored, and that load verifies the dump as it reads it.
        const bySections = dbContent.hashes.tail !== undefined;
        let verifiedBytes: number | undefined;
        const progress = (bytes: number): void =>
          emit({ type: 'progress', part: 'db', operation: 'verify', bytes });
        const verified = async (): Promise<void> => {
          emit({
            type: 'part-done',
            part: 'db',
            operation: 'verify',
            file: path.basename(file),
            path: file,
            size: verifiedBytes ?? (await fsp.stat(file)).size,
          });
          dbStart('rollback', file);
        };
        let announced: Promise<void> | undefined;
        const sel = await compareAndLoad({
          restore: {
            config: dbConfig,
            file,
            dropExtraTables: o.dropExtraTables ?? false,
            ...(o.signal ? { signal: o.signal } : {}),
            // the load's progress is shown once the verification is done (it starts during it)
            onEvent: (e) => {
              if (e.type !== 'progress' || rollbackStarted) emit(e);
            },
            ...(o.onStep ? { onStep: o.onStep } : {}),
          },
          hashes: dbContent.hashes,
          check: async (signal) => {
            const [v, check] = await Promise.all([
              bySections ? null : verifyDump(file, { signal, onProgress: progress }),
              checkAgainstManifest(file, part, { signal, ...(bySections ? { onProgress: progress } : {}) }),
            ]);
            verifiedBytes = v?.bytes;
            return check.problem;
          },
          onCompared: (d) => {
            announced = verified().then(() =>
              emit({
                type: 'info',
                message: `Rolling back db from ${path.relative(paths.root, file)}: ${describeDelta(d)}`,
              }),
            );
          },
          onSectionsUnused: (problem) =>
            emit({
              type: 'warning',
              code: WarningCode.DB_SECTIONS_UNUSED,
              message: `Database backup ${path.basename(file)}: ${problem}; it is read whole`,
            }),
        });
        await announced;
        if ('problem' in sel) {
          emit({
            type: 'warning',
            code: WarningCode.DB_FULL_RESTORE,
            message: `${sel.problem}: its table hashes are not used, every table is restored`,
          });
          dbContent = null;
          await verified();
        } else {
          delta = sel.delta;
          prepared = sel.prepared;
          await op.setDb(prepared);
        }
      }
      throwIfAborted(o.signal);

      // 2. The database is loaded into its shadow (the long, fallible step): the live database is untouched.
      // Every table: --full, no table hashes, or a dump that does not match its manifest.
      if (files.db && dbConfig && !prepared) {
        if (!rollbackStarted) dbStart('rollback', files.db);
        prepared = await prepareDatabaseRestore({
          config: dbConfig,
          file: files.db,
          dropExtraTables: o.dropExtraTables ?? false,
          ...(o.signal ? { signal: o.signal } : {}),
          onEvent: emit,
          ...(o.onStep ? { onStep: o.onStep } : {}),
        });
        await op.setDb(prepared);
      }
      throwIfAborted(o.signal);

      // 3. Commit: tree renames, then one RENAME TABLE; a refused rename undoes everything.
      for (const s of staged) {
        const file = files[s.target]!;
        emit({
          type: 'part-start',
          part: s.target,
          operation: 'rollback',
          file: path.basename(file),
          path: file,
        });
      }
      const outcome = await op.commit(prepared);
      cleanup =
        o.deleteReplaced === 'background'
          ? async () => {
              deleterPid = await outcome.deleteInBackground();
            }
          : outcome.cleanup;
      for (const s of staged) {
        const file = files[s.target]!;
        const size = (await fsp.stat(file)).size;
        emit({
          type: 'part-done',
          part: s.target,
          operation: 'rollback',
          file: path.basename(file),
          path: file,
          size,
          files: s.entries,
        });
      }
      if (files.db && outcome.db) {
        const name = path.basename(files.db);
        const size = (await fsp.stat(files.db)).size;
        emit({
          type: 'part-done',
          part: 'db',
          operation: 'rollback',
          file: name,
          path: files.db,
          size,
          tables: outcome.db.tables,
        });
        parts.push({
          part: 'db',
          file: name,
          path: files.db,
          tables: outcome.db.tables,
          mode: outcome.db.mode,
          ...(delta
            ? { kept: outcome.db.kept, restoredTables: restoredTables(delta).map((t) => t.name) }
            : {}),
        });
      }
      result = { parts, warnings, recovered };
    } catch (err) {
      // Live data neither old nor new until the next run's recovery (an undo that failed, or a database restore
      // that could not put the old state back): stay offline, and keep the lock's record for that run.
      if (err instanceof OperationIncompleteError || (isRestoreFailure(err) && err.liveDamaged)) {
        keepMaintenance = true;
        lock.keepForRecovery();
      }
      // On a failed commit the operation puts every part back: live data is old unless that undo failed.
      throw withOutcome(err, {
        live: keepMaintenance ? 'mixed' : 'unchanged',
        maintenance: keepMaintenance ? 'left-on' : 'as-before',
        leftovers: isRestoreFailure(err) ? err.leftovers : [],
        ...(keepMaintenance ? { finish: 'Run the same setup:rollback again to finish' } : {}),
        parts: Object.keys(files).length,
      });
    } finally {
      if (op?.phase === 'staging') {
        await prepared?.discard().catch(() => {});
        await op.discard();
      }
      if (keepMaintenance) {
        emit({
          type: 'warning',
          code: WarningCode.DB_HALF_RESTORED,
          message:
            'Maintenance mode stays ON: the store was partly restored; fix the error and run the rollback again',
        });
      } else {
        await maintenance.restore();
      }
      // Still under the lock: a later run must not see half-deleted old trees as its own business. The swap is
      // done by now: a failure here is a warning (the next run's recovery removes what is left), not a failure.
      await cleanup?.().catch((err: unknown) =>
        emit({
          type: 'warning',
          code: WarningCode.OLD_TREE_LEFT,
          message: `The replaced files could not all be deleted (${err instanceof Error ? err.message : String(err)}); the next magebackup run removes them`,
        }),
      );
    }
    if (deleterPid !== undefined) {
      emit({
        type: 'info',
        message: `The replaced files are being deleted in the background (process ${deleterPid}, lowest priority); the next magebackup run of this store waits for it if it is still running`,
      });
    }
    return { ...result, warnings, ...(deleterPid !== undefined ? { deleterPid } : {}) };
  } finally {
    await lock.release();
  }
}

/** "3 tables and 212 files will be restored" (before the question), or undefined when nothing is counted. */
function summaryLine(
  parts: readonly RollbackPartResult[],
  db: LiveComparison | undefined,
  hasDb: boolean,
): string | undefined {
  const counted = parts.filter((p) => p.changes);
  if (counted.length === 0 && !db) return undefined;
  const n = counted.reduce((sum, p) => sum + (p.changes?.total ?? 0), 0);
  const files = `${n} file${n === 1 ? '' : 's'}`;
  if (!hasDb) return `${files} will be restored`;
  const tables = db ? restoredTables(db).length : undefined;
  const t = tables === undefined ? 'every table' : `${tables} table${tables === 1 ? '' : 's'}`;
  return counted.length === 0 ? `${t} will be restored` : `${t} and ${files} will be restored`;
}
