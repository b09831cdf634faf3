/**
 * Opening a connection to the store's database, with one clear line for each way it can fail.
 * The password goes only into mysql2's options: never into argv, a message or a log.
 */
import type { Connection, ConnectionOptions } from 'mysql2/promise';
import { CliError, DbAuthError } from '../errors.js';
import type { DbConnectionConfig } from './types.js';

export type { Connection };

export interface OpenConnectionOptions {
  /** database to USE; default cfg.database; null for none (e.g. to create it) */
  database?: string | null;
  multipleStatements?: boolean;
  /** ms, default 15 s */
  connectTimeout?: number;
}

/** `host:port` or `socket /path` — for messages (never includes credentials). */
export function describeServer(cfg: DbConnectionConfig): string {
  if (cfg.socketPath !== undefined) return `socket ${cfg.socketPath}`;
  const host = cfg.host ?? 'localhost';
  return `${host.includes(':') ? `[${host}]` : host}:${cfg.port ?? 3306}`;
}

/** mysql2 options for cfg (shared by every connection the dumper opens). */
export function connectionOptions(cfg: DbConnectionConfig, o: OpenConnectionOptions = {}): ConnectionOptions {
  const database = o.database === undefined ? cfg.database : o.database;
  return {
    ...(cfg.socketPath !== undefined
      ? { socketPath: cfg.socketPath }
      : { host: cfg.host ?? 'localhost', port: cfg.port ?? 3306 }),
    user: cfg.user,
    password: cfg.password,
    ...(database !== null && database !== '' ? { database } : {}),
    charset: 'utf8mb4_general_ci',
    multipleStatements: o.multipleStatements ?? false,
    connectTimeout: o.connectTimeout ?? 15000,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    decimalNumbers: false,
    timezone: 'Z',
  };
}

/**
 * The server went away under an open connection (killed, restarted, network cut). mysql2 reports it as
 * PROTOCOL_CONNECTION_LOST, a `fatal` socket error, or — for a command queued after that — a plain Error about
 * the "closed state".
 */
export function isConnectionLost(err: unknown): boolean {
  const e = err as { code?: unknown; fatal?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (e.code === 'PROTOCOL_CONNECTION_LOST' || e.fatal === true) return true;
  return typeof e.message === 'string' && /connection is in closed state/i.test(e.message);
}

/** Replace the password wherever it might appear (it should not, but a message is not worth a leak). */
function scrub(message: string, password: string): string {
  if (password.length < 3) return message;
  return message.split(password).join('***');
}

/** Map a mysql2 / socket error to one clear line naming the server, user or database. */
export function mapConnectError(err: unknown, cfg: DbConnectionConfig, database: string | null): Error {
  const e = err as { code?: string; errno?: number; message?: string; sqlMessage?: string };
  const server = describeServer(cfg);
  const detail = scrub(String(e.sqlMessage ?? e.message ?? err), cfg.password);
  switch (e.code) {
    case 'ER_ACCESS_DENIED_ERROR':
    case 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR':
    case 'ER_NOT_SUPPORTED_AUTH_MODE':
      return new DbAuthError(
        `Database server ${server} refused the credentials of user '${cfg.user}': ${detail}`,
        { cause: err },
      );
    case 'ER_DBACCESS_DENIED_ERROR':
      return new DbAuthError(
        `User '${cfg.user}' may not use database '${database ?? ''}' on ${server}: ${detail}`,
        { cause: err },
      );
    case 'ER_BAD_DB_ERROR':
      return new CliError(`Unknown database '${database ?? ''}' on ${server}`, { cause: err });
    case 'ECONNREFUSED':
      return new CliError(
        `Cannot reach the database server at ${server}: connection refused (is it running?)`,
        { cause: err },
      );
    case 'ENOENT':
      return new CliError(`Cannot reach the database server at ${server}: no such socket`, { cause: err });
    case 'EACCES':
      return new CliError(`Cannot reach the database server at ${server}: permission denied`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new CliError(`Cannot reach the database server at ${server}: unknown host`, { cause: err });
    case 'ETIMEDOUT':
    case 'ECONNRESET':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new CliError(`Cannot reach the database server at ${server}: ${e.code}`, { cause: err });
    case 'ER_CON_COUNT_ERROR':
    case 'ER_HOST_IS_BLOCKED':
    case 'ER_HOST_NOT_PRIVILEGED':
      return new CliError(`Database server ${server} refused the connection: ${detail}`, { cause: err });
    default:
      return new CliError(`Cannot connect to the database server at ${server}: ${detail}`, { cause: err });
  }
}

/** A mysql2/promise connection. Throws DbAuthError (exit 12) or CliError with one clear line. */
export async function openConnection(
  cfg: DbConnectionConfig,
  o: OpenConnectionOptions = {},
): Promise<Connection> {
  const database = o.database === undefined ? cfg.database : o.database;
  // mysql2 is ~90 modules (~200 ms of CPU at a start): loaded by the first connection, not by every command
  const { default: mysql } = await import('mysql2/promise');
  try {
    return await mysql.createConnection(connectionOptions(cfg, o));
  } catch (err) {
    throw mapConnectError(err, cfg, database);
  }
}
