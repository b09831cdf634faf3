/**
 * Exit codes, decided in one place: src/cli/context.ts maps a run's errors to these, src/cli/main.ts commander's.
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
  /** SIGHUP (the terminal or SSH session went away): handled like SIGINT; the message says what state is left. */
  HANGUP: 129,
  /** SIGINT / SIGTERM: the run was stopped; the message says what state the store is left in. */
  INTERRUPTED: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * The state a failed or interrupted run leaves the store in. Domain code that changes the store says it (the CLI
 * words it), so a message never claims more than is true.
 */
export interface StoreOutcome {
  /**
   * live code/media/database: `unchanged` (exactly as before the run), `replaced` (exactly the backup's state, the
   * rollback had finished), `mixed` (neither: maintenance stays on and `finish` says how to end it)
   */
  live: 'unchanged' | 'replaced' | 'mixed';
  /** maintenance mode: as it was before the run, or left on (live data mixed, or the flag could not be restored) */
  maintenance: 'as-before' | 'left-on';
  /** what the run could not remove (files, directories, databases), each named */
  leftovers: string[];
  /** when live data is mixed or something was left: what to run to finish (one sentence) */
  finish?: string;
  /** the run had several parts (code, media, database): a message about one part's failure says no more */
  parts?: number;
}

/**
 * An error meant for the user: its message is one line that names the file, table or option involved.
 * The low-level error goes in `cause`. Anything that is not a CliError is a bug and is printed with its stack.
 */
export class CliError extends Error {
  readonly exitCode: number;
  /** set by the run that failed: what state it leaves the store in (see withOutcome) */
  outcome?: StoreOutcome;
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? ExitCode.FAILURE;
  }
}

/** A bug (not a CliError) that ended a run: printed with its stack, and with the state the run left. */
export class InternalError extends CliError {
  constructor(cause: unknown) {
    const e = cause instanceof Error ? cause : new Error(String(cause));
    super(e.message, { cause: e });
    this.stack = e.stack ?? this.stack;
  }
}

/**
 * Gives a run's error the store's state. The innermost run that knows the state wins (an outcome already set is
 * kept). A bug is wrapped in an InternalError so that it carries the outcome too.
 */
export function withOutcome(err: unknown, outcome: StoreOutcome): CliError {
  const e = err instanceof CliError ? err : new InternalError(err);
  e.outcome ??= outcome;
  return e;
}

/** Nothing changed and nothing left: what a failed backup, verify or prune leaves when its cleanup worked. */
export function unchangedOutcome(leftovers: string[] = [], maintenanceLeftOn = false): StoreOutcome {
  return { live: 'unchanged', maintenance: maintenanceLeftOn ? 'left-on' : 'as-before', leftovers };
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

/** Thrown by domain code when its AbortSignal fires (SIGINT/SIGTERM/SIGHUP); cleanup has run when main sees it. */
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
