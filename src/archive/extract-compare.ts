/**
 * Comparing an archive with the live tree it would replace, entry by entry, while the archive streams through the
 * extraction worker (extract-worker.ts). Used two ways:
 *
 * - a selective rollback (`link: true`): a regular file whose live twin has the same type, mode, owner, mtime and
 *   bytes is staged as a HARD LINK to the live file instead of a new copy; only differing entries are written;
 * - `backups:diff` and the rollback's summary: which files were added, removed or modified since the backup.
 *
 * The live tree is hostile input (pub/media belongs to the web server user), so a live file is only ever used
 * through its descriptor: opened with O_NOFOLLOW|O_NONBLOCK, checked with fstat, and its real path read back from
 * /proc/self/fd must be exactly the expected one (no symlinked ancestor: the name was not reached through a
 * link). Without /proc nothing is linked: every file is written, as a full extraction does, and counted as
 * modified in the rollback's summary.
 *
 * A hard link shares the inode with the live file until the swap: the link is made FIRST (by name, then checked
 * to be the same inode as the descriptor), the bytes are compared AFTER, and the file's ctime after the link is
 * what every later check compares with (any write, chmod, chown, utimes or link count change moves the ctime,
 * which no unprivileged user can set back). The entry ends with the descriptor at end of file and the ctime,
 * size and mtime unchanged; `recheckLinked` (extract-links.ts) repeats the check on every link just before the
 * swap. The window left is between that last check and the swap's renames (see extract-links.ts).
 *
 * A sparse code rollback (extract-sparse.ts) compares in `keep` mode: nothing is linked, an equal file stays where
 * it is (and is re-checked the same way before the swap), only a differing one is written into the staging tree.
 * An equal kept file costs open, fstat, read(s), close: the stat it is re-checked against is the one taken before
 * the first read, so a change made while it was read is refused by the re-check like one made later (no second
 * fstat at its end, ~97k fewer system calls on the bench store).
 *
 * When a compared file turns out to differ part-way, the staged link (if any) is replaced by a new file and the
 * bytes already compared are copied there from the live descriptor; the live file's ctime, mtime and size must
 * then still be those it had when the comparison began (else it changed under us and the copied prefix might not
 * be the compared one: the extraction fails, nothing live was touched). Nothing of a body is kept in memory.
 *
 * Why one file over 400 lines: LiveComparer is one state machine per entry (open, link or keep, compare while the
 * body streams, copy the prefix when it differs, finish), and the comment above is a fifth of the file.
 */
import fs from 'node:fs';
import { walkLive } from './live-walk.js';
import type { Kind } from './extract-plan.js';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = fs.constants;
const OPEN_LIVE = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
/** a first read slower than this (ms) may have come from the disk, not the page cache */
const SLOW_MS = 0.05;
/**
 * the warmer is asked for LEASE more files when SLOW_OF_WINDOW of a WINDOW of first reads were slow and this
 * thread's read_bytes grew by a page for each of them (without /proc: when they were slow)
 */
const WINDOW = 64;
const SLOW_OF_WINDOW = 16;
const LEASE = 5000;
const PAGE = 4096;

