/**
 * Database rollback that is never half-applied live.
 *
 * Shadow mode (default): the dump is loaded into a fresh database `<db>__mbk_new_<ts>` on several connections
 * (one table per connection at a time, FOREIGN_KEY_CHECKS/UNIQUE_CHECKS off, a commit per INSERT: see SESSION_DEFAULTS).
 * Views, triggers, routines and events are held back: they are first tried in the shadow database (so a bad
 * definition fails before anything changes), then the shadow's triggers are dropped (MariaDB cannot move a
 * table with triggers to another database), and one atomic
 *   RENAME TABLE live.t TO old.t, shadow.t TO live.t, ...
 * swaps every table at once: the store sees the old or the new data, never a mix. The held-back definitions
 * are then created in the live database, and the shadow and old databases are dropped.
 *
 * Crash safety: the shadow database holds a journal table (`__mbk_restore`) with the plan and the held-back
 * definitions. Its phase is 'loading' until the load is complete and verified, then 'ready'. A run killed while
 * loading leaves the live database untouched and a shadow that the next run drops; a run killed once 'ready' is
 * rolled forward by the next run (recoverInterruptedRestores): triggers dropped, tables renamed if they were not
 * yet, definitions created, leftovers dropped.
 *
 * In-place mode (when the user may not create a database, or asked for): the dump, verified first, is loaded
 * into the live database itself; a failure there leaves it partly restored (the error says so and carries
 * `liveDamaged`, and the caller keeps maintenance mode on).
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { CliError, InterruptedError, describeAbort, throwIfAborted } from '../errors.js';
import { noEvents, WarningCode, type EventSink } from '../events.js';
import type { DbConnectionConfig } from './types.js';
import {
  closeQuietly,
  openControlConnection,
  openLoaderConnection,
  queryRaw,
  sqlErrno,
  sqlMessage,
} from './restore-connect.js';
import {
  classifyStatement,
  quoteIdent,
  retargetDatabase,
  statementExcerpt,
  statementHead,
} from './restore-parse.js';
import { LoaderPool, StatementFailure } from './restore-pool.js';
import { openDumpStream, StatementSplitter, type RawStatement } from './sql-reader.js';
import { dumpedDatabaseFromHeader, readDumpHead, verifyDump } from './verify-dump.js';

export interface RestoreOptions {
  config: DbConnectionConfig;
  file: string;
  /** drop tables that exist live but not in the dump (default: keep them, with an EXTRA_TABLES warning) */
  dropExtraTables?: boolean;
  /** 'auto' (default): shadow database, or in place when the user may not create one */
  mode?: 'auto' | 'shadow' | 'in-place';
  signal?: AbortSignal;
  onEvent?: EventSink;
  /** loader connections (default: 4) */
  concurrency?: number;
  /** test hook: called at named points of the restore (the SIGKILL test stops the process there) */
  onStep?: (step: RestoreStep) => void | Promise<void>;
}

export type RestoreStep =
  | 'shadow-created'
  | 'loading'
  | 'loaded'
  | 'ready'
  | 'live-triggers-dropped'
  | 'swapped'
  | 'definitions-created';

export interface RestoreResult {
  mode: 'shadow' | 'in-place';
  tables: number;
  statements: number;
  /** tables that exist live but not in the dump */
  extraTables: string[];
  /** the extra tables that were dropped (dropExtraTables) */
  droppedTables: string[];
}

