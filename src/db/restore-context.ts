/**
 * What every step of a restore works with: its options, the context (config, connections, lock-wait bound,
 * events) and the sessions it opens (a control session for DDL, loader sessions for the dump's statements).
 */
import type { Connection } from 'mysql2/promise';
import { noEvents, type EventSink } from '../events.js';
import type { DbConnectionConfig } from './types.js';
import {
  boundLockWaits,
  closeQuietly,
  ConnectionSet,
  isLockWaitTimeout,
  openControlConnection,
  openLoaderConnection,
  sqlMessage,
} from './restore-connect.js';
import { RestoreError, type LiveDatabaseState } from './restore-errors.js';
import type { DumpRange } from './dump-ranges.js';
import { RESERVED_PREFIX } from './restore-journal.js';

export interface RestoreOptions {
  config: DbConnectionConfig;
  file: string;
  /** drop tables, views, routines, events and triggers that exist live but not in the dump (default: keep, warn) */
  dropExtraTables?: boolean;
  signal?: AbortSignal;
  onEvent?: EventSink;
  /**
   * Selective rollback (delta.ts): tables of the dump whose live copy equals the backup's (same schema, same
   * rows), kept instead of loaded. Their triggers are replaced by the dump's like every other definition, their
   * AUTO_INCREMENT set to the backup's (`autoIncrement`). Default: every table of the dump is loaded.
   * A function when the load starts before the comparison ends (`ranges.list` a RangeFeed): called once the
   * load has read its last range (by then every table was compared).
   */
  keep?: readonly KeptTable[] | (() => readonly KeptTable[]);
  /**
   * With `keep`: read only these byte ranges of the dump (dump-ranges.ts; the manifest's table sections of a file
   * whose SHA-256 matched); `tables`: every table with a section. Default: the whole dump is read. A RangeFeed:
   * the ranges as the comparison finds the tables that differ (a plain .sql only).
   */
  ranges?: { list: readonly DumpRange[] | AsyncIterable<DumpRange>; tables: readonly string[] };
  /** loader connections (default: 4) */
  concurrency?: number;
  /**
   * a table's secondary keys are built after its rows once its plain INSERTs pass this many bytes
   * (restore-indexes.ts; default DEFER_AFTER_BYTES; tests make it small)
   */
  deferKeysAfterBytes?: number;
  /** test hook: the bytes of one read of a plain dump (default READ_CHUNK; tests make it small so reads reuse memory) */
  readChunkBytes?: number;
  /** how long one statement may wait for a lock, in seconds (default 60); longer fails the run, naming the table */
  lockWaitSeconds?: number;
  /** test hook: called at named points of the restore (the SIGKILL test stops the process there) */
  onStep?: (step: RestoreStep) => void | Promise<void>;
}

export interface KeptTable {
  name: string;
  /** the backup's AUTO_INCREMENT, when the live one differs */
  autoIncrement?: string;
}

export type RestoreStep =
  | 'journal-created'
  | 'loading'
  | 'loaded'
  | 'prepared'
  | 'committing'
  | 'swapped'
  | 'constraints-renamed'
  | 'definitions-dropped'
  | 'definitions-created'
  | 'done';

const DEFAULT_LOCK_WAIT = 60;

// sessions

export interface Ctx {
  config: DbConnectionConfig;
  live: string;
  lockWait: number;
  conns: ConnectionSet;
  emit: EventSink;
  onStep: ((step: RestoreStep) => void | Promise<void>) | undefined;
}

export async function control(ctx: Ctx): Promise<Connection> {
  const c = ctx.conns.add(await openControlConnection(ctx.config, ctx.live));
  await boundLockWaits(c, ctx.lockWait);
  await c.query('SET SESSION foreign_key_checks = 0');
  return c;
}

export async function loader(ctx: Ctx): Promise<Connection> {
  const c = ctx.conns.add(await openLoaderConnection(ctx.config, ctx.live));
  await boundLockWaits(c, ctx.lockWait);
  return c;
}

export async function release(ctx: Ctx, c: Connection | undefined): Promise<void> {
  if (!c) return;
  ctx.conns.delete(c);
  await closeQuietly(c);
}

/** Runs DDL; a lock wait that hits the bound becomes one line naming what it waited for. */
export async function ddl(ctx: Ctx, conn: Connection, sql: string, what: string): Promise<void> {
  try {
    await conn.query(sql);
  } catch (err) {
    if (isLockWaitTimeout(err)) {
      throw new RestoreError(
        `Waited more than ${ctx.lockWait} s for a lock on ${what} of database ${ctx.live} (another session holds it: a long query, an open transaction or LOCK TABLES)`,
        { cause: err },
      );
    }
    throw err;
  }
}

export function contextFor(o: RestoreOptions, conns?: ConnectionSet): Ctx {
  return {
    config: o.config,
    live: o.config.database,
    lockWait: o.lockWaitSeconds ?? DEFAULT_LOCK_WAIT,
    conns: conns ?? new ConnectionSet(o.config),
    emit: o.onEvent ?? noEvents,
    onStep: o.onStep,
  };
}

/** Ends every statement of ctx within seconds when the signal fires. */
export function watchAbort(ctx: Ctx, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => {};
  const onAbort = (): void => void ctx.conns.killAll();
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

export function serverGone(
  ctx: Ctx,
  err: unknown,
  state: string,
  live: LiveDatabaseState,
  leftovers: string[] = [],
): RestoreError {
  return new RestoreError(
    `The database server went away during the rollback (${sqlMessage(err)}): database ${ctx.live} ${state}`,
    { cause: err, live, leftovers },
  );
}

/** What a restore whose server went away before the swap leaves: its shadow tables, for the next run. */
export function shadowLeftovers(ctx: Ctx, id: string): string[] {
  return [`the shadow tables ${RESERVED_PREFIX}${id}_* in database ${ctx.live} (the next run removes them)`];
}
