/**
 * The extraction worker's sink (extract-worker.ts): what each tar entry becomes, with plain synchronous fs calls.
 * Path safety is decided by ExtractPlan (extract-plan.ts) before any call; with a live tree to compare with,
 * LiveComparer (extract-compare.ts) decides which files are equal, and for a sparse code rollback SparsePlan
 * (extract-sparse.ts) which of them stay in place.
 *
 * Why one file over 400 lines: Sink is one class driven entry by entry from the worker's synchronous loop, and its
 * methods share the state of that loop (the open file, the directory attributes set at the end, the counts).
 * The decisions it calls are already in their own modules (path safety, comparison, sparse plan, limits, types).
 */
import fs from 'node:fs';
import { TarFormatError, type TarEntry, type TarSink } from './tar-read.js';
import { ExtractPlan, UnsafeEntryError, componentWithPrefix, normalizeEntryPath } from './extract-plan.js';
import { INTERNAL_PREFIX, ROOT_EXCLUDES, codeExcludedPrefix } from './extract-filter.js';
import { LiveChangedError, LiveComparer, type EntryComparer } from './extract-compare.js';
import { SparsePlan, parentOf } from './extract-sparse.js';
import { IoError, LimitError, NAMED_WARNINGS, type Bound } from './extract-limits.js';
import type { WorkerInput, WorkerResult } from './extract-types.js';
import { formatBytesPlain } from '../fs/units.js';
import { WarningCode, type WarningCodeValue } from '../events.js';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
const CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;

interface DirAttr {
  mode: number;
  mtime: number;
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/** Exported for the fuzz test, which drives it in verify mode (no writes) without a worker per archive. */
export class Sink implements TarSink {
  private paths = new ExtractPlan();
  readonly result: WorkerResult = {
    entries: 0,
    files: 0,
    dirs: 0,
    symlinks: 0,
    bytes: 0,
    tarBytes: 0,
    skipped: 0,
  };
  private fd = -1;
  private fdMtime = 0;
  private curRel = '';
  private readonly dirAttrs = new Map<string, DirAttr>();
  private readonly warnedPrefixes = new Set<string>();
  private mediaPrefix: boolean | undefined;
  readonly write: boolean;
  private readonly dest: string;
  private readonly myUid = process.getuid?.() ?? -1;
  private readonly myGid = process.getgid?.() ?? -1;
  private readonly createMask: number;
  /** the ids to give what we create, when they differ from ours (we are root) */
  private readonly chownTo: { uid: number; gid: number } | undefined;
  /** disk space the entries declared so far (block-rounded, one block per entry at least) */
  private declared = 0;
  private readonly blockSize: number;
  private readonly warnCounts = new Map<WarningCodeValue, number>();
  /** compares entries with the live tree (and links equal files) when the input asks for it */
  readonly cmp: LiveComparer | undefined;
  /** where each entry is compared: `cmp`, or the comparison's own thread (backups:diff, compare-thread.ts) */
  private readonly ec: EntryComparer | undefined;
  /** a sparse code rollback: equal files stay in place (extract-sparse.ts) */
  readonly sp: SparsePlan | undefined;
  private comparing = false;

  constructor(
    private readonly input: WorkerInput,
    private readonly warn: (code: WarningCodeValue, p: string, message: string) => void,
    readonly bound: Bound,
    blockSize: number,
    remote?: EntryComparer,
  ) {
    this.write = input.mode === 'extract';
    this.dest = input.destDir ?? '';
    this.createMask = ~input.umask & 0o7777;
    const o = input.owner;
    this.chownTo = input.chown && o && (o.uid !== this.myUid || o.gid !== this.myGid) ? o : undefined;
    // a tar entry is at least 512 bytes of header: never count less, so `declared` bounds the tar stream too
    this.blockSize = Math.max(1024, blockSize);
    const sparse =
      this.write && input.compare?.sparse === true && input.filter === 'code'
        ? new SparsePlan(input.compare.liveDir, true)
        : undefined;
    this.sp = sparse?.active ? sparse : undefined;
    if (input.compare) {
      this.cmp = new LiveComparer({
        liveDir: input.compare.liveDir,
        link: this.write,
        filter: input.filter,
        onKept: (rel, st) => this.sp?.keptFile(rel, st),
      });
    }
    this.ec = this.write ? this.cmp : (remote ?? this.cmp);
  }

  /** The owner everything restored gets (what a full extraction gives it). */
  private get uid(): number {
    return this.chownTo?.uid ?? this.myUid;
  }
  private get gid(): number {
    return this.chownTo?.gid ?? this.myGid;
  }

