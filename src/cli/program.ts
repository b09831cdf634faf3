import { Command, InvalidArgumentError, Option, type OutputConfiguration } from 'commander';
import type { RunContext, GlobalOptions } from './context.js';

export const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    failure (the message names the file, table or option)
  2    usage error (unknown option, missing argument)
  3    completed with warnings (e.g. unreadable files were skipped; each one was named)
  11   another magebackup run holds the lock of this store
  12   the database server refused the credentials
  129  interrupted by SIGHUP (terminal or SSH session closed); otherwise as 130
  130  interrupted (SIGINT/SIGTERM, Ctrl-C): the message says what state the store is left in`;

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new InvalidArgumentError('must be a port number 1-65535');
  return n;
}

/** --db-* options shared by every command that talks to the database. */
export function addDbOptions(cmd: Command): Command {
  return cmd
    .option('--db-host <host>', 'database host (default: from app/etc/env.php)')
    .addOption(new Option('--db-port <port>', 'database port').argParser(parsePort))
    .option('--db-socket <path>', 'database unix socket')
    .option('--db-name <name>', 'database name')
    .option('--db-user <user>', 'database user')
    .option(
      '--db-password <password>',
      'database password (prefer MAGEBACKUP_DB_PASSWORD: argv is visible to other users)',
    );
}

export interface DbCliOptions {
  dbHost?: string;
  dbPort?: number;
  dbSocket?: string;
  dbName?: string;
  dbUser?: string;
  dbPassword?: string;
}

export function dbFlags(o: DbCliOptions) {
  return {
    ...(o.dbHost !== undefined ? { host: o.dbHost } : {}),
    ...(o.dbPort !== undefined ? { port: o.dbPort } : {}),
    ...(o.dbSocket !== undefined ? { socket: o.dbSocket } : {}),
    ...(o.dbName !== undefined ? { name: o.dbName } : {}),
    ...(o.dbUser !== undefined ? { user: o.dbUser } : {}),
    ...(o.dbPassword !== undefined ? { password: o.dbPassword } : {}),
  };
}

/** --prune and the retention policy it applies (backups:prune takes the same --keep-* options). */
export function addPolicyOptions(cmd: Command, withPrune: boolean): Command {
  if (withPrune)
    cmd.option(
      '--prune',
      'after a successful run, remove old backups by the retention policy (default: keep 14 days)',
    );
  return cmd
    .option(
      '--keep-within <duration>',
      'keep every backup made within this long (e.g. 14d, 36h, 2w; default policy: 14d)',
    )
    .option('--keep-last <n>', 'keep the n newest backups')
    .option('--keep-daily <n>', 'keep the newest backup of each of the last n days that have one (UTC)')
    .option(
      '--keep-weekly <n>',
      'keep the newest backup of each of the last n weeks that have one (ISO weeks, UTC)',
    );
}

export function buildProgram(ctx: RunContext, version: string, output: OutputConfiguration = {}): Command {
  // Output settings first: subcommands copy them when they are created.
  const program = new Command('magebackup')
    .configureOutput(output)
    .description('Back up and roll back a Magento 2 store: code, media and database. Never loses data.')
    .version(version, '-V, --version')
    .option('--root <dir>', 'Magento root directory (default: the current directory)')
    .option('--json', 'machine-readable output: NDJSON events on stderr, one JSON result on stdout')
    .option('-q, --quiet', 'print only results, warnings and errors')
    .option('-y, --yes', 'answer yes to confirmations (for scripts)')
    .option('-n, --no-interaction', 'same as --yes (Magento spelling)')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXIT_CODES_HELP)
    .exitOverride();

  const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();

  addPolicyOptions(
    addDbOptions(
      program
        .command('setup:backup')
        .description('Back up the code tree, pub/media and/or the database into var/backups')
        .option('--code', 'back up the code tree (<ts>_filesystem.tgz)')
        .option('--media', 'back up pub/media (<ts>_filesystem_media.tgz)')
        .option('--db', 'back up the database (<ts>_db.sql)')
        .option(
          '--exclude <pattern>',
          'also leave out of the code backup (gitignore-style; repeatable)',
          collect,
        )
        .option('--compress', 'gzip the database dump (<ts>_db.sql.gz)')
        .option(
          '--strip <groups>',
          'dump these tables without data (e.g. "@log @sessions", table names, wildcards)',
        )
        .option('--no-strip-definers', 'keep DEFINER clauses (the dump then needs SUPER to load)')
        .option('--no-maintenance', 'do not turn maintenance mode on during the backup'),
    ),
    true,
  ).action(async (opts: Record<string, unknown>, cmd: Command) => {
    const { setupBackup } = await import('./commands/setup-backup.js');
    await ctx.run(globals(cmd), (run) => setupBackup(run, opts), dbFlags(opts));
  });

  addDbOptions(
    program
      .command('setup:rollback')
      .description('Roll back code, media and/or database from backups in var/backups (verified fully first)')
      .option('-c, --code-file <name>', 'code backup to restore (<ts>_filesystem.tgz)')
      .option('-m, --media-file <name>', 'media backup to restore (<ts>_filesystem_media.tgz)')
      .option('-d, --db-file <name>', 'database backup to restore (<ts>_db.sql[.gz])')
      .option(
        '--drop-extra-tables',
        'drop live tables that are not in the dump (default: keep them and warn)',
      )
      .option('--no-maintenance', 'do not turn maintenance mode on during the rollback')
      .option('--keep-modes', 'restore set-id bits and world-writable modes as archived (default: drop them)')
      .option(
        '--allow-outside-links',
        'restore symlinks whose target leaves the store (default: refuse such an archive)',
      ),
  ).action(async (opts: Record<string, unknown>, cmd: Command) => {
    const { setupRollback } = await import('./commands/setup-rollback.js');
    await ctx.run(globals(cmd), (run) => setupRollback(run, opts), dbFlags(opts));
  });

  program
    .command('info:backups:list')
    .description('List the backups in var/backups, newest first')
    .action(async (_opts: unknown, cmd: Command) => {
      const { infoBackupsList } = await import('./commands/info-backups-list.js');
      await ctx.run(globals(cmd), (run) => infoBackupsList(run));
    });

  addPolicyOptions(
    addDbOptions(
      program
        .command('snapshot:create')
        .description(
          'Back up code, pub/media and the database as one snapshot (= setup:backup --code --media --db)',
        )
        .option(
          '--exclude <pattern>',
          'also leave out of the code backup (gitignore-style; repeatable)',
          collect,
        )
        .option('--compress', 'gzip the database dump (<ts>_db.sql.gz)')
        .option(
          '--strip <groups>',
          'dump these tables without data (e.g. "@log @sessions", table names, wildcards)',
        )
        .option('--no-strip-definers', 'keep DEFINER clauses (the dump then needs SUPER to load)')
        .option('--no-maintenance', 'do not turn maintenance mode on during the backup'),
    ),
    true,
  ).action(async (opts: Record<string, unknown>, cmd: Command) => {
    const { snapshotCreate } = await import('./commands/snapshot-create.js');
    await ctx.run(globals(cmd), (run) => snapshotCreate(run, opts), dbFlags(opts));
  });

  program
    .command('snapshot:list')
    .description('List snapshots (backup runs) newest first: id, time, parts, size, age, status')
    .action(async (_opts: unknown, cmd: Command) => {
      const { snapshotList } = await import('./commands/snapshot-list.js');
      await ctx.run(globals(cmd), (run) => snapshotList(run));
    });

  addDbOptions(
    program
      .command('snapshot:restore')
      .description(
        'Restore every part of a snapshot (checked against its manifest first; like setup:rollback)',
      )
      .argument('<id>', 'snapshot id (the timestamp snapshot:list shows)')
      .option(
        '--drop-extra-tables',
        'drop live tables that are not in the dump (default: keep them and warn)',
      )
      .option('--no-maintenance', 'do not turn maintenance mode on during the restore')
      .option('--keep-modes', 'restore set-id bits and world-writable modes as archived (default: drop them)')
      .option(
        '--allow-outside-links',
        'restore symlinks whose target leaves the store (default: refuse such an archive)',
      ),
  ).action(async (id: string, opts: Record<string, unknown>, cmd: Command) => {
    const { snapshotRestore } = await import('./commands/snapshot-restore.js');
    await ctx.run(globals(cmd), (run) => snapshotRestore(run, id, opts), dbFlags(opts));
  });

  addDbOptions(
    program
      .command('backups:verify')
      .description(
        'Check backups against their manifest (size, SHA-256) and read every archive and dump to its end',
      )
      .argument('[ids...]', 'snapshot ids (default: the newest)')
      .option('--all', 'verify every snapshot')
      .option(
        '--deep',
        'also extract each archive to a temporary directory and load each dump into a throwaway database',
      ),
  ).action(async (ids: string[], opts: Record<string, unknown>, cmd: Command) => {
    const { backupsVerify } = await import('./commands/backups-verify.js');
    await ctx.run(globals(cmd), (run) => backupsVerify(run, ids, opts), dbFlags(opts));
  });

  addPolicyOptions(
    program
      .command('backups:prune')
      .description(
        'Remove backups outside the retention policy (default: keep 14 days) and leftovers of crashed runs',
      )
      .option('--dry-run', 'list what would be removed; remove nothing'),
    false,
  ).action(async (opts: Record<string, unknown>, cmd: Command) => {
    const { backupsPrune } = await import('./commands/backups-prune.js');
    await ctx.run(globals(cmd), (run) => backupsPrune(run, opts));
  });

  for (const action of ['status', 'enable', 'disable'] as const) {
    program
      .command(`maintenance:${action}`)
      .description(
        {
          status: 'Show whether maintenance mode is on',
          enable: 'Turn maintenance mode on (var/.maintenance.flag)',
          disable: 'Turn maintenance mode off',
        }[action],
      )
      .action(async (_opts: unknown, cmd: Command) => {
        const { maintenanceCommand } = await import('./commands/maintenance.js');
        await ctx.run(globals(cmd), (run) => maintenanceCommand(run, action));
      });
  }

  return program;
}
