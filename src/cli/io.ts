import type { Writable } from 'node:stream';

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

/** The real process; `exit` comes from bin/magebackup.js, the one place that may end the process. */
export function processIo(exit: (code: number) => void): Io {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
    signals: process,
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
