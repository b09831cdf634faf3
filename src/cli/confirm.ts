import readline from 'node:readline/promises';
import { InterruptedError, UsageError, describeAbort } from '../errors.js';
import type { CommandRun } from './context.js';

/**
 * The rollback prompt (setup:rollback, snapshot:restore). Undefined with --yes/-n: no question. Without a terminal
 * and without --yes, refuse (exit 2) rather than guess. Anything but y/yes is a no, and so is the end of input.
 * Ctrl-C typed at the prompt, or a stop signal (SIGINT, SIGTERM, SIGHUP) while it waits, interrupts the run
 * (InterruptedError: exit 130, 129 for SIGHUP): the question never waits on after the run was told to stop.
 */
export function confirmer(
  run: Pick<CommandRun, 'global' | 'io'> & { signal?: AbortSignal },
): ((plan: string[]) => Promise<boolean>) | undefined {
  if (run.global.yes || run.global.interaction === false) return undefined;
  if (!run.io.stdin.isTTY) {
    throw new UsageError(
      'Refusing to roll back without confirmation: stdin is not a terminal (pass --yes or -n)',
    );
  }
  return async (plan) => {
    const rl = readline.createInterface({ input: run.io.stdin, output: run.io.stderr });
    const stop = new AbortController();
    const onRunAbort = (): void => stop.abort(run.signal?.reason);
    if (run.signal?.aborted) onRunAbort();
    run.signal?.addEventListener('abort', onRunAbort, { once: true });
    // on a terminal readline reads Ctrl-C as a key (raw mode), not as a signal: it stops the run like SIGINT
    rl.on('SIGINT', () => stop.abort('SIGINT'));
    // a terminal that went away (an SSH drop) fails the read (EIO) as SIGHUP arrives: a hang-up, not a crash
    const onInputError = (): void => stop.abort(run.signal?.reason ?? 'SIGHUP');
    rl.on('error', onInputError);
    run.io.stdin.on('error', onInputError);
    try {
      run.io.stderr.write(
        `About to roll back (the current state is replaced; no backup is deleted):\n${plan.map((p) => `  - ${p}`).join('\n')}\n`,
      );
      // the input ends (Ctrl-D, a closed pipe or terminal) with no answer: that is a no
      const ended = new Promise<string>((resolve) => rl.once('close', () => resolve('')));
      const answer = await Promise.race([
        rl.question('Are you sure you want to continue? [y/N] ', { signal: stop.signal }),
        ended,
      ]);
      return /^y(es)?$/i.test(answer.trim());
    } catch (err) {
      if (stop.signal.aborted) {
        run.io.stderr.write('\n');
        throw new InterruptedError(describeAbort(stop.signal.reason), { cause: err });
      }
      throw err;
    } finally {
      run.signal?.removeEventListener('abort', onRunAbort);
      rl.close();
      run.io.stdin.off('error', onInputError);
    }
  };
}
