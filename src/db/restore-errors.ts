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
}

/** The shape RestoreError and RestoreInterruptedError share. */
export interface RestoreFailure {
  readonly live: LiveDatabaseState;
  /** the live database is neither exactly old nor exactly new until a recovery ran */
  readonly liveDamaged: boolean;
  readonly nothingChanged: boolean;
}

function failure(live: LiveDatabaseState = 'unchanged'): RestoreFailure {
  return { live, liveDamaged: live === 'recovery-pending', nothingChanged: live === 'unchanged' };
}

const causeOf = (o: RestoreErrorOptions): { cause?: unknown } =>
  o.cause === undefined ? {} : { cause: o.cause };

export class RestoreError extends CliError implements RestoreFailure {
  readonly live: LiveDatabaseState;
  readonly liveDamaged: boolean;
  readonly nothingChanged: boolean;
  constructor(message: string, options: RestoreErrorOptions = {}) {
    super(message, causeOf(options));
    ({
      live: this.live,
      liveDamaged: this.liveDamaged,
      nothingChanged: this.nothingChanged,
    } = failure(options.live));
  }
}

/** SIGINT/SIGTERM/SIGHUP during a restore (exit 130), with the state the live database was left in. */
export class RestoreInterruptedError extends InterruptedError implements RestoreFailure {
  readonly live: LiveDatabaseState;
  readonly liveDamaged: boolean;
  readonly nothingChanged: boolean;
  constructor(message: string, options: RestoreErrorOptions = {}) {
    super(message, causeOf(options));
    ({
      live: this.live,
      liveDamaged: this.liveDamaged,
      nothingChanged: this.nothingChanged,
    } = failure(options.live));
  }
}

/** A restore's failure, either kind. */
export function isRestoreFailure(
  err: unknown,
): err is (RestoreError | RestoreInterruptedError) & RestoreFailure {
  return err instanceof RestoreError || err instanceof RestoreInterruptedError;
}