/** A restore error; `liveDamaged` when the live database was changed before the failure (in-place mode). */
export class RestoreError extends CliError {
  readonly liveDamaged: boolean;
  readonly nothingChanged: boolean;
  constructor(
    message: string,
    options: { cause?: unknown; liveDamaged?: boolean; nothingChanged?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.liveDamaged = options.liveDamaged ?? false;
    this.nothingChanged = options.nothingChanged ?? false;
  }
}

export const JOURNAL_TABLE = '__mbk_restore';
const MAX_DB_NAME = 64;
const DEFAULT_CONCURRENCY = 4;
/**
 * autocommit stays ON: measured on MariaDB 10.11, one transaction per table (the "bulk insert into an empty
 * table" path) loaded a 140 MB single-table dump in 60-80 s against 35-51 s with a commit per ~1 MB INSERT.
 */
const SESSION_DEFAULTS =
  "SET SESSION foreign_key_checks = 0, unique_checks = 0, sql_mode = 'NO_AUTO_VALUE_ON_ZERO', autocommit = 1";

type DefinitionKind = 'session' | 'view' | 'trigger' | 'procedure' | 'function' | 'event' | 'database';

interface HeldDefinition {
  kind: DefinitionKind;
  line: number;
  raw: Buffer;
}

interface JournalState {
  version: 1;
  phase: 'loading' | 'prepared' | 'ready';
  live: string;
  shadow: string;
  old: string;
  file: string;
  dumpedDb?: string;
  /** tables (and sequences) of the dump, as loaded into the shadow */
  tables: string[];
  /** extra live tables to move out (and drop) with the swap */
  dropExtras: string[];
}

// ---------------------------------------------------------------------------------------------------------
// names

function nameBase(live: string, suffixLen: number): string {
  if (live.length + suffixLen <= MAX_DB_NAME) return live;
  const hash = createHash('sha1').update(live).digest('hex').slice(0, 8);
  return `${live.slice(0, MAX_DB_NAME - suffixLen - 9)}_${hash}`;
}

/** `<db>__mbk_new_<ts>` / `<db>__mbk_old_<ts>`, the db part shortened (with a hash) to stay within 64 chars. */
export function restoreDatabaseNames(live: string, ts: string): { shadow: string; old: string } {
  const base = nameBase(live, `__mbk_new_${ts}`.length);
  return { shadow: `${base}__mbk_new_${ts}`, old: `${base}__mbk_old_${ts}` };
}

const LEFTOVER_RE = /^(.*)__mbk_(new|old)_([0-9a-z]+)$/;

// ---------------------------------------------------------------------------------------------------------
// small queries

async function rows(conn: Connection, sql: string, values: unknown[] = []): Promise<RowDataPacket[]> {
  const [r] = await conn.query<RowDataPacket[]>({ sql, values });
  return r;
}

async function databaseExists(conn: Connection, db: string): Promise<boolean> {
  return (
    (await rows(conn, 'SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [db])).length > 0
  );
}

/** Base tables, system-versioned tables and sequences (not views) of a database. */
async function listTables(conn: Connection, db: string): Promise<string[]> {
  const r = await rows(
    conn,
    "SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME",
    [db],
  );
  return r.map((x) => String(x.n)).filter((n) => n !== JOURNAL_TABLE);
}

async function listTriggers(conn: Connection, db: string): Promise<{ name: string; table: string }[]> {
  const r = await rows(
    conn,
    'SELECT TRIGGER_NAME AS n, EVENT_OBJECT_TABLE AS t FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER',
    [db],
  );
  return r.map((x) => ({ name: String(x.n), table: String(x.t) }));
}

const q = quoteIdent;

async function dropDatabaseQuietly(conn: Connection | undefined, db: string): Promise<void> {
  if (!conn) return;
  try {
    await conn.query(`DROP DATABASE IF EXISTS ${q(db)}`);
  } catch {
    // best effort: recoverInterruptedRestores drops it next time
  }
}

function statementError(
  file: string,
  target: string,
  f: StatementFailure,
  suffix: string,
  liveDamaged: boolean,
): RestoreError {
  const where = f.item.line > 0 ? `line ${f.item.line} of ${file}` : file;
  return new RestoreError(
    `Database restore failed at ${where}: ${sqlMessage(f.cause)} (statement: ${statementExcerpt(f.item.raw)}) — ${suffix}`,
    { cause: f.cause, liveDamaged },
  );
}

// ---------------------------------------------------------------------------------------------------------
// loading

interface LoadResult {
  statements: number;
  /** tables created by the dump, in order */
  tables: string[];
  held: HeldDefinition[];
  dumpedDb: string | undefined;
}

/**
 * Reads the dump once and loads it into `target`. Definitions are held back (shadow mode) or run in order as
 * barriers against `definitionTarget` (in-place). Checks the dump's end (footer, no open statement) as it goes.
 */
async function loadDump(o: {
  config: DbConnectionConfig;
  file: string;
  target: string;
  holdDefinitions: boolean;
  concurrency: number;
  dumpedDb: string | undefined;
  signal?: AbortSignal;
  emit: EventSink;
  onConns?: (conns: Connection[]) => void;
}): Promise<LoadResult> {
  const totalBytes = (await fsp.stat(o.file)).size;
  const conns: Connection[] = [];
  try {
    for (let i = 0; i < o.concurrency; i++) {
      const c = await openLoaderConnection(o.config, o.target);
      conns.push(c);
      await c.query(SESSION_DEFAULTS);
      try {
        await c.query('SET SESSION sql_log_bin = 0');
      } catch {
        // needs BINLOG ADMIN/SUPER: the load is then replicated, which is correct, only slower
      }
    }
  } catch (err) {
    for (const c of conns) c.destroy();
    throw err;
  }
  o.onConns?.(conns);
  const pool = new LoaderPool(conns);
  const held: HeldDefinition[] = [];
  const tables: string[] = [];
  const seen = new Set<string>();
  let dumpedDb = o.dumpedDb;
  let useDb: string | undefined;
  let statements = 0;
  let rawBytes = 0;
  let lastProgress = Date.now();
  let lastTable: string | undefined;
  const splitter = new StatementSplitter();
  const out: RawStatement[] = [];
  let tail: Buffer = Buffer.alloc(0);

  const handle = async (s: RawStatement): Promise<void> => {
    const head = statementHead(s.raw);
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
      case 'session':
        pool.broadcast(s.raw, s.line);
        if (o.holdDefinitions) held.push({ kind: 'session', line: s.line, raw: s.raw });
        return;
      case 'table': {
        if (k.create && !seen.has(k.table)) {
          seen.add(k.table);
          tables.push(k.table);
        }
        lastTable = k.table;
        const raw = k.database !== undefined ? retargetDatabase(s.raw, dumpedDb, o.target) : s.raw;
        pool.dispatchTable({ raw, line: s.line, table: k.table });
        await pool.room();
        return;
      }
      case 'definition':
        if (o.holdDefinitions) {
          held.push({ kind: k.object, line: s.line, raw: s.raw });
          return;
        }
        await pool.barrier({ raw: retargetDatabase(s.raw, dumpedDb, o.target, head), line: s.line });
        return;
      case 'barrier':
        await pool.barrier({ raw: retargetDatabase(s.raw, dumpedDb, o.target, head), line: s.line });
        return;
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
        o.emit({
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
    o.emit({ type: 'progress', part: 'db', operation: 'rollback', bytes: totalBytes, totalBytes });
    return { statements, tables, held, dumpedDb };
  } catch (err) {
    if (err instanceof StatementFailure) throw err;
    if (pool.failure) throw pool.failure;
    if (o.signal?.aborted && !(err instanceof InterruptedError)) {
      throw new InterruptedError(describeAbort(o.signal.reason), { cause: err });
    }
    if (err instanceof CliError) throw err;
    throw new RestoreError(
      `Cannot read database backup ${o.file}: ${err instanceof Error ? err.message : String(err)}`,
      {
        cause: err,
      },
    );
  } finally {
    if (pool.failure || o.signal?.aborted) for (const c of conns) c.destroy();
    await pool.close();
    for (const c of conns) await closeQuietly(c);
  }
}

// ---------------------------------------------------------------------------------------------------------
// definitions (views, triggers, routines, events)

const ALREADY_EXISTS = new Set([1050, 1304, 1359, 1537]);

/**
 * Runs the held-back session statements and definitions, in order, on one connection to `target`.
 * A definition that fails is retried (with the session statements just before it) after the others, until no
 * more succeed: mariadb-dump creates final views in name order, so a view WITH CHECK OPTION over a view that is
 * still a placeholder fails the first time.
 * `skipEvents`: events are not tried in the shadow (they could fire there).
 */
async function runDefinitions(o: {
  config: DbConnectionConfig;
  target: string;
  held: HeldDefinition[];
  dumpedDb: string | undefined;
  skipEvents: boolean;
  tolerateExisting: boolean;
  onWarning?: (message: string) => void;
}): Promise<StatementFailure | undefined> {
  if (!o.held.some((h) => h.kind !== 'session')) return undefined;
  const conn = await openLoaderConnection(o.config, o.target);
  try {
    await conn.query(
      "SET SESSION foreign_key_checks = 0, unique_checks = 0, sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
    );
    const prep = (h: HeldDefinition): Buffer =>
      h.kind === 'session' ? h.raw : retargetDatabase(h.raw, o.dumpedDb, o.target, statementHead(h.raw));
    /** returns the failure, or undefined when it ran (or failed acceptably) */
    const attempt = async (h: HeldDefinition): Promise<StatementFailure | undefined> => {
      const raw = prep(h);
      try {
        await queryRaw(conn, raw);
        return undefined;
      } catch (err) {
        const errno = sqlErrno(err);
        if (o.tolerateExisting && errno !== undefined && ALREADY_EXISTS.has(errno)) {
          o.onWarning?.(`${statementExcerpt(raw)}: ${sqlMessage(err)}`);
          return undefined;
        }
        return new StatementFailure({ raw, line: h.line }, err);
      }
    };
    let retry: { context: HeldDefinition[]; def: HeldDefinition; failure: StatementFailure }[] = [];
    let context: HeldDefinition[] = [];
    for (const h of o.held) {
      if (o.skipEvents && h.kind === 'event') continue;
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
    await closeQuietly(conn);
  }
}

async function dropTriggers(conn: Connection, db: string, onTables?: Set<string>): Promise<void> {
  for (const t of await listTriggers(conn, db)) {
    if (onTables && !onTables.has(t.table)) continue;
    await conn.query(`DROP TRIGGER IF EXISTS ${q(db)}.${q(t.name)}`);
  }
}

interface SavedTrigger {
  name: string;
  sqlMode: string;
  statement: string;
}

async function saveTriggers(conn: Connection, db: string, onTables: Set<string>): Promise<SavedTrigger[]> {
  const saved: SavedTrigger[] = [];
  for (const t of await listTriggers(conn, db)) {
    if (!onTables.has(t.table)) continue;
    const r = await rows(conn, `SHOW CREATE TRIGGER ${q(db)}.${q(t.name)}`);
    const row = r[0];
    if (!row) continue;
    saved.push({
      name: t.name,
      sqlMode: String(row.sql_mode ?? ''),
      statement: String(row['SQL Original Statement'] ?? ''),
    });
  }
  return saved;
}

async function recreateTriggers(
  config: DbConnectionConfig,
  db: string,
  saved: SavedTrigger[],
): Promise<void> {
  if (saved.length === 0) return;
  const conn = await openControlConnection(config, db);
  try {
    for (const t of saved) {
      await conn.query('SET SESSION sql_mode = ?', [t.sqlMode]);
      await conn.query(t.statement);
    }
  } finally {
    await closeQuietly(conn);
  }
}

// ---------------------------------------------------------------------------------------------------------
// journal

async function createJournal(conn: Connection, state: JournalState): Promise<void> {
  await conn.query(
    `CREATE TABLE ${q(state.shadow)}.${q(JOURNAL_TABLE)} (seq INT UNSIGNED NOT NULL PRIMARY KEY, kind VARCHAR(16) NOT NULL, line INT UNSIGNED NOT NULL DEFAULT 0, body LONGBLOB NOT NULL) ENGINE=InnoDB`,
  );
  await conn.query(
    `INSERT INTO ${q(state.shadow)}.${q(JOURNAL_TABLE)} (seq, kind, body) VALUES (0, 'state', ?)`,
    [Buffer.from(JSON.stringify(state))],
  );
}

/** Writes the held definitions and the 'ready' phase in one transaction: the point of no return. */
async function markReady(conn: Connection, state: JournalState, held: HeldDefinition[]): Promise<void> {
  const t = `${q(state.shadow)}.${q(JOURNAL_TABLE)}`;
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
    await conn.query(`UPDATE ${t} SET body = ? WHERE seq = 0`, [Buffer.from(JSON.stringify(state))]);
    await conn.query('COMMIT');
  } catch (err) {
    await conn.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

async function setPhase(conn: Connection, state: JournalState): Promise<void> {
  await conn.query(`UPDATE ${q(state.shadow)}.${q(JOURNAL_TABLE)} SET body = ? WHERE seq = 0`, [
    Buffer.from(JSON.stringify(state)),
  ]);
}

async function readJournal(
  conn: Connection,
  shadow: string,
): Promise<{ state: JournalState; held: HeldDefinition[] } | undefined> {
  let r: RowDataPacket[];
  try {
    r = await rows(conn, `SELECT seq, kind, line, body FROM ${q(shadow)}.${q(JOURNAL_TABLE)} ORDER BY seq`);
  } catch {
    return undefined;
  }
  const first = r[0];
  if (!first || Number(first.seq) !== 0) return undefined;
  try {
    const state = JSON.parse(Buffer.from(first.body as Buffer).toString('utf8')) as JournalState;
    const held = r.slice(1).map((x) => ({
      kind: String(x.kind) as DefinitionKind,
      line: Number(x.line),
      raw: Buffer.from(x.body as Buffer),
    }));
    return { state, held };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// the swap

/**
 * From 'ready' to done: drop the triggers of the live tables being moved, RENAME everything at once (unless it
 * already happened), create the held definitions in the live database, drop the shadow and old databases.
 * Used by the restore itself and, after a kill, by recoverInterruptedRestores (recovering = true).
 */
async function finishSwap(o: {
  config: DbConnectionConfig;
  state: JournalState;
  held: HeldDefinition[];
  recovering: boolean;
  emit: EventSink;
  onStep?: (step: RestoreStep) => void | Promise<void>;
}): Promise<void> {
  const { state } = o;
  const ctl = await openControlConnection(o.config, null);
  try {
    await ctl.query('SET SESSION foreign_key_checks = 0, lock_wait_timeout = 120');
    const shadowTables = new Set(await listTables(ctl, state.shadow));
    if (state.tables.some((t) => shadowTables.has(t))) {
      await ctl.query(`CREATE DATABASE IF NOT EXISTS ${q(state.old)}`);
      const liveTables = new Set(await listTables(ctl, state.live));
      const moving = new Set<string>();
      for (const t of state.tables) if (liveTables.has(t)) moving.add(t);
      for (const t of state.dropExtras) if (liveTables.has(t)) moving.add(t);
      await dropTriggers(ctl, state.shadow);
      const saved = o.recovering ? [] : await saveTriggers(ctl, state.live, moving);
      await dropTriggers(ctl, state.live, moving);
      await o.onStep?.('live-triggers-dropped');
      const clauses: string[] = [];
      for (const t of moving) clauses.push(`${q(state.live)}.${q(t)} TO ${q(state.old)}.${q(t)}`);
      for (const t of state.tables) {
        if (shadowTables.has(t)) clauses.push(`${q(state.shadow)}.${q(t)} TO ${q(state.live)}.${q(t)}`);
      }
      try {
        await ctl.query(`RENAME TABLE ${clauses.join(', ')}`);
      } catch (err) {
        if (!o.recovering) {
          await recreateTriggers(o.config, state.live, saved).catch(() => {});
        }
        throw new RestoreError(
          `Cannot swap the restored tables into database ${state.live}: ${sqlMessage(err)} — nothing was changed`,
          { cause: err, nothingChanged: true },
        );
      }
    }
    await o.onStep?.('swapped');
    // the new tables came without triggers: any trigger on them now is from an interrupted earlier attempt
    await dropTriggers(ctl, state.live, new Set(state.tables));
    const failure = await runDefinitions({
      config: o.config,
      target: state.live,
      held: o.held,
      dumpedDb: state.dumpedDb,
      skipEvents: false,
      tolerateExisting: true,
      onWarning: (message) => o.emit({ type: 'warning', code: 'DB_DEFINITION', message }),
    });
    await o.onStep?.('definitions-created');
    await ctl.query(`DROP DATABASE IF EXISTS ${q(state.shadow)}`);
    await ctl.query(`DROP DATABASE IF EXISTS ${q(state.old)}`);
    if (failure) {
      throw new RestoreError(
        `The tables of database ${state.live} were restored, but a definition failed at line ${failure.item.line} of ${state.file}: ${sqlMessage(failure.cause)} (statement: ${statementExcerpt(failure.item.raw)})`,
        { cause: failure.cause, liveDamaged: true },
      );
    }
  } finally {
    await closeQuietly(ctl);
  }
}

// ---------------------------------------------------------------------------------------------------------
// public API

/**
 * Cleans up after restores that were killed: shadow databases still loading are dropped (the live database
 * was never touched), swaps that were 'ready' are finished, old databases left after a swap are dropped.
 * Returns one line per thing done.
 */
export async function recoverInterruptedRestores(
  config: DbConnectionConfig,
  decide?: (id: string) => RecoveryDecision,
  o: { onEvent?: EventSink } = {},
): Promise<string[]> {
  const emit = o.onEvent ?? noEvents;
  const done: string[] = [];
  const ctl = await openControlConnection(config, null);
  try {
    const names = (await rows(ctl, 'SELECT SCHEMA_NAME AS n FROM information_schema.SCHEMATA')).map((x) =>
      String(x.n),
    );
    const mine = names
      .map((n) => ({ n, m: LEFTOVER_RE.exec(n) }))
      .filter((x): x is { n: string; m: RegExpExecArray } => {
        if (!x.m) return false;
        const ts = x.m[3]!;
        const { shadow, old } = restoreDatabaseNames(config.database, ts);
        return x.n === shadow || x.n === old;
      })
      .sort((a, b) => (a.m[3]! < b.m[3]! ? -1 : a.m[3]! > b.m[3]! ? 1 : 0));
    const handledOld = new Set<string>();
    for (const { n, m } of mine) {
      if (m[2] !== 'new') continue;
      const { old } = restoreDatabaseNames(config.database, m[3]!);
      const j = await readJournal(ctl, n);
      if (j && j.state.live !== config.database) continue; // another database's, same shortened name
      handledOld.add(old);
      if (j && j.state.phase === 'prepared' && decide?.(n) === 'forward') j.state.phase = 'ready';
      if (!j || j.state.phase !== 'ready') {
        await ctl.query(`DROP DATABASE IF EXISTS ${q(n)}`);
        await ctl.query(`DROP DATABASE IF EXISTS ${q(old)}`);
        done.push(
          `dropped the unfinished shadow database ${n} (database ${config.database} was not changed)`,
        );
        continue;
      }
      await finishSwap({ config, state: j.state, held: j.held, recovering: true, emit });
      done.push(`finished swapping the restored tables into database ${config.database} (from ${n})`);
    }
    for (const { n, m } of mine) {
      if (m[2] !== 'old' || handledOld.has(n)) continue;
      await ctl.query(`DROP DATABASE IF EXISTS ${q(n)}`);
      done.push(`dropped ${n}, the previous tables of database ${config.database} left by a finished swap`);
    }
  } finally {
    await closeQuietly(ctl);
  }
  return done;
}

function isAccessDenied(err: unknown): boolean {
  const e = sqlErrno(err);
  return e === 1044 || e === 1045 || e === 1142 || e === 1227 || e === 1410;
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

/** Restores the dump into the store's database (see the file comment): prepare, then commit. */
export async function restoreDatabase(o: RestoreOptions): Promise<RestoreResult> {
  const p = await prepareDatabaseRestore(o);
  return p.commit();
}

/** Loads and checks the dump without changing the live database (see the file comment). */
export async function prepareDatabaseRestore(o: RestoreOptions): Promise<PreparedRestore> {
  const emit = o.onEvent ?? noEvents;
  const live = o.config.database;
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

  const ctl = await openControlConnection(o.config, null);
  let shadowCreated = false;
  let names: { shadow: string; old: string } | undefined;
  try {
    if (!(await databaseExists(ctl, live))) {
      throw new RestoreError(
        `Database ${live} does not exist: create it (empty) first, then run the rollback again`,
      );
    }
    let mode: 'shadow' | 'in-place' = o.mode === 'in-place' ? 'in-place' : 'shadow';
    if (mode === 'shadow') {
      const ts = Date.now().toString(36);
      names = restoreDatabaseNames(live, ts);
      const state: JournalState = {
        version: 1,
        phase: 'loading',
        live,
        shadow: names.shadow,
        old: names.old,
        file: o.file,
        ...(headerDb !== undefined ? { dumpedDb: headerDb } : {}),
        tables: [],
        dropExtras: [],
      };
      try {
        const [cs] = await ctl.query<RowDataPacket[]>(
          'SELECT DEFAULT_CHARACTER_SET_NAME AS cs, DEFAULT_COLLATION_NAME AS co FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
          [live],
        );
        const co = cs[0] ? ` CHARACTER SET ${String(cs[0].cs)} COLLATE ${String(cs[0].co)}` : '';
        await ctl.query(`CREATE DATABASE ${q(names.shadow)}${co}`);
        shadowCreated = true;
        await createJournal(ctl, state);
        await ctl.query(`CREATE DATABASE ${q(names.old)}`);
      } catch (err) {
        if (shadowCreated) await dropDatabaseQuietly(ctl, names.shadow);
        shadowCreated = false;
        if (!isAccessDenied(err) || o.mode === 'shadow') {
          throw new RestoreError(
            `Cannot create the shadow database ${names.shadow} for the restore: ${sqlMessage(err)}`,
            {
              cause: err,
            },
          );
        }
        mode = 'in-place';
        emit({
          type: 'warning',
          code: 'DB_IN_PLACE',
          message: `User ${o.config.user} may not create databases (${sqlMessage(err)}): restoring into ${live} in place, so a failure would leave it partly restored`,
        });
      }
      if (mode === 'shadow') {
        await o.onStep?.('shadow-created');
        const commit = await prepareShadow(o, ctl, state, concurrency, emit);
        const n = names;
        let settled = false;
        return {
          id: n.shadow,
          commit: async () => {
            if (settled) throw new Error('restore already committed or discarded');
            settled = true;
            return commit();
          },
          discard: async () => {
            if (settled) return;
            settled = true;
            const c = await openControlConnection(o.config, null);
            try {
              await c.query(`DROP DATABASE IF EXISTS ${q(n.shadow)}`);
              await c.query(`DROP DATABASE IF EXISTS ${q(n.old)}`);
            } finally {
              await closeQuietly(c);
            }
          },
        };
      }
    }
    let settled = false;
    return {
      id: `in-place-${Date.now().toString(36)}`,
      commit: async () => {
        if (settled) throw new Error('restore already committed or discarded');
        settled = true;
        const c = await openControlConnection(o.config, null);
        try {
          return await restoreInPlace(o, c, headerDb, concurrency, emit);
        } finally {
          await closeQuietly(c);
        }
      },
      discard: () => {
        settled = true;
        return Promise.resolve();
      },
    };
  } catch (err) {
    if (shadowCreated && names) {
      await dropDatabaseQuietly(ctl, names.shadow);
      await dropDatabaseQuietly(ctl, names.old);
    }
    throw err;
  } finally {
    await closeQuietly(ctl);
  }
}

async function prepareShadow(
  o: RestoreOptions,
  ctl: Connection,
  state: JournalState,
  concurrency: number,
  emit: EventSink,
): Promise<() => Promise<RestoreResult>> {
  emit({ type: 'info', message: `Loading ${o.file} into the shadow database ${state.shadow}` });
  await o.onStep?.('loading');
  let loaded: LoadResult;
  try {
    loaded = await loadDump({
      config: o.config,
      file: o.file,
      target: state.shadow,
      holdDefinitions: true,
      concurrency,
      dumpedDb: state.dumpedDb,
      ...(o.signal ? { signal: o.signal } : {}),
      emit,
    });
  } catch (err) {
    if (err instanceof StatementFailure) {
      throw statementError(o.file, state.shadow, err, `database ${state.live} was not changed`, false);
    }
    throw err;
  }
  await o.onStep?.('loaded');
  throwIfAborted(o.signal);
  if (loaded.dumpedDb !== undefined) state.dumpedDb = loaded.dumpedDb;

  // try every definition in the shadow first: a bad one fails here, before the live database is touched
  const failure = await runDefinitions({
    config: o.config,
    target: state.shadow,
    held: loaded.held,
    dumpedDb: state.dumpedDb,
    skipEvents: true,
    tolerateExisting: false,
  });
  if (failure)
    throw statementError(o.file, state.shadow, failure, `database ${state.live} was not changed`, false);
  throwIfAborted(o.signal);

  const shadowTables = await listTables(ctl, state.shadow);
  const liveTables = await listTables(ctl, state.live);
  const inDump = new Set(shadowTables);
  const extraTables = liveTables.filter((t) => !inDump.has(t));
  state.tables = shadowTables;
  state.dropExtras = o.dropExtraTables ? extraTables : [];
  state.phase = 'prepared';
  await markReady(ctl, state, loaded.held);
  return async () => {
    const ctl = await openControlConnection(o.config, null);
    try {
      state.phase = 'ready';
      await setPhase(ctl, state);
      // from here on the swap is finished even if the process is killed (by the next run's recovery)
      try {
        await o.onStep?.('ready');
        await finishSwap({
          config: o.config,
          state,
          held: loaded.held,
          recovering: false,
          emit,
          ...(o.onStep ? { onStep: o.onStep } : {}),
        });
      } catch (err) {
        // past 'ready', only a refused RENAME leaves the live database as it was; anything else is for the recovery
        if (err instanceof RestoreError && err.nothingChanged) {
          await dropDatabaseQuietly(ctl, state.shadow);
          await dropDatabaseQuietly(ctl, state.old);
        }
        throw err;
      }
      if (extraTables.length > 0 && !o.dropExtraTables) {
        emit({
          type: 'warning',
          code: WarningCode.EXTRA_TABLES,
          message: `Kept ${extraTables.length} table(s) of database ${state.live} that are not in the backup: ${extraTables.join(', ')}`,
        });
      }
      emit({
        type: 'info',
        message: `Swapped ${shadowTables.length} restored table(s) into database ${state.live}`,
      });
      return {
        mode: 'shadow',
        tables: shadowTables.length,
        statements: loaded.statements,
        extraTables,
        droppedTables: state.dropExtras,
      };
    } finally {
      await closeQuietly(ctl);
    }
  };
}

async function restoreInPlace(
  o: RestoreOptions,
  ctl: Connection,
  headerDb: string | undefined,
  concurrency: number,
  emit: EventSink,
): Promise<RestoreResult> {
  const live = o.config.database;
  // nothing is touched before the whole dump is known to be complete
  await verifyDump(o.file, o.signal ? { signal: o.signal } : {});
  const before = new Set(await listTables(ctl, live));
  emit({ type: 'info', message: `Loading ${o.file} into database ${live} in place` });
  await o.onStep?.('loading');
  let loaded: LoadResult;
  try {
    loaded = await loadDump({
      config: o.config,
      file: o.file,
      target: live,
      holdDefinitions: true,
      concurrency,
      dumpedDb: headerDb,
      ...(o.signal ? { signal: o.signal } : {}),
      emit,
    });
  } catch (err) {
    if (err instanceof StatementFailure) {
      throw statementError(o.file, live, err, `database ${live} is partly restored`, true);
    }
    if (err instanceof InterruptedError) {
      throw Object.assign(
        new InterruptedError(`${err.message}: database ${live} is partly restored`, { cause: err }),
        {
          liveDamaged: true,
        },
      );
    }
    if (err instanceof CliError) throw err;
    throw new RestoreError(`Database restore into ${live} failed: ${sqlMessage(err)}`, {
      cause: err,
      liveDamaged: true,
    });
  }
  // definitions last (as in shadow mode), so that views can be retried in dependency order
  const failure = await runDefinitions({
    config: o.config,
    target: live,
    held: loaded.held,
    dumpedDb: loaded.dumpedDb,
    skipEvents: false,
    tolerateExisting: false,
  });
  if (failure) throw statementError(o.file, live, failure, `database ${live} is partly restored`, true);
  const inDump = new Set(loaded.tables);
  const extraTables = [...before].filter((t) => !inDump.has(t)).sort();
  const droppedTables: string[] = [];
  if (o.dropExtraTables) {
    await ctl.query('SET SESSION foreign_key_checks = 0');
    for (const t of extraTables) {
      await ctl.query(`DROP TABLE IF EXISTS ${q(live)}.${q(t)}`);
      droppedTables.push(t);
    }
  } else if (extraTables.length > 0) {
    emit({
      type: 'warning',
      code: WarningCode.EXTRA_TABLES,
      message: `Kept ${extraTables.length} table(s) of database ${live} that are not in the backup: ${extraTables.join(', ')}`,
    });
  }
  return {
    mode: 'in-place',
    tables: loaded.tables.length,
    statements: loaded.statements,
    extraTables,
    droppedTables,
  };
}
