/**
 * Decoding one tar header's fields (octal and base-256 numbers, NUL-terminated strings, the checksum, pax
 * records) for TarReader (tar-read.ts). Strict: a malformed field is a TarFormatError, never a guess.
 */

export class TarFormatError extends Error {
  constructor(
    message: string,
    readonly entry?: string,
  ) {
    super(message);
    this.name = 'TarFormatError';
  }
}

export interface PaxFields {
  path?: string;
  linkpath?: string;
  size?: number;
  mtime?: number;
  uid?: number;
  gid?: number;
  mode?: number;
}

const BLOCK = 512;

export function isZeroBlock(buf: Buffer, off: number): boolean {
  for (let i = off; i < off + BLOCK; i += 8) {
    if (buf.readBigUInt64LE(i) !== 0n) return false;
  }
  return true;
}

export function checksumOk(buf: Buffer, off: number): boolean {
  const stored = readOctalLoose(buf, off + 148, 8);
  if (stored === undefined) return false;
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = off; i < off + BLOCK; i++) {
    if (i >= off + 148 && i < off + 156) continue;
    const b = buf[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

export function isUstar(buf: Buffer, off: number): boolean {
  // POSIX ustar: "ustar\0" + "00". GNU's "ustar  \0" has no prefix field (that area holds atime/ctime).
  return (
    buf[off + 257] === 0x75 &&
    buf[off + 258] === 0x73 &&
    buf[off + 259] === 0x74 &&
    buf[off + 260] === 0x61 &&
    buf[off + 261] === 0x72 &&
    buf[off + 262] === 0
  );
}

export function decodeString(buf: Buffer, off: number, size: number): string {
  let end = buf.indexOf(0, off);
  if (end === -1 || end > off + size) end = off + size;
  return buf.toString('utf8', off, end);
}

export function decodeName(buf: Buffer, off: number): string {
  return decodeString(buf, off, 100);
}

export function cString(body: Buffer): string {
  const nul = body.indexOf(0);
  return body.toString('utf8', 0, nul === -1 ? body.length : nul);
}

function readOctalLoose(buf: Buffer, off: number, size: number): number | undefined {
  let i = off;
  const end = off + size;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0)) i++;
  if (i === end) return undefined;
  let n = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c >= 0x30 && c <= 0x37) {
      n = n * 8 + (c - 0x30);
      digits++;
    } else if (c === 0x20 || c === 0) {
      break;
    } else {
      return undefined;
    }
  }
  return digits > 0 ? n : undefined;
}

/** A numeric header field: octal text, or GNU base-256 (high bit set) for large values. */
export function readNumber(buf: Buffer, off: number, size: number, field: string): number {
  const first = buf[off]!;
  if (first & 0x80) {
    if (first === 0xff) throw new TarFormatError(`negative ${field} in a header`);
    let n = first & 0x7f;
    for (let i = off + 1; i < off + size; i++) {
      n = n * 256 + buf[i]!;
    }
    if (!Number.isSafeInteger(n)) throw new TarFormatError(`absurd ${field} in a header`);
    return n;
  }
  const v = readOctalLoose(buf, off, size);
  if (v === undefined) {
    // an empty numeric field (some writers leave mode/uid/gid blank) counts as 0; size/mtime must be present
    let blank = true;
    for (let i = off; i < off + size; i++) if (buf[i] !== 0 && buf[i] !== 0x20) blank = false;
    if (blank && field !== 'size') return 0;
    throw new TarFormatError(`invalid ${field} field in a header (corrupt archive)`);
  }
  return v;
}

/** Pax records: "<len> <key>=<value>\n", len counting the whole record in bytes. */
export function parsePax(body: Buffer): PaxFields {
  const out: PaxFields = {};
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) break; // padding
    const sp = body.indexOf(0x20, pos);
    if (sp === -1 || sp - pos > 20) throw new TarFormatError('malformed pax header');
    const len = Number(body.toString('latin1', pos, sp));
    if (!Number.isSafeInteger(len) || len <= sp - pos + 1 || pos + len > body.length) {
      throw new TarFormatError('malformed pax header');
    }
    const rec = body.subarray(sp + 1, pos + len);
    pos += len;
    if (rec[rec.length - 1] !== 0x0a) throw new TarFormatError('malformed pax header');
    const eq = rec.indexOf(0x3d);
    if (eq === -1) throw new TarFormatError('malformed pax header');
    const key = rec.toString('utf8', 0, eq);
    const value = rec.toString('utf8', eq + 1, rec.length - 1);
    switch (key) {
      case 'path':
        out.path = value;
        break;
      case 'linkpath':
        out.linkpath = value;
        break;
      case 'size':
      case 'uid':
      case 'gid': {
        const n = Number(value);
        if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new TarFormatError(`invalid pax ${key}`);
        out[key] = n;
        break;
      }
      case 'mtime': {
        const n = Number(value);
        if (!/^-?\d+(\.\d+)?$/.test(value) || !Number.isFinite(n))
          throw new TarFormatError('invalid pax mtime');
        out.mtime = n;
        break;
      }
      default:
        if (key.startsWith('GNU.sparse.')) throw new TarFormatError('GNU sparse files are not supported');
      // atime, ctime, uname, gname, charset, comment, SCHILY.*, LIBARCHIVE.*: not needed to restore a tree
    }
  }
  return out;
}
