/**
 * What domain code reports while it works. Domain modules never print: they call an `EventSink`, and the
 * CLI picks a reporter (ora on a TTY, plain Magento-worded lines, or NDJSON) that renders these events.
 */
export type Part = 'code' | 'media' | 'db';
export type Operation = 'backup' | 'rollback' | 'verify';

export type MaintenanceState =
  /** we turned it on */
  | 'enabled'
  /** it was on before the run: left alone */
  | 'already-enabled'
  /** we turned it off again (it was off before the run) */
  | 'disabled'
  /** it was on before the run, so it stays on */
  | 'left-enabled';

export type MagebackupEvent =
  | { type: 'maintenance'; state: MaintenanceState }
  | { type: 'part-start'; part: Part; operation: Operation; file: string; path: string }
  | {
      type: 'progress';
      part: Part;
      operation: Operation;
      /** bytes read (archives: uncompressed input bytes; dumps: bytes written) */
      bytes: number;
      totalBytes?: number;
      files?: number;
      totalFiles?: number;
      table?: string;
      rows?: number;
    }
  | {
      type: 'part-done';
      part: Part;
      operation: Operation;
      file: string;
      path: string;
      /** size of the backup file on disk */
      size: number;
      files?: number;
      tables?: number;
      rows?: number;
    }
  | { type: 'warning'; code: WarningCodeValue; message: string; path?: string }
  | { type: 'info'; message: string };

export type EventSink = (event: MagebackupEvent) => void;

export const noEvents: EventSink = () => {};

/** Warning codes are stable: scripts may match on them. */
export const WarningCode = {
  UNREADABLE: 'UNREADABLE',
  SPECIAL_FILE: 'SPECIAL_FILE',
  VANISHED: 'VANISHED',
  PASSWORD_ON_CLI: 'PASSWORD_ON_CLI',
  EXTRA_TABLES: 'EXTRA_TABLES',
  INVALID_VIEW: 'INVALID_VIEW',
  /** a row of the dump is bigger than the server's max_allowed_packet: the dump cannot be loaded there */
  ROW_TOO_BIG: 'ROW_TOO_BIG',
  /** the rollback's own working tables (`__mbk_…`) were found in the database and left out of the dump */
  DB_WORK_TABLES: 'DB_WORK_TABLES',
  DB_DEFINITION: 'DB_DEFINITION',
  DB_HALF_RESTORED: 'DB_HALF_RESTORED',
  /** a dump whose manifest table hashes cannot be used (the file differs from its manifest): restored whole */
  DB_FULL_RESTORE: 'DB_FULL_RESTORE',
  /** the manifest's table sections do not match the dump (its tables' byte ranges): the dump is read whole */
  DB_SECTIONS_UNUSED: 'DB_SECTIONS_UNUSED',
  /** live views, routines, triggers or events that are not in the dump (kept, or dropped with --drop-extra-tables) */
  EXTRA_OBJECTS: 'EXTRA_OBJECTS',
  /** a table or definition of a dump with the restore's reserved prefix `__mbk_`: skipped */
  RESERVED_TABLE: 'RESERVED_TABLE',
  /** rows a dump holds for a table whose engine keeps none of its own (MERGE, FEDERATED, …): skipped */
  SKIPPED_ROWS: 'SKIPPED_ROWS',
  EXCLUDED_PATH: 'EXCLUDED_PATH',
  OUTSIDE_MEDIA: 'OUTSIDE_MEDIA',
  LINK_TARGET_SKIPPED: 'LINK_TARGET_SKIPPED',
  OLD_TREE_LEFT: 'OLD_TREE_LEFT',
  /** a code rollback keeps this live path (var, pub/media, generated code, ...): it is not in the backup's tree */
  KEPT_PATH: 'KEPT_PATH',
  VERIFY_LEFTOVER: 'VERIFY_LEFTOVER',
  DEAD_RUN: 'DEAD_RUN',
  /** another magebackup run is rolling the store back while a command only looks at it (backups:diff) */
  RUN_IN_PROGRESS: 'RUN_IN_PROGRESS',
  /** the history log (var/backups/.magebackup-history.jsonl) could not be written */
  HISTORY: 'HISTORY',
  /** serve listens on an address other than loopback */
  EXPOSED: 'EXPOSED',
  /** archives (see src/archive/extract.ts): what a restore refuses or neutralises */
  INTERNAL_PATH: 'INTERNAL_PATH',
  SPECIAL_MODE: 'SPECIAL_MODE',
  WORLD_WRITABLE: 'WORLD_WRITABLE',
  OUTSIDE_LINK: 'OUTSIDE_LINK',
} as const;
/** A warning code: one of WarningCode's values (an undeclared code does not compile). */
export type WarningCodeValue = (typeof WarningCode)[keyof typeof WarningCode];