  /** Throws LimitError once what the archive declares no longer fits the bound. */
  private account(e: TarEntry): void {
    const b = this.blockSize;
    this.declared += b + (e.type === '0' ? Math.ceil(e.size / b) * b : 0);
    if (this.declared > this.bound.bytes) throw this.limitError(e.path);
  }

  limitError(entry?: string): LimitError {
    const tail = this.write
      ? 'stopped before writing past it'
      : 'it could not be restored there (an archive bomb?)';
    return new LimitError(
      `it expands to more than ${formatBytesPlain(this.bound.bytes)}, ${this.bound.what}: ${tail}`,
      entry,
    );
  }

  /** A warning of a kind that may concern thousands of entries: the first ones named, the rest counted. */
  private warnMany(code: WarningCodeValue, rel: string, message: string): void {
    const n = (this.warnCounts.get(code) ?? 0) + 1;
    this.warnCounts.set(code, n);
    if (n <= NAMED_WARNINGS) this.warn(code, rel, message);
  }

  /** The mode to give an entry: set-id bits (and sticky on non-directories) dropped, o+w removed, both reported. */
  private safeMode(rel: string, raw: number, isDir: boolean): number {
    let mode = raw & 0o7777;
    const name = rel === '' ? '.' : rel;
    const keep = this.input.keepModes;
    const special = mode & (isDir ? 0o6000 : 0o7000);
    if (special !== 0) {
      const bits = [
        special & 0o4000 ? 'setuid' : '',
        special & 0o2000 ? 'setgid' : '',
        special & 0o1000 ? 'sticky' : '',
      ]
        .filter(Boolean)
        .join('+');
      this.warnMany(
        WarningCode.SPECIAL_MODE,
        name,
        keep
          ? `${name} is ${bits} in the archive (mode ${octal(mode)}): kept (--keep-modes)`
          : `${name} is ${bits} in the archive (mode ${octal(mode)}): restored without it (--keep-modes keeps it)`,
      );
      if (!keep) mode &= ~special;
    }
    if (mode & 0o002) {
      this.warnMany(
        WarningCode.WORLD_WRITABLE,
        name,
        keep
          ? `${name} is world-writable in the archive (mode ${octal(mode)}): kept (--keep-modes)`
          : `${name} is world-writable in the archive (mode ${octal(mode)}): restored without write permission for others (--keep-modes keeps it)`,
      );
      if (!keep) mode &= ~0o002;
    }
    return mode;
  }

  /** The path-safety plan: what each extracted path is (while the archive streams, and for the live walk). */
  get plan(): ExtractPlan {
    return this.paths;
  }

  /** Once the archive is read and checked (checkEnd) and the live tree walked: the plan's names are let go. */
  dropPlan(): void {
    this.paths = new ExtractPlan();
  }

  /** Counts the warnings past the named ones; checks where the symlinks lead once every entry is known. */
  checkEnd(): void {
    for (const [code, n] of this.warnCounts) {
      if (n > NAMED_WARNINGS) {
        this.warn(code, '', `${n - NAMED_WARNINGS} more entries have the same ${code} warning (not named)`);
      }
    }
    for (const l of this.paths.escapingLinks()) {
      const why = `is a symlink to "${l.target}", which leaves the tree it is restored into`;
      if (this.write && !this.input.allowOutsideLinks) {
        throw new UnsafeEntryError(`${why} (--allow-outside-links restores such links)`, l.path);
      }
      this.warnMany(
        WarningCode.OUTSIDE_LINK,
        l.path,
        this.write
          ? `${l.path} ${why}: restored (--allow-outside-links)`
          : `${l.path} ${why}: a rollback refuses it unless --allow-outside-links`,
      );
    }
    const more = (this.warnCounts.get(WarningCode.OUTSIDE_LINK) ?? 0) - NAMED_WARNINGS;
    if (more > 0) this.warn(WarningCode.OUTSIDE_LINK, '', `${more} more symlinks leave the tree (not named)`);
  }

  private abs(rel: string): string {
    return rel === '' ? this.dest : this.dest + '/' + rel;
  }

