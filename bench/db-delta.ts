/**
 * Issue 14's database scenarios (a rollback costs what changed), added to bench.ts's operations:
 *
 * - db-rollback-3of26: before each run of ours (untimed), 3 tables of the wide (Magento-shaped) database get one row
 *   changed each, the row count kept: the tables at a quarter, half and three quarters of the size order (neither
 *   the biggest nor the smallest), without triggers; then `setup:rollback -d` of our dump (selective: the manifest's
 *   table hashes) against the stock client loading mariadb-dump's dump of the same data into an empty database;
 * - db-rollback-all: every table gets one row changed, the same two.
 *
 * After each run of ours the tables it loaded are checked (untimed): the changed ones, plus those that are always
 * loaded (no key), and nothing else.
 */
import type { Connection } from 'mysql2/promise';
import type { Measured, RunSpec } from './measure.js';

/** What this file needs of bench.ts's context (structurally: bench.ts's Ctx has these). */
export interface DbDeltaCtx {
  server: { connect(database?: string): Promise<Connection> };
  dbs: { wide: { name: string; ours?: string; ref?: string } };
  log: (line: string) => void;
}

interface Side<C> {
  spec: (c: C) => RunSpec;
  before?: (c: C) => Promise<void> | void;
  after?: (c: C, r: Measured, last: boolean) => Promise<void> | void;
}

export interface DbDeltaOp<C> {
  id: string;
  title: string;
  refTitle: string;
  target: { ratio: number };
  ours: Side<C>;
  ref: Side<C>;
  prepare?: (c: C) => Promise<void> | void;
  noWarmup?: boolean;
}

/** bench.ts's helpers this file uses */
export interface DbDeltaHelpers<C> {
  /** our `setup:rollback -d <our dump of the wide db> --yes --no-maintenance …` */
  ourRollback: (c: C) => RunSpec;
  /** makes our dump (with its manifest) and mariadb-dump's of the wide database when not made yet */
  prepare: (c: C) => Promise<void>;
  /** the reference: the stock client loads mariadb-dump's dump into an empty database */
  stockLoad: Side<C>;
}

interface Target {
  table: string;
  /** the UPDATE that changes one row of it, the row count kept */
  sql: string;
}

const targets = new Map<string, Target[]>();
const keyless = new Map<string, string[]>();

