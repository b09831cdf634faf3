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
 * When a compared file turns out to differ part-way, the staged link is replaced by a new file and the bytes
 * already consumed are written there: kept in memory up to MAX_RETAINED bytes; past that only their SHA-256 is
 * kept, the prefix is copied from the live descriptor and must hash the same (else the live file changed under
 * us: the extraction fails, nothing live was touched).
 */
import fs from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { codeExcludedPrefix, INTERNAL_PREFIX } from './extract-filter.js';
import type { Kind } from './extract-plan.js';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = fs.constants;
const OPEN_LIVE = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
/** bytes of a compared file's body kept in memory (to write them if the file turns out to differ) */
const MAX_RETAINED = 8 << 20;

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
  /** 'code': excluded paths are left out of the live walk; always: magebackup's own `.magebackup-*` names */
  filter: 'none' | 'code' | 'media';
}

/** The live file changed while it was being compared: refuse rather than guess. */
export class LiveChangedError extends Error {
  constructor(readonly rel: string) {
    super(
      `the live file ${rel} changed while it was compared with the backup (written during the rollback?): nothing was changed; run the rollback again`,
    );
  }
}

interface Current {
  rel: string;
  liveFd: number;
  /** the staged hard link (extract mode), or '' (diff) */
  staged: string;
  offset: number;
  retained: Buffer[] | null;
  hash: Hash | null;
  /** the live file's stat after our link */
  st: fs.BigIntStats;
  /** creates the staged file (owner, mode set) and returns its descriptor */
  create: () => number;
}

