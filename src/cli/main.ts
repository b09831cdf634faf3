import { readFileSync } from 'node:fs';
import { CommanderError } from 'commander';
import { ExitCode } from '../errors.js';
import { RunContext, tolerateClosedOutput, type Io } from './context.js';
import { buildProgram } from './program.js';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export function processIo(): Io {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
    signals: process,
  };
}

/** Parse argv, run the command, and return the exit code. Never calls process.exit (bin/ does). */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  tolerateClosedOutput(io.stdout);
  tolerateClosedOutput(io.stderr);
  const ctx = new RunContext(io);
  const json = argv.includes('--json');
  const program = buildProgram(ctx, packageVersion(), {
    writeOut: (s) => io.stdout.write(s),
    // Under --json, stderr is NDJSON only: the usage error below is its one line.
    writeErr: (s) => (json ? undefined : io.stderr.write(s)),
    outputError: (s, write) => {
      if (json) {
        io.stderr.write(
          JSON.stringify({ type: 'error', code: ExitCode.USAGE, message: s.trim().replace(/^error: /, '') }) +
            '\n',
        );
      } else write(s);
    },
  });
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
