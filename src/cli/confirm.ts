import readline from 'node:readline/promises';
import { UsageError } from '../errors.js';
import type { CommandRun } from './context.js';

/**
 * The rollback prompt (setup:rollback, snapshot:restore). Undefined with --yes/-n: no question. Without a terminal
 * and without --yes, refuse (exit 2) rather than guess. Anything but y/yes is a no.
 */
export function confirmer(
  run: Pick<CommandRun, 'global' | 'io'>,
): ((plan: string[]) => Promise<boolean>) | undefined {
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