/** A staged hard link to a live file, as it was once compared: any change of these means the file was touched. */
export interface LinkedFile {
  rel: string;
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export interface TreeChanges {
  /** in the live tree, not in the backup (a rollback removes them) */
  added: string[];
  /** in the backup, not in the live tree */
  removed: string[];
  /** in both, but of another type, mode, owner, mtime, link target or content */
  modified: string[];
}

export interface CompareInput {
  /** the live directory the archive's root corresponds to, resolved (realpath) */
  liveDir: string;
  /** stage equal files as hard links (extract mode); false: only compare (diff) */
  link: boolean;
  /** an equal file left in place by a sparse rollback (`keep` mode), with its stat as compared */
  onKept?: (rel: string, st: fs.BigIntStats) => void;
  /** 'code': excluded paths are left out of the live walk; always: magebackup's own `.magebackup-*` names */
  filter: 'none' | 'code' | 'media';
}

/**
 * What the extraction's sink asks of a comparison, entry by entry (LiveComparer; for backups:diff the comparison's
 * own thread, compare-thread.ts). The return values matter only in extract mode.
 */
export interface EntryComparer {
  startFile(
    rel: string,
    e: { size: number; mtime: number },
    want: { mode: number; uid: number; gid: number },
    staged: string,
    create: () => number,
    how?: CompareHow,
  ): boolean;
  data(chunk: Buffer): number | undefined;
  end(): number | undefined;
  dir(rel: string): void;
  symlink(rel: string, target: string, uid: number, gid: number): boolean;
  hardlink(rel: string, target: string): boolean;
}

/** The live file changed while it was being compared: refuse rather than guess. */
export class LiveChangedError extends Error {
  constructor(readonly rel: string) {
    super(
      `the live file ${rel} changed while it was compared with the backup (written during the rollback?): nothing was changed; run the rollback again`,
    );
  }
}

/**
 * How an equal file is staged: 'link' (a hard link in the staging tree), 'keep' (left in place: sparse rollback),
 * 'diff' (nothing staged: backups:diff).
 */
export type CompareHow = 'link' | 'keep' | 'diff';

interface Current {
  rel: string;
  liveFd: number;
  /** 'link': the staged path is a hard link to the live file; 'keep': nothing staged yet; 'diff': compare only */
  how: CompareHow;
  /** the staged path (link mode) */
  staged: string;
  offset: number;
  /** the size compared (the entry's, which the live file had when opened) */
  size: number;
  /** the live file's stat after our link */
  st: fs.BigIntStats;
  /** creates the staged file (owner, mode set) and returns its descriptor */
  create: () => number;
}

export class LiveComparer implements EntryComparer {
  readonly changes: TreeChanges = { added: [], removed: [], modified: [] };
  readonly linked = new Map<string, LinkedFile>();
  linkedBytes = 0;
  private cur: Current | null = null;
  private scratch = Buffer.allocUnsafe(1 << 20);
  /**
   * with a page-cache warmer (prefetch-worker.ts), where it reads them: [0] counts the files started, [2] those whose
   * bytes are read (type, size, mode, owner and mtime equal)
   */
  progress: Int32Array | undefined;
  /** called when the comparison asks the warmer for more (it starts the warmer the first time) */
  warmWanted: (() => void) | undefined;
  /** /proc/self/fd works: descriptors' paths can be checked (else nothing is linked) */
  private procOk: boolean | undefined;
  /**
   * diff mode: the live directories of the archive that are real directories only root or we can change, under a
   * root that is one: nobody else can turn them (or an ancestor) into a link, so a file opened O_NOFOLLOW in one
   * is the file at that name without reading its descriptor's path back (one readlink less per file)
   */
  private readonly trustedDirs = new Set<string>();
  private rootTrusted: boolean | undefined;
  private readonly me = process.getuid?.() ?? -1;
  /** the last WINDOW files' first reads: 1 = slow (not in the page cache), for the warmer */
  private readonly slow = new Uint8Array(WINDOW);
  private slowAt = 0;
  private slowCount = 0;
  /** this thread's read_bytes at the start of the current window (null: /proc/thread-self/io not readable) */
  private diskBytes: number | null | undefined;

  constructor(private readonly input: CompareInput) {}

  private live(rel: string): string {
    return rel === '' ? this.input.liveDir : `${this.input.liveDir}/${rel}`;
  }

  /** The path the descriptor really names is the expected one (no symlinked ancestor on the way). */
  private fdIs(fd: number, rel: string): boolean {
    let p: string;
    try {
      p = fs.readlinkSync(`/proc/self/fd/${fd}`);
      this.procOk = true;
    } catch {
      this.procOk ??= false;
      return false;
    }
    return p === this.live(rel);
  }

  get comparing(): boolean {
    return this.cur !== null;
  }

