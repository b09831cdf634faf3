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
}
