/**
 * Database rollback that is never half-applied live, for a user with privileges on the store's database only.
 *
 * prepare (the live tables are not touched):
 *   A journal table `__mbk_<id>_journal` is created in the store's database. The dump is loaded on several
 *   connections into shadow tables of that same database, `__mbk_<id>_n<hash of the name>`: only the table
 *   names a table statement names (its own, `REFERENCES`, `LIKE`) and its foreign-key constraint names (unique
 *   per database) are replaced, token by token. Views, triggers, routines, events and packages are held back
 *   in the journal. DDL runs on one connection at a time (two connections dropping or creating tables related
 *   by foreign keys at once can wait on each other for ever), and every session has bounded lock waits.
 * commit:
 *   The live definitions are saved in the journal (the undo copy), then ONE multi-table
 *     RENAME TABLE t TO __mbk_<id>_o…, __mbk_<id>_n… TO t, …
 *   swaps every table at once (foreign keys and triggers follow a rename within a database). The dump's
 *   constraint names are given back, the old tables' triggers and the replaced views/routines/events dropped,
 *   and the held definitions created in a session whose default database is the store's, exactly as dumped
 *   (no name inside a definition is rewritten). Only then are the old tables dropped. Any failure after the
 *   swap puts the old tables and definitions back by itself.
 * crash safety:
 *   The journal's phase says what the next run does (recoverInterruptedRestores, before anything reads the
 *   database): 'loading'/'prepared' → drop the shadow tables (the live database was never touched; a caller
 *   may ask for 'forward' on a prepared one); 'committing' → finish (or, if that fails, undo); 'undoing' →
 *   undo; 'done' → drop the old tables. So the live tables are only without their triggers while this run or
 *   the next one's recovery is between the swap and the definitions.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { CliError, InterruptedError, describeAbort, throwIfAborted } from '../errors.js';
import { noEvents, WarningCode, type EventSink } from '../events.js';
import type { DbConnectionConfig } from './types.js';
import {
  boundLockWaits,
  closeQuietly,
  ConnectionSet,
  isLockWaitTimeout,
  isServerGone,
  openControlConnection,
  openLoaderConnection,
  queryRaw,
  sqlErrno,
  sqlMessage,
} from './restore-connect.js';
import { classifyStatement, definitionTarget, triggerTable, type DefinitionObject } from './restore-parse.js';
import { redirectTableStatement, sessionRefusal, type Redirected } from './restore-redirect.js';
import { quoteIdent } from './sql-values.js';
import { statementExcerpt, statementHead } from './sql-tokens.js';
import { LoaderPool, StatementFailure } from './restore-pool.js';
import { openDumpStream, StatementSplitter, type RawStatement } from './sql-reader.js';
import { dumpedDatabaseFromHeader, readDumpHead } from './verify-dump.js';

export interface RestoreOptions {
  config: DbConnectionConfig;
  file: string;
  /** drop tables, views, routines, events and triggers that exist live but not in the dump (default: keep, warn) */
  dropExtraTables?: boolean;
  signal?: AbortSignal;
  onEvent?: EventSink;
  /** loader connections (default: 4) */
  concurrency?: number;
  /** how long one statement may wait for a lock, in seconds (default 60); longer fails the run, naming the table */
  lockWaitSeconds?: number;
  /** test hook: called at named points of the restore (the SIGKILL test stops the process there) */
  onStep?: (step: RestoreStep) => void | Promise<void>;
}

export type RestoreStep =
  | 'journal-created'
  | 'loading'
  | 'loaded'
  | 'prepared'
  | 'committing'
  | 'swapped'
  | 'constraints-renamed'
  | 'definitions-dropped'
  | 'definitions-created'
  | 'done';

export interface RestoreResult {
  mode: 'shadow';
  tables: number;
  statements: number;
  /** tables that exist live but not in the dump */
  extraTables: string[];
  /** the extra tables that were dropped (dropExtraTables) */
  droppedTables: string[];
  /** views, routines, events, packages and triggers that exist live but not in the dump ("view v", …) */
  extraObjects: string[];
  /** the extra objects that were dropped (dropExtraTables) */
  droppedObjects: string[];
}

/**
 * What the live database holds after a failed restore: 'unchanged' (the old state, exactly), 'restored' (the
 * new state, complete), or 'recovery-pending' (a journal is left that the next run's recovery finishes or
 * undoes before anything else reads the database; until then the store must stay in maintenance).
 */
export type LiveDatabaseState = 'unchanged' | 'restored' | 'recovery-pending';

export class RestoreError extends CliError {
  readonly live: LiveDatabaseState;
  constructor(message: string, options: { cause?: unknown; live?: LiveDatabaseState } = {}) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.live = options.live ?? 'unchanged';
  }
  /** the live database is neither exactly old nor exactly new until a recovery ran */
  get liveDamaged(): boolean {
    return this.live === 'recovery-pending';
  }
  get nothingChanged(): boolean {
    return this.live === 'unchanged';
  }
}

/** SIGINT/SIGTERM/SIGHUP during a restore (exit 130), with the state the live database was left in. */
export class RestoreInterruptedError extends InterruptedError {
  readonly live: LiveDatabaseState;
  constructor(message: string, options: { cause?: unknown; live?: LiveDatabaseState } = {}) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.live = options.live ?? 'unchanged';
  }
  get liveDamaged(): boolean {
    return this.live === 'recovery-pending';
  }
}

/** What recoverInterruptedRestores does with a restore that was prepared but not committed. */
export type RecoveryDecision = 'forward' | 'back' | undefined;

/** A restore loaded and checked, not yet live: commit() swaps it in, discard() drops it. */
export interface PreparedRestore {
  /** names the restore in its crash journal (and for recoverInterruptedRestores' decide) */
  readonly id: string;
  commit(): Promise<RestoreResult>;
  discard(): Promise<void>;
}

/** Every name a restore creates in the store's database starts with this. */
export const RESERVED_PREFIX = '__mbk_';
const JOURNAL_RE = /^__mbk_([0-9a-z]+)_journal$/;
const OWN_RE = /^__mbk_([0-9a-z]+)_/;
const DEFAULT_CONCURRENCY = 4;
const DEFAULT_LOCK_WAIT = 60;
/**
 * autocommit stays ON: measured on MariaDB 10.11, one transaction per table (the "bulk insert into an empty
 * table" path) loaded a 140 MB single-table dump in 60-80 s against 35-51 s with a commit per ~1 MB INSERT.
 */
const SESSION_DEFAULTS =
  "SET SESSION foreign_key_checks = 0, unique_checks = 0, sql_mode = 'NO_AUTO_VALUE_ON_ZERO', autocommit = 1";

type ObjectKind = Exclude<DefinitionObject, 'database'>;
type HeldKind = 'session' | DefinitionObject;

interface HeldDefinition {
  kind: HeldKind;
  line: number;
  raw: Buffer;
}

/** A live definition as it was before the swap: enough to create it again exactly. */
interface SavedDefinition {
  object: ObjectKind;
  name: string;
  /** triggers: their table */
  table?: string;
  create: string;
  sqlMode: string;
  charset: string;
  collation: string;
  timeZone?: string;
}

interface ObjectRef {
  object: ObjectKind;
  name: string;
}

