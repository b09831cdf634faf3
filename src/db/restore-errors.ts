/**
 * The errors a database restore ends with: both say, in one typed shape, what the live database holds.
 */
import { CliError, InterruptedError } from '../errors.js';

/**
 * What the live database holds after a failed restore: 'unchanged' (the old state, exactly), 'restored' (the
 * new state, complete), or 'recovery-pending' (a journal is left that the next run's recovery finishes or
 * undoes before anything else reads the database; until then the store must stay in maintenance).
 */
export type LiveDatabaseState = 'unchanged' | 'restored' | 'recovery-pending';

export interface RestoreErrorOptions {
  cause?: unknown;
  live?: LiveDatabaseState;
  /** what is left in the database for the next run to remove (e.g. shadow tables, when the server went away) */
  leftovers?: string[];
}

/** The shape RestoreError and RestoreInterruptedError share. */
export interface RestoreFailure {
  readonly live: LiveDatabaseState;
  /** the live database is neither exactly old nor exactly new until a recovery ran */
  readonly liveDamaged: boolean;
  readonly nothingChanged: boolean;
  readonly leftovers: string[];
}

const causeOf = (o: RestoreErrorOptions): { cause?: unknown } =>
  o.cause === undefined ? {} : { cause: o.cause };

// TypeScript accepts a class as a mixin's base only with this constructor type (a rest parameter of any[]).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type CliErrorClass = new (...args: any[]) => CliError;

/**
 * The RestoreFailure fields, set from `options.live`, on a CliError class: RestoreError and
 * RestoreInterruptedError extend different bases (exit 1, exit 130) and share this one definition.
 */
function withLiveState<B extends CliErrorClass>(Base: B) {
  return class extends Base implements RestoreFailure {
    readonly live: LiveDatabaseState;
    readonly liveDamaged: boolean;
    readonly nothingChanged: boolean;
    readonly leftovers: string[];
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    constructor(...args: any[]) {
      const [message, options = {}] = args as [string, RestoreErrorOptions?];
      super(message, causeOf(options));
      this.live = options.live ?? 'unchanged';
      this.liveDamaged = this.live === 'recovery-pending';
      this.nothingChanged = this.live === 'unchanged';
      this.leftovers = options.leftovers ?? [];
    }
  };
}

export class RestoreError extends withLiveState(CliError) {
  constructor(message: string, options: RestoreErrorOptions = {}) {
    super(message, options);
  }
}

/** SIGINT/SIGTERM/SIGHUP during a restore (exit 130), with the state the live database was left in. */
export class RestoreInterruptedError extends withLiveState(InterruptedError) {
  constructor(message: string, options: RestoreErrorOptions = {}) {
    super(message, options);
  }
}

/** A restore's failure, either kind. */
export function isRestoreFailure(
  err: unknown,
): err is (RestoreError | RestoreInterruptedError) & RestoreFailure {
  return err instanceof RestoreError || err instanceof RestoreInterruptedError;
}
