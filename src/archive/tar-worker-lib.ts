/**
 * The synchronous half of createArchive: tree walk and tar encoding. Runs inside the tar worker thread (sync fs
 * calls are several times faster than async ones for many small files) and, for an exclude callback that cannot
 * be sent to a thread, the walk runs on the main thread.
 */
import {
  closeSync,
  constants as fsc,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
} from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { Header, Pax } from 'tar';
import { errnoCode } from '../errors.js';

export const KIND_FILE = 0;
export const KIND_DIR = 1;
export const KIND_SYMLINK = 2;
export type EntryKind = typeof KIND_FILE | typeof KIND_DIR | typeof KIND_SYMLINK;

export interface WalkEntry {
  /** relative to the root, '/'-separated, no trailing '/' */
  rel: string;
  kind: EntryKind;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** whole seconds */
  mtime: number;
  link?: string | undefined;
}

/** A class (not literals) so every entry shares one hidden class: smaller and faster for 100k+ entries. */
class Entry implements WalkEntry {
  constructor(
    readonly rel: string,
    readonly kind: EntryKind,
    readonly mode: number,
    readonly uid: number,
    readonly gid: number,
    readonly size: number,
    readonly mtime: number,
    readonly link: string | undefined,
  ) {}
}

export type WarningCodeName = 'UNREADABLE' | 'SPECIAL_FILE' | 'VANISHED';
export interface WalkWarning {
  code: WarningCodeName;
  path: string;
  message: string;
}

