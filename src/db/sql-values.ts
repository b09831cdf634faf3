/**
 * SQL literal writing, on raw bytes. Pure: no I/O. The dumper receives every value as the server's text-protocol
 * bytes (a Buffer, or null for NULL) and appends its literal to an output buffer without building JS strings.
 */

/** How a column's raw bytes become a literal. */
export type ValueKind =
  /** integers, DECIMAL, DOUBLE (FLOAT is selected as DOUBLE): the text is already a valid literal */
  | 'number'
  /** character data in the connection charset (utf8mb4): quoted and escaped */
  | 'string'
  /** BIT/GEOMETRY: 0x... (empty: '') */
  | 'hex'
  /** BINARY/VARBINARY/BLOB: whichever is shorter of 0x... and _binary'...' (escaped), see writeBytes */
  | 'bytes';

const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** byte → its escape letter after a backslash, 0 when the byte needs no escaping. Same set as mysql_real_escape_string. */
export const ESCAPES = new Uint8Array(256);
ESCAPES[0x00] = 0x30; // \0
ESCAPES[0x0a] = 0x6e; // \n
ESCAPES[0x0d] = 0x72; // \r
ESCAPES[0x1a] = 0x5a; // \Z
ESCAPES[0x22] = 0x22; // \"
ESCAPES[0x27] = 0x27; // \'
ESCAPES[0x5c] = 0x5c; // \\

/**
 * A growable byte buffer. Append-only; `take()` hands the bytes over and starts a new buffer
 * (the old one is never written again, so it can be passed to an asynchronous writer).
 */
export class ByteSink {
  buf: Buffer;
  len = 0;
  constructor(initialCapacity = 1 << 20) {
    this.buf = Buffer.allocUnsafe(initialCapacity);
  }
  ensure(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const nb = Buffer.allocUnsafe(cap);
    this.buf.copy(nb, 0, 0, this.len);
    this.buf = nb;
  }
  byte(b: number): void {
    if (this.len >= this.buf.length) this.ensure(1);
    this.buf[this.len++] = b;
  }
  bytes(src: Buffer | Uint8Array): void {
    this.ensure(src.length);
    // Buffer.prototype.set is a memcpy; faster than copy() for small slices
    this.buf.set(src, this.len);
    this.len += src.length;
  }
  ascii(s: string): void {
    this.ensure(s.length);
    this.len += this.buf.write(s, this.len, 'latin1');
  }
  utf8(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(n);
    this.len += this.buf.write(s, this.len, 'utf8');
  }
  /**
   * The bytes so far (a copy when small, else the buffer itself); the sink starts over with a fresh buffer, or
   * with `reuse` (a buffer whose bytes were already handed over and are no longer needed).
   */
  take(nextCapacity = 1 << 20, reuse?: Buffer): Buffer {
    const out =
      this.len < this.buf.length / 4
        ? Buffer.from(this.buf.subarray(0, this.len))
        : this.buf.subarray(0, this.len);
    if (out.buffer === this.buf.buffer) this.buf = reuse ?? Buffer.allocUnsafe(nextCapacity);
    this.len = 0;
    return out;
  }
}

/** The bytes ESCAPES escapes, for a scan of a value's latin1 view (one char per byte: the same positions). */
const NEEDS_ESCAPE = /[\0\n\r\x1a"'\\]/g;

/**
 * From this length a value is escaped by escapeLong (measured: ~1.2 ns a byte against the byte loop's ~1.9; the
 * loop is faster below ~200 bytes, where the string and the native calls cost more than they save).
 */
export const LONG_VALUE = 256;

/**
 * Writes src[start, end) escaped (as the byte loop of writeQuoted would, without the quotes) at out[o], which has
 * room for twice the value; returns the end. The runs between escapes are found by a regular expression over the
 * value's latin1 view and copied natively.
 */
export function escapeLong(out: Buffer, o: number, src: Buffer, start: number, end: number): number {
  const s = src.toString('latin1', start, end);
  const re = NEEDS_ESCAPE;
  re.lastIndex = 0;
  let last = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const at = m.index;
    if (at > last) {
      out.set(src.subarray(start + last, start + at), o);
      o += at - last;
    }
    out[o++] = 0x5c;
    out[o++] = ESCAPES[s.charCodeAt(at)]!;
    last = at + 1;
  }
  const n = end - start;
  if (n > last) {
    out.set(src.subarray(start + last, end), o);
    o += n - last;
  }
  return o;
}

/**
 * Append `'...'` with MySQL escaping of src[start, end) (valid for utf8mb4 and any ASCII-compatible charset).
 * A plain byte loop for short values (no subarrays, no native calls per value); escapeLong for long ones.
 */
export function writeQuoted(out: ByteSink, src: Uint8Array, start = 0, end = src.length): void {
  out.ensure((end - start) * 2 + 2);
  const buf = out.buf;
  let o = out.len;
  buf[o++] = 0x27;
  if (end - start >= LONG_VALUE) {
    const b = Buffer.isBuffer(src) ? src : Buffer.from(src.buffer, src.byteOffset, src.byteLength);
    o = escapeLong(buf, o, b, start, end);
    buf[o++] = 0x27;
    out.len = o;
    return;
  }
  for (let i = start; i < end; i++) {
    const c = src[i]!;
    if (c > 0x5c) {
      buf[o++] = c; // never escaped: a branch is cheaper than the table
      continue;
    }
    const e = ESCAPES[c]!;
    if (e === 0) buf[o++] = c;
    else {
      buf[o++] = 0x5c;
      buf[o++] = e;
    }
  }
  buf[o++] = 0x27;
  out.len = o;
}

