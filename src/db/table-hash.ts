/**
 * Per-table content hashes, for a rollback that loads only the tables that changed (issue 14).
 *
 * At backup time the manifest records, per table: the SHA-256 of its normalised SHOW CREATE TABLE (the
 * AUTO_INCREMENT table option taken out and recorded apart: the rollback sets it), the SHA-256 of the exact bytes
 * the dumper wrote for its rows (dumpRows' output from the table's data head to its tail, tapped from the dump's
 * Output), and its row count; and the SHA-256 of each view, trigger, routine and event definition (for the diff:
 * a rollback re-creates every one of them anyway).
 *
 * At rollback or diff time delta.ts computes the same for the live database, with the dump's own encoder.
 *
 * A table with no primary or unique key (no stable row order), a table whose rows were stripped or live elsewhere
 * (MERGE, FEDERATED, …), and every sequence get no row hash: they are always loaded.
 */
import { createHash, type Hash } from 'node:crypto';
import type { SchemaPlan, TablePlan } from './dump-schema.js';
import { stripDefiner } from './dump-sql.js';

// The recorded form (the manifest's `content`) is part of the on-disk format: it lives in store/.
export * from '../store/content-hashes.js';
import {
  CONTENT_HASH_VERSION,
  type DbContentHashes,
  type DefinitionHash,
  type DefinitionKind,
  type TableContentHash,
  type TableSection,
} from '../store/content-hashes.js';

/** A place in the uncompressed dump: byte offset and 1-based line. */
export interface DumpPosition {
  offset: number;
  line: number;
}

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** SHOW CREATE TABLE without the AUTO_INCREMENT table option, and that option's value. Byte-exact otherwise. */
export function normaliseCreate(create: Buffer): { schema: Buffer; autoIncrement?: string } {
  const s = create.toString('latin1');
  const at = s.lastIndexOf('\n)');
  if (at < 0) return { schema: create };
  // the table options follow the last line that closes the column list: `) ENGINE=InnoDB AUTO_INCREMENT=12 …`
  const m = /^\n\)(?: ENGINE=\w+)? AUTO_INCREMENT=(\d+)/.exec(s.slice(at));
  if (!m) return { schema: create };
  const end = at + m[0].length;
  const start = end - ` AUTO_INCREMENT=${m[1]}`.length;
  return { schema: Buffer.concat([create.subarray(0, start), create.subarray(end)]), autoIncrement: m[1]! };
}

/** Whether the table has a primary or unique key (its rows have a stable order). */
export function hasStableOrder(create: Buffer): boolean {
  return /\n\s*(?:PRIMARY KEY|UNIQUE KEY) /.test(create.toString('latin1'));
}

function definitionHash(create: Buffer): string {
  return sha256(stripDefiner(create.toString('latin1')));
}

/** Every view, trigger, routine and event of a schema, with its hash (sorted by kind, then name). */
export function definitionHashes(schema: SchemaPlan): DefinitionHash[] {
  const out: DefinitionHash[] = [];
  for (const v of schema.views) out.push({ object: 'view', name: v.name, hash: definitionHash(v.create) });
  for (const t of schema.tables) {
    for (const tr of t.triggers)
      out.push({ object: 'trigger', name: tr.name, hash: definitionHash(tr.create) });
  }
  for (const r of schema.routines) {
    out.push({
      object: r.type.toLowerCase() as DefinitionKind,
      name: r.name,
      // a body this user cannot see is never taken for the backup's (the rollback creates it again anyway)
      hash: r.unreadable ? 'unreadable' : definitionHash(r.create),
    });
  }
  for (const e of schema.events) out.push({ object: 'event', name: e.name, hash: definitionHash(e.create) });
  return out.sort((a, b) =>
    a.object === b.object ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.object < b.object ? -1 : 1,
  );
}

/** A SHA-256 being computed: the rows' bytes in order, then the hex digest (the dump's is on a worker thread). */
export interface RowHash {
  update(bytes: Buffer): void;
  digest(): Promise<string>;
}

function localRowHash(): RowHash {
  const h: Hash = createHash('sha256');
  return { update: (b) => void h.update(b), digest: () => Promise.resolve(h.digest('hex')) };
}

/**
 * Collects the hashes while the dump is written (dump.ts taps each table's rows into `rowsTap`), and where each
 * table's statements are (`at`: the dump's position when its section starts, its triggers start, it ends).
 */
export class ContentHasher {
  readonly #tables: Array<{ entry: TableContentHash; hash: RowHash | null; start: DumpPosition }> = [];
  #triggers: DumpPosition | undefined;
  constructor(
    private readonly statementBytes: number,
    private readonly newRowHash: () => RowHash = localRowHash,
  ) {}