export interface Totals {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

// Shared control block between main thread and worker (Int32Array over a SharedArrayBuffer).
export const CTRL_STATE = 0;
export const CTRL_USED = 1;
/** next walk task to claim (writer and helper share the task list) */
export const CTRL_TASK = 2;
/** bumped by the helper after posting each task result */
export const CTRL_HSEQ = 3;
/** set to HELPER_GONE by the main thread when the helper exits */
export const CTRL_HELPER = 4;
export const CTRL_INTS = 5;
export const HELPER_GONE = 1;
export const STATE_WAIT = 0;
export const STATE_GO = 1;
export const STATE_ABORT = 2;

export interface WorkerInput {
  /** real directory to read */
  root: string;
  /** how paths are named in warnings */
  displayRoot: string;
  patterns: readonly string[] | null;
  /** a walk already done on the main thread */
  entries: WalkEntry[] | null;
  batchSize: number;
  maxChunks: number;
  ctrl: SharedArrayBuffer;
  /** 'writer' walks and writes; 'helper' only walks tasks for the writer (a second core during the scan) */
  role: 'writer' | 'helper';
  /** writer <-> helper channel for task results (absent: no helper) */
  port: MessagePort | null;
  /** directories this deep are walked as separate tasks shared with the helper */
  splitDepth: number;
}

export interface TaskResult {
  i: number;
  rel: string;
  entries: WalkEntry[];
  warnings: WalkWarning[];
}

export type WorkerMessage =
  | { t: 'scan'; totals: Totals }
  | { t: 'chunk'; buf: ArrayBuffer; len: number; files: number; bytes: number }
  | { t: 'warn'; w: WalkWarning }
  | { t: 'done'; totals: Totals };

function describe(err: unknown): string {
  const code = errnoCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  if (code === 'EACCES' || code === 'EPERM') return `permission denied (${code})`;
  if (code === 'ENOENT') return 'no longer exists (ENOENT)';
  return code ? `${msg.replace(/^[A-Z]+: /, '').replace(/,.*$/, '')} (${code})` : msg;
}

function joinDisplay(root: string, rel: string): string {
  return rel === '' ? root : root.endsWith('/') ? root + rel : root + '/' + rel;
}

export interface WalkTask {
  abs: string;
  rel: string;
}

export interface WalkCtx {
  displayRoot: string;
  isExcluded: (rel: string, isDir: boolean) => boolean;
  warn: (w: WalkWarning) => void;
  /** directories at this depth are not descended into: their contents become a task (a number in the output) */
  splitDepth: number;
  tasks: WalkTask[];
}

/**
 * Depth-first, pre-order (a directory before its children), names sorted so archives are reproducible.
 * `isExcluded` is asked about a path only when no ancestor was excluded (excluded directories are pruned).
 * Never throws on one bad path: it reports a warning and goes on.
 */
export function walkTree(
  root: string,
  displayRoot: string,
  isExcluded: (rel: string, isDir: boolean) => boolean,
  warn: (w: WalkWarning) => void,
): { entries: WalkEntry[]; totals: Totals } {
  const out: Array<WalkEntry | number> = [];
  walkInto({ displayRoot, isExcluded, warn, splitDepth: Infinity, tasks: [] }, root, '', 0, out);
  const entries = out as WalkEntry[];
  return { entries, totals: totalsOf(entries) };
}

/** Walks `absDir` (at `depth` below the root) into `out`; see WalkCtx.splitDepth. */
export function walkInto(
  ctx: WalkCtx,
  absDir: string,
  relDir: string,
  depth: number,
  out: Array<WalkEntry | number>,
): void {
  const { displayRoot, isExcluded, warn } = ctx;
  const visit = (absDir: string, relDir: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(absDir);
    } catch (err) {
      const code = errnoCode(err);
      warn({
        code: code === 'ENOENT' || code === 'ENOTDIR' ? 'VANISHED' : 'UNREADABLE',
        path: joinDisplay(displayRoot, relDir),
        message: `cannot read directory: ${describe(err)}`,
      });
      return;
    }
    names.sort();
    for (const name of names) {
      const rel = relDir === '' ? name : relDir + '/' + name;
      const abs = absDir + '/' + name;
      if (name.includes('\uFFFD')) {
        // readdir decoded a name that is not valid UTF-8: it cannot be opened again by this string.
        warn({
          code: 'UNREADABLE',
          path: joinDisplay(displayRoot, rel),
          message: 'file name is not valid UTF-8',
        });
        continue;
      }
      let st;
      try {
        st = lstatSync(abs, { throwIfNoEntry: false });
      } catch (err) {
        warn({
          code: 'UNREADABLE',
          path: joinDisplay(displayRoot, rel),
          message: `cannot stat: ${describe(err)}`,
        });
        continue;
      }
      if (st === undefined) {
        warn({
          code: 'VANISHED',
          path: joinDisplay(displayRoot, rel),
          message: 'vanished during the backup',
        });
        continue;
      }
      const isDir = st.isDirectory();
      if (isExcluded(rel, isDir)) continue;
      const mode = st.mode & 0o7777;
      const mtime = Math.floor(st.mtimeMs / 1000);
      if (isDir) {
        out.push(new Entry(rel, KIND_DIR, mode, st.uid, st.gid, 0, mtime, undefined));
        if (depth + 1 >= ctx.splitDepth) {
          out.push(ctx.tasks.length);
          ctx.tasks.push({ abs, rel });
        } else {
          visit(abs, rel, depth + 1);
        }
      } else if (st.isFile()) {
        out.push(new Entry(rel, KIND_FILE, mode, st.uid, st.gid, st.size, mtime, undefined));
      } else if (st.isSymbolicLink()) {
        let link: string;
        try {
          link = readlinkSync(abs);
        } catch (err) {
          const code = errnoCode(err);
          warn({
            code: code === 'ENOENT' || code === 'EINVAL' ? 'VANISHED' : 'UNREADABLE',
            path: joinDisplay(displayRoot, rel),
            message: `cannot read symlink: ${describe(err)}`,
          });
          continue;
        }
        out.push(new Entry(rel, KIND_SYMLINK, mode, st.uid, st.gid, 0, mtime, link));
      } else {
        const what = st.isFIFO()
          ? 'FIFO'
          : st.isSocket()
            ? 'socket'
            : st.isCharacterDevice()
              ? 'character device'
              : 'block device';
        warn({ code: 'SPECIAL_FILE', path: joinDisplay(displayRoot, rel), message: `skipped: ${what}` });
      }
    }
  };
  visit(absDir, relDir, depth);
}

export function totalsOf(entries: readonly WalkEntry[]): Totals {
  const t: Totals = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  for (const e of entries) {
    if (e.kind === KIND_FILE) {
      t.files++;
      t.bytes += e.size;
    } else if (e.kind === KIND_DIR) t.dirs++;
    else t.symlinks++;
  }
  return t;
}

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

/** Thrown out of the write loop when the main thread asks the worker to stop. */
export class AbortedInWorker extends Error {}

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

export const OPEN_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;
export { openSync, closeSync };
