/**
 * Exit codes, decided in one place (src/cli/main.ts maps errors to these).
 * Documented in the README and in `magebackup --help`.
 */
export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  /** The run completed, but some paths could not be archived (each was reported as a warning). */
  WARNINGS: 3,
  /** Another magebackup run holds the lock of this store. */
  LOCKED: 11,
  /** The database server refused the credentials. */
  DB_AUTH: 12,
  /** SIGINT / SIGTERM: the run was undone and the store left as it was. */
  INTERRUPTED: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * An error meant for the user: its message is one line that names the file, table or option involved.
 * The low-level error goes in `cause`. Anything that is not a CliError is a bug and is printed with its stack.
 */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? ExitCode.FAILURE;
  }
}

export class UsageError extends CliError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.USAGE });
  }
}

export class LockedError extends CliError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.LOCKED });
  }
}

export class DbAuthError extends CliError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.DB_AUTH });
  }
}

/** Thrown by domain code when its AbortSignal fires (SIGINT/SIGTERM); cleanup has run by the time main sees it. */
export class InterruptedError extends CliError {
  constructor(message = 'Interrupted', options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: ExitCode.INTERRUPTED });
  }
}

/** Throws InterruptedError if the signal has fired. Call between units of work. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError(describeAbort(signal.reason));
}

export function describeAbort(reason: unknown): string {
  if (typeof reason === 'string') return `Interrupted by ${reason}`;
  return 'Interrupted';
}

/** Node system errors carry a `code` like ENOENT. */
export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
