/**
 * One table's rows, streamed from the server into bounded multi-row INSERTs.
 *
 * Speed: mysql2 would build one Buffer per field per row; instead its row parser is replaced, for this query
 * only, by one that reads the length-coded fields straight from the text-protocol packet and writes the literals
 * into the output chunk (no per-value allocation). This hooks a private part of mysql2 (`Query._rowParser`): if a
 * mysql2 version does not call the replacement, rows arrive as arrays of Buffers (typeCast: false) and take the
 * slower path, with the same output (a test compares both paths).
 * During the row phase the socket's chunks do not even go through mysql2's packet framing and dispatch (a
 * packet object, the command state machine and an event per row: half our CPU on narrow tables): a framer
 * (installRowFramer) takes each whole row packet out of the chunk itself; anything else (the end of the result,
 * an error, a packet split across chunks or over 16 MiB) goes to mysql2's own parser, unchanged.
 * Backpressure: the connection's socket is paused while the output is congested.
 *
 * Why one file over 400 lines: dumpRows and its framer share the row writer's buffer and the pause/resume of the
 * socket; apart they would pass that state back and forth on the hottest path of a dump.
 */
import type { Connection as CoreConnection } from 'mysql2';
import type { Connection } from 'mysql2/promise';
import { InterruptedError, describeAbort } from '../errors.js';
import { CHUNK, type RowOutput } from './dump-output.js';
import type { TablePlan } from './dump-schema.js';
import { directReadsOf } from './dump-socket.js';
import { rowsHead, rowsTail } from './dump-sql.js';
import { escapeInto, quoteIdent, viewOf, writeBytes, writeHex, writeQuoted, writeRaw } from './sql-values.js';

/** Which row parser reads the result: ours (default), or mysql2's row arrays (for tests comparing the two). */
export type RowParser = 'fast' | 'mysql2';