const q = (id: string): string => '`' + id.replace(/`/g, '``') + '`';

/** Every table of the database that can get one row changed (not empty), in size order, with that UPDATE. */
async function changeable(c: DbDeltaCtx): Promise<Target[]> {
  const db = c.dbs.wide.name;
  const have = targets.get(db);
  if (have) return have;
  const conn = await c.server.connect(db);
  try {
    const [tables] = (await conn.query(
      `SELECT t.TABLE_NAME AS n FROM information_schema.TABLES t
       WHERE t.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE'
         AND NOT EXISTS (SELECT 1 FROM information_schema.TRIGGERS g
                         WHERE g.EVENT_OBJECT_SCHEMA = t.TABLE_SCHEMA AND g.EVENT_OBJECT_TABLE = t.TABLE_NAME)
       ORDER BY t.DATA_LENGTH, t.TABLE_NAME`,
      [db],
    )) as unknown as [Array<{ n: string }>];
    const [cols] = (await conn.query(
      `SELECT TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS d, COLUMN_KEY AS k FROM information_schema.COLUMNS
       WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
      [db],
    )) as unknown as [Array<{ t: string; c: string; d: string; k: string }>];
    const [keys] = (await conn.query(
      `SELECT DISTINCT TABLE_NAME AS t FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND NON_UNIQUE = 0`,
      [db],
    )) as unknown as [Array<{ t: string }>];
    const keyed = new Set(keys.map((k) => k.t));
    keyless.set(
      db,
      tables.map((t) => t.n).filter((n) => !keyed.has(n)),
    );
    const out: Target[] = [];
    for (const { n } of tables) {
      const mine = cols.filter((x) => x.t === n && x.k === '');
      const text = mine.find((x) => /char|text/.test(x.d));
      const num = mine.find((x) => /int|decimal|double|float/.test(x.d));
      const set = text
        ? `${q(text.c)} = IF(${q(text.c)} <=> 'x', 'y', 'x')` // one character fits any text column
        : num
          ? `${q(num.c)} = COALESCE(${q(num.c)}, 0) + 1`
          : undefined;
      const [some] = (await conn.query(`SELECT 1 FROM ${q(n)} LIMIT 1`)) as unknown as [unknown[]];
      if (set && some.length > 0) out.push({ table: n, sql: `UPDATE ${q(n)} SET ${set} LIMIT 1` });
    }
    targets.set(db, out);
    return out;
  } finally {
    await conn.end();
  }
}

function pickThree(all: Target[]): Target[] {
  const at = (f: number): Target => all[Math.min(all.length - 1, Math.floor(all.length * f))]!;
  return [...new Set([at(0.25), at(0.5), at(0.75)])];
}

async function change(c: DbDeltaCtx, which: Target[]): Promise<void> {
  const conn = await c.server.connect(c.dbs.wide.name);
  try {
    for (const t of which) {
      const [r] = (await conn.query(t.sql)) as unknown as [{ affectedRows: number }];
      if (r.affectedRows !== 1) throw new Error(`bench: ${t.sql} changed ${r.affectedRows} rows`);
    }
  } finally {
    await conn.end();
  }
}

/** The tables our rollback loaded, from its --json result. */
function restoredOf(r: Measured): string[] | undefined {
  const line = r.stdout.trim().split('\n').pop();
  try {
    const res = JSON.parse(line ?? '') as { parts?: Array<{ part: string; restoredTables?: string[] }> };
    return res.parts?.find((p) => p.part === 'db')?.restoredTables;
  } catch {
    return undefined;
  }
}

/**
 * When the database part's steps happened (s since the start): the load starting (it overlaps the comparison),
 * the verification's end, the swap; the rest of the phase split is bench.ts's.
 */
function timeline(r: Measured): string {
  const at = (t: number): string => `${(t / 1000).toFixed(1)}s`;
  const out: string[] = [];
  for (const { t, event: e } of r.events) {
    const msg = typeof e.message === 'string' ? e.message : '';
    if (e.type === 'part-start' || e.type === 'part-done')
      out.push(`${String(e.operation)} ${e.type} ${at(t)}`);
    else if (e.type === 'info' && /^(Loading|Swapped)/.test(msg)) out.push(`${msg.split(' ')[0]} ${at(t)}`);
  }
  return out.join(', ');
}

export function dbDeltaOps<C extends DbDeltaCtx>(h: DbDeltaHelpers<C>): DbDeltaOp<C>[] {
  const scenario = (
    id: string,
    title: string,
    ratio: number,
    pick: (all: Target[]) => Target[],
  ): DbDeltaOp<C> => {
    let changed: string[] = [];
    return {
      id,
      title,
      refTitle: "mariadb db < mariadb-dump's .sql (same data, empty db)",
      target: { ratio },
      noWarmup: true,
      prepare: async (c) => {
        await h.prepare(c);
        const all = await changeable(c);
        c.log(`  ${id}: changes one row of ${pick(all).length} of ${all.length} changeable tables`);
      },
      ours: {
        before: async (c) => {
          const which = pick(await changeable(c));
          changed = which.map((t) => t.table);
          await change(c, which);
        },
        spec: (c) => h.ourRollback(c),
        after: (c, r) => {
          const restored = restoredOf(r);
          const always = keyless.get(c.dbs.wide.name) ?? [];
          const want = [...new Set([...changed, ...always])].sort();
          const got = [...(restored ?? [])].sort();
          const same = got.length === want.length && got.every((t, i) => t === want[i]);
          c.log(
            `  ${id}: our rollback loaded ${restored ? `${got.length} table(s)` : 'every table (no selective result)'}${same ? ' (the changed ones)' : `; expected ${want.join(', ')}, got ${got.join(', ')}`}`,
          );
          c.log(`  ${id}: timeline ${timeline(r)}`);
        },
      },
      ref: h.stockLoad,
    };
  };
  return [
    scenario('db-rollback-3of26', 'db rollback after 3 tables changed (selective)', 0.15, pickThree),
    scenario('db-rollback-all', 'db rollback after every table changed (selective)', 0.8, (all) => all),
  ];
}
