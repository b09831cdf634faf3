/**
 * Reading the schema for a dump: which objects exist, their exact DDL, and how each table's rows are selected
 * and written. Runs on the dump connection inside its consistent-snapshot transaction.
 *
 * Why one file of ~400 lines: it is the one place that reads the schema, with the plan types the writer
 * consumes beside it; readSchema reads every object kind (tables, views, triggers, routines, events, sequences)
 * in one fixed order inside the snapshot, and planTable derives each table's SELECT list and value kinds from
 * the same rows. Split by object kind, that one consistent read would be spread over several files.
 */
import type { Connection } from 'mysql2/promise';
import { CliError } from '../errors.js';
import { RESERVED_PREFIX } from './restore-journal.js';
import { quoteIdent, valueKindFor, type ValueKind } from './sql-values.js';

export interface ColumnPlan {
  name: string;
  kind: ValueKind;
  /** expression in the SELECT list */
  select: string;
  /** for an ENUM that has '' as a member: index of the extra `col+0` select item telling '' from the error value */
  enumIndexAt?: number;
  /** dates and times: the server's text never needs escaping (quoted as is, without a per-byte check) */
  plainText?: boolean;
}

export interface TablePlan {
  name: string;
  type: 'BASE TABLE' | 'SYSTEM VERSIONED';
  engine: string | null;
  /** DDL bytes as the server wrote them */
  create: Buffer;
  columns: ColumnPlan[];
  /** items of the SELECT list (columns, then enum index helpers) */
  selectList: string[];
  /** `(a,b)` when generated columns are left out or invisible ones included; '' otherwise */
  columnList: string;
  /** rough size, for progress */
  dataLength: number;
  /**
   * System-versioned tables: the history is dumped too (`FOR SYSTEM_TIME ALL`, with the row start/end columns,
   * loaded under system_versioning_insert_history). Absent for other tables, and for transaction-precise
   * versioning, whose history cannot be inserted (only its current rows are dumped).
   */
  history?: { start: string; end: string };
  triggers: TriggerDef[];
}

export interface TriggerDef {
  name: string;
  table: string;
  create: Buffer;
  sqlMode: string;
  charset: string;
  collation: string;
}

export interface ViewDef {
  name: string;
  create: Buffer;
  columns: string[];
  charset: string;
  collation: string;
  dependsOn: string[];
}

export interface RoutineDef {
  name: string;
  /** PACKAGE and PACKAGE BODY: MariaDB's Oracle-mode packages */
  type: 'PROCEDURE' | 'FUNCTION' | 'PACKAGE' | 'PACKAGE BODY';
  create: Buffer;
  sqlMode: string;
  charset: string;
  collation: string;
  /** its body is hidden from this user (not its definer): only when readSchema was asked not to fail on it */
  unreadable?: true;
}

export interface EventDef {
  name: string;
  create: Buffer;
  sqlMode: string;
  timeZone: string;
  charset: string;
  collation: string;
}

export interface SequenceDef {
  name: string;
  create: Buffer;
  /** next_not_cached_value, as text */
  next: string;
}

export interface SchemaPlan {
  tables: TablePlan[];
  views: ViewDef[];
  routines: RoutineDef[];
  events: EventDef[];
  sequences: SequenceDef[];
  /**
   * Our own working tables (`__mbk_…`: shadow and journal tables of a running or interrupted rollback), left out:
   * in a backup they would be restored as real tables.
   */
  skipped: string[];
}

type Row = unknown[];

async function q(conn: Connection, sql: string, values: unknown[] = []): Promise<Row[]> {
  const [rows] = await conn.query({ sql, values, rowsAsArray: true });
  return rows as unknown as Row[];
}

const s = (v: unknown): string =>
  v === null || v === undefined
    ? ''
    : Buffer.isBuffer(v)
      ? v.toString('utf8')
      : typeof v === 'string'
        ? v
        : typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean'
          ? String(v)
          : JSON.stringify(v);
const b = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : Buffer.from(s(v), 'utf8'));

