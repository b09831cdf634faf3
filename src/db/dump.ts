/**
 * The database dumper: one consistent snapshot of the store's database written as a mysqldump-style SQL file
 * (optionally gzip) that the stock `mariadb` client loads into an empty database.
 *
 * Consistency: REPEATABLE READ + START TRANSACTION WITH CONSISTENT SNAPSHOT on the dump connection, so InnoDB
 * tables are read at one point in time without any lock that would block the store.
 * Memory: rows are streamed (mysql2 text protocol, raw buffers, no per-value JS strings) into 1 MiB output
 * chunks; the connection is paused while more than a few chunks wait for the disk.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Connection as CoreConnection } from 'mysql2';
import type { Connection } from 'mysql2/promise';
import { BACKUP_GZIP_LEVEL, ParallelGzipWriter } from '../archive/gzip-parallel.js';
import { CliError, InterruptedError, describeAbort, throwIfAborted } from '../errors.js';
import { noEvents, WarningCode, type EventSink } from '../events.js';
import { describeServer, isConnectionLost, openConnection } from './connect.js';
import {
  readSchema,
  type EventDef,
  type RoutineDef,
  type SchemaPlan,
  type TablePlan,
  type TriggerDef,
  type ViewDef,
} from './dump-schema.js';
import {
  ByteSink,
  countEscapes,
  quoteIdent,
  quoteString,
  writeBytes,
  writeHex,
  writeQuoted,
  writeRaw,
} from './sql-values.js';
import { createStripMatcher } from './strip.js';
import type { DbConnectionConfig } from './types.js';

export interface DumpOptions {
  config: DbConnectionConfig;
  /** file to write (already created, empty, by writeAtomic) */
  outFile: string;
  compress: boolean;
  /** table groups / names / wildcards whose data is left out (structure kept) */
  strip?: string[];
  /** remove DEFINER clauses so a user without SUPER can load the dump (default true) */
  stripDefiners?: boolean;
  signal?: AbortSignal;
  onEvent?: EventSink;
  /** bytes per multi-row INSERT before a new statement starts (default 1 MiB) */
  maxStatementBytes?: number;
  /** gzip level (default BACKUP_GZIP_LEVEL, 5) */
  gzipLevel?: number;
  /** called with each buffer right after it was written to the file, in file order (e.g. a StreamingHash) */
  onWritten?: (buf: Buffer) => void;
}

export interface DumpResult {
  tables: number;
  views: number;
  routines: number;
  triggers: number;
  events: number;
  sequences: number;
  rows: number;
  /** uncompressed bytes of SQL written */
  bytes: number;
  serverVersion: string;
  strippedTables: string[];
  /** working tables of a rollback (`__mbk_…`) found in the database and left out */
  skippedTables: string[];
}

const CHUNK = 1 << 20;

/**
 * Engines whose rows live elsewhere (MERGE: in its MyISAM tables; FEDERATED/CONNECT/SPIDER: in another server
 * or file) or nowhere (BLACKHOLE): their structure is dumped, their rows not (they would be loaded twice, or
 * into another server).
 */
const NO_OWN_ROWS = new Set([
  'MRG_MYISAM',
  'MRG_ISAM',
  'MERGE',
  'FEDERATED',
  'CONNECT',
  'SPIDER',
  'BLACKHOLE',
  'OQGRAPH',
]);

/** Knobs for tests and benchmarks. */
export const dumpTuning = {
  /** parse row packets ourselves (see dumpRows); false: take mysql2's row arrays */
  fastRowParser: true,
};
/** pause reading rows while this many bytes wait to be written */
const HIGH_WATER = 8 * CHUNK;

/** Where the SQL goes: the plain file, or the parallel gzip writer. Writes are serialised; backpressure by promise. */
class Output {
  readonly sink = new ByteSink(CHUNK + 65536);
  bytes = 0;
  #pending = 0;
  #tail: Promise<void> = Promise.resolve();
  #error: Error | undefined = undefined;
  #waiters: (() => void)[] = [];
  constructor(
    private readonly fh: FileHandle,
    private readonly gz: ParallelGzipWriter | null,
    private readonly onWritten: ((buf: Buffer) => void) | undefined,
  ) {}

  get error(): Error | undefined {
    return this.#error;
  }
  get congested(): boolean {
    return this.#pending >= HIGH_WATER;
  }

