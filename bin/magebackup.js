#!/usr/bin/env node
import { closeSync, openSync } from 'node:fs';
import { isatty } from 'node:tty';

// Stop signals are held from the first line on: loading the program takes a few hundred milliseconds, and a
// SIGINT/SIGTERM/SIGHUP in that time would otherwise kill the process with no exit code of ours (143). A held
// signal interrupts the run as soon as it listens (exit 130/129, "nothing was changed").
const STOP = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const held = [];
const hold = (name) => void held.push(name);
for (const name of STOP) process.on(name, hold);
let holding = true;

// Node puts each terminal it started on back as it was when it exits, and aborts (SIGABRT, exit 134, a native
// stack trace) when that terminal is gone: an SSH session that dropped, a closed window (nodejs/node#51519, fixed only
// in later Node releases). The run has ended by then, and its exit code must stand: such an fd is pointed at /dev/null first,
// which Node skips as "reopened by the program".
const startedOnTerminal = [0, 1, 2].filter((fd) => isatty(fd));
process.on('exit', () => {
  for (const fd of startedOnTerminal) {
    if (isatty(fd)) continue;
    try {
      closeSync(fd);
      const reopened = openSync('/dev/null', fd === 0 ? 'r' : 'w');
      if (reopened !== fd) closeSync(reopened);
    } catch {
      // a closed fd is skipped by Node as well
    }
  }
});
const stopHolding = () => {
  holding = false;
  for (const name of STOP) process.off(name, hold);
};

const [{ main }, { processIo, heldExitCode }] = await Promise.all([
  import('../dist/src/cli/main.js'),
  import('../dist/src/cli/io.js'),
]);

// process.exit is called in two places only: for a third Ctrl-C/SIGTERM/SIGHUP (exit at once, no cleanup), and
// once main() has returned, i.e. the run is over and everything it does has been awaited: stdout and stderr are
// flushed, then the process exits with the code decided below. Waiting for the event loop to empty instead made
// Node tear the whole heap down first, each buffer unmapped on its own: 0.1-0.2 s after a large dump on the bench
// machine, which exit() leaves to the kernel. Should a flush never complete, the exit code is already set and the
// process still ends by itself. ('exit' listeners, the terminal's above among them, run either way.)
main(
  process.argv,
  processIo((code) => process.exit(code), { names: held, release: stopHolding }),
).then(
  (code) => {
    // A signal held while no run listened (help, version, a usage error): the exit code still says so.
    const exitCode = (holding && heldExitCode(held)) || code;
    process.exitCode = exitCode;
    process.stdout.write('', () => process.stderr.write('', () => process.exit(exitCode)));
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
