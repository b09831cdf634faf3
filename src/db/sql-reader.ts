/**
 * Streaming SQL statement reader for dump files: splits a byte stream into statements the way the stock
 * `mariadb` client does (DELIMITER commands, quotes with backslash escapes, backtick identifiers, `--`/`#`/`/* *\/`
 * comments, `/*!…*\/` and `/*M!…*\/` executable comments kept as code), without building per-character strings.
 * Memory is bounded by the largest statement: a statement keeps references to the chunks it spans and is copied
 * once when it ends.
 *
 * Longer than our ~400-line guide on purpose: StatementSplitter.scan is one byte-level state machine, the hot
 * loop of every restore, and reads best in one piece; the sql_mode tracking it needs is in sql-mode.ts.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { SqlModeTracker } from './sql-mode.js';

export interface SqlStatement {
  sql: string;
  /** 1-based line where the statement starts */
  line: number;
}

/** A statement as read: its exact bytes (dumps may hold raw binary in strings), text decoded on demand. */
export class RawStatement implements SqlStatement {
  constructor(
    readonly raw: Buffer,
    readonly line: number,
  ) {}
  get sql(): string {
    return this.raw.toString('utf8');
  }
}

/** Where the input ended: 'clean' unless it stopped inside a string, comment or statement without delimiter. */
export type EndState = 'clean' | 'statement' | 'string' | 'identifier' | 'comment';

const enum S {
  Between,
  SkipLine,
  SkipBlock,
  DelimLine,
  Stmt,
  SQuote,
  DQuote,
  Backtick,
  LineComment,
  BlockComment,
}

const NL = 0x0a;
const SQ = 0x27;
const DQ = 0x22;
const BT = 0x60;
const BS = 0x5c;
const HASH = 0x23;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const BANG = 0x21;
const LOOKAHEAD = 16;

const DELIMITER_KW = Buffer.from('delimiter');
const SANDBOX = Buffer.from('999999\\-');

