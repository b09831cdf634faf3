/**
 * The command-line options, declared once and typed from their declaration: a command's options type is derived
 * from the options it declares (`OptionsOf`), so a handler that reads a flag the command does not declare does not
 * compile. Option values are parsed here (InvalidArgumentError: exit 2, one line naming the option); the domain
 * gets numbers and lists, never CLI strings.
 */
import { InvalidArgumentError, Option } from 'commander';
import {
  DEFAULT_POLICY,
  EMPTY_POLICY_MESSAGE,
  isEmptyPolicy,
  parseDuration as parseRetentionDuration,
  type RetentionPolicy,
} from '../backup/prune.js';
import type { DbFlags } from '../db/config.js';
import { UsageError } from '../errors.js';
import { STRIP_GROUPS } from '../db/strip.js';

/** commander's attribute name for a flag string: `-c, --code-file <name>` → `codeFile`, `--no-maintenance` → `maintenance` */
type LongName<F extends string> = F extends `${string}--${infer L}`
  ? L extends `${infer N} ${string}`
    ? N
    : L
  : never;
type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type AttributeName<F extends string> = LongName<F> extends `no-${infer R}` ? Camel<R> : Camel<LongName<F>>;

/** One declared option: its flags (as a literal type) and the type of its parsed value. */
export interface OptionDef<F extends string = string, V = unknown> {
  readonly flags: F;
  /** a new commander Option each time: commander keeps per-command state (defaults, negation) on it */
  create(): Option;
  /** type only: what the option's value parses to */
  readonly valueType?: V;
}

/** The parsed options of a command that declares `T` (all optional: commander leaves absent flags undefined). */
export type OptionsOf<T extends readonly OptionDef[]> = {
  [D in T[number] as AttributeName<D['flags']>]?: NonNullable<D['valueType']>;
};

/** `--flag` or `--no-flag`: a boolean */
export function flag<const F extends string>(flags: F, description: string): OptionDef<F, boolean> {
  return { flags, create: () => new Option(flags, description) };
}

/** `--name <value>`: the string as given */
export function text<const F extends string>(flags: F, description: string): OptionDef<F, string> {
  return { flags, create: () => new Option(flags, description) };
}

/** `--name <value>`, repeatable: every value, in order */
export function list<const F extends string>(flags: F, description: string): OptionDef<F, string[]> {
  return {
    flags,
    create: () =>
      new Option(flags, description).argParser((v: string, previous: string[] | undefined) => [
        ...(previous ?? []),
        v,
      ]),
  };
}

/** `--name <value>` parsed by `parse`, which throws InvalidArgumentError for a bad value */
export function parsed<const F extends string, V>(
  flags: F,
  description: string,
  parse: (value: string) => V,
): OptionDef<F, V> {
  return { flags, create: () => new Option(flags, description).argParser((v: string) => parse(v)) };
}

// ---- value parsers (commander prints: error: option '<flags>' argument '<value>' is invalid. <message>)

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new InvalidArgumentError('Expected a port number 1-65535.');
  return n;
}

/** "14d", "36h", "2w", "1d12h", "90m", "3600s" → seconds (prune.ts parses; commander's error on bad input) */
export function parseDuration(value: string): number {
  try {
    return parseRetentionDuration(value);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
  }
}

export function parseCount(value: string): number {
  const t = value.trim();
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(Number(t)))
    throw new InvalidArgumentError('Expected a whole number.');
  return Number(t);
}

// ---- the option sets, each declared once

/** on the program; subcommands' --help shows them too */
export const GLOBAL_OPTIONS = [
  text('--root <dir>', 'Magento root directory (default: the current directory)'),
  flag('--json', 'machine-readable output: NDJSON events on stderr, one JSON result on stdout'),
  flag('-q, --quiet', 'print only results, warnings and errors'),
  flag('-y, --yes', 'answer yes to confirmations (for scripts)'),
  flag('-n, --no-interaction', 'same as --yes (Magento spelling)'),
] as const;
export type GlobalOptions = OptionsOf<typeof GLOBAL_OPTIONS>;

/** every command that talks to the database */
const DB_OPTIONS = [
  text('--db-host <host>', 'database host (default: from app/etc/env.php)'),
  parsed('--db-port <port>', 'database port', parsePort),
  text('--db-socket <path>', 'database unix socket'),
  text('--db-name <name>', 'database name'),
  text('--db-user <user>', 'database user'),
  text(
    '--db-password <password>',
    'database password (prefer MAGEBACKUP_DB_PASSWORD: argv is visible to other users)',
  ),
] as const;
type DbOptions = OptionsOf<typeof DB_OPTIONS>;

