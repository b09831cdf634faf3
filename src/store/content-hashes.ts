/**
 * The per-table content hashes a database part's manifest entry records (`content`), for a rollback that loads
 * only the tables that changed: the on-disk form. How they are computed: db/table-hash.ts.
 */

/** Bumped whenever the bytes hashed for a table change meaning (the encoder, the normalisation). */
export const CONTENT_HASH_VERSION = 1;

export interface TableContentHash {
  name: string;
  /** SHA-256 (hex) of SHOW CREATE TABLE without its AUTO_INCREMENT table option */
  schema: string;
  /** SHA-256 (hex) of the table's rows exactly as dumped; absent: the table is always loaded */
  rows?: string;
  /** rows dumped */
  count: number;
  /** the AUTO_INCREMENT table option (absent when SHOW CREATE TABLE had none) */
  autoIncrement?: string;
  /** where its statements are in the uncompressed dump (absent in older manifests: the whole dump is read) */
  section?: TableSection;
}

/**
 * A table's part of the uncompressed dump, for a rollback that reads only the tables it loads: its structure and
 * rows (`-- Table structure` comment, DROP, CREATE, LOCK, INSERTs, UNLOCK) at [offset, offset + length), then
 * its triggers (`triggers` bytes; 0 without). Each part starts and ends between statements, with the delimiter
 * `;` and the header's session settings in force (what a trigger sets it puts back), so reading the dump's head
 * and then any of these parts in file order gives the statements a whole read would.
 */
export interface TableSection {
  offset: number;
  /** 1-based line of `offset` (error messages name the dump's real lines) */
  line: number;
  length: number;
  triggers: number;
  /** 1-based line of the first trigger byte */
  triggersLine: number;
}

/** The part of the uncompressed dump after the last table (views, events, routines, footer). */
export interface DumpTail {
  offset: number;
  line: number;
  /** the uncompressed dump's size */
  end: number;
}

export type DefinitionKind =
  'view' | 'trigger' | 'procedure' | 'function' | 'package' | 'package body' | 'event';

export interface DefinitionHash {
  object: DefinitionKind;
  name: string;
  /** SHA-256 (hex) of SHOW CREATE without its DEFINER clause */
  hash: string;
}

/** What the manifest's database part records for a selective rollback (`content`). */
export interface DbContentHashes {
  version: typeof CONTENT_HASH_VERSION;
  /** the dump's bytes per multi-row INSERT: the live rows are hashed split the same way */
  statementBytes: number;
  tables: TableContentHash[];
  definitions: DefinitionHash[];
  /** with every table's `section`: the definitions part (absent in older manifests) */
  tail?: DumpTail;
}
