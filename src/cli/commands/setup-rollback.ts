import readline from 'node:readline/promises';
import { ExitCode, UsageError } from '../../errors.js';
import { runRollback } from '../../backup/run-rollback.js';
import type { CommandRun } from '../context.js';
import { dbFlags, type DbCliOptions } from '../program.js';

export interface SetupRollbackOptions extends DbCliOptions {
  codeFile?: string;
  mediaFile?: string;
  dbFile?: string;
  dropExtraTables?: boolean;
  maintenance?: boolean;
  keepModes?: boolean;
  allowOutsideLinks?: boolean;
}

/** Ask on the terminal; without a terminal and without --yes, refuse rather than guess. */
export function confirmer(run: CommandRun): ((plan: string[]) => Promise<boolean>) | undefined {
  if (run.global.yes || run.global.interaction === false) return undefined;
  if (!run.io.stdin.isTTY) {
    throw new UsageError(
      'Refusing to roll back without confirmation: stdin is not a terminal (pass --yes or -n)',
    );
  }
  return async (plan) => {
    const rl = readline.createInterface({ input: run.io.stdin, output: run.io.stderr });
    try {
      run.io.stderr.write(
        `About to roll back (the current state is replaced; no backup is deleted):\n${plan.map((p) => `  - ${p}`).join('\n')}\n`,
      );
      const answer = await rl.question('Are you sure you want to continue? [y/N] ');
      return /^y(es)?$/i.test(answer.trim());
    } finally {
      rl.close();
    }
  };
}

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