/** Deterministic name order (code points, not the server's collation). */
export function byName<T extends { name: string }>(a: T, c: T): number {
  return a.name < c.name ? -1 : a.name > c.name ? 1 : 0;
}

/** Views in an order where each view comes after the views it reads (name order among equals). */
export function orderViews(views: ViewDef[]): ViewDef[] {
  const byNameMap = new Map(views.map((v) => [v.name, v]));
  const done = new Set<string>();
  const out: ViewDef[] = [];
  const visiting = new Set<string>();
  const visit = (v: ViewDef): void => {
    if (done.has(v.name) || visiting.has(v.name)) return; // a cycle cannot exist; a false edge must not loop
    visiting.add(v.name);
    for (const d of [...v.dependsOn].sort()) {
      const dv = byNameMap.get(d);
      if (dv) visit(dv);
    }
    visiting.delete(v.name);
    done.add(v.name);
    out.push(v);
  };
  for (const v of [...views].sort(byName)) visit(v);
  return out;
}

/** Names of other views that a view's definition mentions as `identifiers` (over-approximation is harmless). */
function viewDependencies(create: string, self: string, viewNames: Set<string>): string[] {
  const asAt = create.search(/\sAS\s/i);
  const body = asAt >= 0 ? create.slice(asAt) : create;
  const deps = new Set<string>();
  const re = /`((?:[^`]|``)+)`/g;
  for (let m = re.exec(body); m !== null; m = re.exec(body)) {
    const name = m[1]!.replace(/``/g, '`');
    if (name !== self && viewNames.has(name)) deps.add(name);
  }
  return [...deps];
}

/** A name the rollback reserves for its working tables (compared as text: in LIKE, `_` is a wildcard). */
export function isWorkTable(name: string): boolean {
  return name.startsWith(RESERVED_PREFIX);
}

