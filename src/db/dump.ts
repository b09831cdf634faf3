/**
 * The database dumper: one consistent snapshot of the store's database written as a mysqldump-style SQL file
 * (optionally gzip) that the stock `mariadb` client loads into an empty database.
 *
 * Consistency: REPEATABLE READ + START TRANSACTION WITH CONSISTENT SNAPSHOT on the dump connection, so InnoDB
 * tables are read at one point in time without any lock that would block the store.
 * Memory: rows are streamed (mysql2 text protocol, raw buffers, no per-value JS strings) into 1 MiB output
 * chunks; the connection is paused while more than a few chunks wait for the disk.
 *
 * The parts: dump-schema.ts reads what to dump (objects, DDL, how each table's rows are selected), dump-sql.ts
 * builds the SQL text around the rows, dump-rows.ts streams the rows (sql-values.ts: the literals),
 * dump-output.ts writes the bytes. This file runs them in order on one connection.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import mysql, { type Connection } from 'mysql2/promise';
import { BACKUP_GZIP_LEVEL, ParallelGzipWriter } from '../archive/gzip-parallel.js';
import { CliError, InterruptedError, describeAbort, throwIfAborted } from '../errors.js';
import { noEvents, WarningCode, type EventSink } from '../events.js';
import { connectionOptions, describeServer, isConnectionLost, mapConnectError } from './connect.js';
import { CHUNK, Output } from './dump-output.js';
import { dumpSocket } from './dump-socket.js';
import { coreOf, dumpRows, type RowParser } from './dump-rows.js';
import { readSchema } from './dump-schema.js';
import {
  commentName,
  eventSql,
  footer,
  header,
  invalidViewSql,
  noRowsComment,
  routineSql,
  sequenceSql,
  tableHead,
  triggerSql,
  viewPlaceholders,
  viewSql,
} from './dump-sql.js';
import { quoteIdent } from './sql-values.js';
import { createStripMatcher } from './strip.js';
import { ContentHasher, type DbContentHashes } from './table-hash.js';
import type { FileSum } from '../fs/streaming-hash.js';
import { DumpHashes, type RowStream } from './dump-hashes.js';
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
  /**
   * compute the written file's SHA-256 (DumpResult.file) on the dump's hash worker, beside the tables' row
   * hashes: a plain file's chunks are hashed there without a copy (cheaper than a StreamingHash in onWritten)
   */
  hashFile?: boolean;
  /** which row parser reads the rows (default 'fast'; tests compare it with mysql2's own, 'mysql2') */
  rowParser?: RowParser;
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
  /** per-table hashes of what was dumped, for a selective rollback (table-hash.ts) */
  content?: DbContentHashes;
  /** the written file's SHA-256 and size (with `hashFile`) */
  file?: FileSum;
}

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

/** Session settings for reading: exact values, UTC timestamps, no statement timeout while we stream. */
export async function prepareDumpSession(conn: Connection): Promise<void> {
  // one round trip: the connection is paused while the disk catches up, so the server must not give up on us
  // meanwhile (net_*_timeout); max_statement_time exists on MariaDB only (a versioned comment elsewhere)
  await conn.query(
    "SET SESSION sql_mode = '', NAMES utf8mb4, SESSION time_zone = '+00:00', SESSION sql_quote_show_create = 1, " +
      'SESSION net_write_timeout = 3600, SESSION net_read_timeout = 3600 /*M!100108 , SESSION max_statement_time = 0 */',
  );
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
}

/** The dump's connection: reads into one reused buffer (dump-socket.ts). Errors as openConnection's. */
async function openDumpConnection(cfg: DbConnectionConfig): Promise<Connection> {
  try {
    return await mysql.createConnection({ ...connectionOptions(cfg), stream: () => dumpSocket(cfg) });
  } catch (err) {
    throw mapConnectError(err, cfg, cfg.database);
  }
}

