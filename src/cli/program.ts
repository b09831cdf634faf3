import { Command, type OutputConfiguration } from 'commander';
import type { RunContext } from './context.js';
import {
  BACKUP_OPTIONS,
  BACKUPS_PRUNE_OPTIONS,
  BACKUPS_HISTORY_OPTIONS,
  SERVE_OPTIONS,
  BACKUPS_VERIFY_OPTIONS,
  BACKUPS_DIFF_OPTIONS,
  GLOBAL_OPTIONS,
  SETUP_BACKUP_OPTIONS,
  SETUP_ROLLBACK_OPTIONS,
  SNAPSHOT_RESTORE_OPTIONS,
  dbFlags,
  type GlobalOptions,
  type OptionDef,
  type OptionsOf,
} from './options.js';

const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    failure (the message names the file, table or option)
  2    usage error (unknown option, missing argument)
  3    completed with warnings (e.g. unreadable files were skipped; each one was named)
  11   another magebackup run holds the lock of this store
  12   the database server refused the credentials
  129  interrupted by SIGHUP (terminal or SSH session closed); otherwise as 130
  130  interrupted (SIGINT/SIGTERM, Ctrl-C): the message says what state the store is left in`;

/** Adds `defs` to `cmd`; the handler gets the options typed from those declarations, and the operands. */
function withOptions<const T extends readonly OptionDef[]>(cmd: Command, defs: T) {
  for (const d of defs) cmd.addOption(d.create());
  return (handler: (opts: OptionsOf<T>, global: GlobalOptions, args: string[]) => Promise<void>) =>
    cmd.action(async (...params: unknown[]) => {
      const self = params[params.length - 1] as Command;
      await handler(self.opts<OptionsOf<T>>(), self.optsWithGlobals<GlobalOptions>(), self.args);
    });
}

export function buildProgram(ctx: RunContext, version: string, output: OutputConfiguration = {}): Command {
  // Output and help settings first: subcommands copy them when they are created.
  const program = new Command('magebackup')
    .configureOutput(output)
    .configureHelp({ showGlobalOptions: true })
    .description('Back up and roll back a Magento 2 store: code, media and database. Never loses data.')
    .version(version, '-V, --version')
    .addHelpText('afterAll', EXIT_CODES_HELP)
    .exitOverride();
  for (const d of GLOBAL_OPTIONS) program.addOption(d.create());

  withOptions(
    program
      .command('setup:backup')
      .description('Back up the code tree, pub/media and/or the database into var/backups'),
    SETUP_BACKUP_OPTIONS,
  )(async (opts, global) => {
    const { setupBackup } = await import('./commands/setup-backup.js');
    await ctx.run(global, (run) => setupBackup(run, opts), dbFlags(opts), { command: 'setup:backup' });
  });

  withOptions(
    program
      .command('setup:rollback')
      .description(
        'Roll back code, media and/or database from backups in var/backups (verified fully first)',
      ),
    SETUP_ROLLBACK_OPTIONS,
  )(async (opts, global) => {
    const { setupRollback } = await import('./commands/setup-rollback.js');
    await ctx.run(global, (run) => setupRollback(run, opts), dbFlags(opts), {
      command: 'setup:rollback',
    });
  });

  withOptions(
    program.command('info:backups:list').description('List the backups in var/backups, newest first'),
    [],
  )(async (_opts, global) => {
    const { infoBackupsList } = await import('./commands/info-backups-list.js');
    await ctx.run(global, (run) => infoBackupsList(run));
  });

  withOptions(
    program
      .command('snapshot:create')
      .description(
        'Back up code, pub/media and the database as one snapshot (= setup:backup --code --media --db)',
      ),
    BACKUP_OPTIONS,
  )(async (opts, global) => {
    const { snapshotCreate } = await import('./commands/snapshot-create.js');
    await ctx.run(global, (run) => snapshotCreate(run, opts), dbFlags(opts), {
      command: 'snapshot:create',
    });
  });

  withOptions(
    program
      .command('snapshot:list')
      .description('List snapshots (backup runs) newest first: id, time, parts, size, age, status'),
    [],
  )(async (_opts, global) => {
    const { snapshotList } = await import('./commands/snapshot-list.js');
    await ctx.run(global, (run) => snapshotList(run));
  });

  withOptions(
    program
      .command('snapshot:restore')
      .description(
        'Restore every part of a snapshot (checked against its manifest first; like setup:rollback)',
      )
      .argument('<id>', 'snapshot id (the timestamp snapshot:list shows)'),
    SNAPSHOT_RESTORE_OPTIONS,
  )(async (opts, global, [id]) => {
    const { snapshotRestore } = await import('./commands/snapshot-restore.js');
    await ctx.run(global, (run) => snapshotRestore(run, id!, opts), dbFlags(opts), {
      command: 'snapshot:restore',
      ...(id !== undefined ? { id } : {}),
    });
  });

  withOptions(
    program
      .command('backups:verify')
      .description(
        'Check backups against their manifest (size, SHA-256) and read every archive and dump to its end',
      )
      .argument('[ids...]', 'snapshot ids (default: the newest)'),
    BACKUPS_VERIFY_OPTIONS,
  )(async (opts, global, ids) => {
    const { backupsVerify } = await import('./commands/backups-verify.js');
    await ctx.run(global, (run) => backupsVerify(run, ids, opts), dbFlags(opts), {
      command: 'backups:verify',
    });
  });

  withOptions(
    program
      .command('backups:diff')
      .description(
        'Show what changed since a backup: files added, removed, modified; tables whose schema or rows differ, missing or extra; views, triggers, routines, events (read-only)',
      )
      .argument('[id]', 'snapshot id (default: the newest)'),
    BACKUPS_DIFF_OPTIONS,
  )(async (opts, global, args) => {
    const { backupsDiff } = await import('./commands/backups-diff.js');
    await ctx.run(global, (run) => backupsDiff(run, args[0], opts), dbFlags(opts));
  });

  withOptions(
    program
      .command('backups:prune')
      .description(
        'Remove backups outside the retention policy (default: keep 14 days) and leftovers of crashed runs',
      ),
    BACKUPS_PRUNE_OPTIONS,
  )(async (opts, global) => {
    const { backupsPrune } = await import('./commands/backups-prune.js');
    await ctx.run(
      global,
      (run) => backupsPrune(run, opts),
      undefined,
      opts.dryRun ? undefined : { command: 'backups:prune' },
    );
  });

  withOptions(
    program
      .command('backups:history')
      .description(
        'Show the history log: every backup, rollback, restore, prune, verify and maintenance change (CLI and web)',
      ),
    BACKUPS_HISTORY_OPTIONS,
  )(async (opts, global) => {
    const { backupsHistory } = await import('./commands/backups-history.js');
    await ctx.run(global, (run) => backupsHistory(run, opts));
  });

  withOptions(
    program
      .command('serve')
      .description(
        'Web interface on http://127.0.0.1:8765/: list, create, verify, restore and prune backups, live progress, ' +
          'history, maintenance (login with the token it prints, or MAGEBACKUP_WEB_PASSWORD)',
      ),
    SERVE_OPTIONS,
  )(async (opts, global) => {
    const { serve } = await import('./commands/serve.js');
    await ctx.run(global, (run) => serve(run, opts), dbFlags(opts));
  });

  const maintenance = {
    status: 'Show whether maintenance mode is on',
    enable: 'Turn maintenance mode on (var/.maintenance.flag)',
    disable: 'Turn maintenance mode off',
  } as const;
  for (const action of ['status', 'enable', 'disable'] as const) {
    withOptions(
      program.command(`maintenance:${action}`).description(maintenance[action]),
      [],
    )(async (_opts, global) => {
      const { maintenanceCommand } = await import('./commands/maintenance.js');
      await ctx.run(
        global,
        (run) => maintenanceCommand(run, action),
        undefined,
        action === 'status' ? undefined : { command: `maintenance:${action}` },
      );
    });
  }

  return program;
}