export interface DumpRowsOptions {
  conn: Connection;
  table: TablePlan;
  out: RowOutput;
  /** bytes per multi-row INSERT before a new statement starts */
  maxStatementBytes: number;
  signal?: AbortSignal | undefined;
  /** rows so far, about twice a second */
  onProgress: (rows: number) => void;
  /** the server's max_allowed_packet (0: unknown) */
  maxPacket: number;
  /** a row alone in its INSERT is bigger than maxPacket: the statement's size */
  onTooBig: (statementBytes: number) => void;
  rowParser?: RowParser | undefined;
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

// how a column's bytes become a literal (ColumnPlan.kind, with dates and times apart: they never need escaping)
const NUMBER = 0;
const STRING = 1;
const HEX = 2;
const BYTES = 3;
const PLAIN_TEXT = 4;

/** Rows whose packet is bigger than this take the exact-estimate path (a bound of twice the packet would be too generous). */
const FUSED_MAX_PACKET = 256 * 1024;

/**
 * Streams one table's rows into bounded multi-row INSERTs (with the table's data head and tail). Returns the row
 * count. The dump's encoder, and the live tables' too (table-hash.ts hashes this output for a selective rollback):
 * the same table, rows and maxStatementBytes give the same bytes.
 */
export async function dumpRows(o: DumpRowsOptions): Promise<number> {
  const { conn, table: t, out, signal } = o;
  const maxStmt = o.maxStatementBytes;
  if (t.columns.length === 0) return 0;
  const table = quoteIdent(t.name);
  const insertHead = Buffer.from(`INSERT INTO ${table}${t.columnList} VALUES `, 'utf8');
  const sql = `SELECT /*!40001 SQL_NO_CACHE */ ${t.selectList.join(', ')} FROM ${table}${t.history ? ' FOR SYSTEM_TIME ALL' : ''}`;
  const ncols = t.columns.length;
  const nfields = t.selectList.length;
  const kinds = Int8Array.from(
    t.columns.map((c) =>
      c.kind === 'number'
        ? NUMBER
        : c.kind === 'string'
          ? c.plainText
            ? PLAIN_TEXT
            : STRING
          : c.kind === 'hex'
            ? HEX
            : BYTES,
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
  let maxRowBytes = 0;

  let rows = 0;
  let stmtBytes = 0;
  let lastProgress = Date.now();
  await out.text(rowsHead(t.name, t.history !== undefined));

  const isEnumErrorValue = (i: number): boolean => {
    const at = enumAt[i]!;
    if (at < 0 || starts[at]! < 0) return false;
    const src = srcs[at]!;
    return ends[at]! - starts[at]! === 1 && src[starts[at]!] === 0x30; // `col+0` is "0"
  };

  const headLen = insertHead.length;

  /**
   * The row just written (from rowAt: `,` or the INSERT head, then from valuesAt: `(...)`, up to sink.len) joins
   * the current statement, or, when the statement would grow past maxStmt, starts the next one: it is moved right
   * to make room for `;\n` and a new INSERT head in place of its `,`.
   */
  const finishRow = (rowAt: number, valuesAt: number, fresh: boolean): void => {
    const rowLen = sink.len - valuesAt;
    if (!fresh && stmtBytes + 1 + rowLen > maxStmt) {
      const shift = headLen + 1;
      sink.ensure(shift);
      const ob = sink.buf;
      ob.copyWithin(valuesAt + shift, valuesAt, sink.len);
      ob[rowAt] = 0x3b;
      ob[rowAt + 1] = 0x0a;
      ob.set(insertHead, rowAt + 2);
      sink.len += shift;
      stmtBytes = headLen + rowLen;
    } else stmtBytes += sink.len - rowAt;
    if (rowLen > maxRowBytes) maxRowBytes = rowLen;
  };

  /** A row from the field positions (tables with enum helpers, rows of big values, mysql2's row arrays). */
  const writeRow = (): void => {
    const fresh = stmtBytes === 0;
    const rowAt = sink.len;
    if (fresh) sink.bytes(insertHead);
    else sink.byte(0x2c);
    const valuesAt = sink.len;
    sink.byte(0x28);
    for (let i = 0; i < ncols; i++) {
      if (i > 0) sink.byte(0x2c);
      const st = starts[i]!;
      if (st < 0) {
        sink.bytes(NULL_BYTES);
        continue;
      }
      const k = kinds[i];
      const src = srcs[i]!;
      const en = ends[i];
      if (k === NUMBER) writeRaw(sink, src, st, en);
      else if (k === STRING) {
        if (hasEnumHelpers && en === st && isEnumErrorValue(i)) sink.byte(0x30);
        else writeQuoted(sink, src, st, en);
      } else if (k === PLAIN_TEXT) {
        sink.byte(0x27);
        writeRaw(sink, src, st, en);
        sink.byte(0x27);
      } else if (k === BYTES) writeBytes(sink, src, st, en);
      else writeHex(sink, src, st, en);
    }
    sink.byte(0x29);
    finishRow(rowAt, valuesAt, fresh);
  };

  // DataViews of the packet's buffer (a socket read) and of the sink's, for escapeInto: made when they change
  let srcOf: Buffer | null = null;
  let srcView: DataView = new DataView(new ArrayBuffer(0));
  let obOf: Buffer | null = null;
  let obView = srcView;

  /** output bytes a row can take beyond twice its packet (each value: ≤ 2n+3 out for ≥ n+1 in; NULL 5 for 1) */
  const rowSlack = 5 * ncols + headLen + 8;

  /**
   * The hot path, for rows of tables without enum helpers: one pass over the packet, each value's literal written
   * as its length-coded field is read, one capacity check per row.
   */
  const writePacketRow = (packet: RawPacket): void => {
    const src = packet.buffer;
    if (src !== srcOf) {
      srcOf = src;
      srcView = viewOf(src);
    }
    let p = packet.offset;
    const pend = packet.end;
    const need = 2 * (pend - p) + rowSlack;
    if (sink.len + need > sink.buf.length) sink.ensure(need);
    let ob = sink.buf;
    let o = sink.len;
    const rowAt = o;
    const fresh = stmtBytes === 0;
    if (fresh) {
      ob.set(insertHead, o);
      o += headLen;
    } else ob[o++] = 0x2c;
    const valuesAt = o;
    ob[o++] = 0x28;
    for (let i = 0; i < ncols; i++) {
      if (i > 0) ob[o++] = 0x2c;
      let len = src[p++]!;
      if (len >= 0xfb) {
        if (len === 0xfb) {
          ob[o++] = 0x4e; // NULL
          ob[o++] = 0x55;
          ob[o++] = 0x4c;
          ob[o++] = 0x4c;
          continue;
        }
        if (len === 0xfc) {
          len = src[p]! | (src[p + 1]! << 8);
          p += 2;
        } else if (len === 0xfd) {
          len = src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16);
          p += 3;
        } else {
          len = src.readUInt32LE(p) + src.readUInt32LE(p + 4) * 0x100000000;
          p += 8;
        }
      }
      const e = p + len;
      if (e > pend) throw new Error(`malformed row packet for table ${t.name}`);
      const k = kinds[i];
      if (k === NUMBER) {
        while (p < e) ob[o++] = src[p++]!;
      } else if (k === PLAIN_TEXT) {
        ob[o++] = 0x27;
        while (p < e) ob[o++] = src[p++]!;
        ob[o++] = 0x27;
      } else if (k === STRING) {
        ob[o++] = 0x27;
        if (ob !== obOf) {
          obOf = ob;
          obView = viewOf(ob);
        }
        o = escapeInto(ob, obView, o, src, srcView, p, e);
        p = e;
        ob[o++] = 0x27;
      } else {
        // within the capacity reserved above (≤ 2n+2 bytes): no reallocation, but take the buffer again anyway
        sink.len = o;
        if (k === BYTES) writeBytes(sink, src, p, e);
        else writeHex(sink, src, p, e);
        ob = sink.buf;
        o = sink.len;
        p = e;
      }
    }
    ob[o++] = 0x29;
    sink.len = o;
    // the common case of finishRow inline: the row joins the statement (a closure call per row costs ~20 %)
    const rowLen = o - valuesAt;
    if (fresh || stmtBytes + 1 + rowLen <= maxStmt) {
      stmtBytes += o - rowAt;
      if (rowLen > maxRowBytes) maxRowBytes = rowLen;
    } else finishRow(rowAt, valuesAt, fresh);
  };
  const fused = !hasEnumHelpers;

  const fastParser = {
    next(packet: RawPacket): symbol {
      if (fused && packet.end - packet.offset <= FUSED_MAX_PACKET) {
        writePacketRow(packet);
        return WRITTEN;
      }
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
    let unframe: (() => void) | undefined;
    // mysql2 assigns its generated parser to _rowParser once the column definitions are in; keep ours instead
    if (o.rowParser !== 'mysql2') {
      Object.defineProperty(query, '_rowParser', {
        configurable: true,
        get: () => fastParser,
        set: () => {},
      });
      const pkt: RawPacket = { buffer: Buffer.alloc(0), offset: 0, end: 0 };
      unframe = installRowFramer(core, query, {
        row: (buf, start, end) => {
          if (failed) return;
          pkt.buffer = buf;
          pkt.offset = start;
          pkt.end = end;
          fastParser.next(pkt);
          rows++;
        },
        chunkDone: () => {
          if (!failed) afterRows();
        },
        fail: (err) => {
          core.destroy();
          fail(err);
        },
      });
    }
    /** per chunk of rows: hand output over, hold the connection back when congested, see aborts, report progress */
    let sinceCheck = 0;
    const afterRows = (): void => {
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
      if (rows - sinceCheck >= 1024) {
        sinceCheck = rows;
        if (signal?.aborted) {
          core.destroy();
          fail(new InterruptedError(describeAbort(signal.reason)));
          return;
        }
        const now = Date.now();
        if (now - lastProgress >= 500) {
          lastProgress = now;
          o.onProgress(rows);
        }
      }
    };
    query.on('error', (err: Error) => {
      unframe?.();
      fail(err);
    });
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
      afterRows();
    });
    query.on('end', () => {
      unframe?.();
      signal?.removeEventListener('abort', onAbort);
      core.off('error', onConnectionError);
      if (!failed) resolve();
    });
  });
  if (stmtBytes > 0) endStatement();
  // a row alone in its INSERT (head, row, and the command byte) must fit the server's packet limit
  const rowStatement = maxRowBytes + insertHead.length + 1;
  if (o.maxPacket > 0 && rowStatement > o.maxPacket) o.onTooBig(rowStatement);
  await out.text(rowsTail(t.name, t.history !== undefined));
  return rows;
}

