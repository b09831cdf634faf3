/**
 * The live database against a backup's content hashes (table-hash.ts), for a selective rollback and for
 * `backups:diff`: what a rollback would load, and which views, triggers, routines and events differ.
 *
 * Everything is read in ONE consistent snapshot (REPEATABLE READ, START TRANSACTION WITH CONSISTENT SNAPSHOT,
 * READ ONLY, the dump's own session settings), with the dump's own encoder: dumpRows writing into a hashing
 * RowOutput with the statement size the backup used. The same rows in the same order give the same bytes;
 * anything else (other rows, another order, another encoder version) gives another hash and the table is loaded:
 * a wrong "different" costs time, never data. Rows are read with the dump's own SELECT, so an unchanged table
 * reads in the order it was dumped in.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Connection } from 'mysql2/promise';
import { CliError, InterruptedError, describeAbort, throwIfAborted } from '../errors.js';
import { describeServer, isConnectionLost, openConnection } from './connect.js';
import { prepareDumpSession } from './dump.js';
import { CHUNK, type RowOutput } from './dump-output.js';
import { coreOf, dumpRows } from './dump-rows.js';
import { readSchema, type TablePlan } from './dump-schema.js';
import { ByteSink, quoteIdent } from './sql-values.js';
import {
  definitionHashes,
  hasStableOrder,
  normaliseCreate,
  sha256,
  type DbContentHashes,
  type DefinitionHash,
  type DefinitionKind,
} from './table-hash.js';
import type { DbConnectionConfig } from './types.js';

/** A RowOutput that hashes what dumpRows writes instead of writing it. */
class HashOutput implements RowOutput {
  readonly sink = new ByteSink(CHUNK + 65536);
  readonly error = undefined;
  readonly congested = false;
  constructor(private readonly hash: Hash) {}
  flush(force = false): void {
    if (this.sink.len === 0 || (!force && this.sink.len < CHUNK)) return;
    this.hash.update(this.sink.buf.subarray(0, this.sink.len));
    this.sink.len = 0;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  text(s: string): Promise<void> {
    this.sink.utf8(s);
    this.flush();
    return Promise.resolve();
  }
}

/** How one table of the backup compares with the live database. */
export type TableState =
  /** same schema, same rows: the rollback keeps the live table */
  | 'equal'
  | 'rows'
  | 'schema'
  /** not a table live (absent, or a view of that name) */
  | 'missing'
  /** no row hash in the backup (no stable row order, rows stripped or elsewhere): always loaded */
  | 'unhashed';

export interface TableComparison {
  name: string;
  state: TableState;
  backupRows: number;
  /** live rows (counted when hashed; for other states only when asked: counts) */
  liveRows?: number;
  /** equal tables: the backup's AUTO_INCREMENT, when the live one differs */
  autoIncrement?: string;
}

export interface DefinitionChange {
  object: DefinitionKind;
  name: string;
  /** 'unreadable': the live body is hidden from this user (not its definer): it can not be shown equal */
  change: 'missing' | 'extra' | 'changed' | 'unreadable';
}

export interface LiveComparison {
  tables: TableComparison[];
  /** live base tables the backup does not have (magebackup's own working tables left out) */
  extraTables: string[];
  definitions: DefinitionChange[];
}

/** Connections the live tables are hashed on (each hashes one table at a time, biggest first). */
const HASH_CONNECTIONS = 2;

/**
 * The live database against the backup's hashes. `counts`: count the rows of tables that are not hashed (for
 * the diff; a rollback does not need them).
 *
 * The schema and the definitions are read in one snapshot; the tables' rows are hashed on HASH_CONNECTIONS
 * connections, each table in a consistent-snapshot transaction of its own. Per-table consistency is what the
 * decision needs: each table is compared with the backup's fixed hash, never with another live table, and the
 * outcome for a table (kept or loaded) is right iff that table equals the backup's; a snapshot shared by all
 * tables would add nothing to that question. (Writes after a table was compared are excluded by maintenance
 * mode, as they were with one snapshot: no snapshot could cover the time up to the swap.) Within a table's
 * transaction the rows are read first, which takes the table's metadata lock until COMMIT, then SHOW CREATE
 * TABLE again: a table altered since the schema was read shows its new schema there and is loaded.
 */
export async function compareLiveDatabase(o: CompareOptions): Promise<LiveComparison> {
  throwIfAborted(o.signal);
  const signal = o.signal;
  if (!signal) return compareUnguarded(o);
  // An abort destroys the connections (below), and a statement in flight on a destroyed connection never settles
  // (mysql2 drops its callback once the connection is closing): the abort ends the comparison itself too.
  let onAbort!: () => void;
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => reject(new InterruptedError(describeAbort(signal.reason)));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const work = compareUnguarded(o);
  work.catch(() => {}); // abandoned when aborted
  try {
    return await Promise.race([work, stopped]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

interface CompareOptions {
  config: DbConnectionConfig;
  backup: DbContentHashes;
  counts?: boolean;
  signal?: AbortSignal;
  /** before each table is read */
  onTable?: (name: string, index: number, total: number) => void;
  /**
   * each table of the backup once its state is final (in the order found: first those decided by the schema,
   * then the hashed ones as their rows are read): a rollback starts loading a table that differs from here on
   */
  onDecided?: (t: TableComparison) => void;
}

async function compareUnguarded(o: CompareOptions): Promise<LiveComparison> {
  const conns: Connection[] = [];
  const kill = (): void => {
    for (const c of conns) coreOf(c).destroy();
  };
  o.signal?.addEventListener('abort', kill, { once: true });
  try {
    for (let i = 0; i < HASH_CONNECTIONS; i++) {
      const c = await openConnection(o.config);
      conns.push(c);
      await prepareDumpSession(c);
    }
    const conn = conns[0]!;
    await conn.query('START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */, READ ONLY');
    const schema = await readSchema(conn, o.config.database, { hiddenRoutine: 'unknown' });
    const definitions = compareDefinitions(o.backup.definitions, definitionHashes(schema));
    await conn.query('COMMIT');
    const live = new Map(schema.tables.map((t) => [t.name, t]));
    const inBackup = new Set(o.backup.tables.map((t) => t.name));
    const tables: TableComparison[] = [];
    const toHash: Array<{ cmp: TableComparison; t: TablePlan; rows: string; autoIncrement?: string }> = [];
    for (const b of o.backup.tables) {
      const t = live.get(b.name);
      const cmp: TableComparison = { name: b.name, state: 'equal', backupRows: b.count };
      tables.push(cmp);
      if (!t) {
        cmp.state = 'missing';
        continue;
      }
      const n = normaliseCreate(t.create);
      if (sha256(n.schema) !== b.schema) cmp.state = 'schema';
      else if (b.rows === undefined || !hasStableOrder(t.create)) cmp.state = 'unhashed';
      else {
        // Always given back, not only when it differs: InnoDB may keep a counter that moved without rows (a failed
        // or deleted insert) in memory only, and fall back to max(id)+1 when the table is next opened; the restored
        // table must say what the backup's said. Without the option the counter was never used: 1 gives that back.
        const autoIncrement =
          b.autoIncrement !== undefined || n.autoIncrement !== undefined
            ? (b.autoIncrement ?? '1')
            : undefined;
        toHash.push({ cmp, t, rows: b.rows, ...(autoIncrement !== undefined ? { autoIncrement } : {}) });
      }
    }
    for (const cmp of tables) if (cmp.state !== 'equal') o.onDecided?.(cmp);
    // biggest first: the two connections end at about the same time
    toHash.sort((x, y) => y.t.dataLength - x.t.dataLength);
    let next = 0;
    let done = 0;
    const worker = async (c: Connection): Promise<void> => {
      for (let j = next++; j < toHash.length; j = next++) {
        throwIfAborted(o.signal);
        const h = toHash[j]!;
        o.onTable?.(h.t.name, done++, toHash.length);
        await c.query('START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */, READ ONLY');
        const { hash, rows } = await hashTableRows(c, h.t, o.backup.statementBytes, o.signal);
        const same = (await showCreateTable(c, h.t.name))?.equals(h.t.create) === true;
        await c.query('COMMIT');
        h.cmp.liveRows = rows;
        if (!same) h.cmp.state = 'schema';
        else if (hash !== h.rows) h.cmp.state = 'rows';
        else if (h.autoIncrement !== undefined) h.cmp.autoIncrement = h.autoIncrement;
        o.onDecided?.(h.cmp);
      }
    };
    await Promise.all(conns.map(worker));
    if (o.counts) {
      for (const cmp of tables) {
        const t = live.get(cmp.name);
        if (cmp.liveRows === undefined && t) cmp.liveRows = await countRows(conn, t);
      }
    }
    const extraTables = schema.tables.map((t) => t.name).filter((n) => !inBackup.has(n));
    return { tables, extraTables: extraTables.sort(), definitions };
  } catch (err) {
    kill();
    if (!o.signal?.aborted) throw mapCompareError(err, o.config);
    throw err instanceof InterruptedError
      ? err
      : new InterruptedError(describeAbort(o.signal.reason), { cause: err });
  } finally {
    o.signal?.removeEventListener('abort', kill);
    if (o.signal?.aborted) kill();
    else for (const c of conns) await c.end().catch(() => coreOf(c).destroy());
  }
}

/** A server that went away or refused a statement mid-comparison: one line naming the database and server. */
function mapCompareError(err: unknown, cfg: DbConnectionConfig): unknown {
  if (err instanceof CliError) return err;
  const what = `Comparing database ${quoteIdent(cfg.database)} on ${describeServer(cfg)} with the backup failed`;
  if (isConnectionLost(err)) {
    return new CliError(`${what}: the connection to the server was lost (did it stop or restart?)`, {
      cause: err,
    });
  }
  const e = err as { code?: unknown; sqlMessage?: string; message?: string } | null;
  if (typeof e?.code === 'string' && e.code.startsWith('ER_')) {
    return new CliError(`${what}: ${e.sqlMessage ?? e.message ?? e.code}`, { cause: err });
  }
  return err;
}

/** SHOW CREATE TABLE's bytes exactly (as readSchema reads them); undefined when it is not a table now. */
async function showCreateTable(conn: Connection, name: string): Promise<Buffer | undefined> {
  await conn.query('SET SESSION character_set_results = binary');
  try {
    const [r] = await conn.query({ sql: `SHOW CREATE TABLE ${quoteIdent(name)}`, rowsAsArray: true });
    const v = (r as unknown as unknown[][])[0]?.[1];
    return Buffer.isBuffer(v) ? v : typeof v === 'string' ? Buffer.from(v, 'latin1') : undefined;
  } catch {
    return undefined;
  } finally {
    await conn.query('SET SESSION character_set_results = utf8mb4');
  }
}

/** A live table's rows through the dump's encoder into SHA-256 (as dump.ts taps them). */
export async function hashTableRows(
  conn: Connection,
  t: TablePlan,
  statementBytes: number,
  signal?: AbortSignal,
): Promise<{ hash: string; rows: number }> {
  const hash = createHash('sha256');
  const out = new HashOutput(hash);
  const rows = await dumpRows({
    conn,
    table: t,
    out,
    maxStatementBytes: statementBytes,
    signal,
    onProgress: () => {},
    maxPacket: 0,
    onTooBig: () => {},
  });
  out.flush(true);
  return { hash: hash.digest('hex'), rows };
}

async function countRows(conn: Connection, t: TablePlan): Promise<number> {
  const [r] = await conn.query({
    sql: `SELECT COUNT(*) FROM ${quoteIdent(t.name)}${t.history ? ' FOR SYSTEM_TIME ALL' : ''}`,
    rowsAsArray: true,
  });
  return Number((r as unknown as unknown[][])[0]?.[0] ?? 0);
}

function compareDefinitions(backup: DefinitionHash[], live: DefinitionHash[]): DefinitionChange[] {
  const key = (d: DefinitionHash): string => `${d.object}\0${d.name}`;
  const liveBy = new Map(live.map((d) => [key(d), d]));
  const backupKeys = new Set(backup.map(key));
  const out: DefinitionChange[] = [];
  for (const d of backup) {
    const l = liveBy.get(key(d));
    if (!l) out.push({ object: d.object, name: d.name, change: 'missing' });
    else if (l.hash === 'unreadable') out.push({ object: d.object, name: d.name, change: 'unreadable' });
    else if (l.hash !== d.hash) out.push({ object: d.object, name: d.name, change: 'changed' });
  }
  for (const d of live) {
    if (!backupKeys.has(key(d))) out.push({ object: d.object, name: d.name, change: 'extra' });
  }
  return out;
}

/** The tables a selective rollback keeps live (equal to the backup's), with the AUTO_INCREMENT to give back. */
export function keptTables(c: LiveComparison): Array<{ name: string; autoIncrement?: string }> {
  return c.tables
    .filter((t) => t.state === 'equal')
    .map((t) =>
      t.autoIncrement !== undefined ? { name: t.name, autoIncrement: t.autoIncrement } : { name: t.name },
    );
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** Tables a rollback loads: every table of the backup that is not equal live. */
export function restoredTables(c: LiveComparison): TableComparison[] {
  return c.tables.filter((t) => t.state !== 'equal');
}

/** One line: how many tables a rollback loads and why ("3 of 26 tables will be restored: 2 with other rows, …"). */
export function describeDelta(c: LiveComparison): string {
  const n = (s: TableState): number => c.tables.filter((t) => t.state === s).length;
  const restored = restoredTables(c).length;
  const why = [
    n('rows') ? `${n('rows')} with other rows` : '',
    n('schema') ? `${n('schema')} with another schema` : '',
    n('missing') ? `${n('missing')} missing` : '',
    n('unhashed') ? `${n('unhashed')} without a key or row hash (always loaded)` : '',
  ].filter(Boolean);
  const head =
    restored === 0
      ? `no table differs from the backup: none of ${plural(c.tables.length, 'table')} will be loaded`
      : `${restored} of ${plural(c.tables.length, 'table')} will be restored: ${why.join(', ')}`;
  return `${head}; views, triggers, routines and events are created again`;
}
