import { ExitCode } from '../../errors.js';
import { runRollback } from '../../restore/run-rollback.js';
import type { CommandRun } from '../context.js';
import { confirmer } from '../confirm.js';
import { dbFlags, type SetupRollbackOptions } from '../options.js';

export async function setupRollback(run: CommandRun, opts: SetupRollbackOptions): Promise<number> {
  const confirm = confirmer(run);
  const result = await runRollback({
    root: run.root,
    ...(opts.codeFile !== undefined ? { codeFile: opts.codeFile } : {}),
    ...(opts.mediaFile !== undefined ? { mediaFile: opts.mediaFile } : {}),
    ...(opts.dbFile !== undefined ? { dbFile: opts.dbFile } : {}),
    dropExtraTables: !!opts.dropExtraTables,
    keepModes: !!opts.keepModes,
    allowOutsideLinks: !!opts.allowOutsideLinks,
    maintenance: opts.maintenance !== false,
    db: { flags: dbFlags(opts), env: run.io.env },
    ...(confirm ? { confirm } : {}),
    signal: run.signal,
    onEvent: (e) => run.reporter.onEvent(e),
    command: 'setup:rollback',
  });
  run.reporter.result('', { type: 'result', command: 'setup:rollback', ...result });
  return result.warnings > 0 ? ExitCode.WARNINGS : ExitCode.OK;
}
