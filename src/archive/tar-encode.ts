/**
 * The tar encoding of createArchive's worker (tar-worker.ts): ustar headers written straight into fixed-size
 * batches (a pax header first when a field does not fit), file bodies read into them, the end-of-archive marker.
 */
import { readFileSync, readSync } from 'node:fs';
import { Header, Pax } from 'tar';
import { KIND_DIR, KIND_FILE, describe, type WalkEntry } from './tar-worker-lib.js';

function loadNames(file: string): Map<number, string> {
  const m = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      const name = f[0];
      const id = Number(f[2]);
      if (name && Number.isInteger(id) && !m.has(id) && /^[\x21-\x7e]{1,31}$/.test(name)) m.set(id, name);
    }
  } catch {
    // no names: numeric ids only, which GNU tar and node-tar handle
  }
  return m;
}

const ASCII = /^[\x01-\x7f]*$/;
const MAX8 = 0o7777777;
const MAX12 = 0o77777777777;
const TYPE_CHAR = [0x30, 0x35, 0x32] as const; // '0' file, '5' dir, '2' symlink
const TYPE_NAME = ['File', 'Directory', 'SymbolicLink'] as const;

/**
 * Builds the tar stream in fixed-size batches (a multiple of 512 bytes); every batch but the last is full.
 * `flush` gets ownership of the batch's ArrayBuffer.
 */
export class TarBatcher {
  #buf: Buffer;
  #pos = 0;
  #emittedBytes = 0;
  readonly #size: number;
  readonly #flush: (ab: ArrayBuffer, len: number) => void;
  readonly #unames = loadNames('/etc/passwd');
  readonly #gnames = loadNames('/etc/group');

  constructor(size: number, flush: (ab: ArrayBuffer, len: number) => void) {
    if (size % 512 !== 0 || size < 4096)
      throw new RangeError('batch size must be a multiple of 512, >= 4096');
    this.#size = size;
    this.#flush = flush;
    this.#buf = Buffer.from(new ArrayBuffer(size));
  }

  #room(): number {
    if (this.#pos === this.#size) this.#emit();
    return this.#size - this.#pos;
  }