export async function readSchema(
  conn: Connection,
  db: string,
  o: {
    /**
     * A routine whose body this user may not see: a dump fails (it could not be restored), a comparison with the
     * live database ('unknown') lists it as unreadable, never equal to the backup's.
     */
    hiddenRoutine?: 'fail' | 'unknown';
  } = {},
): Promise<SchemaPlan> {
  const allRows = await q(
    conn,
    `SELECT TABLE_NAME, TABLE_TYPE, ENGINE, DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`,
    [db],
  );
  const tablesRows = allRows.filter((r) => !isWorkTable(s(r[0])));
  const skipped = allRows
    .map((r) => s(r[0]))
    .filter(isWorkTable)
    .sort();
  const colRows = await q(
    conn,
    // EXTRA, not IS_GENERATED: MySQL has no IS_GENERATED column
    `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [db],
  );
  const columnsOf = new Map<string, Row[]>();
  for (const r of colRows) {
    const t = s(r[0]);
    let list = columnsOf.get(t);
    if (!list) columnsOf.set(t, (list = []));
    list.push(r);
  }

  // DDL exactly as stored: no conversion of the server's bytes
  await conn.query('SET SESSION character_set_results = binary');
  try {
    const tables: TablePlan[] = [];
    const views: ViewDef[] = [];
    const sequences: SequenceDef[] = [];
    const viewInfo = new Map<string, { charset: string; collation: string }>();
    for (const r of await q(
      conn,
      'SELECT TABLE_NAME, CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?',
      [db],
    )) {
      viewInfo.set(s(r[0]), { charset: s(r[1]), collation: s(r[2]) });
    }
    const viewNames = new Set(tablesRows.filter((r) => s(r[1]) === 'VIEW').map((r) => s(r[0])));

    for (const r of tablesRows) {
      const name = s(r[0]);
      const type = s(r[1]);
      if (type === 'VIEW') {
        const [v] = await q(conn, `SHOW CREATE VIEW ${quoteIdent(name)}`);
        const create = b(v?.[1]);
        const info = viewInfo.get(name) ?? { charset: 'utf8mb4', collation: 'utf8mb4_general_ci' };
        views.push({
          name,
          create,
          columns: (columnsOf.get(name) ?? []).map((c) => s(c[1])),
          charset: info.charset,
          collation: info.collation,
          dependsOn: viewDependencies(
            create.toString(/^utf8/i.test(info.charset) ? 'utf8' : 'latin1'),
            name,
            viewNames,
          ),
        });
        continue;
      }
      if (type === 'SEQUENCE') {
        const [c] = await q(conn, `SHOW CREATE SEQUENCE ${quoteIdent(name)}`);
        const [n] = await q(conn, `SELECT next_not_cached_value FROM ${quoteIdent(name)}`);
        sequences.push({ name, create: b(c?.[1]), next: s(n?.[0]) });
        continue;
      }
      if (type !== 'BASE TABLE' && type !== 'SYSTEM VERSIONED') continue; // TEMPORARY etc.
      const [c] = await q(conn, `SHOW CREATE TABLE ${quoteIdent(name)}`);
      tables.push(
        planTable(
          name,
          type,
          r[2] === null ? null : s(r[2]),
          b(c?.[1]),
          columnsOf.get(name) ?? [],
          Number(s(r[3])) || 0,
        ),
      );
    }

    const triggerRows = await q(
      conn,
      `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_ORDER, SQL_MODE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION
       FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?`,
      [db],
    );
    // creation order = ACTION_ORDER within a table (FOLLOWS/PRECEDES clauses refer to triggers created before)
    triggerRows.sort((x, y) => Number(s(x[2])) - Number(s(y[2])) || (s(x[0]) < s(y[0]) ? -1 : 1));
    const tableByName = new Map(tables.map((t) => [t.name, t]));
    for (const r of triggerRows) {
      const name = s(r[0]);
      const table = s(r[1]);
      if (!tableByName.has(table)) continue; // on a working table
      const [c] = await q(conn, `SHOW CREATE TRIGGER ${quoteIdent(name)}`);
      if (!c || c[2] === null)
        throw new CliError(
          `Cannot read the definition of trigger ${name}: the database user lacks the TRIGGER privilege`,
        );
      tableByName.get(table)?.triggers.push({
        name,
        table,
        create: b(c[2]),
        sqlMode: s(r[3]),
        charset: s(r[4]),
        collation: s(r[5]),
      });
    }

    const routines: RoutineDef[] = [];
    for (const r of await q(
      conn,
      `SELECT ROUTINE_NAME, ROUTINE_TYPE, SQL_MODE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION
       FROM information_schema.ROUTINES
       WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE IN ('PROCEDURE', 'FUNCTION', 'PACKAGE', 'PACKAGE BODY')`,
      [db],
    )) {
      const name = s(r[0]);
      const type = s(r[1]) as RoutineDef['type'];
      const [c] = await q(conn, `SHOW CREATE ${type} ${quoteIdent(name)}`);
      if ((!c || c[2] === null || c[2] === undefined) && o.hiddenRoutine === 'unknown') {
        const [sm, cs, co] = [s(r[2]), s(r[3]), s(r[4])];
        routines.push({
          name,
          type,
          create: Buffer.alloc(0),
          sqlMode: sm,
          charset: cs,
          collation: co,
          unreadable: true,
        });
        continue;
      }
      if (!c || c[2] === null || c[2] === undefined) {
        throw new CliError(
          `Cannot read the definition of ${type.toLowerCase()} ${name}: the database user may not see its body (needs to be its definer, or SHOW CREATE ROUTINE / SELECT on mysql.proc)`,
        );
      }
      routines.push({ name, type, create: b(c[2]), sqlMode: s(r[2]), charset: s(r[3]), collation: s(r[4]) });
    }

    const events: EventDef[] = [];
    for (const r of await q(
      conn,
      `SELECT EVENT_NAME, SQL_MODE, TIME_ZONE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION
       FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?`,
      [db],
    )) {
      const name = s(r[0]);
      const [c] = await q(conn, `SHOW CREATE EVENT ${quoteIdent(name)}`);
      if (!c || c[3] === null)
        throw new CliError(
          `Cannot read the definition of event ${name}: the database user lacks the EVENT privilege`,
        );
      events.push({
        name,
        create: b(c[3]),
        sqlMode: s(r[1]),
        timeZone: s(r[2]),
        charset: s(r[3]),
        collation: s(r[4]),
      });
    }

    tables.sort(byName);
    sequences.sort(byName);
    routines.sort((x, y) => (x.type === y.type ? byName(x, y) : x.type < y.type ? -1 : 1));
    events.sort(byName);
    return { tables, views: orderViews(views), routines, events, sequences, skipped };
  } finally {
    await conn.query('SET SESSION character_set_results = utf8mb4');
  }
}

/** How one table's rows are read and written. Exported for tests. */
export function planTable(
  name: string,
  type: string,
  engine: string | null,
  create: Buffer,
  cols: Row[],
  dataLength: number,
): TablePlan {
  const columns: ColumnPlan[] = [];
  const selectList: string[] = [];
  const extra: string[] = [];
  let needList = false;
  for (const c of cols) {
    const col = s(c[1]);
    const dataType = s(c[2]).toLowerCase();
    const columnType = s(c[3]).toLowerCase();
    // 'VIRTUAL GENERATED' / 'STORED GENERATED' (also system-versioning ROW START/END columns); never MySQL's
    // 'DEFAULT_GENERATED' (a column with an expression default, which must be dumped)
    const extraInfo = s(c[4]);
    const generated = /\b(VIRTUAL|STORED|PERSISTENT) GENERATED\b/i.test(extraInfo);
    const invisible = /\bINVISIBLE\b/i.test(extraInfo);
    if (generated) {
      needList = true; // the server computes them; an INSERT must not name them
      continue;
    }
    if (invisible) needList = true;
    const id = quoteIdent(col);
    const kind = valueKindFor(dataType);
    // FLOAT goes over the text protocol with 6 significant digits; as DOUBLE every bit survives
    let select = dataType === 'float' ? `CAST(${id} AS DOUBLE)` : id;
    let plan: ColumnPlan = { name: col, kind, select };
    if (/^(date|datetime|timestamp|time|year)$/.test(dataType)) plan.plainText = true;
    // a SET with '' as a member: its text cannot tell '' from the empty set; its bitmask can
    if (dataType === 'set' && /[(,]''[,)]/.test(columnType)) {
      select = `${id} + 0`;
      plan = { name: col, kind: 'number', select };
    }
    if (dataType === 'enum' && /[(,]''[,)]/.test(columnType)) {
      plan.enumIndexAt = -1 - extra.length; // patched below, once the column count is known
      extra.push(`${id} + 0`);
    }
    columns.push(plan);
    selectList.push(select);
  }
  let history: TablePlan['history'];
  if (type === 'SYSTEM VERSIONED') {
    const text = create.toString('utf8');
    const period = /PERIOD FOR SYSTEM_TIME \(`((?:[^`]|``)+)`, *`((?:[^`]|``)+)`\)/i.exec(text);
    const start = period ? period[1]!.replace(/``/g, '`') : 'ROW_START';
    const end = period ? period[2]!.replace(/``/g, '`') : 'ROW_END';
    const startCol = cols.find((c) => s(c[1]) === start);
    // timestamp-based only: transaction ids (BIGINT UNSIGNED row start) cannot be inserted
    const trxPrecise = startCol !== undefined && /int/i.test(s(startCol[2]));
    if (!trxPrecise) {
      history = { start, end };
      needList = true;
      for (const name of [start, end]) {
        columns.push({ name, kind: 'string', select: quoteIdent(name) });
        selectList.push(quoteIdent(name));
      }
    }
  }
  for (const c of columns) {
    if (c.enumIndexAt !== undefined) c.enumIndexAt = columns.length + (-1 - c.enumIndexAt);
  }
  selectList.push(...extra);
  return {
    name,
    type: type as TablePlan['type'],
    engine,
    create,
    columns,
    selectList,
    columnList: needList ? `(${columns.map((c) => quoteIdent(c.name)).join(',')})` : '',
    dataLength,
    triggers: [],
    ...(history ? { history } : {}),
  };
}