  /** A table's schema; returns the tap for its rows when they are hashed (dumped, with a stable order). */
  table(t: TablePlan, rowsDumped: boolean, at: DumpPosition): ((bytes: Buffer) => void) | null {
    const n = normaliseCreate(t.create);
    const entry: TableContentHash = { name: t.name, schema: sha256(n.schema), count: 0 };
    if (n.autoIncrement !== undefined) entry.autoIncrement = n.autoIncrement;
    const hash = rowsDumped && hasStableOrder(t.create) ? this.newRowHash() : null;
    this.#tables.push({ entry, hash, start: at });
    this.#triggers = undefined;
    return hash ? (b) => hash.update(b) : null;
  }

  /** the row count of the table last given to table() */
  rows(count: number): void {
    const last = this.#tables[this.#tables.length - 1];
    if (last) last.entry.count = count;
  }

  /** the last table's triggers start here (its structure and rows end) */
  triggersAt(at: DumpPosition): void {
    this.#triggers = at;
  }

  /** the last table's section ends here */
  tableEnd(at: DumpPosition): void {
    const last = this.#tables[this.#tables.length - 1];
    const tr = this.#triggers;
    if (!last || !tr) return;
    last.entry.section = {
      offset: last.start.offset,
      line: last.start.line,
      length: tr.offset - last.start.offset,
      triggers: at.offset - tr.offset,
      triggersLine: tr.line,
    };
  }

  /** `tail`: where the definitions part starts (the dump's size is set once it is written: `tail.end`) */
  async finish(schema: SchemaPlan, tail?: DumpPosition): Promise<DbContentHashes> {
    const tables = await Promise.all(
      this.#tables.map(async ({ entry, hash }) => (hash ? { ...entry, rows: await hash.digest() } : entry)),
    );
    return {
      version: CONTENT_HASH_VERSION,
      statementBytes: this.statementBytes,
      tables,
      definitions: definitionHashes(schema),
      ...(tail && tables.length > 0 && tables.every((t) => t.section)
        ? { tail: { offset: tail.offset, line: tail.line, end: tail.offset } }
        : {}),
    };
  }
}

/**
 * Whether the recorded sections describe a dump cut into head, tables (in order, each followed by its triggers)
 * and tail without gap or overlap. Anything else is not used (the whole dump is read).
 */
function sectionsValid(c: DbContentHashes): boolean {
  const tail = c.tail;
  if (!tail || c.tables.length === 0) return false;
  const n = (x: unknown, min: number): boolean =>
    typeof x === 'number' && Number.isSafeInteger(x) && x >= min;
  if (!n(tail.offset, 1) || !n(tail.line, 1) || !n(tail.end, tail.offset + 1)) return false;
  let at: TableSection | undefined;
  for (const t of c.tables) {
    const s = t.section;
    if (!s || typeof s !== 'object') return false;
    if (
      !n(s.offset, 1) ||
      !n(s.line, 1) ||
      !n(s.length, 1) ||
      !n(s.triggers, 0) ||
      !n(s.triggersLine, s.line)
    )
      return false;
    if (at && (s.offset !== at.offset + at.length + at.triggers || s.line < at.triggersLine)) return false;
    at = s;
  }
  return (
    at !== undefined && tail.offset === at.offset + at.length + at.triggers && tail.line >= at.triggersLine
  );
}

/** The manifest's `content`, checked; null when absent or not understood (the rollback then loads everything). */
export function parseContentHashes(v: unknown): DbContentHashes | null {
  if (!v || typeof v !== 'object') return null;
  const c = v as Record<string, unknown>;
  if (c.version !== CONTENT_HASH_VERSION) return null;
  if (typeof c.statementBytes !== 'number' || !Number.isSafeInteger(c.statementBytes) || c.statementBytes < 1)
    return null;
  if (!Array.isArray(c.tables) || !Array.isArray(c.definitions)) return null;
  const hex = (x: unknown): boolean => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x);
  const names = new Set<string>();
  for (const t of c.tables as unknown[]) {
    if (!t || typeof t !== 'object') return null;
    const e = t as Record<string, unknown>;
    if (typeof e.name !== 'string' || names.has(e.name)) return null;
    names.add(e.name);
    if (!hex(e.schema) || (e.rows !== undefined && !hex(e.rows))) return null;
    if (typeof e.count !== 'number' || !Number.isSafeInteger(e.count) || e.count < 0) return null;
    if (
      e.autoIncrement !== undefined &&
      (typeof e.autoIncrement !== 'string' || !/^\d+$/.test(e.autoIncrement))
    )
      return null;
  }
  for (const d of c.definitions as unknown[]) {
    if (!d || typeof d !== 'object') return null;
    const e = d as Record<string, unknown>;
    if (typeof e.object !== 'string' || typeof e.name !== 'string' || !hex(e.hash)) return null;
  }
  const hashes = v as DbContentHashes;
  if (hashes.tail === undefined && hashes.tables.every((t) => t.section === undefined)) return hashes;
  if (sectionsValid(hashes)) return hashes;
  // sections that do not add up: the hashes are still good, the dump is read whole
  const { tail: _tail, ...rest } = hashes;
  return { ...rest, tables: hashes.tables.map(({ section: _s, ...t }) => t) };
}