  /** The relative path inside the destination, or undefined to skip the entry. */
  private map(raw: string): string | undefined {
    let rel = normalizeEntryPath(raw);
    // Staging directories and journals are ours: one restored from an archive could be replayed as ours.
    const internal = componentWithPrefix(rel, INTERNAL_PREFIX);
    if (internal !== undefined) {
      const what = `magebackup's internal state (${INTERNAL_PREFIX}*), which is never restored`;
      // verify fails such an archive; a rollback skips the entries (an attacker who can write pub/media could
      // otherwise plant one there and make every later media backup unrestorable)
      if (!this.write) throw new UnsafeEntryError(`is ${what}`, raw);
      this.warnOnce(WarningCode.INTERNAL_PATH, internal, `${internal} is ${what}: skipped`);
      return undefined;
    }
    const filter = this.input.filter;
    if (filter === 'media') {
      if (this.mediaPrefix === undefined) this.mediaPrefix = rel === 'pub' || rel.startsWith('pub/media');
      if (this.mediaPrefix) {
        if (rel === 'pub') return undefined;
        if (rel === 'pub/media') return '';
        if (!rel.startsWith('pub/media/')) {
          this.warnOnce('OUTSIDE_MEDIA', rel, `${rel} is not under pub/media in a media archive: skipped`);
          return undefined;
        }
        rel = rel.slice('pub/media/'.length);
      }
    } else if (filter === 'code') {
      const ex = codeExcludedPrefix(rel);
      if (ex !== undefined) {
        this.warnOnce(
          'EXCLUDED_PATH',
          ex,
          `${ex} is excluded from code rollbacks: left as it is, not restored`,
        );
        return undefined;
      }
    }
    return rel;
  }

  private warnOnce(code: WarningCodeValue, prefix: string, message: string): void {
    this.result.skipped++;
    if (this.warnedPrefixes.has(prefix)) return;
    this.warnedPrefixes.add(prefix);
    this.warn(code, prefix, message);
  }

  entry(e: TarEntry): void {
    this.fd = -1;
    this.comparing = false;
    this.account(e);
    const rel = this.map(e.path);
    if (rel === undefined) return;
    this.curRel = rel;
    this.result.entries++;
    if (this.result.entries > this.bound.inodes) {
      throw new LimitError(
        `it has more entries than ${this.bound.dir} has free inodes (${this.bound.inodes}, less a margin)`,
        e.path,
      );
    }
    const type = e.type;
    const isDir = type === '5' || type === 'D';
    if (rel === '') {
      if (!isDir) throw new UnsafeEntryError('is not a directory but names the archive root', e.path);
      this.result.rootAttrs = {
        mode: this.safeMode('', e.mode, true),
        uid: this.chownTo?.uid ?? this.myUid,
        gid: this.chownTo?.gid ?? this.myGid,
        mtime: e.mtime,
      };
      this.result.dirs++;
      return;
    }
    if (!isDir && this.input.filter === 'code' && ROOT_EXCLUDES.some((r) => r.startsWith(rel + '/'))) {
      // the live `pub` holds pub/media and pub/static, which a code rollback keeps: it must stay a directory
      const kept = ROOT_EXCLUDES.filter((r) => r.startsWith(rel + '/')).join(' and ');
      throw new UnsafeEntryError(
        `is not a directory, but a code rollback keeps ${kept} inside it (a symlink here could lead the swap outside the store)`,
        e.path,
      );
    }
    try {
      switch (type) {
        case '5':
        case 'D':
          this.dir(rel, e);
          break;
        case '0':
          this.file(rel, e);
          break;
        case '2':
          this.symlink(rel, e);
          break;
        case '1':
          this.hardlink(rel, e);
          break;
        case '3':
        case '4':
          throw new UnsafeEntryError('is a device file (refused)', e.path);
        case '6':
          this.result.entries--;
          this.warn('SPECIAL_FILE', rel, `${rel} is a FIFO: skipped`);
          break;
        default:
          throw new TarFormatError(`unsupported entry type '${type}'`, e.path);
      }
    } catch (err) {
      if (
        err instanceof UnsafeEntryError ||
        err instanceof TarFormatError ||
        err instanceof IoError ||
        err instanceof LiveChangedError
      )
        throw err;
      throw new IoError(err as NodeJS.ErrnoException, rel);
    }
  }

  private mkParents(rel: string): void {
    const missing = this.paths.ensureParent(rel);
    if (!this.write || this.sp) return; // sparse: staged directories are made when something goes in them
    for (const m of missing) {
      fs.mkdirSync(this.abs(m), 0o755);
      if (this.chownTo) fs.chownSync(this.abs(m), this.chownTo.uid, this.chownTo.gid);
    }
  }