export async function dumpDatabase(o: DumpOptions): Promise<DumpResult> {
  const emit = o.onEvent ?? noEvents;
  const stripDefiners = o.stripDefiners ?? true;
  const maxStmt = o.maxStatementBytes ?? CHUNK;
  const cfg = o.config;
  throwIfAborted(o.signal);

  // the hash worker starts while we connect and read the schema
  const hashes = new DumpHashes(o.hashFile === true);
  let conn: Connection;
  try {
    conn = await openDumpConnection(cfg);
  } catch (err) {
    await hashes.abandon();
    throw err;
  }
  let fh: FileHandle | null = null;
  let out: Output | null = null;
  // An abort is seen between statements (throwIfAborted) and, while rows stream, by dumpRows' own listener.
  try {
    await prepareDumpSession(conn);
    await conn.query('START TRANSACTION /*!40100 WITH CONSISTENT SNAPSHOT */, READ ONLY');
    const [vr] = await conn.query({ sql: 'SELECT VERSION(), @@max_allowed_packet', rowsAsArray: true });
    const version = (vr as unknown as (string | number | null)[][])[0];
    const serverVersion = String(version?.[0] ?? '');
    const maxPacket = Number(version?.[1] ?? 0) || 0;

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
    const onWritten = o.onWritten;
    const gz = o.compress
      ? new ParallelGzipWriter(fh, {
          level: o.gzipLevel ?? BACKUP_GZIP_LEVEL,
          ...(hashes.hashesFile || onWritten
            ? {
                onWritten: (b: Buffer) => {
                  onWritten?.(b);
                  if (hashes.hashesFile) hashes.written(b);
                },
              }
            : {}),
        })
      : null;
    // the per-table row hashes (SHA-256 of each table's row bytes), and the file's, are computed on a worker
    out = new Output(fh, gz, onWritten, hashes);

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

    for (const seq of schema.sequences) await out.bin(sequenceSql(seq));
    // the row stream the hasher opened for the table last given to it (ContentHasher takes a factory)
    let opened: RowStream | null = null;
    const hasher = new ContentHasher(maxStmt, () => (opened = hashes.open()));
    const takeOpened = (): RowStream | null => {
      const s = opened;
      opened = null;
      return s;
    };

    for (const t of schema.tables) {
      throwIfAborted(o.signal);
      const stripped = stripper.matches(t.name);
      const noOwnRows = t.engine !== null && NO_OWN_ROWS.has(t.engine.toUpperCase());
      takeOpened();
      const rowsTap = hasher.table(t, !stripped && !noOwnRows, out.position());
      const rowStream = takeOpened();
      if (rowsTap && !rowStream) throw new Error(`no row hash stream for table ${t.name}`);
      await out.bin(tableHead(t.name));
      await out.raw(t.create);
      await out.text(';\n\n');
      if (stripped) {
        result.strippedTables.push(t.name);
      } else if (noOwnRows) {
        await out.text(noRowsComment(t.name, t.engine ?? ''));
      } else {
        const output = out;
        const progress = (rows: number): void =>
          emit({
            type: 'progress',
            part: 'db',
            operation: 'backup',
            bytes: output.bytes + output.sink.len,
            table: t.name,
            rows,
          });
        progress(0);
        out.tap(rowStream ? rowStream.id : null);
        const rows = await dumpRows({
          conn,
          table: t,
          out,
          maxStatementBytes: maxStmt,
          signal: o.signal,
          onProgress: progress,
          maxPacket,
          onTooBig: (bytes) =>
            emit({
              type: 'warning',
              code: WarningCode.ROW_TOO_BIG,
              message: `Table ${t.name} has a row of ${bytes} bytes as SQL, more than the server's max_allowed_packet (${maxPacket} bytes): the dump loads only where max_allowed_packet is at least ${bytes}`,
            }),
          rowParser: o.rowParser,
        });
        out.tap(null);
        hasher.rows(rows);
        result.rows += rows;
        progress(rows);
      }
      hasher.triggersAt(out.position());
      for (const tr of t.triggers) await out.bin(triggerSql(tr, stripDefiners));
      hasher.tableEnd(out.position());
    }
    const tail = out.position();

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
        await out.bin(invalidViewSql(v, stripDefiners));
        continue;
      }
      await out.bin(viewSql(v, stripDefiners));
    }

    await conn.query('COMMIT');
    await out.text(footer());
    // every chunk written and handed to the hash worker: now the digests
    await out.finish();
    result.content = await hasher.finish(schema, tail);
    if (hashes.hashesFile) result.file = await hashes.fileSum();
    hashes.close();
    result.bytes = out.bytes;
    if (result.content.tail) result.content.tail.end = out.bytes;
    return result;
  } catch (err) {
    if (out) await out.abandon();
    await hashes.abandon();
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