/** The parts of mysql2's packet parser the framer reads (lib/packet_parser.js). */
interface Mysql2PacketParser {
  execute: (chunk: Buffer) => unknown;
  length: number;
  bufferLength: number;
  packetHeaderLength: number;
  largePacketParts: unknown[];
}

/** The parts of mysql2's connection and query the framer reads or keeps up to date. */
interface FramedConnection {
  packetParser: Mysql2PacketParser;
  stream: unknown;
  sequenceId: number;
  _command: unknown;
  config: { compress?: boolean; debug?: unknown };
}

interface FramerSink {
  /** a whole row packet's payload: buf[start, end) */
  row: (buf: Buffer, start: number, end: number) => void;
  /** after each socket chunk */
  chunkDone: () => void;
  /** a row could not be read (malformed packet): the connection is unusable */
  fail: (err: Error) => void;
}

/**
 * Puts a framer in front of mysql2's packet parser for one query's row phase: the whole row packets of each
 * socket chunk go straight to `sink.row` (the sequence id kept as mysql2 would); everything else (column
 * definitions, the end-of-rows or error packet, a packet split across two chunks, a packet of 16 MiB or more,
 * anything while the query is not reading rows) is fed to mysql2's parser, in order, exactly as it arrived.
 * Returns the uninstaller (also run when the query ends). Not installed when the connection is not the plain
 * protocol this expects (compression, debug, another mysql2 shape): mysql2 then frames every packet itself.
 */
