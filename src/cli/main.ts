import { CommanderError, type OutputConfiguration } from 'commander';
import { toolVersion } from '../store/manifest.js';
import { ExitCode } from '../errors.js';
import { RunContext } from './context.js';
import { tolerateClosedOutput, type Io } from './io.js';
import { buildProgram } from './program.js';

/**
 * commander's output: help on stdout; a usage error is ONE line on stderr naming the option (with the hint to
 * --help on that line), or under --json one JSON error line (stderr is NDJSON only).
 */
function commanderOutput(io: Io, json: boolean): OutputConfiguration {
  return {
    writeOut: (s) => io.stdout.write(s),
    // Under --json the usage error below is stderr's one line: the help shown for a missing command is dropped.
    writeErr: (s) => (json ? undefined : io.stderr.write(s)),
    outputError: (s) => {
      const message = s.trim().replace(/\s*\n\s*/g, ' ');
      io.stderr.write(
        json
          ? JSON.stringify({
              type: 'error',
              code: ExitCode.USAGE,
              message: message.replace(/^error: /, ''),
            }) + '\n'
          : `${message} (run with --help for usage)\n`,
      );
    },
  };
}

/** Parse argv, run the command, and return the exit code. Never ends the process (bin/ sets the exit code). */
export async function main(argv: string[], io: Io): Promise<number> {
  tolerateClosedOutput(io.stdout);
  tolerateClosedOutput(io.stderr);
  const ctx = new RunContext(io);
  const program = buildProgram(ctx, toolVersion(), commanderOutput(io, argv.includes('--json')));
  try {
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version "errors" are successes
      if (err.exitCode === 0) return ExitCode.OK;
      return ExitCode.USAGE;
    }
    throw err;
  }
}