  /**
   * A regular file entry: returns true when its live twin is being compared (the staged path is a hard link to it
   * in extract mode): feed its body to `data`, then call `end`. false: it differs already (recorded): write it.
   */
  startFile(
    rel: string,
    e: { size: number; mtime: number },
    want: { mode: number; uid: number; gid: number },
    staged: string,
    create: () => number,
    how: CompareHow = this.input.link ? 'link' : 'diff',
  ): boolean {
    if (this.progress) Atomics.add(this.progress, 0, 1);
    let fd: number;
    try {
      fd = fs.openSync(this.live(rel), OPEN_LIVE);
    } catch (err) {
      this.recordMissingOrOther(rel, err);
      return false;
    }
    let keep = false;
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      const same =
        st.isFile() &&
        st.nlink === 1n &&
        st.size === BigInt(e.size) &&
        Number(st.mode & 0o7777n) === want.mode &&
        Number(st.uid) === want.uid &&
        Number(st.gid) === want.gid &&
        sameMtime(st.mtimeNs, e.mtime);
      if (!same) {
        this.changes.modified.push(rel);
        return false;
      }
      let after = st;
      if (how === 'link') {
        // not provably the file at that name (or no /proc to prove it): written, never linked
        if (this.procOk === false || !this.fdIs(fd, rel)) {
          this.changes.modified.push(rel);
          return false;
        }
        fs.linkSync(this.live(rel), staged);
        const lst = fs.lstatSync(staged, { bigint: true });
        after = fs.fstatSync(fd, { bigint: true });
        if (lst.ino !== st.ino || lst.dev !== st.dev || after.nlink !== 2n || !this.fdIs(fd, rel)) {
          fs.unlinkSync(staged);
          this.changes.modified.push(rel);
          return false;
        }
      } else if (how === 'diff' && !this.inTrustedDir(rel) && !this.fdIs(fd, rel) && this.procOk) {
        // ('keep': every ancestor was checked to be a real directory only we can change: extract-sparse.ts)
        this.changes.modified.push(rel);
        return false;
      }
      this.cur = { rel, liveFd: fd, how, staged, offset: 0, size: e.size, st: after, create };
      if (this.progress) Atomics.add(this.progress, 2, 1);
      keep = true;
      return true;
    } finally {
      if (!keep) fs.closeSync(fd);
    }
  }

