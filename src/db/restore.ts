/**
 * Database rollback that is never half-applied live, for a user with privileges on the store's database only.
 *
 * prepare (the live tables are not touched):
 *   A journal table `__mbk_<id>_journal` is created in the store's database. The dump is loaded on several connections
 *   into shadow tables of that same database, `__mbk_<id>_n<hash of the name>`: only the table names a table statement
 *   names (its own, `REFERENCES`, `LIKE`) and its foreign-key constraint names (unique per database) are replaced,
 *   token by token: `<table>_ibfk_<n>` by `<shadow table>_ibfk_<n>` (InnoDB renames that form with its table, so the
 *   swap's RENAME gives the name back), any other by a name of the restore's. Views, triggers, routines, events and
 *   packages are held back in the journal. DDL runs on one connection at a time (two connections dropping or creating
 *   tables related by foreign keys at once can wait on each other for ever), and every session has bounded lock waits.
 * commit:
 *   The live definitions are saved in the journal (the undo copy), then ONE multi-table
 *     RENAME TABLE t TO __mbk_<id>_o…, __mbk_<id>_n… TO t, …
 *   swaps every table at once (foreign keys and triggers follow a rename within a database). The dump's constraint
 *   names that the RENAME did not give back are given back (one ALTER TABLE per table), the old tables' triggers and
 *   the replaced views/routines/events dropped, and the held definitions created in a session whose default database is
 *   the store's, exactly as dumped (no name inside a definition is rewritten). Only then are the old tables dropped.
 *   Any failure after the swap puts the old tables and definitions back by itself.
 * crash safety:
 *   The journal's phase says what the next run does (recoverInterruptedRestores, before anything reads the
 *   database): 'loading'/'prepared' → drop the shadow tables (the live database was never touched; a caller
 *   may ask for 'forward' on a prepared one); 'committing' → finish (or, if that fails, undo); 'undoing' →
 *   undo; 'done' → drop the old tables. So the live tables are only without their triggers while this run or
 *   the next one's recovery is between the swap and the definitions.
 *
 * Modules (this file is the entry point: prepare, commit, and what a failed commit says):
 *   restore-context  options, the run's context, its sessions      restore-errors  RestoreError & co.
 *   restore-load     the dump into shadow tables (+ restore-redirect, restore-parse, sql-tokens, sql-reader,
 *                    restore-pool)
 *   restore-journal  the journal table and the restore's own names   restore-catalog  information_schema
 *   restore-swap     plan, swap, undo, cleanup                       restore-definitions  views, triggers, …
 *   restore-recovery what a killed run left
 */
import os from 'node:os';
import { CliError, describeAbort, throwIfAborted } from '../errors.js';
import { WarningCode } from '../events.js';
import { isServerGone, sqlMessage } from './restore-connect.js';
import {
  contextFor,
  control,
  release,
  serverGone,
  shadowLeftovers,
  watchAbort,
  type Ctx,
  type RestoreOptions,
} from './restore-context.js';
import { RestoreError, RestoreInterruptedError, type LiveDatabaseState } from './restore-errors.js';
import { allTables, objKey } from './restore-catalog.js';
import { DefinitionFailure } from './restore-definitions.js';
import {
  createJournal,
  journalName,
  newId,
  RESERVED_PREFIX,
  shadowName,
  writePrepared,
  writeState,
  type HeldDefinition,
  type JournalState,
} from './restore-journal.js';
import { loadDump, statementError, type LoadResult } from './restore-load.js';
import { createdObjects } from './restore-parse.js';
import { StatementFailure } from './restore-pool.js';
import { cleanup, forward, planCommit, undo } from './restore-swap.js';
import { dumpedDatabaseFromHeader, dumpFileSize, missingFooter, readDumpHead } from './verify-dump.js';

export { RestoreError, RestoreInterruptedError, isRestoreFailure } from './restore-errors.js';
export type { LiveDatabaseState, RestoreFailure } from './restore-errors.js';
export type { KeptTable, RestoreOptions, RestoreStep } from './restore-context.js';
import type { KeptTable } from './restore-context.js';
export { RESERVED_PREFIX } from './restore-journal.js';
export { recoverInterruptedRestores, type RecoveryDecision } from './restore-recovery.js';