  private removeBefore(rel: string, before: string | undefined): void {
    if (before !== undefined) this.cmp?.forget(rel);
    if (this.write && (before === 'f' || before === 'l')) {
      try {
        fs.unlinkSync(this.abs(rel));
      } catch (err) {
        // sparse: the earlier entry may have been left in place, not staged
        if (!this.sp || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  /** Sparse: is `rel` staged in a sparse directory (one by one), rather than inside a directory staged whole? */
  private sparseAt(rel: string): boolean {
    return this.sp?.zoneOf(rel) === 'sparse';
  }

  /** Sparse: the staging directories above `rel` (made on demand: only what differs is staged). */
  private stageParent(rel: string): void {
    const sp = this.sp;
    if (!sp) return;
    const missing: string[] = [];
    for (let p = parentOf(rel); !sp.stagedDirs.has(p); p = parentOf(p)) missing.push(p);
    for (const m of missing.reverse()) {
      sp.dir(m);
      fs.mkdirSync(this.abs(m), 0o755);
      if (this.chownTo) fs.chownSync(this.abs(m), this.chownTo.uid, this.chownTo.gid);
      sp.stagedDirs.add(m);
    }
  }

  /** A new staged file; in a sparse directory it becomes a unit of the swap. */
  private createStaged(rel: string, mode: number): number {
    this.stageParent(rel);
    if (this.sparseAt(rel)) this.sp!.staged(rel);
    return this.createFile(rel, mode);
  }

  private dir(rel: string, e: TarEntry): void {
    this.mkParents(rel);
    const before = this.paths.add(rel, 'd');
    const mode = this.safeMode(rel, e.mode, true);
    const sp = this.sp;
    // sparse: the zone's lstat found a real directory there, or the directory is staged whole
    const zone = sp?.dir(rel, { mode, uid: this.uid, gid: this.gid, mtime: e.mtime });
    if (before === undefined) {
      this.result.dirs++;
      // a sparse directory is a live directory (lstat-ed just now): no second lstat for the comparison
      if (zone !== 'sparse') this.ec?.dir(rel);
      if (this.write && !sp) fs.mkdirSync(this.abs(rel), 0o700);
    }
    if (sp && zone === 'whole' && !sp.stagedDirs.has(rel)) {
      this.stageParent(rel);
      fs.mkdirSync(this.abs(rel), 0o700);
      sp.stagedDirs.add(rel);
    }
    // a sparse directory's attributes are in the sparse plan already (its `want`): not a second copy here
    if (zone !== 'sparse') this.dirAttrs.set(rel, { mode, mtime: e.mtime });
  }

  private file(rel: string, e: TarEntry): void {
    this.mkParents(rel);
    const before = this.paths.add(rel, 'f');
    this.result.files++;
    this.result.bytes += e.size;
    const mode = this.safeMode(rel, e.mode, false);
    this.removeBefore(rel, before);
    this.fdMtime = e.mtime;
    const sparse = this.sparseAt(rel);
    if (this.sp && !sparse) this.stageParent(rel); // a directory staged whole: the link goes there
    if (this.ec) {
      const want = { mode, uid: this.uid, gid: this.gid };
      const create = (): number => this.createStaged(rel, mode);
      if (this.ec.startFile(rel, e, want, this.abs(rel), create, sparse ? 'keep' : undefined)) {
        this.comparing = true;
        return;
      }
    }
    if (!this.write) return;
    this.fd = this.createStaged(rel, mode);
  }

  /** A new staged file with the owner and exact mode a restored file gets. */
  private createFile(rel: string, mode: number): number {
    const fd = fs.openSync(this.abs(rel), CREATE_FLAGS, mode & 0o777);
    try {
      if (this.chownTo) fs.fchownSync(fd, this.chownTo.uid, this.chownTo.gid);
      // open() applies the umask and no set-id/sticky bits (and fchown clears set-id): then set the mode exactly
      if ((mode & this.createMask) !== mode || (mode & 0o7000) !== 0) fs.fchmodSync(fd, mode);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return fd;
  }

  private symlink(rel: string, e: TarEntry): void {
    if (e.linkpath === '' || e.linkpath.includes('\0'))
      throw new UnsafeEntryError('is a symlink with an empty target', e.path);
    this.mkParents(rel);
    const before = this.paths.addSymlink(rel, e.linkpath);
    this.result.symlinks++;
    const same = this.ec?.symlink(rel, e.linkpath, this.uid, this.gid) ?? false;
    this.removeBefore(rel, before);
    if (!this.write) return;
    if (this.sp) {
      const sparse = this.sparseAt(rel);
      if (sparse && same) return this.sp.keptOther(rel);
      this.stageParent(rel);
      if (sparse) this.sp.staged(rel);
    }
    const abs = this.abs(rel);
    fs.symlinkSync(e.linkpath, abs);
    if (this.chownTo) fs.lchownSync(abs, this.chownTo.uid, this.chownTo.gid);
    fs.lutimesSync(abs, e.mtime, e.mtime);
  }

  private hardlink(rel: string, e: TarEntry): void {
    let target: string | undefined;
    try {
      target = this.map(e.linkpath);
    } catch (err) {
      if (err instanceof UnsafeEntryError)
        throw new UnsafeEntryError(`is a hard link that ${err.message}`, e.path);
      throw err;
    }
    if (target === undefined) {
      this.warn('LINK_TARGET_SKIPPED', rel, `${rel} is a hard link to the skipped ${e.linkpath}: skipped`);
      this.result.entries--;
      return;
    }
    if (target === rel) return;
    this.paths.checkLinkTarget(rel, target);
    this.mkParents(rel);
    // link(2) does not follow a symlink: the new name is the same symlink, and its target must be checked there
    const linkTarget = this.paths.linkTarget(target);
    const before =
      linkTarget === undefined ? this.paths.add(rel, 'f') : this.paths.addSymlink(rel, linkTarget);
    this.result.files++;
    const same = this.ec?.hardlink(rel, target) ?? false;
    this.removeBefore(rel, before);
    if (!this.write) return;
    if (this.sp) {
      const sparse = this.sparseAt(rel);
      const targetStaged = fs.lstatSync(this.abs(target), { throwIfNoEntry: false }) !== undefined;
      if (sparse && same && !targetStaged) return this.sp.keptOther(rel);
      this.stageParent(rel);
      if (sparse) this.sp.staged(rel);
      if (!targetStaged) {
        // the target was left in place (equal): the staged name becomes a second name of that live file
        this.sp.linkKept(target, this.abs(rel));
        return;
      }
    }
    fs.linkSync(this.abs(target), this.abs(rel));
    // a second name of a staged link to a live file moves that inode's ctime: what the pre-swap check expects
    this.cmp?.relinked(target, this.abs(target));
  }

  data(chunk: Buffer): void {
    if (this.comparing) {
      const fd = this.liveIo(() => this.ec!.data(chunk));
      if (fd !== undefined) {
        this.comparing = false;
        this.fd = fd;
      }
      return;
    }
    if (this.fd < 0) return;
    try {
      let off = 0;
      while (off < chunk.length) off += fs.writeSync(this.fd, chunk, off, chunk.length - off);
    } catch (err) {
      throw new IoError(err as NodeJS.ErrnoException, this.curRel);
    }
  }

  /** A comparison's fs error names the entry (a LiveChangedError says what happened itself). */
  private liveIo<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof LiveChangedError) throw err;
      throw new IoError(err as NodeJS.ErrnoException, this.curRel);
    }
  }

  endEntry(): void {
    if (this.comparing) {
      this.comparing = false;
      const fd = this.liveIo(() => this.ec!.end());
      if (fd === undefined) return;
      this.fd = fd;
    }
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    try {
      fs.futimesSync(fd, this.fdMtime, this.fdMtime);
      fs.closeSync(fd);
    } catch (err) {
      throw new IoError(err as NodeJS.ErrnoException, this.curRel);
    }
  }

  closeOpen(): void {
    this.cmp?.abort();
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already failing
      }
      this.fd = -1;
    }
  }

  /** Directory modes and mtimes last: adding children changes mtimes, and a read-only dir would block them. */
  finish(): void {
    if (!this.write) return;
    const sp = this.sp;
    const attrs = (rel: string): DirAttr | undefined => this.dirAttrs.get(rel) ?? sp?.want(rel);
    const rels = (
      sp ? [...sp.stagedDirs].filter((r) => attrs(r) !== undefined) : [...this.dirAttrs.keys()]
    ).sort((a, b) => b.length - a.length);
    for (const rel of rels) {
      const a = attrs(rel)!;
      const abs = this.abs(rel);
      try {
        if (this.chownTo) fs.chownSync(abs, this.chownTo.uid, this.chownTo.gid);
        fs.chmodSync(abs, a.mode);
        fs.utimesSync(abs, a.mtime, a.mtime);
      } catch (err) {
        throw new IoError(err as NodeJS.ErrnoException, rel);
      }
    }
  }
}
