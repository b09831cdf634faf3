#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';

// The only process.exit in the program: main() decides the code.
main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
