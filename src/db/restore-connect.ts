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

/** The parts of mysql2's callback connection and query command that queryRaw uses. */
interface CoreConnection {
  config: { compress?: boolean; debug?: unknown };
  sequenceId: number;
  stream: { cork?: () => void; uncork?: () => void };
  write(b: Buffer): void;
  writePacket(p: unknown): void;
  query(cmd: unknown): unknown;
  constructor: {
    createQuery?: (
      sql: string,
      values: unknown,
      cb: (err: unknown, res: unknown, fields: unknown) => void,
      config: unknown,
    ) => {
      start?: (packet: unknown, connection: CoreConnection) => unknown;
    };
  };
}

/** The largest payload of one protocol packet; a longer one continues in the next packet. */
const MAX_PAYLOAD = 0xffffff;
const COM_QUERY = 0x03;

/**
 * Sends bytes exactly as they are on a loader connection. The COM_QUERY packets are framed here from the
 * statement's own bytes (one writev, no copy): mysql2 would take a string and encode it into a new buffer, two
 * copies of every megabyte of rows. mysql2 still runs the command (its queue, sequence ids, the reply). Falls
 * back to mysql2's own path on a connection shape this does not expect (compression, debug, another version).
 */
export function queryRaw(conn: Connection, raw: Buffer | readonly Buffer[]): Promise<unknown> {
  const parts = Buffer.isBuffer(raw) ? [raw] : raw;
  const core = (conn as unknown as { connection?: CoreConnection }).connection;
  const create = core?.constructor.createQuery;
  if (
    !core ||
    typeof create !== 'function' ||
    core.config.compress ||
    core.config.debug ||
    typeof core.sequenceId !== 'number' ||
    typeof core.write !== 'function' ||
    typeof core.writePacket !== 'function'
  ) {
    return conn.query(Buffer.concat(parts).toString('latin1'));
  }
  return new Promise((resolve, reject) => {
    // resolves as mysql2/promise's query does: [rows or result, fields]
    const cmd = create(
      '',
      [],
      (err, res, fields) =>
        err ? reject(err instanceof Error ? err : new Error(sqlMessage(err))) : resolve([res, fields]),
      core.config,
    );
    const start = cmd.start;
    if (typeof start !== 'function') {
      resolve(conn.query(Buffer.concat(parts).toString('latin1')));
      return;
    }
    // mysql2's own start (options, timers, state) with its packet write replaced by the statement's packets
    cmd.start = (packet, connection) => {
      connection.writePacket = () => writeQuery(connection, parts);
      try {
        return start.call(cmd, packet, connection);
      } finally {
        delete (connection as Partial<CoreConnection>).writePacket;
      }
    };
    core.query(cmd);
  });
}

/** COM_QUERY with `parts` as its text, split into packets of at most 16 MiB - 1 as the protocol says. */
function writeQuery(core: CoreConnection, parts: readonly Buffer[]): void {
  let left = 1;
  for (const p of parts) left += p.length;
  const s = core.stream;
  const corked = typeof s.cork === 'function' && typeof s.uncork === 'function';
  if (corked) s.cork!();
  try {
    let pi = 0;
    let po = 0;
    let first = true;
    for (;;) {
      const len = Math.min(left, MAX_PAYLOAD);
      const h = Buffer.allocUnsafe(first ? 5 : 4);
      h[0] = len & 0xff;
      h[1] = (len >> 8) & 0xff;
      h[2] = (len >> 16) & 0xff;
      h[3] = core.sequenceId;
      core.sequenceId = (core.sequenceId + 1) & 0xff;
      let need = len;
      if (first) {
        h[4] = COM_QUERY;
        need--;
        first = false;
      }
      core.write(h);
      while (need > 0) {
        const p = parts[pi]!;
        const take = Math.min(need, p.length - po);
        core.write(take === p.length ? p : p.subarray(po, po + take));
        po += take;
        need -= take;
        if (po === p.length) {
          pi++;
          po = 0;
        }
      }
      left -= len;
      // a payload of exactly 16 MiB - 1 is followed by an empty packet: that one says the statement ended
      if (len < MAX_PAYLOAD) break;
    }
  } finally {
    if (corked) s.uncork!();
  }
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

  /** the kills started so far (see killAll) */
  private killing: Promise<void> = Promise.resolve();

  /**
   * Stops every statement and closes every connection, then waits until the server has ended those sessions: a
   * statement the server had already received (a CREATE TABLE, the end of an INSERT) still completes after our
   * end of the socket is gone, so whatever is cleaned up before that may come back. Never throws; waits at most
   * about KILL_SETTLE_MS (the server may be gone, or slow to roll a big statement back: the clean-up after it
   * lists what is still there).
   */
  killAll(): Promise<void> {
    return this.killThese([...this.conns]);
  }

  /** killAll for these connections only (the others stay open). */
  killThese(conns: readonly Connection[]): Promise<void> {
    for (const c of conns) this.conns.delete(c);
    const kill = this.killing.then(() => this.kill([...conns]));
    this.killing = kill;
    return kill;
  }

  /** Resolves when every kill started so far has ended (see killAll). */
  settled(): Promise<void> {
    return this.killing;
  }

  private async kill(conns: Connection[]): Promise<void> {
    if (conns.length === 0) return;
    const ids = conns.map((c) => Number(c.threadId)).filter((id) => Number.isSafeInteger(id) && id > 0);
    let killer: Connection | undefined;
    let gone = false;
    try {
      killer = await Promise.race([
        mysql.createConnection({
          ...connectionOptions(this.cfg, { database: null, connectTimeout: 3000 }),
        }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000).unref()),
      ]);
      killer.on('error', () => {});
      for (const id of ids) {
        await Promise.race([
          killer.query(`KILL QUERY ${id}`).catch(() => {}),
          new Promise<void>((r) => setTimeout(r, 2000).unref()),
        ]);
      }
      for (const c of conns) c.destroy();
      // a session ends once it has finished (or rolled back) what it was running and reads our closed socket
      const deadline = Date.now() + KILL_SETTLE_MS;
      while (!gone && Date.now() < deadline) {
        const [rows] = await killer.query(
          `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID IN (${ids.join(', ') || '0'})`,
        );
        gone = Number((rows as Array<{ n: unknown }>)[0]?.n) === 0;
        if (!gone) await new Promise<void>((r) => setTimeout(r, 50));
      }
    } catch {
      // the server may be gone: destroying our ends is all there is to do
    } finally {
      killer?.destroy();
      for (const c of conns) c.destroy();
    }
  }
}

/** How long a kill waits for the killed sessions to end on the server (a big INSERT's rollback takes a while). */
const KILL_SETTLE_MS = 20_000;

/** Bounded lock waits for every restore session (seconds). */
export async function boundLockWaits(conn: Connection, seconds: number): Promise<void> {
  const s = Math.max(1, Math.floor(seconds));
  await conn.query(`SET SESSION lock_wait_timeout = ${s}, innodb_lock_wait_timeout = ${s}`);
}
