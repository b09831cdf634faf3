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

async function open(cfg: DbConnectionConfig, database: string | null, binary: boolean): Promise<Connection> {
  let conn: Connection;
  try {
    conn = await mysql.createConnection({
      ...connectionOptions(cfg, { database, connectTimeout: 20000 }),
      charset: binary ? 'BINARY' : 'UTF8MB4_GENERAL_CI',
      // without session tracking mysql2 would switch its own encoding when the dump says SET NAMES
      ...(binary ? { flags: ['-SESSION_TRACK'] } : {}),
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