  /** Hand the sink's bytes to the writer if a chunk is full (or `force`). Synchronous: safe in row callbacks. */
  flush(force = false): void {
    if (this.sink.len === 0 || (!force && this.sink.len < CHUNK)) return;
    const buf = this.sink.take(CHUNK + 65536);
    this.bytes += buf.length;
    this.#pending += buf.length;
    this.#tail = this.#tail.then(async () => {
      if (this.#error !== undefined) return;
      try {
        if (this.gz) await this.gz.write(buf);
        else {
          await writeFully(this.fh, buf);
          this.onWritten?.(buf);
        }
      } catch (err) {
        this.#error = err instanceof Error ? err : new Error(`write failed: ${JSON.stringify(err)}`);
      } finally {
        this.#pending -= buf.length;
        if (this.#pending < HIGH_WATER / 2 || this.#error !== undefined) {
          const w = this.#waiters;
          this.#waiters = [];
          for (const f of w) f();
        }
      }
    });
  }

  /** Resolves once the backlog is below half the high-water mark. */
  drained(): Promise<void> {
    if (this.#pending < HIGH_WATER / 2 || this.#error !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async text(s: string): Promise<void> {
    this.sink.utf8(s);
    this.flush();
    if (this.congested) await this.drained();
    this.check();
  }
  /** a byte string (one char per byte) */
  async bin(s: string): Promise<void> {
    const n = s.length;
    this.sink.ensure(n);
    this.sink.len += this.sink.buf.write(s, this.sink.len, 'latin1');
    this.flush();
    if (this.congested) await this.drained();
    this.check();
  }
  async raw(b: Buffer): Promise<void> {
    this.sink.bytes(b);
    this.flush();
    if (this.congested) await this.drained();
    this.check();
  }
  check(): void {
    if (this.#error !== undefined) throw this.#error;
  }
  async finish(): Promise<void> {
    this.flush(true);
    await this.#tail;
    this.check();
    if (this.gz) await this.gz.end();
  }
  async abandon(): Promise<void> {
    await this.#tail.catch(() => {});
    if (this.gz) {
      this.gz.destroy();
      await this.gz.drain();
    }
  }
}

async function writeFully(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

/** DEFINER=`u`@`h` removed from a CREATE statement's head (the object then belongs to whoever loads it). */
export function stripDefiner(create: string): string {
  return create.replace(
    /^(CREATE\s+(?:OR\s+REPLACE\s+)?(?:ALGORITHM\s*=\s*\w+\s+)?)DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|[^\s@]+)(?:\s*@\s*(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|[^\s]+))?\s+/i,
    '$1',
  );
}

/**
 * Statements the stock client would alter (it strips comments outside strings, and treats `DELIMITER` lines
 * and backslash commands specially) are sent through EXECUTE IMMEDIATE with the text as a string literal.
 */
function needsImmediate(body: string): boolean {
  return /--|#|\/\*|\\|;;|^\s*delimiter\b|\r\n/im.test(body);
}

/**
 * Definitions are handled as byte strings (one char per byte, `latin1` decoding): SHOW CREATE gives each one in
 * its own character_set_client (a routine created over a latin1 connection comes back in latin1), and it is
 * written back byte for byte after `SET character_set_client` to that charset, as mariadb-dump does.
 * `b8` turns an ordinary JS string (names, comments) into the byte string of its UTF-8.
 */
function b8(s: string): string {
  return /^[\x00-\x7f]*$/.test(s) ? s : Buffer.from(s, 'utf8').toString('latin1');
}

function createStatement(create: Buffer, stripDefiners: boolean): string {
  const text = create.toString('latin1');
  return stripDefiners ? stripDefiner(text) : text;
}

/**
 * One statement (a byte string, without its `;`) as the stock client passes it on unchanged: the client drops a
 * CR that stands right before an LF anywhere in its input (it reads lines), even inside a quoted name, so a
 * statement holding CR LF goes through EXECUTE IMMEDIATE with its text as an escaped literal. `cond` wraps a
 * plain statement in a versioned comment.
 */
function stmt(sql: string, cond = ''): string {
  if (sql.includes('\r\n')) return `EXECUTE IMMEDIATE ${quoteBytes(sql)};\n`;
  return cond !== '' ? `/*!${cond} ${sql} */;\n` : `${sql};\n`;
}

/**
 * A table-level statement: always plain. Our restore recognises tables (and loads them under temporary names)
 * only in plain statements, so a CR LF in a table or column name is not wrapped: our restore loads it exactly,
 * the stock client drops the CR (as it does with mariadb-dump's files).
 */
function plain(sql: string): string {
  return `${sql};\n`;
}

/** A byte string as a quoted literal with the usual backslash escaping. */
function quoteBytes(text: string): string {
  const sink = new ByteSink(text.length * 2 + 16);
  writeQuoted(sink, Buffer.from(text, 'latin1'));
  return sink.buf.toString('latin1', 0, sink.len);
}

const NBE = /(^|,)NO_BACKSLASH_ESCAPES(,|$)/i;

/**
 * A string literal (byte string in, byte string out) that reads back as `text` under `sqlMode`, in charset
 * `cs`. With NO_BACKSLASH_ESCAPES a backslash is an ordinary character and only quotes are doubled (the stock
 * client, told the mode by the server, then treats backslashes in strings as ordinary too); a carriage return
 * would be lost there (the client drops CR before LF), so such text goes as a hex literal with its charset.
 * Otherwise the usual escaping.
 */
export function quoteStringFor(text: string, sqlMode: string, cs = 'utf8mb4'): string {
  if (!NBE.test(sqlMode)) return quoteBytes(text);
  if (/[\r\0\x1a]/.test(text)) return `_${cs} 0x${Buffer.from(text, 'latin1').toString('hex')}`;
  return `'${text.replace(/'/g, "''")}'`;
}

/** A compound statement (routine, trigger, event) as the stock client will pass it through untouched. */
function compound(text: string, sqlMode: string, cs: string): string {
  if (needsImmediate(text)) return `EXECUTE IMMEDIATE ${quoteStringFor(text, sqlMode, cs)};\n`;
  return `DELIMITER ;;\n${text} ;;\nDELIMITER ;\n`;
}

/** character_set_client/collation_connection for a stored object: its own (names checked: they are written raw). */
function clientCharset(charset: string, collation: string): { cs: string; coll: string } {
  const ok = (x: string): boolean => /^\w+$/.test(x);
  if (ok(charset) && ok(collation)) return { cs: charset, coll: collation };
  return { cs: 'utf8mb4', coll: 'utf8mb4_general_ci' };
}

function withContext(
  o: { sqlMode: string; cs: string; coll: string; timeZone?: string },
  body: string,
): string {
  let s = `/*!50003 SET @saved_sql_mode = @@sql_mode */;\n/*!50003 SET sql_mode = ${b8(quoteString(o.sqlMode))} */;\n`;
  s += `/*!50003 SET @saved_cs_client = @@character_set_client */;\n/*!50003 SET @saved_col_connection = @@collation_connection */;\n`;
  s += `/*!50003 SET character_set_client = ${o.cs} */;\n/*!50003 SET collation_connection = ${o.coll} */;\n`;
  if (o.timeZone !== undefined)
    s += `/*!50106 SET @save_time_zone = @@TIME_ZONE */;\n/*!50106 SET TIME_ZONE = ${b8(quoteString(o.timeZone))} */;\n`;
  s += body;
  if (o.timeZone !== undefined) s += `/*!50106 SET TIME_ZONE = @save_time_zone */;\n`;
  s += `/*!50003 SET sql_mode = @saved_sql_mode */;\n/*!50003 SET character_set_client = @saved_cs_client */;\n/*!50003 SET collation_connection = @saved_col_connection */;\n`;
  return s;
}

/** Characters that end a `-- ` comment line for some reader (the stock client splits on LF; others on CR, NEL, LS, PS). */
const LINE_BREAKING = /[\x00-\x1f\x7f\u0085\u2028\u2029]/;

/**
 * Text for a `-- ` comment line that no character of it can leave: control and line-breaking characters are
 * written as JSON escapes (the name is then shown as a JSON string), anything else as is.
 */
export function commentText(text: string): string {
  return LINE_BREAKING.test(text) ? JSON.stringify(text) : text;
}

/** A name for a `-- ` comment line: `backquoted` when plain, a JSON string when it holds line breaks or controls. */
export function commentName(name: string): string {
  return LINE_BREAKING.test(name) ? JSON.stringify(name) : quoteIdent(name);
}

/** The `Database:` value of the header: raw when plain, else a JSON string (see dumpedDatabaseFromHeader). */
export function headerDatabase(name: string): string {
  return LINE_BREAKING.test(name) || /^["\s]|\s$/.test(name) || name.includes('\\')
    ? JSON.stringify(name)
    : name;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}
function utcStamp(d = new Date()): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

function header(cfg: DbConnectionConfig, serverVersion: string): string {
  return `-- magebackup dump of database ${commentName(cfg.database)}
-- Host: ${commentText(describeServer(cfg))}    Database: ${headerDatabase(cfg.database)}
-- ------------------------------------------------------
-- Server version\t${commentText(serverVersion)}

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;
/*!40101 SET @OLD_AUTOCOMMIT=@@AUTOCOMMIT, AUTOCOMMIT=0 */;

`;
}

const FOOTER = `/*!40101 SET AUTOCOMMIT=@OLD_AUTOCOMMIT */;
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

`;

/** Session settings for reading: exact values, UTC timestamps, no statement timeout while we stream. */
export async function prepareDumpSession(conn: Connection): Promise<void> {
  await conn.query("SET SESSION sql_mode = ''");
  await conn.query('SET NAMES utf8mb4');
  await conn.query("SET SESSION time_zone = '+00:00'");
  await conn.query('SET SESSION sql_quote_show_create = 1');
  // the connection is paused while the disk catches up: the server must not give up on us meanwhile
  await conn.query('SET SESSION net_write_timeout = 3600, SESSION net_read_timeout = 3600');
  await conn.query('SET SESSION max_statement_time = 0').catch(() => {}); // MariaDB only
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
}

export async function dumpDatabase(o: DumpOptions): Promise<DumpResult> {
  const emit = o.onEvent ?? noEvents;
  const stripDefiners = o.stripDefiners ?? true;
  const maxStmt = o.maxStatementBytes ?? CHUNK;
  const cfg = o.config;
  throwIfAborted(o.signal);

  const conn = await openConnection(cfg);
  let fh: FileHandle | null = null;
  let out: Output | null = null;
  // An abort is seen between statements (throwIfAborted) and, while rows stream, by dumpRows' own listener.
  try {
    await prepareDumpSession(conn);
    await conn.query('START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */, READ ONLY');
    const [vr] = await conn.query({ sql: 'SELECT VERSION()', rowsAsArray: true });
    const serverVersion = String((vr as unknown as string[][])[0]?.[0] ?? '');
    const [pr] = await conn.query({ sql: 'SELECT @@max_allowed_packet', rowsAsArray: true });
    const maxPacket = Number((pr as unknown as unknown[][])[0]?.[0] ?? 0) || 0;

    const schema = await readSchema(conn, cfg.database);
    throwIfAborted(o.signal);
    if (schema.skipped.length > 0) {
      emit({
        type: 'warning',
        code: WarningCode.DB_WORK_TABLES,
        message: `Left out of the dump: ${schema.skipped.length} working table(s) of a rollback that is running or was interrupted (${schema.skipped.map(commentName).join(', ')}); they are not store data`,
      });
    }
    const stripper = createStripMatcher(o.strip ?? [], cfg.tablePrefix);

    fh = await fsp.open(o.outFile, 'w', 0o600);
    const gz = o.compress
      ? new ParallelGzipWriter(fh, {
          level: o.gzipLevel ?? BACKUP_GZIP_LEVEL,
          ...(o.onWritten ? { onWritten: o.onWritten } : {}),
        })
      : null;
    out = new Output(fh, gz, o.onWritten);

    await out.text(header(cfg, serverVersion));
    const result: DumpResult = {
      tables: schema.tables.length,
      views: schema.views.length,
      routines: schema.routines.length,
      triggers: schema.tables.reduce((n, t) => n + t.triggers.length, 0),
      events: schema.events.length,
      sequences: schema.sequences.length,
      rows: 0,
      bytes: 0,
      serverVersion,
      strippedTables: [],
      skippedTables: schema.skipped,
    };

    for (const seq of schema.sequences) {
      await out.bin(
        b8(`--\n-- Sequence structure for ${commentName(seq.name)}\n--\n\n`) +
          plain(b8(`DROP TABLE IF EXISTS ${quoteIdent(seq.name)}`)) +
          plain(seq.create.toString('latin1')) +
          plain(
            b8(
              `DO SETVAL(${quoteIdent(seq.name)}, ${/^-?\d+$/.test(seq.next) ? seq.next : quoteString(seq.next)}, 0)`,
            ),
          ) +
          '\n',
      );
    }

    for (const t of schema.tables) {
      throwIfAborted(o.signal);
      const stripped = stripper.matches(t.name);
      await out.bin(
        b8(`--\n-- Table structure for table ${commentName(t.name)}\n--\n\n`) +
          plain(b8(`DROP TABLE IF EXISTS ${quoteIdent(t.name)}`)),
      );
      await out.raw(t.create);
      await out.text(';\n\n');
      if (stripped) {
        result.strippedTables.push(t.name);
      } else if (t.engine !== null && NO_OWN_ROWS.has(t.engine.toUpperCase())) {
        await out.text(
          `-- No data for ${commentName(t.name)}: engine ${commentText(t.engine)} keeps no rows of its own\n\n`,
        );
      } else {
        emit({
          type: 'progress',
          part: 'db',
          operation: 'backup',
          bytes: out.bytes + out.sink.len,
          table: t.name,
          rows: 0,
        });
        const rows = await dumpRows(
          conn,
          t,
          out,
          maxStmt,
          o.signal,
          (rowsSoFar) =>
            emit({
              type: 'progress',
              part: 'db',
              operation: 'backup',
              bytes: out!.bytes + out!.sink.len,
              table: t.name,
              rows: rowsSoFar,
            }),
          maxPacket,
          (bytes) =>
            emit({
              type: 'warning',
              code: WarningCode.ROW_TOO_BIG,
              message: `Table ${t.name} has a row of ${bytes} bytes as SQL, more than the server's max_allowed_packet (${maxPacket} bytes): the dump loads only where max_allowed_packet is at least ${bytes}`,
            }),
        );
        result.rows += rows;
        emit({
          type: 'progress',
          part: 'db',
          operation: 'backup',
          bytes: out.bytes + out.sink.len,
          table: t.name,
          rows,
        });
      }
      for (const tr of t.triggers) await out.bin(triggerSql(tr, stripDefiners));
    }

    if (schema.views.length > 0) await out.bin(viewPlaceholders(schema.views));
    for (const e of schema.events) await out.bin(eventSql(e, stripDefiners));
    for (const r of schema.routines) await out.bin(routineSql(r, stripDefiners));
    for (const v of schema.views) {
      if (v.columns.length === 0) {
        // a view over a dropped table or column cannot be created: keep its text as a comment, say so
        emit({
          type: 'warning',
          code: 'INVALID_VIEW',
          message: `View ${v.name} references a table or column that no longer exists; its definition is kept in the dump as a comment only`,
        });
        const text = createStatement(v.create, stripDefiners);
        await out.bin(
          b8(`--\n-- Invalid view ${commentName(v.name)} (not created):\n`) +
            text.replace(/^/gm, '-- ') +
            b8(`\n--\n`) +
            stmt(b8(`DROP VIEW IF EXISTS ${quoteIdent(v.name)}`), '50001') +
            '\n',
        );
        continue;
      }
      await out.bin(viewSql(v, stripDefiners));
    }

    await conn.query('COMMIT');
    await out.text(FOOTER + `-- Dump completed on ${utcStamp()}\n`);
    await out.finish();
    result.bytes = out.bytes;
    return result;
  } catch (err) {
    if (out) await out.abandon();
    if (o.signal?.aborted) throw new InterruptedError(describeAbort(o.signal.reason), { cause: err });
    throw mapDumpError(err, cfg);
  } finally {
    if (fh) await fh.close().catch(() => {});
    if (!o.signal?.aborted) await conn.end().catch(() => coreOf(conn).destroy());
    else coreOf(conn).destroy();
  }
}

function mapDumpError(err: unknown, cfg: DbConnectionConfig): unknown {
  if (err instanceof CliError) return err;
  if (isConnectionLost(err)) {
    return new CliError(
      `Database dump of ${quoteIdent(cfg.database)} on ${describeServer(cfg)} failed: the connection to the server was lost (did it stop or restart?)`,
      { cause: err },
    );
  }
  const e = err as { code?: string; sqlMessage?: string; message?: string };
  if (typeof e?.code === 'string' && (e.code.startsWith('ER_') || e.code === 'PROTOCOL_CONNECTION_LOST')) {
    return new CliError(
      `Database dump of ${quoteIdent(cfg.database)} on ${describeServer(cfg)} failed: ${e.sqlMessage ?? e.message ?? e.code}`,
      {
        cause: err,
      },
    );
  }
  return err;
}

function triggerSql(tr: TriggerDef, stripDefiners: boolean): string {
  const text = createStatement(tr.create, stripDefiners);
  const { cs, coll } = clientCharset(tr.charset, tr.collation);
  return withContext({ sqlMode: tr.sqlMode, cs, coll }, compound(text, tr.sqlMode, cs)) + '\n';
}

const ROUTINE_LABEL: Record<RoutineDef['type'], string> = {
  FUNCTION: 'Function',
  PROCEDURE: 'Procedure',
  PACKAGE: 'Package',
  'PACKAGE BODY': 'Package body',
};

function routineSql(r: RoutineDef, stripDefiners: boolean): string {
  const text = createStatement(r.create, stripDefiners);
  const { cs, coll } = clientCharset(r.charset, r.collation);
  const head = b8(`--\n-- ${ROUTINE_LABEL[r.type]} ${commentName(r.name)}\n--\n\n`);
  // packages exist only in their (Oracle) sql_mode: dropped under it; DROP PACKAGE drops the body too
  if (r.type === 'PACKAGE' || r.type === 'PACKAGE BODY') {
    const drop =
      r.type === 'PACKAGE' ? stmt(b8(`DROP PACKAGE IF EXISTS ${quoteIdent(r.name)}`), '50003') : '';
    return head + withContext({ sqlMode: r.sqlMode, cs, coll }, drop + compound(text, r.sqlMode, cs)) + '\n';
  }
  return (
    head +
    stmt(b8(`DROP ${r.type} IF EXISTS ${quoteIdent(r.name)}`), '50003') +
    withContext({ sqlMode: r.sqlMode, cs, coll }, compound(text, r.sqlMode, cs)) +
    '\n'
  );
}

function eventSql(e: EventDef, stripDefiners: boolean): string {
  const text = createStatement(e.create, stripDefiners);
  const { cs, coll } = clientCharset(e.charset, e.collation);
  return (
    b8(`--\n-- Event ${commentName(e.name)}\n--\n\n`) +
    stmt(b8(`DROP EVENT IF EXISTS ${quoteIdent(e.name)}`), '50106') +
    withContext({ sqlMode: e.sqlMode, cs, coll, timeZone: e.timeZone }, compound(text, e.sqlMode, cs)) +
    '\n'
  );
}

/** Stand-ins with the right columns, so anything created before the final views can refer to them. */
function viewPlaceholders(views: ViewDef[]): string {
  let s = '--\n-- Temporary view structures\n--\n\n';
  for (const v of [...views].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const cols = v.columns.length > 0 ? v.columns.map((c) => `1 AS ${quoteIdent(c)}`).join(', ') : '1 AS `1`';
    s +=
      stmt(b8(`DROP VIEW IF EXISTS ${quoteIdent(v.name)}`), '50001') +
      stmt(b8(`CREATE VIEW ${quoteIdent(v.name)} AS SELECT ${cols}`), '50001');
  }
  return s + '\n';
}

/** The final view (byte string): created under the header's sql_mode, in the view's own character_set_client. */
function viewSql(v: ViewDef, stripDefiners: boolean): string {
  const text = createStatement(v.create, stripDefiners);
  const { cs, coll } = clientCharset(v.charset, v.collation);
  return (
    b8(`--\n-- Final view structure for view ${commentName(v.name)}\n--\n\n`) +
    stmt(b8(`DROP VIEW IF EXISTS ${quoteIdent(v.name)}`), '50001') +
    `/*!50001 SET @saved_cs_client = @@character_set_client */;\n/*!50001 SET @saved_col_connection = @@collation_connection */;\n` +
    `/*!50001 SET character_set_client = ${cs} */;\n/*!50001 SET collation_connection = ${coll} */;\n` +
    `${needsImmediate(text) ? `EXECUTE IMMEDIATE ${quoteBytes(text)}` : text};\n` +
    `/*!50001 SET character_set_client = @saved_cs_client */;\n/*!50001 SET collation_connection = @saved_col_connection */;\n\n`
  );
}

const NULL_BYTES = Buffer.from('NULL');

/** The callback-style connection under a mysql2/promise one (streaming, pause/resume, destroy). */
export function coreOf(conn: Connection): CoreConnection {
  return (conn as unknown as { connection: CoreConnection }).connection;
}

/** What the fast row parser hands to mysql2 instead of a row array (it has already written the row). */
const WRITTEN = Symbol('row written');

interface RawPacket {
  buffer: Buffer;
  offset: number;
  end: number;
}

/**
 * Stream one table's rows into bounded multi-row INSERTs. Returns the row count.
 *
 * Speed: mysql2 would build one Buffer per field per row; instead its row parser is replaced, for this query
 * only, by one that reads the length-coded fields straight from the packet and writes the literals into the
 * output chunk (no per-value allocation). If a mysql2 version does not call the replacement, rows arrive as
 * arrays of Buffers (typeCast: false) and take the slower path: same output.
 * Backpressure: the connection's socket is paused while the output is congested.
 */
async function dumpRows(
  conn: Connection,
  t: TablePlan,
  out: Output,
  maxStmt: number,
  signal: AbortSignal | undefined,
  progress: (rows: number) => void,
  maxPacket = 0,
  onTooBig: (statementBytes: number) => void = () => {},
): Promise<number> {
  if (t.columns.length === 0) return 0;
  const table = quoteIdent(t.name);
  const insertHead = Buffer.from(`INSERT INTO ${table}${t.columnList} VALUES `, 'utf8');
  const sql = `SELECT /*!40001 SQL_NO_CACHE */ ${t.selectList.join(', ')} FROM ${table}${t.history ? ' FOR SYSTEM_TIME ALL' : ''}`;
  const ncols = t.columns.length;
  const nfields = t.selectList.length;
  const kinds = Int8Array.from(
    t.columns.map((c) =>
      c.kind === 'number' ? 0 : c.kind === 'string' ? (c.plainText ? 4 : 1) : c.kind === 'hex' ? 2 : 3,
    ),
  );
  const enumAt = Int32Array.from(t.columns.map((c) => c.enumIndexAt ?? -1));
  const hasEnumHelpers = enumAt.some((x) => x >= 0);
  const sink = out.sink;
  const endStatement = (): void => sink.ascii(';\n');
  const core = coreOf(conn);
  // field i of the current row is srcs[i][starts[i], ends[i]), or NULL when starts[i] < 0
  const starts = new Float64Array(nfields);
  const ends = new Float64Array(nfields);
  const srcs: Buffer[] = new Array<Buffer>(nfields);
  // binary values: how many of their bytes need escaping (decides between _binary'...' and 0x...)
  const escapes = new Float64Array(nfields);
  let maxRowBytes = 0;

  let rows = 0;
  let stmtBytes = 0;
  let lastProgress = Date.now();
  await out.text(
    `--\n-- Dumping data for table ${commentName(t.name)}\n--\n\n/*!40000 ALTER TABLE ${table} DISABLE KEYS */;\n`,
  );
  // history rows keep their row start/end times (MariaDB 10.11+)
  if (t.history) await out.text('/*!101100 SET @@session.system_versioning_insert_history = 1 */;\n');

  const isEnumErrorValue = (i: number): boolean => {
    const at = enumAt[i]!;
    if (at < 0 || starts[at]! < 0) return false;
    const src = srcs[at]!;
    return ends[at]! - starts[at]! === 1 && src[starts[at]!] === 0x30; // `col+0` is "0"
  };

  const writeRow = (): void => {
    let est = ncols + 2;
    for (let i = 0; i < ncols; i++) {
      const st = starts[i]!;
      if (st < 0) est += 4;
      else {
        const k = kinds[i];
        const n = ends[i]! - st;
        if (k === 3) {
          const e = countEscapes(srcs[i]!, st, ends[i]);
          escapes[i] = e;
          est += n === 0 ? 2 : Math.min(2 * n + 2, n + e + 9);
        } else est += k === 2 ? n * 2 + 2 : n + 2;
      }
    }
    if (stmtBytes > 0 && stmtBytes + est > maxStmt) {
      endStatement();
      stmtBytes = 0;
    }
    sink.ensure(est + insertHead.length + 8);
    const before = sink.len;
    if (stmtBytes === 0) sink.bytes(insertHead);
    else sink.buf[sink.len++] = 0x2c;
    const rowStart = sink.len;
    sink.buf[sink.len++] = 0x28;
    for (let i = 0; i < ncols; i++) {
      if (i > 0) sink.byte(0x2c);
      const st = starts[i]!;
      if (st < 0) {
        sink.bytes(NULL_BYTES);
        continue;
      }
      const k = kinds[i];
      if (k === 0) writeRaw(sink, srcs[i]!, st, ends[i]);
      else if (k === 1) {
        if (hasEnumHelpers && ends[i] === st && isEnumErrorValue(i)) sink.byte(0x30);
        else writeQuoted(sink, srcs[i]!, st, ends[i]);
      } else if (k === 4) {
        sink.buf[sink.len++] = 0x27;
        writeRaw(sink, srcs[i]!, st, ends[i]);
        sink.buf[sink.len++] = 0x27;
      } else if (k === 3) writeBytes(sink, srcs[i]!, st, ends[i], escapes[i]);
      else writeHex(sink, srcs[i]!, st, ends[i]);
    }
    sink.byte(0x29);
    stmtBytes += sink.len - before;
    if (sink.len - rowStart > maxRowBytes) maxRowBytes = sink.len - rowStart;
  };

  const fastParser = {
    next(packet: RawPacket): symbol {
      const buf = packet.buffer;
      let p = packet.offset;
      for (let i = 0; i < nfields; i++) {
        const b0 = buf[p]!;
        let len: number;
        if (b0 < 0xfb) {
          len = b0;
          p += 1;
        } else if (b0 === 0xfb) {
          starts[i] = -1;
          p += 1;
          continue;
        } else if (b0 === 0xfc) {
          len = buf[p + 1]! | (buf[p + 2]! << 8);
          p += 3;
        } else if (b0 === 0xfd) {
          len = buf[p + 1]! | (buf[p + 2]! << 8) | (buf[p + 3]! << 16);
          p += 4;
        } else {
          len = buf.readUInt32LE(p + 1) + buf.readUInt32LE(p + 5) * 0x100000000;
          p += 9;
        }
        srcs[i] = buf;
        starts[i] = p;
        ends[i] = p + len;
        p += len;
      }
      if (p > packet.end) throw new Error(`malformed row packet for table ${t.name}`);
      writeRow();
      return WRITTEN;
    },
  };

  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const fail = (err: Error): void => {
      if (failed) return;
      failed = true;
      signal?.removeEventListener('abort', onAbort);
      core.off('error', onConnectionError);
      reject(err);
    };
    // A server that dies mid-stream is reported to the connection, not to a query without a callback: without
    // this listener the promise never settled, the event loop emptied, and the run exited 0 leaving its state.
    const onConnectionError = (err: Error): void => fail(err);
    core.once('error', onConnectionError);
    // stop the SELECT at once: destroying the connection is the only way to end a streaming result early
    const onAbort = (): void => {
      core.destroy();
      fail(new InterruptedError(describeAbort(signal?.reason)));
    };
    if (signal?.aborted) {
      fail(new InterruptedError(describeAbort(signal.reason)));
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    const query = core.query({ sql, rowsAsArray: true, typeCast: false });
    // mysql2 assigns its generated parser to _rowParser once the column definitions are in; keep ours instead
    if (dumpTuning.fastRowParser) {
      Object.defineProperty(query, '_rowParser', {
        configurable: true,
        get: () => fastParser,
        set: () => {},
      });
    }
    query.on('error', (err: Error) => fail(err));
    query.on('result', (row: unknown) => {
      if (failed) return;
      if (row !== WRITTEN) {
        const r = row as (Buffer | null)[];
        for (let i = 0; i < nfields; i++) {
          const v = r[i] ?? null;
          if (v === null) starts[i] = -1;
          else {
            srcs[i] = v;
            starts[i] = 0;
            ends[i] = v.length;
          }
        }
        writeRow();
      }
      rows++;
      if (out.sink.len >= CHUNK) {
        out.flush();
        if (out.error !== undefined) {
          core.destroy();
          fail(out.error);
          return;
        }
        if (out.congested) {
          core.pause();
          void out.drained().then(() => core.resume());
        }
      }
      if ((rows & 1023) === 0) {
        if (signal?.aborted) {
          core.destroy();
          fail(new InterruptedError(describeAbort(signal.reason)));
          return;
        }
        const now = Date.now();
        if (now - lastProgress >= 500) {
          lastProgress = now;
          progress(rows);
        }
      }
    });
    query.on('end', () => {
      signal?.removeEventListener('abort', onAbort);
      core.off('error', onConnectionError);
      if (!failed) resolve();
    });
  });
  if (stmtBytes > 0) endStatement();
  // a row alone in its INSERT (head, row, and the command byte) must fit the server's packet limit
  const rowStatement = maxRowBytes + insertHead.length + 1;
  if (maxPacket > 0 && rowStatement > maxPacket) onTooBig(rowStatement);
  if (t.history) await out.text('/*!101100 SET @@session.system_versioning_insert_history = 0 */;\n');
  await out.text(`/*!40000 ALTER TABLE ${table} ENABLE KEYS */;\nCOMMIT;\n\n`);
  return rows;
}

export type { SchemaPlan };
