/**
 * The restore's crash journal: a table `__mbk_<id>_journal` in the store's database that holds the state of
 * one restore (its phase and plan, as JSON) and the definitions it holds back, and the names the restore
 * gives its own tables. See restore.ts for the phases.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { DefinitionObject } from './restore-parse.js';
import { quoteIdent as q } from './sql-values.js';
import { rows, str, type ForeignKey, type ObjectRef, type SavedDefinition } from './restore-catalog.js';

/** Every name a restore creates in the store's database starts with this. */
export const RESERVED_PREFIX = '__mbk_';
export const JOURNAL_RE = /^__mbk_([0-9a-z]+)_journal$/;
export const OWN_RE = /^__mbk_([0-9a-z]+)_/;

export type HeldKind = 'session' | DefinitionObject;

export interface HeldDefinition {
  kind: HeldKind;
  line: number;
  raw: Buffer;
}

export interface JournalState {
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
  /** AUTO_INCREMENT of the moved and kept tables (InnoDB may recompute it when a table is reopened after a rename) */
  autoInc: Record<string, string>;
  /**
   * selective rollback: dump tables whose live copy equals the backup's and stays (never renamed); their
   * triggers are replaced like a moved table's. Absent in journals of whole restores.
   */
  kept?: string[];
  /** kept tables' AUTO_INCREMENT to set (the backup's), applied after the swap */
  keptAutoInc?: Record<string, string>;
}

// names

function hashOf(name: string): string {
  return createHash('sha1').update(name, 'utf8').digest('hex').slice(0, 16);
}
export const shadowName = (id: string, t: string): string => `${RESERVED_PREFIX}${id}_n${hashOf(t)}`;
export const oldName = (id: string, t: string): string => `${RESERVED_PREFIX}${id}_o${hashOf(t)}`;
export const journalName = (id: string): string => `${RESERVED_PREFIX}${id}_journal`;

export function newId(): string {
  return Date.now().toString(36) + randomBytes(2).toString('hex');
}

// journal

export async function createJournal(conn: Connection, state: JournalState): Promise<void> {
  await conn.query(
    `CREATE TABLE ${q(journalName(state.id))} (seq INT UNSIGNED NOT NULL PRIMARY KEY, kind VARCHAR(16) NOT NULL, line INT UNSIGNED NOT NULL DEFAULT 0, body LONGBLOB NOT NULL) ENGINE=InnoDB`,
  );
  await writeState(conn, state);
}

export async function writeState(conn: Connection, state: JournalState): Promise<void> {
  await conn.query(`REPLACE INTO ${q(journalName(state.id))} (seq, kind, body) VALUES (0, 'state', ?)`, [
    Buffer.from(JSON.stringify(state)),
  ]);
}

/** Writes the held definitions and the 'prepared' phase in one transaction. */
export async function writePrepared(
  conn: Connection,
  state: JournalState,
  held: HeldDefinition[],
): Promise<void> {
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

export async function readJournal(
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
