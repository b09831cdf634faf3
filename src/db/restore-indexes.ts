/**
 * Secondary indexes of a big shadow table built after its rows (pure planning, plus the two statements). InnoDB
 * inserting rows into a table with secondary indexes updates every index per row (random pages, the buffer pool
 * churns once the table outgrows it); building an index afterwards is one scan, a sort and a bottom-up build.
 * Measured on the bench server (MariaDB 10.11, 256 MB buffer pool): the wide set's 113 MB varchar table (PK, one
 * unique and two plain keys) cost the server 21.2-21.8 s of CPU loaded with its keys, 11.5-14.8 s loaded without
 * them and built afterwards by one ALTER TABLE.
 *
 * Only an exact round trip is done: the keys dropped are a suffix of the table's key list as SHOW CREATE TABLE
 * orders it (PRIMARY KEY stays), added back in that order, so the server sorts them into the same places; the
 * table's definition afterwards is compared with the one before (AUTO_INCREMENT aside) and a difference fails the
 * load, before the swap. While the keys are gone only plain whole-row INSERTs run on the table: any other statement
 * of it (a REPLACE, an INSERT IGNORE, an ALTER … whose meaning depends on a key) waits for the keys to be back.
 */
import type { Connection } from 'mysql2/promise';
import { quoteIdent } from './sql-values.js';

/** Rows of a table (its plain INSERTs' bytes) before its keys are dropped: small tables are not worth 2 ALTERs. */
export const DEFER_AFTER_BYTES = 8 << 20;

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** A key line SHOW CREATE TABLE writes for a B-tree key that can be dropped and added back as it is. */
const PLAIN_KEY = /^ {2}(?:UNIQUE )?KEY (`(?:[^`]|``)+`) \(.*\)(?: COMMENT '.*')?,?$/;
/** Any key line (PRIMARY, UNIQUE, plain, FULLTEXT, SPATIAL, VECTOR …). */
const ANY_KEY = /^ {2}(?:PRIMARY |UNIQUE |FULLTEXT |SPATIAL |VECTOR )?KEY\b/;

export interface KeyPlan {
  /** `DROP INDEX `k`` clauses, in the key list's order */
  drops: string[];
  /** `ADD …` clauses, the definitions as SHOW CREATE TABLE gave them, in the same order */
  adds: string[];
}

/**
 * The keys of a table's SHOW CREATE TABLE text that can be built after the rows, or undefined. Only an InnoDB
 * table with a primary key, no partitions, system versioning or generated columns, in printable ASCII (sent on a
 * loader connection whatever its character set, text must be the same bytes in all of them), backquoted names.
 */
export function deferrableKeys(createTable: string): KeyPlan | undefined {
  const lines = createTable.split('\n');
  const last = lines[lines.length - 1] ?? '';
  if (!/^\) ENGINE=InnoDB\b/.test(last)) return undefined;
  if (/\bPARTITION BY\b|\bWITH SYSTEM VERSIONING\b/i.test(last)) return undefined;
  const body = lines.slice(1, -1);
  const keys: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const l = body[i]!;
    if (!PRINTABLE_ASCII.test(l)) return undefined;
    if (ANY_KEY.test(l)) keys.push(i);
    // a generated column (VIRTUAL/PERSISTENT/STORED): its key would be built by computing it
    else if (
      /^ {2}`/.test(l) &&
      /\b(?:GENERATED ALWAYS|AS \()/.test(l.replace(/'(?:[^'\\]|\\.|'')*'/g, "''"))
    )
      return undefined;
  }
  if (keys.length === 0 || !/^ {2}PRIMARY KEY\b/.test(body[keys[0]!]!)) return undefined;
  // key lines are one run (columns before, constraints after): the suffix of plain keys at its end
  let from = keys.length;
  while (from > 1) {
    const l = body[keys[from - 1]!]!;
    if (!PLAIN_KEY.test(l) || / USING HASH\b/.test(l)) break;
    from--;
  }
  if (from === keys.length) return undefined;
  const drops: string[] = [];
  const adds: string[] = [];
  for (const i of keys.slice(from)) {
    const l = body[i]!.replace(/,$/, '').trim();
    drops.push(`DROP INDEX ${PLAIN_KEY.exec(body[i]!)![1]!}`);
    adds.push(`ADD ${l}`);
  }
  return { drops, adds };
}

/** The definition without what loading rows changes (the AUTO_INCREMENT table option). */
export function comparableDefinition(createTable: string): string {
  return createTable.replace(/^(\) ENGINE=.*?) AUTO_INCREMENT=\d+/m, '$1');
}

async function showCreate(conn: Connection, table: string): Promise<string | undefined> {
  const [res] = await conn.query({ sql: `SHOW CREATE TABLE ${quoteIdent(table)}`, rowsAsArray: true });
  const row = (res as unknown[][])[0];
  const v = row?.[1];
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  return undefined;
}

/** One shadow table's keys: dropped once its rows grew, built again when they ended. */
export class DeferredKeys {
  private before: string | undefined;
  private plan: KeyPlan | undefined;

  constructor(readonly table: string) {}

  /**
   * Drops the deferrable keys of the (loading) table on `conn`, the session of its rows (foreign_key_checks = 0:
   * a key a foreign key needs may go). Does nothing when there are none or the server refuses.
   */
  async drop(conn: Connection): Promise<void> {
    if (!PRINTABLE_ASCII.test(this.table)) return;
    const def = await showCreate(conn, this.table);
    const plan = def === undefined ? undefined : deferrableKeys(def);
    if (!plan) return;
    try {
      await conn.query(`ALTER TABLE ${quoteIdent(this.table)} ${plan.drops.join(', ')}`);
    } catch (err) {
      // foreign_key_checks set again by the dump (a key a constraint needs), or a refusal of this server: the
      // rows are loaded with the keys; the table is unchanged (one ALTER is atomic)
      if (err && typeof err === 'object' && 'fatal' in err && err.fatal) throw err;
      return;
    }
    this.before = def;
    this.plan = plan;
  }

  /**
   * Adds the keys back and checks that the table's definition is the one it had; throws when it is not.
   * Whether there were keys to add.
   */
  async restore(conn: Connection): Promise<boolean> {
    const plan = this.plan;
    if (!plan) return false;
    this.plan = undefined;
    await conn.query(`ALTER TABLE ${quoteIdent(this.table)} ${plan.adds.join(', ')}`);
    const after = await showCreate(conn, this.table);
    if (after === undefined || comparableDefinition(after) !== comparableDefinition(this.before ?? '')) {
      throw new Error(
        `the definition of table ${this.table} after its keys were built differs from the dump's (keys: ${plan.adds.join(', ')})`,
      );
    }
    return true;
  }
}