export interface RestoreResult {
  mode: 'shadow';
  /** tables loaded and swapped in */
  tables: number;
  /** tables equal to the backup's, kept live (selective rollback) */
  kept: number;
  statements: number;
  /** tables whose secondary keys were built after their rows (restore-indexes.ts) */
  keysBuiltAfterRows: number;
  /** tables that exist live but not in the dump */
  extraTables: string[];
  /** the extra tables that were dropped (dropExtraTables) */
  droppedTables: string[];
  /** views, routines, events, packages and triggers that exist live but not in the dump ("view v", …) */
  extraObjects: string[];
  /** the extra objects that were dropped (dropExtraTables) */
  droppedObjects: string[];
}

/** A restore loaded and checked, not yet live: commit() swaps it in, discard() drops it. */
export interface PreparedRestore {
  /** names the restore in its crash journal (and for recoverInterruptedRestores' decide) */
  readonly id: string;
  commit(): Promise<RestoreResult>;
  discard(): Promise<void>;
}

const DEFAULT_CONCURRENCY = 4;

/** Restores the dump into the store's database (see the file comment): prepare, then commit. */
export async function restoreDatabase(o: RestoreOptions): Promise<RestoreResult> {
  const p = await prepareDatabaseRestore(o);
  return p.commit();
}

