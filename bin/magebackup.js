#!/usr/bin/env node
// Stop signals are held from the first line on: loading the program takes a few hundred milliseconds, and a
// SIGINT/SIGTERM/SIGHUP in that time would otherwise kill the process with no exit code of ours (143). A held
// signal interrupts the run as soon as it listens (exit 130/129, "nothing was changed").
const STOP = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const held = [];
const hold = (name) => void held.push(name);
for (const name of STOP) process.on(name, hold);
let holding = true;
const stopHolding = () => {
  holding = false;
  for (const name of STOP) process.off(name, hold);
};

const [{ main }, { processIo, heldExitCode }] = await Promise.all([
  import('../dist/src/cli/main.js'),
  import('../dist/src/cli/io.js'),
]);

// The only process.exit in the program, and only for a third Ctrl-C/SIGTERM/SIGHUP (exit at once, no cleanup).
// Otherwise the process ends by itself once the run is over, with the exit code main() decided.
main(
  process.argv,
  processIo((code) => process.exit(code), { names: held, release: stopHolding }),
).then(
  (code) => {
    // A signal held while no run listened (help, version, a usage error): the exit code still says so.
    process.exitCode = (holding && heldExitCode(held)) || code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
