import { CliError, ExitCode, InternalError, InterruptedError } from '../errors.js';
import { sweepVerifyLeftovers } from '../backup/verify-leftovers.js';
import type { DbFlags } from '../db/config.js';
import type { MagebackupEvent } from '../events.js';
import type { Reporter } from '../ui/reporter.js';
import { describeOutcome } from '../ui/wording.js';
import type { GlobalOptions } from './options.js';
import { tolerateClosedOutput, type Io } from './io.js';
import { createReporter } from './reporter.js';
import { recordRun } from '../history/record.js';

export interface CommandRun {
  reporter: Reporter;
  signal: AbortSignal;
  global: GlobalOptions;
  root: string;
  io: Io;
}

/** What every domain run takes from the command's run: the store, the abort signal, the event sink, the name. */
export function runInputs(run: CommandRun, command: string) {
  return {
    root: run.root,
    signal: run.signal,
    onEvent: (e: MagebackupEvent) => run.reporter.onEvent(e),
    command,
  };
}

/** The signals that stop a run, and the exit code of each (SIGHUP: an SSH session or terminal went away). */
export const STOP_SIGNALS = {
  SIGINT: ExitCode.INTERRUPTED,
  SIGTERM: ExitCode.INTERRUPTED,
  SIGHUP: ExitCode.HANGUP,
};
type StopSignal = keyof typeof STOP_SIGNALS;

/** The abort reason when the run's promises stopped moving with nothing left to wait for (a bug). */
export const STALLED = 'STALLED';

export { describeOutcome };

/** Runs one command: picks the reporter, turns signals into an abort, maps errors to exit codes once. */
export class RunContext {
  exitCode: number = ExitCode.OK;
  constructor(readonly io: Io) {}

  async run(
    global: GlobalOptions,
    fn: (run: CommandRun) => Promise<number | void>,
    db?: DbFlags,
    /** record the run in the history log under this command name (actions that change or check backups) */
    history?: { command: string; id?: string },
  ): Promise<void> {
    tolerateClosedOutput(this.io.stdout);
    tolerateClosedOutput(this.io.stderr);
    const reporter = await createReporter(this.io, global);
    const recorder = history ? recordRun(reporter, history.command, 'cli', history.id) : undefined;
    const controller = new AbortController();
    let signals = 0;
    let firstSignal: StopSignal | undefined;
    const onSignal = (name: StopSignal) => {
      signals++;
      if (signals === 1) {
        firstSignal = name;
        controller.abort(name);
      } else if (signals >= 3) {
        // Third signal: the user insists. Cleanup normally takes milliseconds; this is a last resort.
        reporter.error(
          `${name} received three times: exiting without cleaning up (the next magebackup run of this store removes what is left)`,
          STOP_SIGNALS[name],
        );
        this.io.exit(STOP_SIGNALS[name]);
      }
    };
    const handlers = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((name) => {
      const h = () => onSignal(name);
      this.io.signals.on(name, h);
      return [name, h] as const;
    });
    // Safety net: if the event loop empties while the command has not finished, a promise will never settle (a
    // bug). Without this the process would exit 0 in silence, leaving lock, flag and partial files. First abort
    // the run (its cleanup listens to the signal); if even that does not move, give up with exit 1.
    let stalls = 0;
    let giveUp: (err: Error) => void = () => {};
    const stalled = new Promise<never>((_, reject) => (giveUp = reject));
    stalled.catch(() => {});
    const onBeforeExit = () => {
      stalls++;
      if (stalls === 1 && !controller.signal.aborted) controller.abort(STALLED);
      else giveUp(new Error('the run stopped making progress and did not clean up'));
    };
    this.io.signals.on('beforeExit', onBeforeExit);
    try {
      // What a killed `backups:verify --deep` left (directories, databases with customer data) goes first.
      await sweepVerifyLeftovers({
        root: global.root ?? this.io.cwd,
        ...(db ? { flags: db } : {}),
        env: this.io.env,
        onEvent: (e) => reporter.onEvent(e),
      });
      const code = await Promise.race([
        fn({
          reporter,
          signal: controller.signal,
          global,
          root: global.root ?? this.io.cwd,
          io: this.io,
        }),
        stalled,
      ]);
      this.exitCode = code ?? (reporter.warnings > 0 ? ExitCode.WARNINGS : ExitCode.OK);
      if (firstSignal) {
        // The signal came too late to stop anything: the run had completed, and its exit code says so.
        reporter.onEvent({
          type: 'info',
          message: `${firstSignal} received when the run could no longer be stopped: it completed`,
        });
      }
    } catch (err) {
      this.exitCode = this.report(err, reporter, controller.signal, stalls > 0);
    } finally {
      await recorder?.finish(global.root ?? this.io.cwd, this.exitCode);
      reporter.close();
      for (const [name, h] of handlers) this.io.signals.off(name, h);
      this.io.signals.off('beforeExit', onBeforeExit);
    }
  }

  report(err: unknown, reporter: Reporter, signal?: AbortSignal, stalled = false): number {
    const outcome = err instanceof CliError ? err.outcome : undefined;
    const state = outcome ? `: ${describeOutcome(outcome)}` : '';
    if (stalled) {
      const e = err instanceof InternalError && err.cause instanceof Error ? err.cause : err;
      reporter.error(
        `Internal error (a bug in magebackup, please report it): the run stopped making progress${
          outcome
            ? state
            : ' and could not clean up: check var/backups for a .lock, .partial and .running file and var/.maintenance.flag'
        }`,
        ExitCode.FAILURE,
        e instanceof Error ? e.stack : undefined,
      );
      return ExitCode.FAILURE;
    }
    const reason: unknown = signal?.reason;
    if (
      signal?.aborted &&
      typeof reason === 'string' &&
      reason in STOP_SIGNALS &&
      (err instanceof InterruptedError || !(err instanceof CliError))
    ) {
      const code = STOP_SIGNALS[reason as StopSignal];
      reporter.error(`Interrupted by ${reason}${state}`, code);
      return code;
    }
    if (err instanceof CliError && !(err instanceof InternalError)) {
      // Only what a reader needs beyond the message: a failure that left nothing and changed nothing says no more.
      const plain =
        !outcome ||
        (outcome.live === 'unchanged' &&
          outcome.maintenance === 'as-before' &&
          !outcome.leftovers.length &&
          (outcome.parts ?? 1) <= 1);
      reporter.error(plain ? err.message : `${err.message}${state}`, err.exitCode);
      return err.exitCode;
    }
    const e = err instanceof InternalError && err.cause instanceof Error ? err.cause : err;
    const bug = e instanceof Error ? e : new Error(String(e));
    reporter.error(
      `Internal error (a bug in magebackup, please report it): ${bug.message}${state}`,
      ExitCode.FAILURE,
      bug.stack,
    );
    return ExitCode.FAILURE;
  }
}