/** Loads and checks the dump into shadow tables without changing the live tables (see the file comment). */
export async function prepareDatabaseRestore(o: RestoreOptions): Promise<PreparedRestore> {
  const ctx = contextFor(o);
  const concurrency = Math.max(
    1,
    o.concurrency ?? Math.min(DEFAULT_CONCURRENCY, Math.max(2, os.availableParallelism())),
  );
  throwIfAborted(o.signal);
  try {
    await dumpFileSize(o.file);
    const incomplete = await missingFooter(o.file);
    if (incomplete) throw incomplete;
  } catch (err) {
    throw err instanceof CliError ? new RestoreError(err.message, { cause: err }) : err;
  }
  const head = await readDumpHead(o.file).catch(() => '');
  const headerDb = dumpedDatabaseFromHeader(head);
  const id = newId();
  const state: JournalState = {
    version: 2,
    id,
    phase: 'loading',
    live: ctx.live,
    file: o.file,
    dropExtra: o.dropExtraTables ?? false,
    tables: [],
    refs: {},
    newFks: {},
    dumpObjects: [],
    moved: [],
    dropTables: [],
    displacedViews: [],
    oldFks: {},
    dropObjects: [],
    keepTriggers: [],
    extraObjects: [],
    saved: [],
    repoint: [],
    autoInc: {},
  };
  const setKept = (keep: readonly KeptTable[]): void => {
    if (keep.length === 0) return;
    state.kept = keep.map((k) => k.name);
    state.keptAutoInc = {};
    for (const k of keep) if (k.autoIncrement !== undefined) state.keptAutoInc[k.name] = k.autoIncrement;
  };
  // a function: the tables kept are known once the load has read its last range (see RestoreOptions.keep)
  const lateKeep = typeof o.keep === 'function' ? o.keep : undefined;
  if (o.keep && !lateKeep) setKept(o.keep as readonly KeptTable[]);
  const unwatch = watchAbort(ctx, o.signal);
  let journal = false;
  let loaded: LoadResult;
  try {
    const ctl = await control(ctx);
    try {
      try {
        await createJournal(ctl, state);
      } catch (err) {
        if (isServerGone(err)) throw err;
        throw new RestoreError(
          `Cannot create the restore's journal table in database ${ctx.live} (user ${o.config.user} needs CREATE, DROP, ALTER, INDEX, INSERT, SELECT on it): ${sqlMessage(err)}`,
          { cause: err },
        );
      }
      journal = true;
    } finally {
      await release(ctx, ctl);
    }
    await o.onStep?.('journal-created');
    ctx.emit({
      type: 'info',
      message: state.kept
        ? `Loading ${o.file} into shadow tables of database ${ctx.live}, except the ${state.kept.length} table(s) equal to the backup's`
        : lateKeep
          ? `Loading the tables of ${o.file} that differ from the live ones into shadow tables of database ${ctx.live}, as the comparison finds them`
          : `Loading ${o.file} into shadow tables of database ${ctx.live}`,
    });
    await o.onStep?.('loading');
    try {
      loaded = await loadDump(ctx, {
        file: o.file,
        id,
        concurrency,
        ...(o.deferKeysAfterBytes !== undefined ? { deferKeysAfterBytes: o.deferKeysAfterBytes } : {}),
        ...(o.readChunkBytes !== undefined ? { readChunkBytes: o.readChunkBytes } : {}),
        dumpedDb: headerDb,
        ...(o.signal ? { signal: o.signal } : {}),
        ...(state.kept ? { skip: new Set(state.kept) } : {}),
        ...((state.kept || lateKeep) && o.ranges ? { ranges: o.ranges } : {}),
      });
      if (lateKeep) setKept(lateKeep());
    } catch (err) {
      // the server gone is not this statement's fault: say that alone (below), not which statement it cut
      if (err instanceof StatementFailure && isServerGone(err.cause)) throw err.cause;
      if (err instanceof StatementFailure) {
        throw statementError(ctx, o.file, err, `database ${ctx.live} was not changed`);
      }
      throw err;
    }
    await o.onStep?.('loaded');
    throwIfAborted(o.signal);
    const ctl2 = await control(ctx);
    try {
      const present = new Set(await allTables(ctl2, ctx.live));
      state.tables = loaded.tables.filter((t) => present.has(shadowName(id, t)));
      const loadedNames = new Set(state.tables.map((t) => shadowName(id, t)));
      for (const [s, name] of Object.entries(loaded.refs)) {
        if (loadedNames.has(s)) delete loaded.refs[s];
        else state.refs[s] = name;
      }
      state.newFks = loaded.newFks;
      const seen = new Set<string>();
      for (const ref of createdObjects(loaded.held)) {
        if (!seen.has(objKey(ref))) {
          seen.add(objKey(ref));
          state.dumpObjects.push(ref);
        }
      }
      state.phase = 'prepared';
      await writePrepared(ctl2, state, loaded.held);
    } finally {
      await release(ctx, ctl2);
    }
    await o.onStep?.('prepared');
  } catch (err) {
    unwatch();
    const aborted = o.signal?.aborted === true;
    // an abort destroys our connections, and what they say then looks like a lost server: clean up all the same
    const gone = !aborted && isServerGone(err);
    let leftovers: string[] = [];
    if (journal && !gone) {
      // the killed loader sessions first end on the server: a CREATE TABLE they had received still completes
      await ctx.conns.settled();
      const left = await cleanup(
        contextFor({ ...o, lockWaitSeconds: Math.min(ctx.lockWait, 10) }),
        state,
      ).catch(() => [id]);
      if (left.length > 0) leftovers = shadowLeftovers(ctx, id);
    }
    if (aborted) {
      throw new RestoreInterruptedError(
        `${describeAbort(o.signal?.reason)}: database ${ctx.live} was not changed`,
        { cause: err, live: 'unchanged', leftovers },
      );
    }
    if (gone) {
      throw serverGone(ctx, err, 'was not changed', 'unchanged', journal ? shadowLeftovers(ctx, id) : []);
    }
    if (leftovers.length > 0 && err instanceof RestoreError) {
      throw new RestoreError(err.message, { cause: err.cause, live: err.live, leftovers });
    }
    throw err;
  }
  unwatch();
  let settled = false;
  const held = loaded.held;
  return {
    id,
    commit: async () => {
      if (settled) throw new Error('restore already committed or discarded');
      settled = true;
      return commitPrepared(o, state, held, loaded.statements, loaded.keysBuiltAfterRows);
    },
    discard: async () => {
      if (settled) return;
      settled = true;
      await cleanup(contextFor(o), state);
    },
  };
}

