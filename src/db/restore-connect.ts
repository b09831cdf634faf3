/**
 * Connections for the restore. Two kinds:
 * - control: utf8mb4, for metadata queries and DDL built here;
 * - loader: handshake charset `binary`, so that mysql2 sends the dump's statement bytes unchanged (a latin1
 *   JS string maps 1:1 to bytes) and the dump's own `SET NAMES` decides how the server reads them, exactly as the
 *   stock client does. Never send text built from non-ASCII JS strings on a loader connection.
 * The password only goes into mysql2's options; error messages name the host/database, never the password.
 */
import mysql, { type Connection } from 'mysql2/promise';
import { connectionOptions, mapConnectError } from './connect.js';
import type { DbConnectionConfig } from './types.js';

export function sqlErrno(err: unknown): number | undefined {
  if (err && typeof err === 'object' && 'errno' in err && typeof err.errno === 'number') return err.errno;
  return undefined;
}

export function sqlMessage(err: unknown): string {
  if (err && typeof err === 'object' && 'sqlMessage' in err && typeof err.sqlMessage === 'string')
    return err.sqlMessage;
  return err instanceof Error ? err.message : String(err);
}

function formatUnlessBare(sql: string, values: unknown): string {
  return Array.isArray(values) && values.length === 0
    ? sql
    : mysql.format(sql, values as Parameters<typeof mysql.format>[1], false, 'Z');
}

async function open(cfg: DbConnectionConfig, database: string | null, binary: boolean): Promise<Connection> {
  let conn: Connection;
  try {
    conn = await mysql.createConnection({
      ...connectionOptions(cfg, { database, connectTimeout: 20000 }),
      charset: binary ? 'BINARY' : 'UTF8MB4_GENERAL_CI',
      // without session tracking mysql2 would switch its own encoding when the dump says SET NAMES; a statement
      // without values goes out as it is (mysql2 would scan a dump's megabytes of values for `?` placeholders)
      ...(binary ? { flags: ['-SESSION_TRACK'], queryFormat: formatUnlessBare } : {}),
    });
  } catch (err) {
    throw mapConnectError(err, cfg, database);
  }
  // mysql2 emits 'error' on the connection when the server goes away between queries
  conn.on('error', () => {});
  if (binary) await conn.query('SET NAMES utf8mb4');
  return conn;
}

export function openControlConnection(
  cfg: DbConnectionConfig,
  database: string | null = null,
): Promise<Connection> {
  return open(cfg, database, false);
}

export function openLoaderConnection(cfg: DbConnectionConfig, database: string | null): Promise<Connection> {
  return open(cfg, database, true);
}

/** Sends bytes exactly as they are on a loader connection. */
export function queryRaw(conn: Connection, raw: Buffer): Promise<unknown> {
  return conn.query(raw.toString('latin1'));
}

export async function closeQuietly(conn: Connection | undefined): Promise<void> {
  if (!conn) return;
  try {
    await conn.end();
  } catch {
    conn.destroy();
  }
}

/** Errors that mean the server (or the network to it) is gone, not that a statement failed. */
const GONE_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'ECONNRESET',
  'EPIPE',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'ENOENT',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
]);
const GONE_ERRNOS = new Set([1053, 1927, 2006, 2013]);

export function isServerGone(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = typeof e === 'object' && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
    const errno = sqlErrno(e);
    if ((code !== undefined && GONE_CODES.has(code)) || (errno !== undefined && GONE_ERRNOS.has(errno)))
      return true;
    if (e instanceof Error && /closed state|connection is closed|Can't add new command/i.test(e.message))
      return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

/** 1205 (row lock) or 1205-like metadata lock waits that hit lock_wait_timeout / innodb_lock_wait_timeout. */
export function isLockWaitTimeout(err: unknown): boolean {
  return sqlErrno(err) === 1205;
}

/**
 * Every connection a restore opens, so that an abort can end it within seconds even while a statement waits
 * on a lock: `KILL QUERY` for each from a separate connection (a user may kill its own threads), then destroy.
 */
export class ConnectionSet {
  private conns = new Set<Connection>();
  constructor(private readonly cfg: DbConnectionConfig) {}

  add<C extends Connection>(c: C): C {
    this.conns.add(c);
    return c;
  }

  delete(c: Connection): void {
    this.conns.delete(c);
  }

  /** Stops every statement and closes every connection; never throws, never waits more than a few seconds. */
  async killAll(): Promise<void> {
    const conns = [...this.conns];
    this.conns.clear();
    if (conns.length === 0) return;
    let killer: Connection | undefined;
    try {
      killer = await Promise.race([
        mysql.createConnection({
          ...connectionOptions(this.cfg, { database: null, connectTimeout: 3000 }),
        }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000).unref()),
      ]);
      killer.on('error', () => {});
      for (const c of conns) {
        await Promise.race([
          killer.query(`KILL QUERY ${Number(c.threadId)}`).catch(() => {}),
          new Promise<void>((r) => setTimeout(r, 2000).unref()),
        ]);
      }
    } catch {
      // the server may be gone: destroying our ends is all there is to do
    } finally {
      killer?.destroy();
      for (const c of conns) c.destroy();
    }
  }
}

/** Bounded lock waits for every restore session (seconds). */
export async function boundLockWaits(conn: Connection, seconds: number): Promise<void> {
  const s = Math.max(1, Math.floor(seconds));
  await conn.query(`SET SESSION lock_wait_timeout = ${s}, innodb_lock_wait_timeout = ${s}`);
}