  #emit(): void {
    const ab = this.#buf.buffer as ArrayBuffer;
    const len = this.#pos;
    this.#buf = Buffer.from(new ArrayBuffer(this.#size));
    this.#pos = 0;
    this.#emittedBytes += len;
    this.#flush(ab, len);
  }

  zeros(n: number): void {
    let left = n;
    while (left > 0) {
      const k = Math.min(left, this.#room());
      this.#buf.fill(0, this.#pos, this.#pos + k);
      this.#pos += k;
      left -= k;
    }
  }

  bytes(b: Buffer): void {
    let off = 0;
    while (off < b.length) {
      const k = Math.min(b.length - off, this.#room());
      b.copy(this.#buf, this.#pos, off, off + k);
      this.#pos += k;
      off += k;
    }
  }

  /** Header (with a pax header before it when needed) for an entry whose data follows. */
  header(e: WalkEntry, size: number): void {
    const path = e.kind === KIND_DIR ? e.rel + '/' : e.rel;
    const link = e.link ?? '';
    const uname = this.#unames.get(e.uid) ?? '';
    const gname = this.#gnames.get(e.gid) ?? '';
    if (
      e.uid <= MAX8 &&
      e.gid <= MAX8 &&
      size <= MAX12 &&
      e.mtime >= 0 &&
      e.mtime <= MAX12 &&
      link.length <= 100 &&
      ASCII.test(path) &&
      ASCII.test(link)
    ) {
      let name = path;
      let prefix = '';
      if (path.length > 100) {
        const i = path.indexOf('/', Math.max(0, path.length - 101));
        if (i <= 0 || i > 155 || i >= path.length - 1)
          return this.#slowHeader(e, path, link, size, uname, gname);
        prefix = path.slice(0, i);
        name = path.slice(i + 1);
      }
      this.#room();
      const b = this.#buf;
      const o = this.#pos;
      b.fill(0, o, o + 512);
      b.write(name, o, 100, 'latin1');
      octal(b, o + 100, 8, e.mode);
      octal(b, o + 108, 8, e.uid);
      octal(b, o + 116, 8, e.gid);
      octal(b, o + 124, 12, size);
      octal(b, o + 136, 12, e.mtime);
      b[o + 156] = TYPE_CHAR[e.kind];
      if (link !== '') b.write(link, o + 157, 100, 'latin1');
      b.write('ustar\u000000', o + 257, 8, 'latin1');
      if (uname !== '') b.write(uname, o + 265, 32, 'latin1');
      if (gname !== '') b.write(gname, o + 297, 32, 'latin1');
      octal(b, o + 329, 8, 0);
      octal(b, o + 337, 8, 0);
      if (prefix !== '') b.write(prefix, o + 345, 155, 'latin1');
      let sum = 8 * 0x20;
      for (let i = o; i < o + 148; i++) sum += b[i] as number;
      for (let i = o + 156; i < o + 512; i++) sum += b[i] as number;
      octal(b, o + 148, 7, sum);
      b[o + 155] = 0x20;
      this.#pos += 512;
      return;
    }
    this.#slowHeader(e, path, link, size, uname, gname);
  }

  #slowHeader(e: WalkEntry, path: string, link: string, size: number, uname: string, gname: string): void {
    const mtime = new Date(e.mtime * 1000);
    const fields = {
      path,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size,
      mtime,
      type: TYPE_NAME[e.kind],
      linkpath: link,
      uname,
      gname,
    };
    const block = Buffer.alloc(512);
    const needPax = new Header(fields).encode(block, 0);
    if (needPax) {
      this.bytes(
        new Pax({
          path,
          linkpath: link === '' ? undefined : link,
          size: e.kind === KIND_FILE ? size : undefined,
          mtime,
          uid: e.uid,
          gid: e.gid,
          uname: uname === '' ? undefined : uname,
          gname: gname === '' ? undefined : gname,
        }).encode(),
      );
    }
    this.bytes(block);
  }

  /**
   * Copies a regular file's `size` bytes (as seen by the walk) straight from the fd into the batches.
   * A file that shrank is padded with zeros so the archive stays valid; growth after the walk is not stored.
   * Returns the bytes really read, or a warning message when the content is incomplete.
   */
  fileData(fd: number, size: number, onBytes: (n: number) => void): string | null {
    let left = size;
    let problem: string | null = null;
    while (left > 0) {
      const k = Math.min(left, this.#room());
      let n: number;
      try {
        n = readSync(fd, this.#buf, this.#pos, k, null);
      } catch (err) {
        problem = `read failed: ${describe(err)}; stored zero-filled`;
        break;
      }
      if (n === 0) {
        problem = `shrank by ${left} bytes while being archived; stored zero-padded`;
        break;
      }
      this.#pos += n;
      left -= n;
      onBytes(n);
    }
    if (left > 0) this.zeros(left);
    this.zeros((512 - (size % 512)) % 512);
    return problem;
  }

  /** End-of-archive (two zero blocks), padded to GNU tar's 10 KiB record, and the last batch. */
  finish(): void {
    this.zeros(1024);
    this.#recordPad();
    if (this.#pos > 0) this.#emit();
  }

  #recordPad(): void {
    const total = this.#emittedBytes + this.#pos;
    this.zeros((10240 - (total % 10240)) % 10240);
  }
}

/** Zero-padded octal digits and a NUL, written byte by byte (no string per field: 150k headers add up). */
function octal(b: Buffer, off: number, width: number, n: number): void {
  let v = Math.floor(n);
  b[off + width - 1] = 0;
  for (let i = off + width - 2; i >= off; i--) {
    b[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
}
