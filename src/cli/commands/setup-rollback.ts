import { ExitCode } from '../../errors.js';
import { runRollback } from '../../restore/run-rollback.js';
import { runInputs, type CommandRun } from '../context.js';
import { confirmer } from '../confirm.js';
import { restoreInputs, type SetupRollbackOptions } from '../options.js';

export async function setupRollback(run: CommandRun, opts: SetupRollbackOptions): Promise<number> {
  const confirm = confirmer(run);
  const result = await runRollback({
    ...runInputs(run, 'setup:rollback'),
    ...(opts.codeFile !== undefined ? { codeFile: opts.codeFile } : {}),
    ...(opts.mediaFile !== undefined ? { mediaFile: opts.mediaFile } : {}),
    ...(opts.dbFile !== undefined ? { dbFile: opts.dbFile } : {}),
    ...restoreInputs(opts, run.io.env),
    ...(confirm ? { confirm } : {}),
  });
  run.reporter.result('', { type: 'result', command: 'setup:rollback', ...result });
  return result.warnings > 0 ? ExitCode.WARNINGS : ExitCode.OK;
}
