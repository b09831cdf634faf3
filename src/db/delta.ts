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
import { throwIfAborted } from '../errors.js';
import { openConnection } from './connect.js';
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

/**
 * The live database against the backup's hashes, in one consistent snapshot. `counts`: count the rows of tables
 * that are not hashed (for the diff; a rollback does not need them).
 */
export async function compareLiveDatabase(o: {
  config: DbConnectionConfig;
  backup: DbContentHashes;
  counts?: boolean;
  signal?: AbortSignal;
  /** before each table is read */
  onTable?: (name: string, index: number, total: number) => void;
}): Promise<LiveComparison> {
  throwIfAborted(o.signal);
  const conn = await openConnection(o.config);
  try {
    await prepareDumpSession(conn);
    await conn.query('START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */, READ ONLY');
    const schema = await readSchema(conn, o.config.database, { hiddenRoutine: 'unknown' });
    const live = new Map(schema.tables.map((t) => [t.name, t]));
    const inBackup = new Set(o.backup.tables.map((t) => t.name));
    const tables: TableComparison[] = [];
    let i = 0;
    for (const b of o.backup.tables) {
      throwIfAborted(o.signal);
      o.onTable?.(b.name, i++, o.backup.tables.length);
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
        const { hash, rows } = await hashTableRows(conn, t, o.backup.statementBytes, o.signal);
        cmp.liveRows = rows;
        if (hash !== b.rows) cmp.state = 'rows';
        // Always given back, not only when it differs: InnoDB may keep a counter that moved without rows (a failed
        // or deleted insert) in memory only, and fall back to max(id)+1 when the table is next opened; the restored
        // table must say what the backup's said. Without the option the counter was never used: 1 gives that back.
        else if (b.autoIncrement !== undefined || n.autoIncrement !== undefined)
          cmp.autoIncrement = b.autoIncrement ?? '1';
      }
      if (cmp.liveRows === undefined && o.counts) cmp.liveRows = await countRows(conn, t);
    }
    const extraTables = schema.tables.map((t) => t.name).filter((n) => !inBackup.has(n));
    const definitions = compareDefinitions(o.backup.definitions, definitionHashes(schema));
    await conn.query('COMMIT');
    return { tables, extraTables: extraTables.sort(), definitions };
  } finally {
    if (o.signal?.aborted) coreOf(conn).destroy();
    else await conn.end().catch(() => coreOf(conn).destroy());
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