export class LiveComparer {
  readonly changes: TreeChanges = { added: [], removed: [], modified: [] };
  readonly linked = new Map<string, LinkedFile>();
  linkedBytes = 0;
  private cur: Current | null = null;
  private scratch = Buffer.allocUnsafe(1 << 20);
  /** /proc/self/fd works: descriptors' paths can be checked (else nothing is linked) */
  private procOk: boolean | undefined;

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
  ): boolean {
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
      if (this.input.link) {
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
      } else if (!this.fdIs(fd, rel) && this.procOk) {
        this.changes.modified.push(rel);
        return false;
      }
      this.cur = {
        rel,
        liveFd: fd,
        staged: this.input.link ? staged : '',
        offset: 0,
        retained: this.input.link ? [] : null,
        hash: null,
        st: after,
        create,
      };
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
      this.retain(c, chunk);
      return undefined;
    }
    return this.diverge(c, chunk);
  }

  private equalAt(c: Current, chunk: Buffer): boolean {
    if (this.scratch.length < chunk.length) this.scratch = Buffer.allocUnsafe(chunk.length);
    let got = 0;
    while (got < chunk.length) {
      const n = fs.readSync(c.liveFd, this.scratch, got, chunk.length - got, c.offset + got);
      if (n === 0) return false;
      got += n;
    }
    return this.scratch.subarray(0, chunk.length).equals(chunk);
  }

  private retain(c: Current, chunk: Buffer): void {
    if (!c.staged) return;
    if (c.retained !== null && c.offset <= MAX_RETAINED) {
      c.retained.push(Buffer.from(chunk));
      return;
    }
    if (c.hash === null) {
      c.hash = createHash('sha256');
      for (const b of c.retained ?? []) c.hash.update(b);
      c.retained = null;
    }
    c.hash.update(chunk);
  }

  /** The file differs: write what matched so far into a new staged file (extract) and hand it over. */
  private diverge(c: Current, chunk: Buffer | null): number {
    this.cur = null;
    this.changes.modified.push(c.rel);
    try {
      if (!c.staged) return -1;
      fs.unlinkSync(c.staged);
      this.linked.delete(c.rel);
      const fd = c.create();
      this.writePrefix(c, fd);
      if (chunk) writeAll(fd, chunk);
      return fd;
    } finally {
      fs.closeSync(c.liveFd);
    }
  }

  private writePrefix(c: Current, fd: number): void {
    if (c.retained !== null) {
      for (const b of c.retained) writeAll(fd, b);
      return;
    }
    // past MAX_RETAINED: copy the prefix from the live file, and it must be the bytes that were compared
    const h = createHash('sha256');
    let off = 0;
    while (off < c.offset) {
      const want = Math.min(this.scratch.length, c.offset - off);
      const n = fs.readSync(c.liveFd, this.scratch, 0, want, off);
      if (n === 0) throw new LiveChangedError(c.rel);
      const b = this.scratch.subarray(0, n);
      h.update(b);
      writeAll(fd, b);
      off += n;
    }
    if (!h.digest().equals(c.hash!.copy().digest())) throw new LiveChangedError(c.rel);
  }

  /**
   * The body is complete. Returns undefined when the file is the same (linked, in extract mode); else the
   * descriptor of the staged file holding the whole body (extract) or -1 (diff: it differs).
   */
  end(): number | undefined {
    const c = this.cur!;
    // the live file must end here, and must not have been touched since our link (or our open)
    const more = fs.readSync(c.liveFd, this.scratch, 0, 1, c.offset);
    const now = fs.fstatSync(c.liveFd, { bigint: true });
    if (
      more !== 0 ||
      now.ctimeNs !== c.st.ctimeNs ||
      now.mtimeNs !== c.st.mtimeNs ||
      now.size !== c.st.size ||
      now.nlink !== c.st.nlink
    ) {
      return this.diverge(c, null);
    }
    this.cur = null;
    fs.closeSync(c.liveFd);
    if (c.staged) {
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

  /** A symlink entry: modified unless the live path is a symlink to the same target with the same owner. */
  symlink(rel: string, target: string, uid: number, gid: number): void {
    const st = lstatOrNull(this.live(rel));
    if (!st) return void this.changes.removed.push(rel);
    if (!st.isSymbolicLink() || st.uid !== uid || st.gid !== gid) return void this.changes.modified.push(rel);
    let t: string;
    try {
      t = fs.readlinkSync(this.live(rel));
    } catch {
      return void this.changes.modified.push(rel);
    }
    if (t !== target) this.changes.modified.push(rel);
  }

  /** A hard link entry: the same as its target's live file, or modified. */
  hardlink(rel: string, target: string): void {
    const a = lstatOrNull(this.live(rel));
    if (!a) return void this.changes.removed.push(rel);
    const b = lstatOrNull(this.live(target));
    if (!b || a.ino !== b.ino || a.dev !== b.dev) this.changes.modified.push(rel);
  }

  /** A directory entry: a live non-directory there is a modification (its content is walked by walkAdded). */
  dir(rel: string): void {
    const st = lstatOrNull(this.live(rel));
    if (st && !st.isDirectory()) this.changes.modified.push(rel);
  }

  /**
   * Once the archive is read: every live file (not directory) the archive does not have at that path as a
   * file or symlink, never following a symlink, excluded paths and `.magebackup-*` names left out.
   */
  walkAdded(kindOf: (rel: string) => Kind | undefined): void {
    const code = this.input.filter === 'code';
    const visit = (rel: string): void => {
      let ents: fs.Dirent[];
      try {
        ents = fs.readdirSync(this.live(rel), { withFileTypes: true });
      } catch {
        return;
      }
      for (const d of ents) {
        const name = d.name;
        const child = rel === '' ? name : `${rel}/${name}`;
        if (name.startsWith(INTERNAL_PREFIX)) continue;
        if (code && codeExcludedPrefix(child) !== undefined) continue;
        if (d.isDirectory()) visit(child);
        else {
          const k = kindOf(child);
          if (k === undefined || k === 'd') this.changes.added.push(child);
        }
      }
    };
    visit('');
  }
}

function writeAll(fd: number, b: Buffer): void {
  let off = 0;
  while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off);
}

/**
 * The live mtime is the archive's, at the archive's precision: ustar headers (ours, GNU tar's) hold whole seconds,
 * so a live file with the same second is the same (a linked file keeps its sub-second part, which the backup never
 * had); a pax mtime is compared to the microsecond (libuv sets times with microseconds).
 */
function sameMtime(ns: bigint, seconds: number): boolean {
  if (Number.isInteger(seconds)) return ns / 1_000_000_000n === BigInt(seconds) && ns >= 0n;
  const want = BigInt(Math.round(seconds * 1e6)) * 1000n;
  const d = ns - want;
  return d > -1000n && d < 1000n;
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}