function installRowFramer(coreConn: CoreConnection, query: unknown, sink: FramerSink): () => void {
  const core = coreConn as unknown as FramedConnection;
  const orig = core.packetParser;
  const proto = Object.getPrototypeOf(orig) as Record<string, unknown>;
  const startState = proto.executeStart;
  const payloadState = proto.executePayload;
  const rowState = (Object.getPrototypeOf(query) as Record<string, unknown>).row;
  const q = query as { next: unknown };
  if (
    core.config.compress ||
    core.config.debug ||
    typeof orig?.execute !== 'function' ||
    orig.packetHeaderLength !== 4 ||
    !Array.isArray(orig.largePacketParts) ||
    typeof startState !== 'function' ||
    typeof payloadState !== 'function' ||
    typeof rowState !== 'function' ||
    typeof core.sequenceId !== 'number'
  ) {
    return () => {};
  }
  // reads straight from the socket's reused buffer (dump-socket.ts): mysql2 then gets copies only
  const reads = directReadsOf(core.stream);
  const toMysql2 = reads
    ? (b: Buffer): unknown => orig.execute(Buffer.from(b))
    : (b: Buffer): unknown => orig.execute(b);
  // The first 1-2 bytes of a packet at a chunk's end are kept here, not given to mysql2: its parser would then
  // wait in a header state, and the framer hands a chunk to mysql2 whole while it does (~5 % of narrow rows went
  // through mysql2's row path so, about 1 chunk end in 22).
  let carry = 0;
  const carried = Buffer.alloc(2);
  let joined = reads ? Buffer.allocUnsafe(0) : null;
  const framer = {
    execute(chunk: Buffer): void {
      if (carry > 0) {
        // the kept bytes first: in a scratch buffer when mysql2 gets copies anyway, else a fresh one it may keep
        const len = carry + chunk.length;
        let b: Buffer;
        if (joined) {
          if (joined.length < len) joined = Buffer.allocUnsafe(Math.max(len, 64 * 1024 + 8));
          b = joined.subarray(0, len);
        } else b = Buffer.allocUnsafe(len);
        carried.copy(b, 0, 0, carry);
        chunk.copy(b, carry);
        chunk = b;
        carry = 0;
      }
      if (core._command !== query) {
        uninstall();
        toMysql2(chunk);
        return;
      }
      let p = 0;
      const n = chunk.length;
      if (orig.execute !== startState) {
        // mysql2 holds the start of a packet: let it complete that one (its packet, its dispatch)
        const need = orig.length - orig.bufferLength + orig.packetHeaderLength - 3;
        if (orig.execute !== payloadState || orig.largePacketParts.length > 0 || need > n) {
          toMysql2(chunk);
          sink.chunkDone();
          return;
        }
        toMysql2(need === n ? chunk : chunk.subarray(0, need));
        p = need;
      }
      try {
        while (n - p >= 5 && q.next === rowState && core._command === query) {
          const len = chunk[p]! | (chunk[p + 1]! << 8) | (chunk[p + 2]! << 16);
          if (n - p - 4 < len || len === 0xffffff || chunk[p + 3] !== core.sequenceId) break;
          const first = chunk[p + 4]!;
          // 0xff: an error; 0xfe: the end of the rows (EOF/OK; a row starts so only when over 16 MiB): mysql2's
          if (first >= 0xfe) break;
          core.sequenceId = (core.sequenceId + 1) & 0xff;
          sink.row(chunk, p + 4, p + 4 + len);
          p += 4 + len;
        }
      } catch (err) {
        sink.fail(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (
        n - p > 0 &&
        n - p < 3 &&
        orig.execute === startState &&
        q.next === rowState &&
        core._command === query
      ) {
        carry = chunk.copy(carried, 0, p, n);
      } else if (p < n) toMysql2(p === 0 ? chunk : chunk.subarray(p));
      sink.chunkDone();
    },
  };
  const direct = (chunk: Buffer): void => framer.execute(chunk);
  const uninstall = (): void => {
    if (core.packetParser === (framer as unknown)) core.packetParser = orig;
    if (reads?.consumer === direct) reads.consumer = null;
  };
  core.packetParser = framer as unknown as Mysql2PacketParser;
  if (reads) reads.consumer = direct;
  return uninstall;
}