/** the retention policy (backups:prune, and --prune of the backup commands) */
const POLICY_OPTIONS = [
  parsed(
    '--keep-within <duration>',
    'keep every backup made within this long (e.g. 14d, 36h, 2w; default policy: 14d)',
    parseDuration,
  ),
  parsed('--keep-last <n>', 'keep the n newest backups', parseCount),
  parsed(
    '--keep-daily <n>',
    'keep the newest backup of each of the last n days that have one (UTC)',
    parseCount,
  ),
  parsed(
    '--keep-weekly <n>',
    'keep the newest backup of each of the last n weeks that have one (ISO weeks, UTC)',
    parseCount,
  ),
] as const;
type PolicyOptions = OptionsOf<typeof POLICY_OPTIONS>;

/** The --strip groups as src/db/strip.ts defines them, for --help and the README. */
export const STRIP_GROUP_NAMES = Object.keys(STRIP_GROUPS).map((g) => `@${g}`);

/** setup:backup and snapshot:create: what goes into a backup and how (the parts aside) */
export const BACKUP_OPTIONS = [
  list('--exclude <pattern>', 'also leave out of the code backup (gitignore-style; repeatable)'),
  flag('--compress', 'gzip the database dump (<ts>_db.sql.gz)'),
  text(
    '--strip <groups>',
    `dump these tables without data: groups ${STRIP_GROUP_NAMES.join(' ')}, table names, wildcards (e.g. "@log @sessions")`,
  ),
  flag('--no-strip-definers', 'keep DEFINER clauses (the dump then needs SUPER to load)'),
  flag('--no-maintenance', 'do not turn maintenance mode on during the backup'),
  ...DB_OPTIONS,
  flag(
    '--prune',
    'after a successful run, remove old backups by the retention policy (default: keep 14 days)',
  ),
  ...POLICY_OPTIONS,
] as const;
export type BackupOptions = OptionsOf<typeof BACKUP_OPTIONS>;

/** setup:rollback and snapshot:restore */
function restoreOptions(what: 'rollback' | 'restore') {
  return [
    flag('--drop-extra-tables', 'drop live tables that are not in the dump (default: keep them and warn)'),
    flag('--no-maintenance', `do not turn maintenance mode on during the ${what}`),
    flag('--keep-modes', 'restore set-id bits and world-writable modes as archived (default: drop them)'),
    flag(
      '--allow-outside-links',
      'restore symlinks whose target leaves the store (default: refuse such an archive)',
    ),
    flag(
      '--full',
      'write every file of the archives anew and load every table of the dump (default: files equal to the live ones are kept, as hard links; with table hashes in the manifest, only the tables that differ are loaded)',
    ),
    ...DB_OPTIONS,
  ] as const;
}
export type RestoreOptions = OptionsOf<ReturnType<typeof restoreOptions>>;

// ---- each command's options (program.ts declares them; the handlers take these types)

export const SETUP_BACKUP_OPTIONS = [
  flag('--code', 'back up the code tree (<ts>_filesystem.tgz)'),
  flag('--media', 'back up pub/media (<ts>_filesystem_media.tgz)'),
  flag('--db', 'back up the database (<ts>_db.sql)'),
  ...BACKUP_OPTIONS,
] as const;
export type SetupBackupOptions = OptionsOf<typeof SETUP_BACKUP_OPTIONS>;

export const SETUP_ROLLBACK_OPTIONS = [
  text('-c, --code-file <name>', 'code backup to restore (<ts>_filesystem.tgz)'),
  text('-m, --media-file <name>', 'media backup to restore (<ts>_filesystem_media.tgz)'),
  text('-d, --db-file <name>', 'database backup to restore (<ts>_db.sql[.gz])'),
  ...restoreOptions('rollback'),
] as const;
export type SetupRollbackOptions = OptionsOf<typeof SETUP_ROLLBACK_OPTIONS>;

export const SNAPSHOT_RESTORE_OPTIONS = restoreOptions('restore');

export const BACKUPS_VERIFY_OPTIONS = [
  flag('--all', 'verify every snapshot'),
  flag(
    '--deep',
    'also extract each archive to a temporary directory and load each dump into a throwaway database',
  ),
  ...DB_OPTIONS,
] as const;
export type BackupsVerifyOptions = OptionsOf<typeof BACKUPS_VERIFY_OPTIONS>;