function isBlank(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** `--` starts a comment only when followed by whitespace/control or the end (MariaDB rule). */
function dashDashComment(buf: Buffer, i: number): boolean {
  if (buf[i + 1] !== DASH) return false;
  const c = buf[i + 2];
  return c === undefined || c <= 0x20;
}

/** sql_mode values in which a double-quoted text is an identifier (no backslash escapes in it). */
/** Incremental splitter: feed chunks with push(), then end(). Statements are appended to `out`. */
export class StatementSplitter {
  private delim: Buffer = Buffer.from(';');
  private special = new Uint8Array(256);
  private state: S = S.Between;
  private parts: Buffer[] = [];
  private carry: Buffer | null = null;
  private inStatement = false;
  private stmtLine = 0;
  /** line number of the byte at `lineRel` of the current buffer */
  private line = 1;
  private lineRel = 0;
  private delimBytes: number[] = [];
  /** statements emitted so far */
  count = 0;
  /** bytes of the largest statement */
  maxStatementBytes = 0;
  /** the sql_mode the statements so far have set: backslashes in strings follow it, as in the stock client */
  readonly sqlMode = new SqlModeTracker();
  private backslashInSQuote = true;
  private backslashInDQuote = true;

  constructor() {
    this.setDelimiter(Buffer.from(';'));
  }

  get delimiter(): string {
    return this.delim.toString('utf8');
  }

  private setDelimiter(d: Buffer): void {
    this.delim = d;
    this.special.fill(0);
    for (const c of [SQ, DQ, BT, HASH, DASH, SLASH]) this.special[c] = 1;
    this.special[d[0] ?? 0x3b] = 2;
  }

  push(chunk: Buffer, out: RawStatement[]): void {
    if (chunk.length === 0) return;
    const buf = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = null;
    this.scan(buf, false, out);
  }

  /**
   * Goes on with input from another place of the file (a byte range, dump-ranges.ts) that starts on `line`.
   * Only between statements, with the delimiter `;` and nothing held back; false (and no change) otherwise.
   */
  jumpTo(line: number): boolean {
    if (this.carry !== null || this.inStatement || this.state !== S.Between || this.delimiter !== ';')
      return false;
    this.line = line;
    this.lineRel = 0;
    return true;
  }

  /** Flushes the input; a trailing statement without delimiter is emitted (as the client does). */
  end(out: RawStatement[]): EndState {
    const buf = this.carry ?? Buffer.alloc(0);
    this.carry = null;
    this.scan(buf, true, out);
    let endState: EndState = 'clean';
    switch (this.state) {
      case S.SQuote:
      case S.DQuote:
        endState = 'string';
        break;
      case S.Backtick:
        endState = 'identifier';
        break;
      case S.BlockComment:
      case S.SkipBlock:
        endState = 'comment';
        break;
      default:
        endState = this.inStatement ? 'statement' : 'clean';
    }
    if (this.inStatement) {
      this.emit(Buffer.alloc(0), 0, 0, out);
    }
    return endState;
  }

  private lineAt(buf: Buffer, i: number): number {
    let p = this.lineRel;
    let line = this.line;
    if (i - p <= 64) {
      for (; p < i; p++) if (buf[p] === NL) line++;
    } else {
      const sub = buf.subarray(p, i);
      let j = sub.indexOf(NL);
      while (j !== -1) {
        line++;
        j = sub.indexOf(NL, j + 1);
      }
    }
    this.line = line;
    this.lineRel = i;
    return line;
  }

  private emit(buf: Buffer, start: number, end: number, out: RawStatement[]): void {
    let raw: Buffer;
    if (this.parts.length > 0) {
      this.parts.push(buf.subarray(start, end));
      raw = Buffer.concat(this.parts);
      this.parts = [];
    } else {
      raw = buf.subarray(start, end);
    }
    let e = raw.length;
    while (e > 0 && isBlank(raw[e - 1])) e--;
    if (e < raw.length) raw = raw.subarray(0, e);
    this.inStatement = false;
    if (raw.length === 0) return;
    if (raw.length > this.maxStatementBytes) this.maxStatementBytes = raw.length;
    this.count++;
    out.push(new RawStatement(raw, this.stmtLine));
    this.watchSqlMode(raw);
  }

  /** A SET that may change sql_mode: follow it (cheap test first: statements starting with S or /). */
  private watchSqlMode(raw: Buffer): void {
    const c = raw[0]! | 0x20;
    if (c !== 0x73 && raw[0] !== SLASH) return;
    if (raw.length > 4096) return;
    const text = raw.toString('latin1');
    if (!/^(?:\/\*M?!\d*\s*)?SET\s/i.test(text)) return;
    this.sqlMode.apply(text);
    this.backslashInSQuote = !this.sqlMode.noBackslashEscapes;
    this.backslashInDQuote = !this.sqlMode.noBackslashEscapes && !this.sqlMode.ansiQuotes;
  }

  private scan(buf: Buffer, final: boolean, out: RawStatement[]): void {
    const n = buf.length;
    const special = this.special;
    let i = 0;
    let stmtStart = this.inStatement ? 0 : -1;
    this.lineRel = 0;
    let cut = n;
    outer: while (i < n) {
      switch (this.state) {
        case S.Between: {
          const c = buf[i]!;
          if (isBlank(c)) {
            i++;
            continue;
          }
          if (!final && n - i < LOOKAHEAD) {
            cut = i;
            break outer;
          }
          if (c === HASH || (c === DASH && dashDashComment(buf, i))) {
            this.state = S.SkipLine;
            i++;
            continue;
          }
          if (c === SLASH && buf[i + 1] === STAR) {
            const c2 = buf[i + 2];
            const execAt = c2 === BANG ? i + 3 : c2 === 0x4d && buf[i + 3] === BANG ? i + 4 : -1;
            if (execAt < 0 || buf.subarray(execAt, execAt + SANDBOX.length).equals(SANDBOX)) {
              // plain comment, or the sandbox-mode client command of mariadb-dump: nothing to send
              this.state = S.SkipBlock;
              i += 2;
              continue;
            }
          }
          if (
            (c | 0x20) === 0x64 &&
            isBlank(buf[i + DELIMITER_KW.length]) &&
            buf
              .subarray(i, i + DELIMITER_KW.length)
              .toString('latin1')
              .toLowerCase() === 'delimiter'
          ) {
            this.state = S.DelimLine;
            this.delimBytes = [];
            i += DELIMITER_KW.length;
            continue;
          }
          if (c === this.delim[0] && this.matchDelim(buf, i)) {
            i += this.delim.length; // empty statement
            continue;
          }
          this.inStatement = true;
          stmtStart = i;
          this.stmtLine = this.lineAt(buf, i);
          this.state = S.Stmt;
          continue;
        }
        case S.SkipLine:
        case S.LineComment: {
          const j = buf.indexOf(NL, i);
          if (j < 0) {
            i = n;
          } else {
            i = j + 1;
            this.state = this.state === S.SkipLine ? S.Between : S.Stmt;
          }
          continue;
        }
        case S.SkipBlock:
        case S.BlockComment: {
          const j = buf.indexOf(STAR, i);
          if (j < 0) {
            i = n;
            continue;
          }
          if (j + 1 >= n) {
            if (final) {
              i = n;
              continue;
            }
            cut = j;
            break outer;
          }
          if (buf[j + 1] === SLASH) {
            i = j + 2;
            this.state = this.state === S.SkipBlock ? S.Between : S.Stmt;
          } else {
            i = j + 1;
          }
          continue;
        }
        case S.DelimLine: {
          for (; i < n; i++) {
            const c = buf[i]!;
            if (c === NL) break;
            this.delimBytes.push(c);
          }
          if (i >= n) continue;
          i++;
          const text = Buffer.from(this.delimBytes).toString('utf8').trim();
          const d = text.split(/\s+/)[0] ?? '';
          if (d !== '') this.setDelimiter(Buffer.from(d, 'utf8'));
          this.state = S.Between;
          continue;
        }
        case S.Stmt: {
          for (; i < n; i++) {
            const kind = special[buf[i]!];
            if (kind === 0) continue;
            const c = buf[i]!;
            if (kind === 2) {
              if (!final && n - i < this.delim.length) {
                cut = i;
                break outer;
              }
              if (this.matchDelim(buf, i)) {
                this.emit(buf, stmtStart, i, out);
                i += this.delim.length;
                this.state = S.Between;
                continue outer;
              }
              if (c === 0x3b || c === 0x24) continue; // common delimiter chars with no other meaning
            }
            if (c === SQ) {
              this.state = S.SQuote;
              i++;
              continue outer;
            }
            if (c === DQ) {
              this.state = S.DQuote;
              i++;
              continue outer;
            }
            if (c === BT) {
              this.state = S.Backtick;
              i++;
              continue outer;
            }
            if (c === HASH) {
              this.state = S.LineComment;
              i++;
              continue outer;
            }
            if (c === DASH || c === SLASH) {
              if (!final && n - i < 4) {
                cut = i;
                break outer;
              }
              if (c === DASH && dashDashComment(buf, i)) {
                this.state = S.LineComment;
                i += 2;
                continue outer;
              }
              if (c === SLASH && buf[i + 1] === STAR) {
                const c2 = buf[i + 2];
                if (c2 !== BANG && !(c2 === 0x4d && buf[i + 3] === BANG)) {
                  this.state = S.BlockComment;
                  i += 2;
                  continue outer;
                }
              }
            }
          }
          continue;
        }
        case S.SQuote:
        case S.DQuote: {
          const q = this.state === S.SQuote ? SQ : DQ;
          const escapes = q === SQ ? this.backslashInSQuote : this.backslashInDQuote;
          for (; i < n; i++) {
            const c = buf[i]!;
            if (c === q) {
              this.state = S.Stmt;
              i++;
              continue outer;
            }
            if (c === BS && escapes) {
              if (i + 1 >= n) {
                if (final) {
                  i = n;
                  continue outer;
                }
                cut = i;
                break outer;
              }
              i++;
            }
          }
          continue;
        }
        case S.Backtick: {
          const j = buf.indexOf(BT, i);
          if (j < 0) {
            i = n;
          } else {
            i = j + 1;
            this.state = S.Stmt;
          }
          continue;
        }
      }
    }
    if (i > n) i = n;
    if (cut > i) cut = i;
    if (this.inStatement && stmtStart >= 0 && cut > stmtStart) this.parts.push(buf.subarray(stmtStart, cut));
    this.lineAt(buf, cut);
    this.carry = cut < n ? buf.subarray(cut) : null;
  }

  private matchDelim(buf: Buffer, i: number): boolean {
    const d = this.delim;
    if (d.length === 1) return buf[i] === d[0];
    for (let k = 0; k < d.length; k++) if (buf[i + k] !== d[k]) return false;
    return true;
  }
}

/** Splits a dump into statements, in order. A trailing statement without delimiter is yielded too. */
export async function* readStatements(source: AsyncIterable<Buffer>): AsyncGenerator<RawStatement> {
  const splitter = new StatementSplitter();
  const out: RawStatement[] = [];
  for await (const chunk of source) {
    splitter.push(chunk, out);
    if (out.length > 0) {
      for (const s of out) yield s;
      out.length = 0;
    }
  }
  splitter.end(out);
  for (const s of out) yield s;
}

export const READ_CHUNK = 1 << 20;

/** True when the file starts with the gzip magic bytes. */
export async function isGzipFile(file: string): Promise<boolean> {
  const fh = await fsp.open(file, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await fh.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/**
 * The dump's bytes, gunzipped when the file starts with the gzip magic (whatever its name). Errors of the file
 * or the gzip stream (truncation, CRC) surface from the iteration.
 */
export function openDumpStream(
  file: string,
  o: { onRawBytes?: (bytes: number) => void; signal?: AbortSignal } = {},
): AsyncIterable<Buffer> {
  return {
    async *[Symbol.asyncIterator]() {
      const gz = await isGzipFile(file);
      const raw = createReadStream(file, { highWaterMark: READ_CHUNK, signal: o.signal });
      if (o.onRawBytes) {
        const cb = o.onRawBytes;
        raw.on('data', (b: Buffer | string) => cb(b.length));
      }
      if (!gz) {
        yield* raw as AsyncIterable<Buffer>;
        return;
      }
      const gunzip = createGunzip({ chunkSize: 256 * 1024 });
      raw.on('error', (err) => gunzip.destroy(err));
      raw.pipe(gunzip);
      try {
        yield* gunzip as AsyncIterable<Buffer>;
      } finally {
        raw.destroy();
        gunzip.destroy();
      }
    },
  };
}
