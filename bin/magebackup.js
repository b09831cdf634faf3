#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';
import { processIo } from '../dist/src/cli/io.js';

// The only process.exit in the program, and only for a third Ctrl-C/SIGTERM/SIGHUP (exit at once, no cleanup).
// Otherwise the process ends by itself once the run is over, with the exit code main() decided.
main(
  process.argv,
  processIo((code) => process.exit(code)),
).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
