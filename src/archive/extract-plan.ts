/**
 * Path safety for extraction, decided in memory before any system call: every entry name is normalized and
 * checked (no absolute paths, no '..', bounded length and depth), and the namespace of what has been extracted so
 * far is tracked, so that nothing is ever written THROUGH a symlink (one from the archive: the destination starts
 * empty), a hard link only points at an earlier regular file of the same archive, and a directory is never
 * replaced by something else. Pure: no fs access, shared by verify (no writes) and extract.
 */

export class UnsafeEntryError extends Error {
  constructor(
    message: string,
    readonly entry: string,
  ) {
    super(message);
    this.name = 'UnsafeEntryError';
  }
}

export interface PathLimits {
  /** longest path accepted, in bytes (Linux PATH_MAX is 4096 including the destination prefix) */
  maxPathBytes: number;
  /** deepest path accepted, in components */
  maxDepth: number;
  /** longest single path component, in bytes (NAME_MAX) */
  maxNameBytes: number;
}

export const DEFAULT_PATH_LIMITS: PathLimits = { maxPathBytes: 3072, maxDepth: 128, maxNameBytes: 255 };

/**
 * The archive name as a relative path without '.' or empty components ('' = the archive root, e.g. GNU tar's
 * './'). Throws UnsafeEntryError for absolute paths, '..' components, NUL bytes, absurd length or depth.
 */
export function normalizeEntryPath(raw: string, limits: PathLimits = DEFAULT_PATH_LIMITS): string {
  if (raw.includes('\0')) throw new UnsafeEntryError('has a NUL byte in its name', raw);
  if (raw.startsWith('/')) throw new UnsafeEntryError('has an absolute path', raw);
  if (Buffer.byteLength(raw) > limits.maxPathBytes)
    throw new UnsafeEntryError('has an absurdly long name', raw);
  if (isClean(raw, limits)) return raw;
  const parts = raw.split('/');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new UnsafeEntryError("has a '..' component (path traversal)", raw);
    if (p.length > limits.maxNameBytes / 4 && Buffer.byteLength(p) > limits.maxNameBytes) {
      throw new UnsafeEntryError('has a path component longer than 255 bytes', raw);
    }
    out.push(p);
  }
  if (out.length > limits.maxDepth)
    throw new UnsafeEntryError(`is nested deeper than ${limits.maxDepth} levels`, raw);
  return out.join('/');
}

/**
 * The common already-normalized name ("app/etc/env.php"): no empty, '.' or '..' component, no trailing slash,
 * components short enough not to need their byte length, not too deep. One scan, no allocation (this runs for
 * every entry of every archive); anything else takes the general path.
 */
function isClean(raw: string, limits: PathLimits): boolean {
  const n = raw.length;
  if (n === 0) return false;
  const maxChars = limits.maxNameBytes / 4;
  let depth = 1;
  let start = 0;
  for (let i = 0; i <= n; i++) {
    if (i < n && raw.charCodeAt(i) !== 0x2f) continue;
    const len = i - start;
    if (len === 0 || len > maxChars) return false;
    if (raw.charCodeAt(start) === 0x2e && (len === 1 || (len === 2 && raw.charCodeAt(start + 1) === 0x2e)))
      return false;
    if (i < n) depth++;
    start = i + 1;
  }
  return depth <= limits.maxDepth;
}

export type Kind = 'd' | 'f' | 'l';

/** The first component of `rel` that starts with `prefix` (and the path up to it), or undefined. */
export function componentWithPrefix(rel: string, prefix: string): string | undefined {
  if (rel.startsWith(prefix)) {
    const slash = rel.indexOf('/');
    return slash === -1 ? rel : rel.slice(0, slash);
  }
  const at = rel.indexOf('/' + prefix);
  if (at === -1) return undefined;
  const end = rel.indexOf('/', at + 1);
  return end === -1 ? rel : rel.slice(0, end);
}

/** Symlink chains longer than this do not resolve (Linux gives up at 40: ELOOP). */
const MAX_LINK_HOPS = 40;

export class ExtractPlan {
  /** what each extracted relative path is; '' (the destination itself) is a directory */
  private readonly kinds = new Map<string, Kind>([['', 'd']]);
  /** the target of each symlink extracted so far (hard links to a symlink included) */
  private readonly links = new Map<string, string>();