/** Append `0x<hex>` of src[start, end), or `''` for an empty value (0x alone is not a literal). */
export function writeHex(out: ByteSink, src: Uint8Array, start = 0, end = src.length): void {
  const n = end - start;
  if (n === 0) {
    out.ascii("''");
    return;
  }
  out.ensure(n * 2 + 2);
  const buf = out.buf;
  let o = out.len;
  buf[o++] = 0x30;
  buf[o++] = 0x78;
  if (n > 4096) {
    // Node's hex encoder is native: faster than the loop for big values
    const b = Buffer.isBuffer(src) ? src : Buffer.from(src.buffer, src.byteOffset, src.byteLength);
    o += buf.write(b.toString('hex', start, end), o, 'latin1');
    out.len = o;
    return;
  }
  for (let i = start; i < end; i++) {
    const b = src[i]!;
    buf[o++] = HEX[b >> 4]!;
    buf[o++] = HEX[b & 15]!;
  }
  out.len = o;
}

/** How many bytes of src[start, end) writeQuoted escapes. */
export function countEscapes(src: Uint8Array, start = 0, end = src.length): number {
  let k = 0;
  for (let i = start; i < end; i++) if (ESCAPES[src[i]!] !== 0) k++;
  return k;
}

const BINARY_INTRODUCER = Buffer.from('_binary', 'latin1');

/** Length of the literal writeBytes writes for a value of n bytes of which `escapes` need a backslash. */
export function bytesLiteralLength(n: number, escapes: number): number {
  if (n === 0) return 2;
  return Math.min(2 * n + 2, n + escapes + 9);
}

/**
 * Append binary data as the shorter of `0x<hex>` (2n+2 bytes) and `_binary'<escaped>'` (n + escapes + 9):
 * random data escapes about 3 % of its bytes, so a large value is about half the size of its hex form (it then
 * fits a max_allowed_packet its hex form would not). The introducer keeps the bytes from any charset check.
 */
export function writeBytes(
  out: ByteSink,
  src: Uint8Array,
  start = 0,
  end = src.length,
  escapes = countEscapes(src, start, end),
): void {
  const n = end - start;
  if (n === 0 || 2 * n + 2 <= n + escapes + 9) {
    writeHex(out, src, start, end);
    return;
  }
  out.bytes(BINARY_INTRODUCER);
  writeQuoted(out, src, start, end);
}

/** Append src[start, end) as is (numbers: the server's text is already a literal). */
export function writeRaw(out: ByteSink, src: Uint8Array, start = 0, end = src.length): void {
  const n = end - start;
  out.ensure(n);
  const buf = out.buf;
  let o = out.len;
  if (n > 64) {
    buf.set(src.subarray(start, end), o);
    o += n;
  } else {
    for (let i = start; i < end; i++) buf[o++] = src[i]!;
  }
  out.len = o;
}

const NULL_BYTES = Buffer.from('NULL', 'latin1');

/** Append one value's literal. `null` is the SQL NULL keyword (never the string 'NULL'). */
export function writeValue(out: ByteSink, kind: ValueKind, v: Buffer | null): void {
  if (v === null) {
    out.bytes(NULL_BYTES);
    return;
  }
  if (kind === 'number') writeRaw(out, v);
  else if (kind === 'string') writeQuoted(out, v);
  else if (kind === 'bytes') writeBytes(out, v);
  else writeHex(out, v);
}

/** The literal as a string, for tests and DDL-side values (e.g. SETVAL arguments). */
export function sqlLiteral(kind: ValueKind, v: Buffer | string | null): string {
  const out = new ByteSink(64);
  writeValue(out, kind, v === null ? null : Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8'));
  return out.buf.toString('utf8', 0, out.len);
}

/** `name` as a backquoted identifier. */
export function quoteIdent(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** A JS string as a quoted, escaped SQL string literal. */
export function quoteString(s: string): string {
  return sqlLiteral('string', s);
}

/** Which literal a column needs, from information_schema.COLUMNS.DATA_TYPE (lower case). */
export function valueKindFor(dataType: string): ValueKind {
  switch (dataType.toLowerCase()) {
    case 'tinyint':
    case 'smallint':
    case 'mediumint':
    case 'int':
    case 'integer':
    case 'bigint':
    case 'decimal':
    case 'numeric':
    case 'float':
    case 'double':
    case 'real':
    case 'double precision':
      return 'number';
    case 'binary':
    case 'varbinary':
    case 'tinyblob':
    case 'blob':
    case 'mediumblob':
    case 'longblob':
      return 'bytes';
    case 'bit':
    case 'geometry':
    case 'point':
    case 'linestring':
    case 'polygon':
    case 'multipoint':
    case 'multilinestring':
    case 'multipolygon':
    case 'geometrycollection':
      return 'hex';
    default:
      // char/varchar/text/enum/set/json/date/time/datetime/timestamp/year/inet6/uuid...: quoted text
      return 'string';
  }
}
