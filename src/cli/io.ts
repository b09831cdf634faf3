import type { Writable } from 'node:stream';
import { ExitCode } from '../errors.js';

/** Everything a run takes from the process: the CLI's only door to it (tests pass fakes). */
export interface Io {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** where SIGINT/SIGTERM/SIGHUP and `beforeExit` come from; tests pass an EventEmitter */
  signals: {
    on(event: string, listener: () => void): unknown;
    off(event: string, listener: () => void): unknown;
  };
  /** leave at once, skipping every cleanup: only for a third stop signal (bin/ passes process.exit) */
  exit: (code: number) => void;
}

/** Stop signals bin/ held while the program loaded, before any run listened for them. */
export interface HeldSignals {
  /** in order of arrival; emptied when they are handed to the first run */
  names: string[];
  /** stop holding: from now on the run's own listeners decide */
  release(): void;
}

const STOP_EVENTS = new Set(['SIGINT', 'SIGTERM', 'SIGHUP']);

/** The exit code for a held signal that no run took over (129 for SIGHUP, else 130), 0 if none was held. */
export function heldExitCode(names: readonly string[]): number {
  if (names.length === 0) return 0;
  return names[0] === 'SIGHUP' ? ExitCode.HANGUP : ExitCode.INTERRUPTED;
}

/**
 * The real process; `exit` comes from bin/magebackup.js, the one place that may end the process. The first run
 * to listen for a stop signal takes over the signals bin/ held: they are delivered to its listeners, in order,
 * once it has registered them all (the same tick), so a signal sent while the program loaded interrupts it.
 */
export function processIo(exit: (code: number) => void, held?: HeldSignals): Io {
  let holding = held;
  const signals: Io['signals'] = {
    on(event, listener) {
      process.on(event, listener);
      if (holding && STOP_EVENTS.has(event)) {
        const names = holding.names.splice(0);
        holding.release();
        holding = undefined;
        if (names.length > 0) process.nextTick(() => names.forEach((name) => process.emit(name as 'SIGINT')));
      }
      return signals;
    },
    off(event, listener) {
      process.off(event, listener);
      return signals;
    },
  };
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    // Node creates process.stdin when it is first read (10-17 ms of CPU at a start on the bench machine): only a
    // run that asks for a confirmation reads it
    get stdin() {
      return process.stdin;
    },
    env: process.env,
    cwd: process.cwd(),
    signals,
    exit,
  };
}

/**
 * A closed output (`… | head -1`, a dropped SSH session) must neither crash the run nor stop it half-way: the
 * run goes on (or is undone, on SIGHUP), and what it would have printed there is dropped. Without a listener, the
 * EPIPE/EIO of a write would be an uncaught exception that skips every cleanup. The listener stays for the life
 * of the stream: the error of a write can arrive after the run has returned.
 */
const tolerated = new WeakSet<Writable>();
export function tolerateClosedOutput(stream: Writable): void {
  if (tolerated.has(stream)) return;
  tolerated.add(stream);
  stream.on('error', () => {});
}