  kindOf(rel: string): Kind | undefined {
    return this.kinds.get(rel);
  }

  /**
   * Checks that every ancestor of `rel` is a directory of this extraction (never a symlink or a file) and
   * returns the ancestors that do not exist yet, outermost first (the caller creates them).
   */
  ensureParent(rel: string): string[] {
    const slash = rel.lastIndexOf('/');
    if (slash === -1) return [];
    const parent = rel.slice(0, slash);
    const k = this.kinds.get(parent);
    if (k === 'd') return []; // a directory's ancestors were checked when it was added, and never change kind
    const missing: string[] = [];
    let cur = parent;
    for (;;) {
      const kind = this.kinds.get(cur);
      if (kind === 'd') break;
      if (kind === 'l') {
        throw new UnsafeEntryError(`would be written through the symlink "${cur}" extracted before it`, rel);
      }
      if (kind === 'f') throw new UnsafeEntryError(`needs "${cur}" to be a directory, but it is a file`, rel);
      missing.push(cur);
      const s = cur.lastIndexOf('/');
      if (s === -1) break;
      cur = cur.slice(0, s);
    }
    missing.reverse();
    for (const m of missing) this.kinds.set(m, 'd');
    return missing;
  }

  /**
   * Records `rel` as `kind` and returns what was there before (to be removed first when it is a file or
   * symlink). A directory is never replaced, nor replaces a file or symlink: that throws.
   */
  add(rel: string, kind: Kind): Kind | undefined {
    const before = this.kinds.get(rel);
    if (before === 'd' && kind !== 'd') {
      throw new UnsafeEntryError('would replace a directory extracted before it', rel);
    }
    if (kind === 'd' && before !== undefined && before !== 'd') {
      throw new UnsafeEntryError('would replace a file or symlink extracted before it by a directory', rel);
    }
    this.kinds.set(rel, kind);
    if (before === 'l') this.links.delete(rel);
    return before;
  }

  /** Records a symlink (or a hard link to one: link(2) does not follow it) and its target. */
  addSymlink(rel: string, target: string): Kind | undefined {
    const before = this.add(rel, 'l');
    this.links.set(rel, target);
    return before;
  }

  linkTarget(rel: string): string | undefined {
    return this.links.get(rel);
  }

  /**
   * The symlinks whose target leaves the tree once it sits in place: absolute targets, and relative ones whose
   * '..' climb above the tree root, resolved through the other symlinks of this extraction as the kernel would
   * (`a -> .` then `b -> a/..` leaves the tree although `a/..` looks harmless). Call it once the archive is read:
   * a later entry may replace a link or the directory a link goes through.
   */
  escapingLinks(): Array<{ path: string; target: string }> {
    const out: Array<{ path: string; target: string }> = [];
    for (const [rel, target] of this.links) {
      if (this.escapes(rel, target)) out.push({ path: rel, target });
    }
    return out;
  }

  private escapes(rel: string, target: string): boolean {
    if (target.startsWith('/')) return true;
    const dir = rel.split('/');
    dir.pop();
    const pending = target.split('/').reverse();
    let hops = 0;
    while (pending.length > 0) {
      const c = pending.pop()!;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        if (dir.length === 0) return true;
        dir.pop();
        continue;
      }
      dir.push(c);
      const next = this.links.get(dir.join('/'));
      if (next === undefined) continue; // a directory, a file (resolution fails there) or not in the archive
      if (++hops > MAX_LINK_HOPS) return false; // ELOOP: resolves nowhere
      if (next.startsWith('/')) return true;
      dir.pop();
      for (const p of next.split('/').reverse()) pending.push(p);
    }
    return false;
  }

  /** A hard link's target must be a regular file or symlink extracted earlier from this archive. */
  checkLinkTarget(rel: string, target: string): void {
    if (target === '') throw new UnsafeEntryError('is a hard link to the archive root', rel);
    const kind = this.kinds.get(target);
    if (kind === 'd') throw new UnsafeEntryError(`is a hard link to the directory "${target}"`, rel);
    if (kind === undefined) {
      throw new UnsafeEntryError(
        `is a hard link to "${target}", which is not an earlier entry of the archive`,
        rel,
      );
    }
  }
}