  private recordMissingOrOther(rel: string, err: unknown): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') this.changes.removed.push(rel);
    else this.changes.modified.push(rel); // a symlink (ELOOP), a directory, a FIFO, unreadable: not the same file
  }

  /**
   * A piece of the current file's body. Returns undefined while it matches; once it differs, the descriptor of
   * the staged file now holding everything up to and including `chunk` (extract mode), or -1 (diff mode).
   */
  data(chunk: Buffer): number | undefined {
    const c = this.cur!;
    if (this.equalAt(c, chunk)) {
      c.offset += chunk.length;
      return undefined;
    }
    return this.diverge(c, chunk);
  }

  private equalAt(c: Current, chunk: Buffer): boolean {
    if (this.scratch.length < chunk.length) this.scratch = Buffer.allocUnsafe(chunk.length);
    const timed = this.progress !== undefined && c.offset === 0;
    const t0 = timed ? performance.now() : 0;
    let got = 0;
    while (got < chunk.length) {
      const n = fs.readSync(c.liveFd, this.scratch, got, chunk.length - got, c.offset + got);
      if (n === 0) return false;
      got += n;
    }
    if (timed) this.noteRead(t0);
    return this.scratch.subarray(0, chunk.length).equals(chunk);
  }

  /**
   * The page-cache warmer (prefetch-worker.ts) reads only while the comparison asks it to: when a quarter of a
   * WINDOW of first reads came from the disk, it asks for the next LEASE files; on a tree in memory it reads
   * nothing (it cost ~5 s of CPU on the bench store, a third of backups:diff's, for nothing). A read from the page
   * cache takes a few microseconds here, one from the disk 60-250; but on a loaded machine a read preempted is
   * slow too, and that timing alone started the warmer on a tree in memory: the slow reads of a window count only
   * when this thread's read_bytes (/proc/thread-self/io: what its reads fetched from the disk) grew by a page for
   * each. (Memory pressure leaves a few cold files here and there in a tree otherwise in memory: 8 of 64 was too
   * few to be worth a warmer that reads 5,000 files.)
   */
  private noteRead(t0: number): void {
    const s = performance.now() - t0 > SLOW_MS ? 1 : 0;
    this.slowCount += s - this.slow[this.slowAt]!;
    this.slow[this.slowAt] = s;
    this.slowAt = (this.slowAt + 1) % WINDOW;
    if (this.slowAt !== 0) return;
    // a window is complete
    const slow = this.slowCount;
    const was = this.diskBytes === undefined ? threadReadBytes() : this.diskBytes;
    const now = was === null ? null : threadReadBytes();
    this.diskBytes = now;
    if (slow < SLOW_OF_WINDOW) return;
    if (was === null || now === null || now - was >= slow * PAGE) this.askWarm();
  }

  private askWarm(): void {
    const ctl = this.progress!;
    const until = Atomics.load(ctl, 0) + LEASE;
    if (until > Atomics.load(ctl, 3)) {
      Atomics.store(ctl, 3, until);
      this.warmWanted?.();
    }
  }

  /** diff mode: `rel`'s directory is trusted (see trustedDirs). */
  private inTrustedDir(rel: string): boolean {
    const i = rel.lastIndexOf('/');
    if (i === -1) {
      this.rootTrusted ??= this.trusted(lstatOrNull(this.input.liveDir));
      return this.rootTrusted;
    }
    return this.trustedDirs.has(rel.slice(0, i));
  }

  private trusted(st: fs.Stats | null): boolean {
    return st !== null && st.isDirectory() && (st.uid === 0 || st.uid === this.me) && (st.mode & 0o022) === 0;
  }

  /** The file differs: write what matched so far into a new staged file (extract) and hand it over. */
  private diverge(c: Current, chunk: Buffer | null): number {
    this.cur = null;
    this.changes.modified.push(c.rel);
    try {
      if (c.how === 'diff') return -1;
      if (c.how === 'link') {
        fs.unlinkSync(c.staged);
        this.linked.delete(c.rel);
      }
      const fd = c.create();
      this.writePrefix(c, fd);
      if (chunk) writeAll(fd, chunk);
      return fd;
    } finally {
      fs.closeSync(c.liveFd);
    }
  }

  /** The bytes compared so far, copied from the live file, which must not have changed since it was opened. */
  private writePrefix(c: Current, fd: number): void {
    let off = 0;
    while (off < c.offset) {
      const want = Math.min(this.scratch.length, c.offset - off);
      const n = fs.readSync(c.liveFd, this.scratch, 0, want, off);
      if (n === 0) throw new LiveChangedError(c.rel);
      writeAll(fd, this.scratch.subarray(0, n));
      off += n;
    }
    if (off > 0 && !unchanged(fs.fstatSync(c.liveFd, { bigint: true }), c.st)) {
      throw new LiveChangedError(c.rel);
    }
  }

  /**
   * The body is complete. Returns undefined when the file is the same (linked, in extract mode); else the
   * descriptor of the staged file holding the whole body (extract) or -1 (diff: it differs).
   */
  end(): number | undefined {
    const c = this.cur!;
    if (c.how !== 'link' && c.offset === c.size) {
      // no second fstat. 'keep': every byte up to the size fstat gave before the first read was equal; a write,
      // truncate, chmod, chown, utimes or link since that fstat moved its ctime (or size or inode), and the
      // re-check before the swap compares exactly that stat (firstChanged, extract-links.ts): a change made while
      // we read is refused there, as one made after. 'diff': a report of one moment, and a change made while the
      // file was read is one made just after it
      this.cur = null;
      fs.closeSync(c.liveFd);
      this.input.onKept?.(c.rel, c.st);
      return undefined;
    }
    // the live file must not have been touched since our link (or our open): its size is still the one compared
    // (every byte up to it was equal) and its ctime did not move, so it also ends here
    const now = fs.fstatSync(c.liveFd, { bigint: true });
    if (!unchanged(now, c.st) || now.size !== BigInt(c.offset)) return this.diverge(c, null);
    this.cur = null;
    fs.closeSync(c.liveFd);
    if (c.how === 'keep') this.input.onKept?.(c.rel, now);
    if (c.how === 'link') {
      this.linked.set(c.rel, {
        rel: c.rel,
        dev: now.dev,
        ino: now.ino,
        size: now.size,
        mtimeNs: now.mtimeNs,
        ctimeNs: now.ctimeNs,
      });
      this.linkedBytes += c.offset;
    }
    return undefined;
  }

  /** On failure: close the live descriptor. */
  abort(): void {
    if (this.cur) {
      try {
        fs.closeSync(this.cur.liveFd);
      } catch {
        // already failing
      }
      this.cur = null;
    }
  }

  /** A staged name is replaced by a later entry of the archive: its link (if any) is not one any more. */
  forget(rel: string): void {
    this.linked.delete(rel);
  }

  /** A staged link to a live file got a second staged name: its ctime moved, by us. */
  relinked(rel: string, staged: string): void {
    const l = this.linked.get(rel);
    if (!l) return;
    const st = fs.lstatSync(staged, { bigint: true });
    if (st.ino === l.ino && st.size === l.size && st.mtimeNs === l.mtimeNs) l.ctimeNs = st.ctimeNs;
  }

  /**
   * A symlink entry: modified unless the live path is a symlink to the same target with the same owner.
   * Returns true when it is the same.
   */
  symlink(rel: string, target: string, uid: number, gid: number): boolean {
    const st = lstatOrNull(this.live(rel));
    if (!st) return this.differs(this.changes.removed, rel);
    if (!st.isSymbolicLink() || st.uid !== uid || st.gid !== gid)
      return this.differs(this.changes.modified, rel);
    let t: string;
    try {
      t = fs.readlinkSync(this.live(rel));
    } catch {
      return this.differs(this.changes.modified, rel);
    }
    return t === target || this.differs(this.changes.modified, rel);
  }

  /** A hard link entry: the same as its target's live file, or modified. Returns true when it is the same. */
  hardlink(rel: string, target: string): boolean {
    const a = lstatOrNull(this.live(rel));
    if (!a) return this.differs(this.changes.removed, rel);
    const b = lstatOrNull(this.live(target));
    return (b !== null && a.ino === b.ino && a.dev === b.dev) || this.differs(this.changes.modified, rel);
  }

  private differs(list: string[], rel: string): false {
    list.push(rel);
    return false;
  }

  /** A directory entry: a live non-directory there is a modification (its content is walked by walkAdded). */
  dir(rel: string): void {
    const st = lstatOrNull(this.live(rel));
    if (st && !st.isDirectory()) this.changes.modified.push(rel);
    if (this.input.link) return;
    // (entries come parent first; a directory the archive lists twice is checked again)
    if (rel !== '' && this.trusted(st) && this.inTrustedDir(rel)) this.trustedDirs.add(rel);
    else this.trustedDirs.delete(rel);
  }

  /**
   * Once the archive is read: every live file (not directory) the archive does not have at that path as a
   * file or symlink, never following a symlink, excluded paths and `.magebackup-*` names left out. `walked`: the
   * same walk's result, made on another thread while the archive streamed (live-walk.ts; backups:diff only).
   */
  walkAdded(
    kindOf: (rel: string) => Kind | undefined,
    sparse?: {
      added: (rel: string, isDir: boolean) => void;
      keptName: (parent: string) => void;
      names: (rel: string, names: readonly string[]) => void;
    },
    walked?: string,
  ): void {
    if (walked !== undefined) {
      if (sparse) throw new Error('walkAdded: a sparse plan needs the names of its own walk');
      for (let at = 0; at < walked.length;) {
        const end = walked.indexOf('\0', at);
        const child = walked.slice(at, end);
        at = end + 1;
        const k = kindOf(child);
        if (k === undefined || k === 'd') this.changes.added.push(child);
      }
      return;
    }
    walkLive(
      this.live(''),
      this.input.filter === 'code',
      (child, isDir) => {
        const k = kindOf(child);
        if (k === undefined) sparse?.added(child, isDir);
        if (!isDir && (k === undefined || k === 'd')) this.changes.added.push(child);
      },
      sparse && {
        names: (rel, names) => sparse.names(rel, names),
        skipped: (parent) => sparse.keptName(parent),
      },
    );
  }
}