export const BACKUPS_DIFF_OPTIONS = [...DB_OPTIONS] as const;
export type BackupsDiffOptions = OptionsOf<typeof BACKUPS_DIFF_OPTIONS>;

export const BACKUPS_PRUNE_OPTIONS = [
  flag('--dry-run', 'list what would be removed; remove nothing'),
  ...POLICY_OPTIONS,
] as const;
export type BackupsPruneOptions = OptionsOf<typeof BACKUPS_PRUNE_OPTIONS>;

export const BACKUPS_HISTORY_OPTIONS = [
  parsed('--limit <n>', 'show the n newest entries (default: 50; 0 for all)', parseCount),
] as const;
export type BackupsHistoryOptions = OptionsOf<typeof BACKUPS_HISTORY_OPTIONS>;

export const SERVE_OPTIONS = [
  text('--host <address>', 'address to listen on (default 127.0.0.1; anything else is exposed: see README)'),
  parsed('--port <port>', 'port to listen on (default 8765)', parsePort),
  list(
    '--allow-host <name>',
    'also accept this name in the Host header (e.g. the name of a reverse proxy; repeatable)',
  ),
  ...DB_OPTIONS,
] as const;
export type ServeOptions = OptionsOf<typeof SERVE_OPTIONS>;

// ---- from options to domain inputs

export function dbFlags(o: DbOptions): DbFlags {
  return {
    ...(o.dbHost !== undefined ? { host: o.dbHost } : {}),
    ...(o.dbPort !== undefined ? { port: o.dbPort } : {}),
    ...(o.dbSocket !== undefined ? { socket: o.dbSocket } : {}),
    ...(o.dbName !== undefined ? { name: o.dbName } : {}),
    ...(o.dbUser !== undefined ? { user: o.dbUser } : {}),
    ...(o.dbPassword !== undefined ? { password: o.dbPassword } : {}),
  };
}

/** What setup:backup and snapshot:create pass to the domain from the options they share. */
export function backupInputs(o: BackupOptions, env: NodeJS.ProcessEnv) {
  return {
    excludes: o.exclude ?? [],
    maintenance: o.maintenance !== false,
    compress: !!o.compress,
    strip: splitList(o.strip),
    stripDefiners: o.stripDefiners !== false,
    db: { flags: dbFlags(o), env },
  };
}

/** What setup:rollback and snapshot:restore pass to the domain from the options they share. */
export function restoreInputs(o: RestoreOptions, env: NodeJS.ProcessEnv) {
  return {
    dropExtraTables: !!o.dropExtraTables,
    keepModes: !!o.keepModes,
    allowOutsideLinks: !!o.allowOutsideLinks,
    full: !!o.full,
    // the store is back online before the replaced files are gone: the command returns at once
    deleteReplaced: 'background' as const,
    maintenance: o.maintenance !== false,
    db: { flags: dbFlags(o), env },
  };
}

/** `--strip "@log,@sessions foo"` → ['@log', '@sessions', 'foo'] */
function splitList(value: string | undefined): string[] {
  return (value ?? '').split(/[\s,]+/).filter(Boolean);
}

function hasPolicyOptions(o: PolicyOptions): boolean {
  return [o.keepWithin, o.keepLast, o.keepDaily, o.keepWeekly].some((v) => v !== undefined);
}

/** The --keep-* options as a policy; none given → the default (keep everything made in the last 14 days). */
export function policyOf(o: PolicyOptions): RetentionPolicy {
  if (!hasPolicyOptions(o)) return { ...DEFAULT_POLICY };
  const policy = {
    ...(o.keepWithin !== undefined ? { keepWithin: o.keepWithin } : {}),
    ...(o.keepLast !== undefined ? { keepLast: o.keepLast } : {}),
    ...(o.keepDaily !== undefined ? { keepDaily: o.keepDaily } : {}),
    ...(o.keepWeekly !== undefined ? { keepWeekly: o.keepWeekly } : {}),
  };
  if (isEmptyPolicy(policy)) {
    throw new UsageError(
      `${EMPTY_POLICY_MESSAGE}; give --keep-within, --keep-last, --keep-daily and/or --keep-weekly with a value above 0`,
    );
  }
  return policy;
}

/** For setup:backup / snapshot:create: the policy of --prune, or undefined. --keep-* without --prune is a mistake. */
export function prunePolicyOf(o: BackupOptions): RetentionPolicy | undefined {
  if (!o.prune) {
    if (hasPolicyOptions(o))
      throw new UsageError('--keep-within/--keep-last/--keep-daily/--keep-weekly apply only with --prune');
    return undefined;
  }
  return policyOf(o);
}