interface JournalState {
  version: 2;
  id: string;
  phase: 'loading' | 'prepared' | 'committing' | 'undoing' | 'done';
  live: string;
  file: string;
  /** tables (and sequences) of the dump, as loaded into shadow tables */
  tables: string[];
  /** shadow names that stand for a name the dump references but never created (restored after the swap) */
  refs: Record<string, string>;
  /** foreign keys of the shadow tables: temporary name → the dump's name */
  newFks: Record<string, string>;
  /** objects the dump's definitions create */
  dumpObjects: ObjectRef[];
  /** dropExtraTables as asked: a recovery that commits a prepared restore honours it too */
  dropExtra?: boolean;
  // --- set when the commit starts
  /** dump tables that existed live (moved to their old name) */
  moved: string[];
  /** extra live tables moved out with the swap (dropExtraTables) */
  dropTables: string[];
  /** live views whose names the dump gives to tables (dropped before the swap) */
  displacedViews: string[];
  /** foreign keys of moved live tables renamed aside: table → {temporary name → live name} */
  oldFks: Record<string, Record<string, string>>;
  /** live views/routines/events/packages to drop before the dump's definitions are created */
  dropObjects: ObjectRef[];
  /** extra triggers of dump tables that are kept (created again on the new table) */
  keepTriggers: string[];
  extraObjects: string[];
  saved: SavedDefinition[];
  /**
   * foreign keys of kept live tables that reference moved tables: a rename carries them to the old copy, so
   * they are pointed at the new table again (kept here whole, in case a kill falls between drop and add)
   */
  repoint: ForeignKey[];
  /** AUTO_INCREMENT of the moved tables (InnoDB may recompute it when a table is reopened after a rename) */
  autoInc: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------------------
// names

function hashOf(name: string): string {
  return createHash('sha1').update(name, 'utf8').digest('hex').slice(0, 16);
}
const shadowName = (id: string, t: string): string => `${RESERVED_PREFIX}${id}_n${hashOf(t)}`;
const oldName = (id: string, t: string): string => `${RESERVED_PREFIX}${id}_o${hashOf(t)}`;
const journalName = (id: string): string => `${RESERVED_PREFIX}${id}_journal`;

function newId(): string {
  return Date.now().toString(36) + randomBytes(2).toString('hex');
}

const q = quoteIdent;
const objKey = (o: ObjectRef): string =>
  `${o.object}\0${o.object === 'view' || o.object === 'trigger' ? o.name : o.name.toLowerCase()}`;
const describeObject = (o: ObjectRef): string => `${o.object} ${o.name}`;

// ---------------------------------------------------------------------------------------------------------
// small queries

async function rows(conn: Connection, sql: string, values: unknown[] = []): Promise<RowDataPacket[]> {
  const [r] = await conn.query<RowDataPacket[]>({ sql, values });
  return r;
}

function str(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** Every base table, system-versioned table and sequence (not views) of a database, ours included. */
async function allTables(conn: Connection, db: string): Promise<string[]> {
  const r = await rows(
    conn,
    "SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME",
    [db],
  );
  return r.map((x) => str(x.n));
}

async function listViews(conn: Connection, db: string): Promise<string[]> {
  const r = await rows(
    conn,
    "SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'VIEW' ORDER BY TABLE_NAME",
    [db],
  );
  return r.map((x) => str(x.n));
}

async function listTriggers(conn: Connection, db: string): Promise<{ name: string; table: string }[]> {
  const r = await rows(
    conn,
    'SELECT TRIGGER_NAME AS n, EVENT_OBJECT_TABLE AS t FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER',
    [db],
  );
  return r.map((x) => ({ name: str(x.n), table: str(x.t) }));
}

async function listRoutines(conn: Connection, db: string): Promise<ObjectRef[]> {
  const r = await rows(
    conn,
    'SELECT ROUTINE_TYPE AS k, ROUTINE_NAME AS n FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME',
    [db],
  );
  const out: ObjectRef[] = r.map((x) => ({
    object: str(x.k).toLowerCase() as ObjectKind,
    name: str(x.n),
  }));
  const ev = await rows(
    conn,
    'SELECT EVENT_NAME AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME',
    [db],
  );
  for (const x of ev) out.push({ object: 'event', name: str(x.n) });
  return out;
}

interface ForeignKey {
  table: string;
  name: string;
  columns: string[];
  refDb: string;
  refTable: string;
  refColumns: string[];
  onUpdate: string;
  onDelete: string;
}

async function listForeignKeys(conn: Connection, db: string): Promise<ForeignKey[]> {
  const r = await rows(
    conn,
    `SELECT k.TABLE_NAME AS t, k.CONSTRAINT_NAME AS n, k.COLUMN_NAME AS c, k.REFERENCED_TABLE_SCHEMA AS rs,
            k.REFERENCED_TABLE_NAME AS rt, k.REFERENCED_COLUMN_NAME AS rc, r.UPDATE_RULE AS u, r.DELETE_RULE AS d
     FROM information_schema.KEY_COLUMN_USAGE k
     JOIN information_schema.REFERENTIAL_CONSTRAINTS r
       ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME
     WHERE k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL
     ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`,
    [db],
  );
  const out = new Map<string, ForeignKey>();
  for (const x of r) {
    const key = `${str(x.t)}\0${str(x.n)}`;
    let fk = out.get(key);
    if (!fk) {
      fk = {
        table: str(x.t),
        name: str(x.n),
        columns: [],
        refDb: str(x.rs),
        refTable: str(x.rt),
        refColumns: [],
        onUpdate: str(x.u),
        onDelete: str(x.d),
      };
      out.set(key, fk);
    }
    fk.columns.push(str(x.c));
    fk.refColumns.push(str(x.rc));
  }
  return [...out.values()];
}

function fkClause(db: string, fk: ForeignKey, name: string, refTable: string): string {
  const cols = (c: string[]): string => c.map(q).join(', ');
  const ref = fk.refDb === db ? q(refTable) : `${q(fk.refDb)}.${q(refTable)}`;
  let s = `ADD CONSTRAINT ${q(name)} FOREIGN KEY (${cols(fk.columns)}) REFERENCES ${ref} (${cols(fk.refColumns)})`;
  if (fk.onDelete !== 'RESTRICT') s += ` ON DELETE ${fk.onDelete}`;
  if (fk.onUpdate !== 'RESTRICT') s += ` ON UPDATE ${fk.onUpdate}`;
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// sessions

interface Ctx {
  config: DbConnectionConfig;
  live: string;
  lockWait: number;
  conns: ConnectionSet;
  emit: EventSink;
  onStep: ((step: RestoreStep) => void | Promise<void>) | undefined;
}

async function control(ctx: Ctx): Promise<Connection> {
  const c = ctx.conns.add(await openControlConnection(ctx.config, ctx.live));
  await boundLockWaits(c, ctx.lockWait);
  await c.query('SET SESSION foreign_key_checks = 0');
  return c;
}

async function loader(ctx: Ctx): Promise<Connection> {
  const c = ctx.conns.add(await openLoaderConnection(ctx.config, ctx.live));
  await boundLockWaits(c, ctx.lockWait);
  return c;
}

async function release(ctx: Ctx, c: Connection | undefined): Promise<void> {
  if (!c) return;
  ctx.conns.delete(c);
  await closeQuietly(c);
}

/** Runs DDL; a lock wait that hits the bound becomes one line naming what it waited for. */
async function ddl(ctx: Ctx, conn: Connection, sql: string, what: string): Promise<void> {
  try {
    await conn.query(sql);
  } catch (err) {
    if (isLockWaitTimeout(err)) {
      throw new RestoreError(
        `Waited more than ${ctx.lockWait} s for a lock on ${what} of database ${ctx.live} (another session holds it: a long query, an open transaction or LOCK TABLES)`,
        { cause: err },
      );
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------
// journal

async function createJournal(ctx: Ctx, conn: Connection, state: JournalState): Promise<void> {
  await conn.query(
    `CREATE TABLE ${q(journalName(state.id))} (seq INT UNSIGNED NOT NULL PRIMARY KEY, kind VARCHAR(16) NOT NULL, line INT UNSIGNED NOT NULL DEFAULT 0, body LONGBLOB NOT NULL) ENGINE=InnoDB`,
  );
  await writeState(conn, state);
  void ctx;
}

async function writeState(conn: Connection, state: JournalState): Promise<void> {
  await conn.query(`REPLACE INTO ${q(journalName(state.id))} (seq, kind, body) VALUES (0, 'state', ?)`, [
    Buffer.from(JSON.stringify(state)),
  ]);
}

/** Writes the held definitions and the 'prepared' phase in one transaction. */
async function writePrepared(conn: Connection, state: JournalState, held: HeldDefinition[]): Promise<void> {
  const t = q(journalName(state.id));
  await conn.query('START TRANSACTION');
  try {
    await conn.query(`DELETE FROM ${t} WHERE seq > 0`);
    let batch: unknown[][] = [];
    let bytes = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      await conn.query(`INSERT INTO ${t} (seq, kind, line, body) VALUES ?`, [batch]);
      batch = [];
      bytes = 0;
    };
    for (let i = 0; i < held.length; i++) {
      const h = held[i]!;
      batch.push([i + 1, h.kind, h.line, h.raw]);
      bytes += h.raw.length + 64;
      if (bytes > 2 << 20) await flush();
    }
    await flush();
    await writeState(conn, state);
    await conn.query('COMMIT');
  } catch (err) {
    await conn.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

async function readJournal(
  conn: Connection,
  id: string,
): Promise<{ state: JournalState; held: HeldDefinition[] } | undefined> {
  let r: RowDataPacket[];
  try {
    r = await rows(conn, `SELECT seq, kind, line, body FROM ${q(journalName(id))} ORDER BY seq`);
  } catch {
    return undefined;
  }
  const first = r[0];
  if (!first || Number(first.seq) !== 0) return undefined;
  try {
    const state = JSON.parse(Buffer.from(first.body as Buffer).toString('utf8')) as JournalState;
    if (state.version !== 2) return undefined;
    const held = r.slice(1).map((x) => ({
      kind: str(x.kind) as HeldKind,
      line: Number(x.line),
      raw: Buffer.from(x.body as Buffer),
    }));
    return { state, held };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// loading

interface LoadResult {
  statements: number;
  /** tables created by the dump, in order */
  tables: string[];
  held: HeldDefinition[];
  refs: Record<string, string>;
  newFks: Record<string, string>;
}

/** Statements that would act on live data before the swap: never run from a dump. */
const REFUSED =
  /^(?:DELETE|UPDATE|LOAD|RENAME|HANDLER|CALL|GRANT|REVOKE|FLUSH|KILL|SHUTDOWN|INSTALL|UNINSTALL|(?:CREATE|DROP|ALTER|RENAME)\s+(?:USER|ROLE|SERVER|DATABASE|SCHEMA))\b/i;

/**
 * Reads the dump once and loads its tables into shadow tables of the live database; definitions are held.
 * Checks the dump's end (footer, no open statement) as it goes.
 */
async function loadDump(
  ctx: Ctx,
  o: { file: string; id: string; concurrency: number; dumpedDb: string | undefined; signal?: AbortSignal },
): Promise<LoadResult> {
  const totalBytes = (await fsp.stat(o.file)).size;
  const conns: Connection[] = [];
  for (let i = 0; i < o.concurrency; i++) {
    const c = await loader(ctx);
    conns.push(c);
    await c.query(SESSION_DEFAULTS);
    try {
      await c.query('SET SESSION sql_log_bin = 0');
    } catch {
      // needs BINLOG ADMIN/SUPER: the load is then replicated, which is correct, only slower
    }
  }
  const serverVersion = await versionOf(conns[0]!);
  const pool = new LoaderPool(conns);
  const held: HeldDefinition[] = [];
  const tables: string[] = [];
  const seen = new Set<string>();
  const refs: Record<string, string> = {};
  const newFks: Record<string, string> = {};
  const fkByName = new Map<string, string>();
  let dumpedDb = o.dumpedDb;
  let useDb: string | undefined;
  let statements = 0;
  let rawBytes = 0;
  let lastProgress = Date.now();
  let lastTable: string | undefined;
  const splitter = new StatementSplitter();
  const out: RawStatement[] = [];
  let tail: Buffer = Buffer.alloc(0);
  const renames = {
    table: (name: string, db: string | undefined): string | undefined => {
      if (db !== undefined && db !== dumpedDb && db !== ctx.live) return undefined;
      const s = shadowName(o.id, name);
      refs[s] = name;
      return s;
    },
    constraint: (name: string): string => {
      let t = fkByName.get(name);
      if (t === undefined) {
        t = `${RESERVED_PREFIX}${o.id}_c${fkByName.size + 1}`;
        fkByName.set(name, t);
        newFks[t] = name;
      }
      return t;
    },
  };

  const refuse = (s: RawStatement, why: string): RestoreError =>
    new RestoreError(
      `Database backup ${o.file} has a statement at line ${s.line} that a rollback does not run (${why}): ${statementExcerpt(s.raw)}`,
    );
  const skipped = new Set<string>();
  /** tables whose rows are other tables' (MERGE, FEDERATED, …), and those whose rows were skipped */
  const elsewhere = new Set<string>();
  const skippedRows = new Set<string>();
  /** a table of the dump that has the restore's reserved prefix: never loaded (it would pass for ours) */
  const reserved = (table: string, line: number): boolean => {
    if (!table.toLowerCase().startsWith(RESERVED_PREFIX)) return false;
    if (!skipped.has(table)) {
      skipped.add(table);
      ctx.emit({
        type: 'warning',
        code: WarningCode.RESERVED_TABLE,
        message: `Skipped table ${table} of database backup ${o.file} (line ${line}): names starting with ${RESERVED_PREFIX} belong to magebackup's restores`,
      });
    }
    return true;
  };
  /** the statement with its tables redirected to shadow tables; refused when that is not certain */
  const redirect = (s: RawStatement, head: string): Redirected & { table: string } => {
    const r = redirectTableStatement(s.raw, renames, serverVersion);
    if (r.refusal !== undefined) throw refuse(s, r.refusal);
    if (r.target === undefined || r.unredirected.length > 0) {
      const t = r.unredirected[0] ?? classifyStatement(head).kind;
      throw refuse(s, `it names table ${t}, which cannot be loaded into a shadow table`);
    }
    return { ...r, table: r.target };
  };

  const handle = async (s: RawStatement): Promise<void> => {
    const head = statementHead(s.raw, undefined, serverVersion);
    const k = classifyStatement(head);
    statements++;
    switch (k.kind) {
      case 'skip':
        if (k.why === 'use' || k.why === 'create-database') {
          if (k.why === 'use' && useDb !== undefined && k.database !== useDb) {
            throw new RestoreError(
              `Database backup ${o.file} holds more than one database (${useDb}, ${k.database ?? ''} at line ${s.line}): restore one database at a time`,
            );
          }
          if (k.why === 'use') useDb = k.database;
          if (k.database !== undefined) dumpedDb = k.database;
        }
        return;
      case 'session': {
        const why = sessionRefusal(s.raw, serverVersion);
        if (why !== undefined) throw refuse(s, why);
        pool.broadcast(s.raw, s.line);
        held.push({ kind: 'session', line: s.line, raw: s.raw });
        return;
      }
      case 'table': {
        if (k.database !== undefined && k.database !== dumpedDb && k.database !== ctx.live) {
          throw new RestoreError(
            `Database backup ${o.file} writes to another database (${k.database}) at line ${s.line}: restore one database at a time`,
          );
        }
        if (reserved(k.table, s.line)) return;
        const r = redirect(s, head);
        const { raw, table } = r;
        if (reserved(table, s.line)) return;
        if (r.rowsElsewhere) elsewhere.add(table);
        else if (k.create) elsewhere.delete(table);
        if (elsewhere.has(table) && /^(?:INSERT|REPLACE|TRUNCATE)\b/i.test(head)) {
          if (!skippedRows.has(table)) {
            skippedRows.add(table);
            ctx.emit({
              type: 'warning',
              code: WarningCode.SKIPPED_ROWS,
              message: `Skipped the rows of table ${table} in database backup ${o.file} (line ${s.line}): its engine keeps no rows of its own (MERGE, FEDERATED, …), they belong to the tables it reads`,
            });
          }
          return;
        }
        if (k.create && !seen.has(table)) {
          seen.add(table);
          tables.push(table);
        }
        lastTable = table;
        const isDdl = !/^(?:INSERT|REPLACE|SELECT|DO)\b/i.test(head);
        if (r.copies) {
          // CREATE TABLE … LIKE another: after everything before it (the other table's CREATE included)
          await pool.barrier({ raw, shown: s.raw, line: s.line, ddl: true });
          return;
        }
        pool.dispatchTable({ raw, shown: s.raw, line: s.line, table, ddl: isDdl });
        await pool.room();
        return;
      }
      case 'definition': {
        const target = definitionTarget(head);
        const on = target?.object === 'trigger' ? triggerTable(head) : undefined;
        if (
          target !== undefined &&
          (target.name.toLowerCase().startsWith(RESERVED_PREFIX) || (on !== undefined && skipped.has(on)))
        ) {
          ctx.emit({
            type: 'warning',
            code: WarningCode.RESERVED_TABLE,
            message: `Skipped ${target.object} ${target.name} of database backup ${o.file} (line ${s.line}): it belongs to a table or name reserved for magebackup's restores`,
          });
          return;
        }
        held.push({ kind: k.object, line: s.line, raw: s.raw });
        return;
      }
      case 'barrier': {
        if (k.table !== undefined) {
          throw refuse(
            s,
            `it wraps a statement on table ${k.table} in EXECUTE IMMEDIATE, which cannot be loaded into a shadow table`,
          );
        }
        if (REFUSED.test(head)) {
          throw new RestoreError(
            `Database backup ${o.file} has a statement at line ${s.line} that a rollback does not run (it would change the live database or the server before the swap): ${statementExcerpt(s.raw)}`,
          );
        }
        if (!/^DROP\s+(?:TEMPORARY\s+)?(?:TABLES?|SEQUENCE)\b/i.test(head)) {
          throw refuse(s, 'only table statements are loaded before the swap');
        }
        // DROP TABLE a, b: every name it gives must be a shadow table's
        const { raw } = redirect(s, head);
        await pool.barrier({ raw, shown: s.raw, line: s.line, ddl: true });
        return;
      }
    }
  };

  try {
    const stream = openDumpStream(o.file, {
      ...(o.signal ? { signal: o.signal } : {}),
      onRawBytes: (n) => {
        rawBytes += n;
      },
    });
    for await (const chunk of stream) {
      throwIfAborted(o.signal);
      tail =
        chunk.length >= 4096
          ? chunk.subarray(chunk.length - 4096)
          : Buffer.concat([tail, chunk]).subarray(-4096);
      splitter.push(chunk, out);
      for (const s of out) await handle(s);
      out.length = 0;
      const now = Date.now();
      if (now - lastProgress >= 500) {
        lastProgress = now;
        ctx.emit({
          type: 'progress',
          part: 'db',
          operation: 'rollback',
          bytes: rawBytes,
          totalBytes,
          ...(lastTable !== undefined ? { table: lastTable } : {}),
        });
      }
    }
    const end = splitter.end(out);
    const lastLine =
      tail
        .toString('utf8')
        .replace(/[\s\0]+$/, '')
        .split('\n')
        .pop()
        ?.trim() ?? '';
    if (end !== 'clean' || !/^-- Dump completed\b/.test(lastLine)) {
      throw new RestoreError(
        `Database backup ${o.file} is truncated or incomplete: it does not end with a "-- Dump completed" line after a complete statement`,
      );
    }
    for (const s of out) await handle(s);
    await pool.drain();
    throwIfAborted(o.signal);
    ctx.emit({ type: 'progress', part: 'db', operation: 'rollback', bytes: totalBytes, totalBytes });
    return { statements, tables, held, refs, newFks };
  } catch (err) {
    const e = pool.failure ?? err;
    if (e instanceof StatementFailure) throw e;
    if (o.signal?.aborted && !(e instanceof InterruptedError)) {
      throw new InterruptedError(describeAbort(o.signal.reason), { cause: e });
    }
    if (e instanceof CliError || isServerGone(e)) throw e;
    throw new RestoreError(
      `Cannot read database backup ${o.file}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  } finally {
    if (pool.failure || o.signal?.aborted) for (const c of conns) c.destroy();
    await pool.close();
    for (const c of conns) await release(ctx, c);
  }
}

/** The server's version as executable comments number it (10.11.6 → 101106). */
async function versionOf(conn: Connection): Promise<number> {
  const r = await rows(conn, 'SELECT VERSION() AS v');
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(str(r[0]?.v));
  return m ? Number(m[1]) * 10000 + Number(m[2]) * 100 + Number(m[3]) : Infinity;
}

function statementError(ctx: Ctx, file: string, f: StatementFailure, suffix: string): RestoreError {
  const where = f.item.line > 0 ? `line ${f.item.line} of ${file}` : file;
  if (isLockWaitTimeout(f.cause)) {
    const on = f.item.table !== undefined ? `table ${f.item.table}` : 'a table';
    return new RestoreError(
      `Database restore waited more than ${ctx.lockWait} s for a lock on ${on} (${where}; another session holds it) — ${suffix}`,
      { cause: f.cause },
    );
  }
  return new RestoreError(
    `Database restore failed at ${where}: ${sqlMessage(f.cause)} (statement: ${statementExcerpt(f.item.shown ?? f.item.raw)}) — ${suffix}`,
    { cause: f.cause },
  );
}

// ---------------------------------------------------------------------------------------------------------
// definitions

/**
 * Runs the held session statements and definitions, in order, on one connection whose default database is
 * the live one (as they were dumped: nothing in them is rewritten). A definition that fails is retried (with
 * the session statements just before it) after the others, until no more succeed: mariadb-dump creates final
 * views in name order, so a view WITH CHECK OPTION over a view that is still a placeholder fails the first time.
 */
async function runDefinitions(ctx: Ctx, held: HeldDefinition[]): Promise<StatementFailure | undefined> {
  if (!held.some((h) => h.kind !== 'session')) return undefined;
  const conn = await loader(ctx);
  try {
    await conn.query(
      "SET SESSION foreign_key_checks = 0, unique_checks = 0, sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
    );
    const attempt = async (h: HeldDefinition): Promise<StatementFailure | undefined> => {
      try {
        await queryRaw(conn, h.raw);
        return undefined;
      } catch (err) {
        if (isServerGone(err)) throw err;
        return new StatementFailure({ raw: h.raw, line: h.line }, err);
      }
    };
    let retry: { context: HeldDefinition[]; def: HeldDefinition; failure: StatementFailure }[] = [];
    let context: HeldDefinition[] = [];
    for (const h of held) {
      if (h.kind === 'session') {
        context.push(h);
        const f = await attempt(h);
        if (f) return f;
        continue;
      }
      const f = await attempt(h);
      if (f) retry.push({ context, def: h, failure: f });
      context = [];
    }
    while (retry.length > 0) {
      const next: typeof retry = [];
      for (const r of retry) {
        for (const c of r.context) await attempt(c);
        const f = await attempt(r.def);
        if (f) next.push({ ...r, failure: f });
      }
      if (next.length === retry.length) return next[0]!.failure;
      retry = next;
    }
    return undefined;
  } finally {
    await release(ctx, conn);
  }
}

const SHOW_COLUMN: Record<ObjectKind, string> = {
  view: 'Create View',
  trigger: 'SQL Original Statement',
  procedure: 'Create Procedure',
  function: 'Create Function',
  event: 'Create Event',
  package: 'Create Package',
  'package body': 'Create Package Body',
};

async function saveDefinition(
  conn: Connection,
  db: string,
  o: ObjectRef & { table?: string },
): Promise<SavedDefinition | undefined> {
  const r = await rows(conn, `SHOW CREATE ${o.object.toUpperCase()} ${q(db)}.${q(o.name)}`);
  const row = r[0];
  if (!row) return undefined;
  return {
    object: o.object,
    name: o.name,
    ...(o.table !== undefined ? { table: o.table } : {}),
    create: str(row[SHOW_COLUMN[o.object]]),
    sqlMode: str(row.sql_mode),
    charset: str(row.character_set_client) || 'utf8mb4',
    collation: str(row.collation_connection) || 'utf8mb4_general_ci',
    ...(row.time_zone !== undefined ? { timeZone: str(row.time_zone) } : {}),
  };
}

/** DROP … IF EXISTS for one object (packages need Oracle mode for their DROP statement). */
async function dropObject(ctx: Ctx, conn: Connection, o: ObjectRef): Promise<void> {
  const oracle = o.object === 'package' || o.object === 'package body';
  if (oracle) await conn.query("SET SESSION sql_mode = 'ORACLE'");
  try {
    await ddl(ctx, conn, `DROP ${o.object.toUpperCase()} IF EXISTS ${q(o.name)}`, describeObject(o));
  } finally {
    if (oracle) await conn.query("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'");
  }
}

/** `CREATE [OR REPLACE] [ALGORITHM=…] DEFINER=u@h `, the part before DEFINER captured */
const DEFINER_RE =
  /^CREATE\s+((?:OR\s+REPLACE\s+)?(?:ALGORITHM\s*=\s*\w+\s+)?)DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'[^']*'|[^\s@]+)(?:@(?:`(?:[^`]|``)*`|'[^']*'|\S+))?\s+/i;

/** Creates saved definitions that do not exist now; views are retried in rounds (they may use each other). */
async function createSaved(
  ctx: Ctx,
  saved: SavedDefinition[],
  only?: (s: SavedDefinition) => boolean,
): Promise<string[]> {
  const conn = await loader(ctx);
  const failed: string[] = [];
  try {
    const ctl = await control(ctx);
    let existing: Set<string>;
    try {
      const trig = await listTriggers(ctl, ctx.live);
      existing = new Set([
        ...(await listViews(ctl, ctx.live)).map((n) => objKey({ object: 'view', name: n })),
        ...(await listRoutines(ctl, ctx.live)).map(objKey),
        ...trig.map((t) => objKey({ object: 'trigger', name: t.name })),
      ]);
    } finally {
      await release(ctx, ctl);
    }
    let todo = saved.filter((s) => !existing.has(objKey(s)) && (!only || only(s)));
    // a routine of another definer is not readable by this user (SHOW CREATE gives no body): it cannot be
    // put back, and trying for ever would keep the database from its old state for nothing
    for (const s of todo) {
      if (s.create.trim() === '') {
        ctx.emit({
          type: 'warning',
          code: WarningCode.DB_DEFINITION,
          message: `${describeObject(s)} of database ${ctx.live} could not be put back: user ${ctx.config.user} may not read its definition (it belongs to another definer)`,
        });
      }
    }
    todo = todo.filter((s) => s.create.trim() !== '');
    while (todo.length > 0) {
      const next: SavedDefinition[] = [];
      let lastErr = '';
      for (const s of todo) {
        try {
          await conn.query('SET SESSION sql_mode = ?, character_set_client = ?, collation_connection = ?', [
            s.sqlMode,
            s.charset,
            s.collation,
          ]);
          if (s.timeZone) await conn.query('SET SESSION time_zone = ?', [s.timeZone]);
          const bytes = Buffer.from(s.create, /^latin1/i.test(s.charset) ? 'latin1' : 'utf8');
          try {
            await queryRaw(conn, bytes);
          } catch (err) {
            // another user's definer needs SUPER/SET USER: the object comes back, defined by this user
            const errno = sqlErrno(err);
            if (errno !== 1227 && errno !== 1044 && errno !== 1142) throw err;
            const mine = s.create.replace(DEFINER_RE, 'CREATE $1');
            if (mine === s.create) throw err;
            await queryRaw(conn, Buffer.from(mine, /^latin1/i.test(s.charset) ? 'latin1' : 'utf8'));
            ctx.emit({
              type: 'warning',
              code: WarningCode.DB_DEFINITION,
              message: `${describeObject(s)} was created again with user ${ctx.config.user} as its definer (its own definer needs a privilege this user lacks)`,
            });
          }
        } catch (err) {
          if (isServerGone(err)) throw err;
          lastErr = `${describeObject(s)}: ${sqlMessage(err)}`;
          next.push(s);
        }
      }
      if (next.length === todo.length) {
        failed.push(...next.map((s) => describeObject(s)));
        if (lastErr) failed.push(lastErr);
        break;
      }
      todo = next;
    }
  } finally {
    await release(ctx, conn);
  }
  return failed;
}

// ---------------------------------------------------------------------------------------------------------
// commit, undo, cleanup

async function shadowsExist(conn: Connection, state: JournalState): Promise<boolean> {
  const present = new Set(await allTables(conn, state.live));
  return state.tables.some((t) => present.has(shadowName(state.id, t)));
}

/** Looks at the live database and records, before anything changes, what the swap moves and drops. */
async function planCommit(
  ctx: Ctx,
  conn: Connection,
  state: JournalState,
  dropExtra: boolean,
): Promise<void> {
  const inDump = new Set(state.tables);
  const live = (await allTables(conn, state.live)).filter((t) => !t.startsWith(RESERVED_PREFIX));
  state.moved = live.filter((t) => inDump.has(t));
  state.autoInc = {};
  for (const x of await rows(
    conn,
    'SELECT TABLE_NAME AS n, AUTO_INCREMENT AS a FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND AUTO_INCREMENT IS NOT NULL',
    [state.live],
  )) {
    if (inDump.has(str(x.n))) state.autoInc[str(x.n)] = str(x.a);
  }
  const extraTables = live.filter((t) => !inDump.has(t));
  state.dropTables = dropExtra ? extraTables : [];
  const views = await listViews(conn, state.live);
  state.displacedViews = views.filter((v) => inDump.has(v));
  const dumpKeys = new Set(state.dumpObjects.map(objKey));
  const dumpTriggers = new Set(state.dumpObjects.filter((o) => o.object === 'trigger').map((o) => o.name));
  const movedSet = new Set(state.moved);
  const saved: SavedDefinition[] = [];
  const dropObjects: ObjectRef[] = [];
  const extraObjects: string[] = [];
  for (const v of views) {
    const s = await saveDefinition(conn, state.live, { object: 'view', name: v });
    if (s) saved.push(s);
    if (inDump.has(v)) continue; // displaced by a table, dropped before the swap
    const o: ObjectRef = { object: 'view', name: v };
    if (dumpKeys.has(objKey(o))) dropObjects.push(o);
    else {
      extraObjects.push(describeObject(o));
      if (dropExtra) dropObjects.push(o);
    }
  }
  for (const o of await listRoutines(conn, state.live)) {
    const s = await saveDefinition(conn, state.live, o);
    if (s) saved.push(s);
    if (dumpKeys.has(objKey(o))) dropObjects.push(o);
    else {
      extraObjects.push(describeObject(o));
      if (dropExtra) dropObjects.push(o);
    }
  }
  // packages first (their bodies go with them), then the rest
  dropObjects.sort((a, b) => Number(b.object === 'package') - Number(a.object === 'package'));
  state.keepTriggers = [];
  for (const t of await listTriggers(conn, state.live)) {
    // triggers of extra tables stay with their table (moved out and back with it)
    if (!movedSet.has(t.table)) continue;
    const s = await saveDefinition(conn, state.live, { object: 'trigger', ...t });
    if (s) saved.push(s);
    if (!dumpTriggers.has(t.name)) {
      extraObjects.push(`trigger ${t.name}`);
      if (!dropExtra) state.keepTriggers.push(t.name);
    }
  }
  state.saved = saved;
  state.dropObjects = dropObjects;
  state.extraObjects = extraObjects;
  // live foreign keys whose names the new tables will take back
  const wanted = new Set(Object.values(state.newFks));
  state.oldFks = {};
  state.repoint = [];
  let n = 0;
  const liveFks = await listForeignKeys(conn, state.live);
  for (const fk of liveFks) {
    if (
      !inDump.has(fk.table) &&
      !state.dropTables.includes(fk.table) &&
      !fk.table.startsWith(RESERVED_PREFIX) &&
      fk.refDb === state.live &&
      movedSet.has(fk.refTable)
    ) {
      state.repoint.push(fk);
    }
  }
  for (const fk of liveFks) {
    if (!movedSet.has(fk.table) || !wanted.has(fk.name)) continue;
    (state.oldFks[fk.table] ??= {})[`${RESERVED_PREFIX}${state.id}_d${++n}`] = fk.name;
  }
}

/** Renames the foreign keys of `table` by `names` (current → wanted); those already renamed are skipped. */
/** Makes the kept tables' foreign keys in state.repoint reference their table by its live name again. */
async function repointForeignKeys(ctx: Ctx, conn: Connection, state: JournalState): Promise<void> {
  if (!state.repoint?.length) return;
  const fks = await listForeignKeys(conn, state.live);
  for (const want of state.repoint) {
    const cur = fks.find((f) => f.table === want.table && f.name === want.name);
    if (cur && cur.refDb === want.refDb && cur.refTable === want.refTable) continue;
    const what = `table ${want.table}`;
    if (cur) await ddl(ctx, conn, `ALTER TABLE ${q(want.table)} DROP FOREIGN KEY ${q(want.name)}`, what);
    await ddl(
      ctx,
      conn,
      `ALTER TABLE ${q(want.table)} ${fkClause(state.live, want, want.name, want.refTable)}`,
      what,
    );
  }
}

async function renameForeignKeys(
  ctx: Ctx,
  conn: Connection,
  fks: ForeignKey[],
  table: string,
  names: Record<string, string>,
  refs: Record<string, string>,
): Promise<void> {
  const mine = fks.filter((f) => f.table === table && names[f.name] !== undefined);
  if (mine.length === 0) return;
  const clauses: string[] = [];
  for (const f of mine) clauses.push(`DROP FOREIGN KEY ${q(f.name)}`);
  for (const f of mine) clauses.push(fkClause(ctx.live, f, names[f.name]!, refs[f.refTable] ?? f.refTable));
  await ddl(ctx, conn, `ALTER TABLE ${q(table)} ${clauses.join(', ')}`, `table ${table}`);
}

/** From 'committing' to done (idempotent: a recovery runs it again after a kill at any point). */
async function forward(
  ctx: Ctx,
  state: JournalState,
  held: HeldDefinition[],
): Promise<{ warnings: string[] }> {
  const conn = await control(ctx);
  const warnings: string[] = [];
  try {
    if (await shadowsExist(conn, state)) {
      for (const v of state.displacedViews) {
        await ddl(ctx, conn, `DROP VIEW IF EXISTS ${q(v)}`, `view ${v}`);
      }
      const clauses: string[] = [];
      for (const t of state.moved) clauses.push(`${q(t)} TO ${q(oldName(state.id, t))}`);
      for (const t of state.dropTables) clauses.push(`${q(t)} TO ${q(oldName(state.id, t))}`);
      for (const t of state.tables) clauses.push(`${q(shadowName(state.id, t))} TO ${q(t)}`);
      await ddl(
        ctx,
        conn,
        `RENAME TABLE ${clauses.join(', ')}`,
        `the tables (${[...new Set([...state.moved, ...state.dropTables])].slice(0, 5).join(', ')}${state.moved.length + state.dropTables.length > 5 ? ', …' : ''})`,
      );
    }
    await ctx.onStep?.('swapped');
    // constraint names: the old tables give theirs up, the new ones take the dump's
    let fks = await listForeignKeys(conn, state.live);
    for (const t of state.moved) {
      const names: Record<string, string> = {};
      for (const [tmp, orig] of Object.entries(state.oldFks[t] ?? {})) names[orig] = tmp;
      await renameForeignKeys(ctx, conn, fks, oldName(state.id, t), names, {});
    }
    fks = await listForeignKeys(conn, state.live);
    for (const t of state.tables) await renameForeignKeys(ctx, conn, fks, t, state.newFks, state.refs);
    await repointForeignKeys(ctx, conn, state);
    await ctx.onStep?.('constraints-renamed');
    // definitions: the old tables' triggers and the replaced objects go, the dump's come
    for (const s of state.saved) {
      if (s.object === 'trigger')
        await ddl(ctx, conn, `DROP TRIGGER IF EXISTS ${q(s.name)}`, `trigger ${s.name}`);
    }
    for (const o of state.dropObjects) await dropObject(ctx, conn, o);
    // objects of the dump that exist now were created by an interrupted earlier attempt
    for (const o of state.dumpObjects) if (o.object !== 'trigger') await dropObject(ctx, conn, o);
    // the new tables came without triggers: any trigger on them now is from an interrupted earlier attempt
    const newTables = new Set(state.tables);
    for (const t of await listTriggers(conn, state.live)) {
      if (newTables.has(t.table))
        await ddl(ctx, conn, `DROP TRIGGER IF EXISTS ${q(t.name)}`, `trigger ${t.name}`);
    }
    await ctx.onStep?.('definitions-dropped');
    const failure = await runDefinitions(ctx, held);
    if (failure) throw new DefinitionFailure(failure);
    if (state.keepTriggers.length > 0) {
      const keep = new Set(state.keepTriggers);
      const failed = await createSaved(ctx, state.saved, (s) => s.object === 'trigger' && keep.has(s.name));
      if (failed.length > 0) warnings.push(`Could not keep the extra trigger(s) ${failed.join('; ')}`);
    }
    state.phase = 'done';
    await writeState(conn, state);
    await ctx.onStep?.('definitions-created');
  } finally {
    await release(ctx, conn);
  }
  await cleanup(ctx, state);
  return { warnings };
}

class DefinitionFailure extends Error {
  constructor(readonly failure: StatementFailure) {
    super('definition failed');
  }
}

/** Drops every table of the restore (shadow or old copies) and, last, its journal. */
async function cleanup(ctx: Ctx, state: { id: string }): Promise<void> {
  const conn = await control(ctx);
  try {
    const prefix = `${RESERVED_PREFIX}${state.id}_`;
    const mine = (await allTables(conn, ctx.live)).filter(
      (t) => t.startsWith(prefix) && t !== journalName(state.id),
    );
    if (mine.length > 0) {
      await ddl(ctx, conn, `DROP TABLE IF EXISTS ${mine.map(q).join(', ')}`, "the restore's own tables");
    }
    await ddl(ctx, conn, `DROP TABLE IF EXISTS ${q(journalName(state.id))}`, 'the restore journal');
  } finally {
    await release(ctx, conn);
  }
}

/** Puts the old state back from any point after 'committing' (idempotent). */
async function undo(ctx: Ctx, state: JournalState): Promise<void> {
  const conn = await control(ctx);
  try {
    if (state.phase !== 'undoing') {
      state.phase = 'undoing';
      await writeState(conn, state);
    }
    if (!(await shadowsExist(conn, state))) {
      const present = new Set(await allTables(conn, state.live));
      const swapped = [...state.moved, ...state.dropTables].some((t) => present.has(oldName(state.id, t)));
      const newTables = new Set(state.tables);
      // the dump's definitions go (their names may be the old ones')
      for (const t of await listTriggers(conn, state.live)) {
        if (newTables.has(t.table))
          await ddl(ctx, conn, `DROP TRIGGER IF EXISTS ${q(t.name)}`, `trigger ${t.name}`);
      }
      for (const o of state.dumpObjects) {
        if (o.object !== 'trigger') await dropObject(ctx, conn, o);
      }
      if (swapped || state.moved.length + state.dropTables.length === 0) {
        const clauses: string[] = [];
        for (const t of state.tables) {
          if (present.has(t)) clauses.push(`${q(t)} TO ${q(shadowName(state.id, t))}`);
        }
        for (const t of [...state.moved, ...state.dropTables]) {
          if (present.has(oldName(state.id, t))) clauses.push(`${q(oldName(state.id, t))} TO ${q(t)}`);
        }
        if (clauses.length > 0) {
          await ddl(ctx, conn, `RENAME TABLE ${clauses.join(', ')}`, 'the tables');
        }
      }
    }
    // the shadow tables go, which frees the constraint names the old tables take back
    const prefix = `${RESERVED_PREFIX}${state.id}_n`;
    const shadows = (await allTables(conn, state.live)).filter((t) => t.startsWith(prefix));
    if (shadows.length > 0) {
      await ddl(ctx, conn, `DROP TABLE IF EXISTS ${shadows.map(q).join(', ')}`, 'the restored tables');
    }
    const fks = await listForeignKeys(conn, state.live);
    for (const t of state.moved) {
      await renameForeignKeys(ctx, conn, fks, t, state.oldFks[t] ?? {}, {});
    }
    await repointForeignKeys(ctx, conn, state);
    const autoInc = state.autoInc ?? {};
    for (const x of await rows(
      conn,
      'SELECT TABLE_NAME AS n, AUTO_INCREMENT AS a FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND AUTO_INCREMENT IS NOT NULL',
      [state.live],
    )) {
      const want = autoInc[str(x.n)];
      if (want !== undefined && want !== str(x.a) && /^\d+$/.test(want)) {
        await ddl(ctx, conn, `ALTER TABLE ${q(str(x.n))} AUTO_INCREMENT = ${want}`, `table ${str(x.n)}`);
      }
    }
  } finally {
    await release(ctx, conn);
  }
  const failed = await createSaved(ctx, state.saved);
  if (failed.length > 0) {
    throw new RestoreError(
      `Could not create again the previous definition(s) of database ${ctx.live}: ${failed.join('; ')}`,
      { live: 'recovery-pending' },
    );
  }
  await cleanup(ctx, state);
}

// ---------------------------------------------------------------------------------------------------------
// public API

function contextFor(o: RestoreOptions, conns?: ConnectionSet): Ctx {
  return {
    config: o.config,
    live: o.config.database,
    lockWait: o.lockWaitSeconds ?? DEFAULT_LOCK_WAIT,
    conns: conns ?? new ConnectionSet(o.config),
    emit: o.onEvent ?? noEvents,
    onStep: o.onStep,
  };
}

/** Ends every statement of ctx within seconds when the signal fires. */
function watchAbort(ctx: Ctx, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => {};
  const onAbort = (): void => void ctx.conns.killAll();
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

function serverGone(ctx: Ctx, err: unknown, state: string, live: LiveDatabaseState): RestoreError {
  return new RestoreError(
    `The database server went away during the rollback (${sqlMessage(err)}): database ${ctx.live} ${state}`,
    { cause: err, live },
  );
}

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
    await fsp.access(o.file);
  } catch (err) {
    throw new RestoreError(`Database backup ${o.file} does not exist or is not readable`, { cause: err });
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
  const unwatch = watchAbort(ctx, o.signal);
  let journal = false;
  let loaded: LoadResult;
  try {
    const ctl = await control(ctx);
    try {
      try {
        await createJournal(ctx, ctl, state);
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
    ctx.emit({ type: 'info', message: `Loading ${o.file} into shadow tables of database ${ctx.live}` });
    await o.onStep?.('loading');
    try {
      loaded = await loadDump(ctx, {
        file: o.file,
        id,
        concurrency,
        dumpedDb: headerDb,
        ...(o.signal ? { signal: o.signal } : {}),
      });
    } catch (err) {
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
      for (const h of loaded.held) {
        if (h.kind === 'session') continue;
        const t = definitionTarget(statementHead(h.raw));
        if (!t || t.drop) continue;
        const ref = { object: t.object, name: t.name };
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
    if (journal && !isServerGone(err)) {
      await cleanup(contextFor({ ...o, lockWaitSeconds: Math.min(ctx.lockWait, 10) }), state).catch(() => {});
    }
    if (aborted) {
      throw new RestoreInterruptedError(
        `${describeAbort(o.signal?.reason)}: database ${ctx.live} was not changed`,
        { cause: err, live: 'unchanged' },
      );
    }
    if (isServerGone(err)) {
      throw serverGone(
        ctx,
        err,
        'was not changed (its shadow tables are removed by the next run)',
        'unchanged',
      );
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
      return commitPrepared(o, state, held, loaded.statements);
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
  const inDump = new Set(state.tables);
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
      code: 'EXTRA_OBJECTS',
      message: `Kept ${state.extraObjects.length} object(s) of database ${ctx.live} that are not in the backup: ${state.extraObjects.join(', ')} (--drop-extra-tables removes them)`,
    });
  }
  ctx.emit({
    type: 'info',
    message: `Swapped ${state.tables.length} restored table(s) into database ${ctx.live}`,
  });
  return {
    mode: 'shadow',
    tables: state.tables.length,
    statements,
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
  const reason =
    err instanceof DefinitionFailure
      ? statementError(ctx, state.file, err.failure, '').message.replace(/ — $/, '')
      : err instanceof Error
        ? sqlMessage(err)
        : String(err);
  let live: LiveDatabaseState = 'unchanged';
  let how = 'was not changed';
  if (gone) {
    return serverGone(
      ctx,
      err,
      committing
        ? `is in the middle of the swap: the next magebackup run puts it back or finishes it from the journal table ${journalName(state.id)} before anything else`
        : 'was not changed (its shadow tables are removed by the next run)',
      committing ? 'recovery-pending' : 'unchanged',
    );
  }
  // the undo runs on fresh connections, not interrupted by the signal, with short lock waits
  const undoCtx = contextFor({ ...o, lockWaitSeconds: Math.min(ctx.lockWait, 10) });
  try {
    if (committing) {
      await undo(undoCtx, state);
      how = 'was put back as it was';
    } else {
      await cleanup(undoCtx, state);
    }
  } catch (undoErr) {
    live = 'recovery-pending';
    how = `could not be put back (${sqlMessage(undoErr)}): the next magebackup run does it from the journal table ${journalName(state.id)}`;
  }
  if (aborted) {
    return new RestoreInterruptedError(`${describeAbort(o.signal?.reason)}: database ${ctx.live} ${how}`, {
      cause: err,
      live,
    });
  }
  if (err instanceof RestoreError && !(err instanceof DefinitionFailure)) {
    return new RestoreError(`${err.message} — database ${ctx.live} ${how}`, { cause: err, live });
  }
  return new RestoreError(`Database rollback failed: ${reason} — database ${ctx.live} ${how}`, {
    cause: err instanceof DefinitionFailure ? err.failure.cause : err,
    live,
  });
}

/**
 * Finishes or undoes restores that a killed run left (see the file comment), before anything reads the
 * database. `decide(id)` chooses for a restore that was prepared or committing ('forward' / 'back');
 * without an answer: a prepared one is dropped (the live database was never touched), a committing one is
 * finished (and undone if it cannot be). Returns one line per thing done.
 */
export async function recoverInterruptedRestores(
  config: DbConnectionConfig,
  decide?: (id: string) => RecoveryDecision,
  o: { onEvent?: EventSink; lockWaitSeconds?: number } = {},
): Promise<string[]> {
  const ctx = contextFor({
    config,
    file: '',
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
    ...(o.lockWaitSeconds !== undefined ? { lockWaitSeconds: o.lockWaitSeconds } : {}),
  });
  const done: string[] = [];
  const conn = await control(ctx);
  let ids: string[];
  let orphans: string[];
  try {
    const all = await allTables(conn, ctx.live);
    ids = all.map((t) => JOURNAL_RE.exec(t)?.[1]).filter((x): x is string => x !== undefined);
    const withJournal = new Set(ids);
    orphans = [
      ...new Set(
        all
          .map((t) => OWN_RE.exec(t)?.[1])
          .filter((x): x is string => x !== undefined && !withJournal.has(x)),
      ),
    ];
  } finally {
    await release(ctx, conn);
  }
  for (const id of orphans) {
    await cleanup(ctx, { id });
    done.push(`dropped the tables of an unfinished restore (${id}) from database ${ctx.live}`);
  }
  for (const id of ids.sort()) {
    const c = await control(ctx);
    let j: { state: JournalState; held: HeldDefinition[] } | undefined;
    try {
      j = await readJournal(c, id);
    } finally {
      await release(ctx, c);
    }
    if (!j || j.state.phase === 'loading') {
      await cleanup(ctx, { id });
      done.push(
        `dropped the shadow tables of an unfinished restore (${id}); database ${ctx.live} was not changed`,
      );
      continue;
    }
    const { state, held } = j;
    if (state.phase === 'done') {
      await cleanup(ctx, state);
      done.push(`dropped the previous tables of database ${ctx.live} left by a finished restore (${id})`);
      continue;
    }
    const choice = decide?.(id) ?? (state.phase === 'prepared' ? 'back' : 'forward');
    if (state.phase === 'prepared') {
      if (choice === 'back') {
        await cleanup(ctx, state);
        done.push(
          `dropped a prepared restore (${id}) that was never committed; database ${ctx.live} was not changed`,
        );
        continue;
      }
      const c2 = await control(ctx);
      try {
        await planCommit(ctx, c2, state, state.dropExtra ?? false);
        state.phase = 'committing';
        await writeState(c2, state);
      } finally {
        await release(ctx, c2);
      }
    }
    if (state.phase === 'committing' && choice === 'forward') {
      try {
        await forward(ctx, state, held);
        done.push(
          `finished the interrupted restore of database ${ctx.live} (${id}): it holds the restored data`,
        );
        continue;
      } catch (err) {
        if (isServerGone(err))
          throw serverGone(ctx, err, 'is still in the middle of a restore', 'recovery-pending');
        ctx.emit({
          type: 'warning',
          code: WarningCode.DB_DEFINITION,
          message: `Could not finish the interrupted restore of database ${ctx.live} (${err instanceof DefinitionFailure ? sqlMessage(err.failure.cause) : sqlMessage(err)}): putting the previous data back`,
        });
      }
    }
    await undo(ctx, state);
    done.push(`undid the interrupted restore of database ${ctx.live} (${id}): it holds its previous data`);
  }
  return done;
}