function writeAll(fd: number, b: Buffer): void {
  let off = 0;
  while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off);
}

/** A file not written, chmod-ed, chown-ed, linked or truncated since `was` was taken. */
function unchanged(now: fs.BigIntStats, was: fs.BigIntStats): boolean {
  return (
    now.ctimeNs === was.ctimeNs &&
    now.mtimeNs === was.mtimeNs &&
    now.size === was.size &&
    now.nlink === was.nlink &&
    now.ino === was.ino
  );
}

/**
 * The live mtime is the archive's, at the archive's precision: ustar headers (ours, GNU tar's) hold whole seconds,
 * so a live file (or directory: extract-sparse.ts) with the same second is the same (a linked file keeps its
 * sub-second part, which the backup never had); a pax mtime is compared to the microsecond (libuv sets times with
 * microseconds).
 */
export function sameMtime(ns: bigint, seconds: number): boolean {
  if (Number.isInteger(seconds)) return ns / 1_000_000_000n === BigInt(seconds) && ns >= 0n;
  const want = BigInt(Math.round(seconds * 1e6)) * 1000n;
  const d = ns - want;
  return d > -1000n && d < 1000n;
}

const ioBuf = Buffer.alloc(512);

/** The bytes this thread's reads fetched from the disk (read_bytes of /proc/thread-self/io), or null without. */
function threadReadBytes(): number | null {
  let fd: number;
  try {
    fd = fs.openSync('/proc/thread-self/io', 'r');
  } catch {
    return null;
  }
  try {
    const n = fs.readSync(fd, ioBuf, 0, ioBuf.length, 0);
    const m = /read_bytes: (\d+)/.exec(ioBuf.toString('latin1', 0, n));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}