async function commitPrepared(
  o: RestoreOptions,
  state: JournalState,
  held: HeldDefinition[],
  statements: number,
  keysBuiltAfterRows: number,
): Promise<RestoreResult> {
  const ctx = contextFor(o);
  const unwatch = watchAbort(ctx, o.signal);
  let committing = false;
  try {
    throwIfAborted(o.signal);
    const ctl = await control(ctx);
    try {
      await planCommit(ctx, ctl, state, o.dropExtraTables ?? false);
      state.phase = 'committing';
      await writeState(ctl, state);
      committing = true;
    } finally {
      await release(ctx, ctl);
    }
    await o.onStep?.('committing');
    throwIfAborted(o.signal);
    const { warnings } = await forward(ctx, state, held);
    for (const w of warnings) ctx.emit({ type: 'warning', code: WarningCode.DB_DEFINITION, message: w });
  } catch (err) {
    unwatch();
    throw await failCommit(o, ctx, state, err, committing);
  }
  unwatch();
  const inDump = new Set([...state.tables, ...(state.kept ?? [])]);
  const extraTables = (await liveExtraTables(ctx, inDump)).concat(state.dropTables).sort();
  if (extraTables.length > 0 && !o.dropExtraTables) {
    ctx.emit({
      type: 'warning',
      code: WarningCode.EXTRA_TABLES,
      message: `Kept ${extraTables.length} table(s) of database ${ctx.live} that are not in the backup: ${extraTables.join(', ')}`,
    });
  }
  if (state.extraObjects.length > 0 && !o.dropExtraTables) {
    ctx.emit({
      type: 'warning',
      code: WarningCode.EXTRA_OBJECTS,
      message: `Kept ${state.extraObjects.length} object(s) of database ${ctx.live} that are not in the backup: ${state.extraObjects.join(', ')} (--drop-extra-tables removes them)`,
    });
  }
  ctx.emit({
    type: 'info',
    message: `Swapped ${state.tables.length} restored table(s) into database ${ctx.live}${state.kept ? ` (${state.kept.length} equal to the backup's kept)` : ''}`,
  });
  return {
    mode: 'shadow',
    tables: state.tables.length,
    kept: state.kept?.length ?? 0,
    statements,
    keysBuiltAfterRows,
    extraTables,
    droppedTables: [...state.dropTables].sort(),
    extraObjects: state.extraObjects,
    droppedObjects: o.dropExtraTables ? state.extraObjects : [],
  };
}

async function liveExtraTables(ctx: Ctx, inDump: Set<string>): Promise<string[]> {
  const conn = await control(ctx);
  try {
    return (await allTables(conn, ctx.live)).filter((t) => !t.startsWith(RESERVED_PREFIX) && !inDump.has(t));
  } finally {
    await release(ctx, conn);
  }
}

/** A commit failed (or was interrupted): put the old state back, and say honestly where the database is. */
async function failCommit(
  o: RestoreOptions,
  ctx: Ctx,
  state: JournalState,
  err: unknown,
  committing: boolean,
): Promise<Error> {
  const aborted = o.signal?.aborted === true;
  const gone = !aborted && isServerGone(err);
  // a killed statement (a RENAME, a DROP) may still be ending on the server: the undo starts after it
  if (aborted) await ctx.conns.settled();
  const reason =
    err instanceof DefinitionFailure
      ? statementError(ctx, state.file, err.failure, '').message.replace(/ — $/, '')
      : err instanceof Error
        ? sqlMessage(err)
        : String(err);
  let live: LiveDatabaseState = 'unchanged';
  let how = 'was not changed';
  let leftovers: string[] = [];
  if (gone) {
    return serverGone(
      ctx,
      err,
      committing
        ? `is in the middle of the swap: the next magebackup run puts it back or finishes it from the journal table ${journalName(state.id)} before anything else`
        : 'was not changed',
      committing ? 'recovery-pending' : 'unchanged',
      committing ? [] : shadowLeftovers(ctx, state.id),
    );
  }
  // the undo runs on fresh connections, not interrupted by the signal, with short lock waits
  const undoCtx = contextFor({ ...o, lockWaitSeconds: Math.min(ctx.lockWait, 10) });
  try {
    if (committing) {
      await undo(undoCtx, state);
      how = 'was put back as it was';
    } else if ((await cleanup(undoCtx, state)).length > 0) {
      leftovers = shadowLeftovers(ctx, state.id);
    }
  } catch (undoErr) {
    live = 'recovery-pending';
    how = `could not be put back (${sqlMessage(undoErr)}): the next magebackup run does it from the journal table ${journalName(state.id)}`;
  }
  if (aborted) {
    return new RestoreInterruptedError(`${describeAbort(o.signal?.reason)}: database ${ctx.live} ${how}`, {
      cause: err,
      live,
      leftovers,
    });
  }
  if (err instanceof RestoreError && !(err instanceof DefinitionFailure)) {
    return new RestoreError(`${err.message} — database ${ctx.live} ${how}`, { cause: err, live, leftovers });
  }
  return new RestoreError(`Database rollback failed: ${reason} — database ${ctx.live} ${how}`, {
    cause: err instanceof DefinitionFailure ? err.failure.cause : err,
    live,
    leftovers,
  });
}
