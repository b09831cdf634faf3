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
} from '../store/content-hashes.js';

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

/** Collects the hashes while the dump is written (dump.ts taps each table's rows into `rowsTap`). */
export class ContentHasher {
  readonly #tables: Array<{ entry: TableContentHash; hash: Hash | null }> = [];
  constructor(private readonly statementBytes: number) {}

  /** A table's schema; returns the tap for its rows when they are hashed (dumped, with a stable order). */
  table(t: TablePlan, rowsDumped: boolean): ((bytes: Buffer) => void) | null {
    const n = normaliseCreate(t.create);
    const entry: TableContentHash = { name: t.name, schema: sha256(n.schema), count: 0 };
    if (n.autoIncrement !== undefined) entry.autoIncrement = n.autoIncrement;
    const hash = rowsDumped && hasStableOrder(t.create) ? createHash('sha256') : null;
    this.#tables.push({ entry, hash });
    return hash ? (b) => hash.update(b) : null;
  }

  /** the row count of the table last given to table() */
  rows(count: number): void {
    const last = this.#tables[this.#tables.length - 1];
    if (last) last.entry.count = count;
  }

  finish(schema: SchemaPlan): DbContentHashes {
    return {
      version: CONTENT_HASH_VERSION,
      statementBytes: this.statementBytes,
      tables: this.#tables.map(({ entry, hash }) => (hash ? { ...entry, rows: hash.digest('hex') } : entry)),
      definitions: definitionHashes(schema),
    };
  }
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
  return v as DbContentHashes;
}
