/**
 * What the restore reads from information_schema and SHOW CREATE: the tables, views, triggers, routines,
 * events and foreign keys of a database, and live definitions saved so that they can be created again.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { DefinitionObject } from './restore-parse.js';
import { quoteIdent as q } from './sql-values.js';

export type ObjectKind = Exclude<DefinitionObject, 'database'>;

export interface ObjectRef {
  object: ObjectKind;
  name: string;
}

/** A live definition as it was before the swap: enough to create it again exactly. */
export interface SavedDefinition {
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

export const objKey = (o: ObjectRef): string =>
  `${o.object}\0${o.object === 'view' || o.object === 'trigger' ? o.name : o.name.toLowerCase()}`;
export const describeObject = (o: ObjectRef): string => `${o.object} ${o.name}`;

// small queries

export async function rows(conn: Connection, sql: string, values: unknown[] = []): Promise<RowDataPacket[]> {
  const [r] = await conn.query<RowDataPacket[]>({ sql, values });
  return r;
}

export function str(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** The base tables, system-versioned tables and sequences of a database, ours included (or its views). */
async function tablesOfType(conn: Connection, db: string, views: boolean): Promise<string[]> {
  const r = await rows(
    conn,
    `SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE ${views ? '=' : '<>'} 'VIEW' ORDER BY TABLE_NAME`,
    [db],
  );
  return r.map((x) => str(x.n));
}

/** Every base table, system-versioned table and sequence (not views) of a database, ours included. */
export const allTables = (conn: Connection, db: string): Promise<string[]> => tablesOfType(conn, db, false);

export const listViews = (conn: Connection, db: string): Promise<string[]> => tablesOfType(conn, db, true);

export async function listTriggers(conn: Connection, db: string): Promise<{ name: string; table: string }[]> {
  const r = await rows(
    conn,
    'SELECT TRIGGER_NAME AS n, EVENT_OBJECT_TABLE AS t FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER',
    [db],
  );
  return r.map((x) => ({ name: str(x.n), table: str(x.t) }));
}

export async function listRoutines(conn: Connection, db: string): Promise<ObjectRef[]> {
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

export interface ForeignKey {
  table: string;
  name: string;
  columns: string[];
  refDb: string;
  refTable: string;
  refColumns: string[];
  onUpdate: string;
  onDelete: string;
}

export async function listForeignKeys(conn: Connection, db: string): Promise<ForeignKey[]> {
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

export function fkClause(db: string, fk: ForeignKey, name: string, refTable: string): string {
  const cols = (c: string[]): string => c.map(q).join(', ');
  const ref = fk.refDb === db ? q(refTable) : `${q(fk.refDb)}.${q(refTable)}`;
  let s = `ADD CONSTRAINT ${q(name)} FOREIGN KEY (${cols(fk.columns)}) REFERENCES ${ref} (${cols(fk.refColumns)})`;
  if (fk.onDelete !== 'RESTRICT') s += ` ON DELETE ${fk.onDelete}`;
  if (fk.onUpdate !== 'RESTRICT') s += ` ON UPDATE ${fk.onUpdate}`;
  return s;
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

export async function saveDefinition(
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
