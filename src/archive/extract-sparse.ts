/**
 * Sparse staging of a selective code rollback: the staging tree holds only what differs, and the swap renames
 * only that (plus what was added since the backup, moved aside); everything equal stays where it is, untouched.
 * Staging every equal file as a hard link (extract-compare.ts 'link') costs a link, a directory and later an
 * unlink per file: as much as extracting the file (measured: 1 % changed on 96,842 files took longer than a full
 * restore). Here an unchanged file costs what comparing it costs: open, fstat, read, fstat, close.
 *
 * Renaming deep inside the live tree is only safe where nobody else can change the directories on the way: a
 * directory whose children may be renamed one by one ('sparse') is a real directory (lstat, never followed) owned
 * by root or by us and writable by nobody else, below a sparse parent (the store root first). Any other live
 * directory that the archive has (owned or writable by someone else, e.g. the web server user's generated/ or
 * pub/media) is swapped WHOLE, as a full restore does, and staged whole below it (equal files hard-linked, as
 * before). A live directory holding paths a code rollback keeps (var, pub/media, .git, node_modules, ...) can
 * not be swapped whole: it stays sparse, as the full restore's plan descends into it too (tree-plan.ts).
 *
 * Units (what the swap renames, tree-journal.ts): each staged file, symlink or whole directory in a sparse
 * directory, and each live entry of a sparse directory the archive does not have (moved aside: hasNew false).
 * A sparse directory whose every entry was staged (nothing equal inside: a deploy that changed a whole module,
 * or every file) becomes one unit instead of its entries: the swap costs what the full restore's costs.
 * The sparse directories kept in place get the archive's attributes after the swap (fixes), as a full restore
 * gives them; their old attributes are journaled for the undo.
 *
 * What stays in place must still be what was compared when the swap comes: every kept file (device, inode, size,
 * mtime, ctime) and every sparse directory (inode, mtime, ctime; when those moved, its names are read again:
 * only our own staging names may have come) is checked again just before the swap (extract-links.ts).
 *
 * Why one file just over 400 lines: SparsePlan is one walk, down the live tree beside the archive, whose state
 * (the sparse directories, their names, the units) every method shares; the comment above is a sixth of it.
 */
import fs from 'node:fs';
import { INTERNAL_PREFIX, ROOT_EXCLUDES, isCodeExcludedName } from './extract-filter.js';
import { LiveChangedError, sameMtime } from './extract-compare.js';

export interface SparseUnit {
  rel: string;
  hasNew: boolean;
}

export interface SparseDirFix {
  rel: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

/**
 * What a sparse swap leaves in place, to be checked again before it: per entry 6 numbers in `stats`:
 * kind (0 file, 1 directory), dev, ino, size (files) or a hash of the names (directories), mtimeNs, ctimeNs.
 * The paths are UTF-8 bytes, each ended by a NUL (which no path holds). Both live in shared memory
 * (SharedArrayBuffer): ~155k entries on the bench store (~16 MB) go from the extraction thread to the main thread
 * and on to the re-check thread without a copy, and the extraction thread (whose heap had grown to ~65 MB by
 * then) ends as soon as it has handed them over (the peak RSS came from that heap living on until the swap).
 */
export interface KeptSet {
  count: number;
  names: Uint8Array;
  stats: BigInt64Array;
}

/** The paths of a KeptSet, in order (tests; the re-check walks `names` itself). */
export function keptRels(k: KeptSet): string[] {
  if (k.count === 0) return [];
  return Buffer.from(k.names.buffer, k.names.byteOffset, k.names.byteLength)
    .toString()
    .slice(0, -1)
    .split('\0');
}

export interface SparseResult {
  /** files and symlinks left in place (equal to the backup) */
  keptFiles: number;
  units: SparseUnit[];
  fixes: SparseDirFix[];
  oldFixes: SparseDirFix[];
  kept: KeptSet;
}

/** The sparse plan as the extraction thread hands it over: the kept set stays there (only its size comes). */
export type SparsePlanResult = Omit<SparseResult, 'kept'> & { keptCount: number };

export const KEPT_FIELDS = 6;
const KIND_FILE = 0n;
export const KIND_DIR = 1n;

/** What a full restore gives a directory (the archive's entry). */
export interface DirWant {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

/**
 * The sparse directories, a row each in typed arrays: the live directory's stat when it was first looked at
 * (before its names were read), the hash of its names as the walk of the live tree read them (nameHash), and what
 * a full restore gives it (the archive's entry; none when the archive only implies it). As objects (three and four
 * BigInts per directory) they were ~17 MB of the extraction thread's heap on the bench store (58k directories).
 */
class DirTable {
  /** directory → row */
  readonly rows = new Map<string, number>();
  /** per row: dev, ino, mtimeNs, ctimeNs, names hash */
  private big = new BigInt64Array(BIG_FIELDS * 1024);
  /** per row: mode, uid, gid, flags (HAS_NAMES, HAS_WANT), wanted mode, uid, gid */
  private int = new Int32Array(INT_FIELDS * 1024);
  private wantMtime = new Float64Array(1024);

  get size(): number {
    return this.rows.size;
  }

  add(rel: string, st: fs.BigIntStats, want: DirWant | undefined): void {
    const r = this.rows.size;
    if (r === this.wantMtime.length) this.grow();
    this.rows.set(rel, r);
    this.big.set([st.dev, st.ino, st.mtimeNs, st.ctimeNs, 0n], r * BIG_FIELDS);
    const o = r * INT_FIELDS;
    this.int[o] = Number(st.mode & 0o7777n);
    this.int[o + 1] = Number(st.uid);
    this.int[o + 2] = Number(st.gid);
    this.int[o + 3] = 0;
    if (want) this.setWant(r, want);
  }

  private grow(): void {
    const big = new BigInt64Array(this.big.length * 2);
    big.set(this.big);
    this.big = big;
    const int = new Int32Array(this.int.length * 2);
    int.set(this.int);
    this.int = int;
    const m = new Float64Array(this.wantMtime.length * 2);
    m.set(this.wantMtime);
    this.wantMtime = m;
  }

  setWant(r: number, w: DirWant): void {
    const o = r * INT_FIELDS;
    this.int[o + 3]! |= HAS_WANT;
    this.int[o + 4] = w.mode;
    this.int[o + 5] = w.uid;
    this.int[o + 6] = w.gid;
    this.wantMtime[r] = w.mtime;
  }

  setNames(r: number, hash: bigint): void {
    this.big[r * BIG_FIELDS + 4] = hash;
    this.int[r * INT_FIELDS + 3]! |= HAS_NAMES;
  }

  want(r: number): DirWant | undefined {
    const o = r * INT_FIELDS;
    if ((this.int[o + 3]! & HAS_WANT) === 0) return undefined;
    return {
      mode: this.int[o + 4]!,
      uid: this.int[o + 5]!,
      gid: this.int[o + 6]!,
      mtime: this.wantMtime[r]!,
    };
  }

  /** The live attributes (a DirFix's fields), and its mtime in nanoseconds. */
  old(r: number): { mode: number; uid: number; gid: number; mtimeNs: bigint } {
    const o = r * INT_FIELDS;
    return {
      mode: this.int[o]!,
      uid: this.int[o + 1]!,
      gid: this.int[o + 2]!,
      mtimeNs: this.big[r * BIG_FIELDS + 2]!,
    };
  }

  /** Its row of a KeptSet (KIND_DIR): without a names hash, an inode of 0 never matches, so any change refuses. */
  keptRow(r: number, into: BigInt64Array, at: number): void {
    const b = r * BIG_FIELDS;
    const named = (this.int[r * INT_FIELDS + 3]! & HAS_NAMES) !== 0;
    into[at] = KIND_DIR;
    into[at + 1] = this.big[b]!;
    into[at + 2] = named ? this.big[b + 1]! : 0n;
    into[at + 3] = named ? this.big[b + 4]! : 0n;
    into[at + 4] = this.big[b + 2]!;
    into[at + 5] = this.big[b + 3]!;
  }
}

const BIG_FIELDS = 5;
const INT_FIELDS = 7;
const HAS_NAMES = 1;
const HAS_WANT = 2;

/** Names of a live directory that count for its re-check: magebackup's own (staging) names do not. */
export function nameHash(dir: string): bigint {
  return hashNames(fs.readdirSync(dir));
}

function hashNames(all: readonly string[]): bigint {
  const names = all.filter((n) => !n.startsWith(INTERNAL_PREFIX));
  names.sort();
  // two 32-bit FNV-1a lanes with different offsets (one BigInt per directory, not one per character: the walk
  // hashes ~100k names on the bench store)
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (const n of names) {
    for (let i = 0; i < n.length; i++) {
      const c = n.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
    }
    a = Math.imul(a ^ 0x2f, 0x01000193);
    b = Math.imul(b ^ 0x2f, 0x01000193) ^ (b >>> 15);
  }
  return BigInt.asIntN(64, (BigInt(a >>> 0) << 32n) | BigInt(b >>> 0));
}

export class SparsePlan {
  /** 'sparse' directories (their entries are staged one by one) and 'whole' ones (staged whole, or inside one) */
  private readonly zones = new Map<string, 'sparse' | 'whole'>();
  private readonly sparseDirs = new DirTable();
  /** staged entries of sparse directories, and live ones moved aside */
  private readonly units = new Map<string, boolean>();
  /** directories that exist in the staging tree */
  readonly stagedDirs = new Set<string>(['']);
  /** sparse directories with something left in place at or below them (they can not become one unit) */
  private readonly partial = new Set<string>(['']);
  /** the directory markPartial saw last (it is in `partial` for good: the files of a directory come together) */
  private lastPartial = '';
  private readonly keptRels: string[] = [];
  private keptStats = new BigInt64Array(1024 * KEPT_FIELDS);
  /** kept files that were staged after all (a later entry of the same path, a hard link to them) */
  private readonly unkept = new Set<string>();
  private readonly me = BigInt(process.getuid?.() ?? -1);

  constructor(
    private readonly liveDir: string,
    private readonly code: boolean,
  ) {
    const st = lstatOrNull(liveDir);
    if (st && this.trusted(st)) this.addSparse('', st, undefined);
    else this.zones.set('', 'whole');
  }

  /** The live root is a directory only we can change: entries may be kept in place. */
  get active(): boolean {
    return this.zones.get('') === 'sparse';
  }

  private live(rel: string): string {
    return rel === '' ? this.liveDir : `${this.liveDir}/${rel}`;
  }

  /** A real directory owned by root or us, writable by nobody else. */
  private trusted(st: fs.BigIntStats): boolean {
    return st.isDirectory() && (st.uid === 0n || st.uid === this.me) && (st.mode & 0o022n) === 0n;
  }

  private addSparse(rel: string, st: fs.BigIntStats, want: DirWant | undefined): void {
    this.zones.set(rel, 'sparse');
    this.sparseDirs.add(rel, st, want);
  }

  /**
   * The zone of a directory of the archive (its parent's zone known, as entries come parent first): a sparse
   * child of a sparse directory, or 'whole' (then it is a unit, staged whole, when its parent is sparse).
   */
  dir(rel: string, want?: DirWant): 'sparse' | 'whole' {
    const known = this.zones.get(rel);
    if (known !== undefined) {
      const r = this.sparseDirs.rows.get(rel);
      if (known === 'sparse' && want && r !== undefined) this.sparseDirs.setWant(r, want);
      return known;
    }
    const parent = parentOf(rel);
    if (this.dir(parent) === 'whole') {
      this.zones.set(rel, 'whole');
      return 'whole';
    }
    const st = lstatOrNull(this.live(rel));
    if (st?.isDirectory() && (this.trusted(st) || this.holdsKept(rel))) {
      this.addSparse(rel, st, want);
      return 'sparse';
    }
    this.zones.set(rel, 'whole');
    this.units.set(rel, true);
    return 'whole';
  }

  /** What a full restore gives a sparse directory (its archive entry), if the archive had one. */
  want(rel: string): DirWant | undefined {
    const r = this.sparseDirs.rows.get(rel);
    return r === undefined ? undefined : this.sparseDirs.want(r);
  }

  /** The zone an entry at `rel` is staged in: its parent directory's. */
  zoneOf(rel: string): 'sparse' | 'whole' {
    const parent = parentOf(rel);
    // entries come directory by directory, and a directory's zone never changes while the archive streams
    if (parent === this.lastParent && this.lastZone !== undefined) return this.lastZone;
    const z = this.dir(parent);
    this.lastParent = parent;
    this.lastZone = z;
    return z;
  }
  private lastParent = '';
  private lastZone: 'sparse' | 'whole' | undefined;

  /** An entry of a sparse directory was written into the staging tree: it is swapped in. */
  staged(rel: string): void {
    this.units.set(rel, true);
    this.unkept.add(rel);
  }

  /** An equal file left in place. */
  keptFile(rel: string, st: fs.BigIntStats): void {
    if (this.unkept.size !== 0) this.unkept.delete(rel);
    this.push(rel, KIND_FILE, st, st.size);
    this.markPartial(parentOf(rel));
  }

  /** An equal symlink (or hard link) left in place: its name must still be this inode at the swap. */
  keptOther(rel: string): void {
    const st = lstatOrNull(this.live(rel));
    if (st) {
      this.unkept.delete(rel);
      this.push(rel, KIND_FILE, st, st.size);
    }
    this.markPartial(parentOf(rel));
  }

  private push(rel: string, kind: bigint, st: fs.BigIntStats, sizeOrHash: bigint): void {
    const i = this.keptRels.length * KEPT_FIELDS;
    if (i + KEPT_FIELDS > this.keptStats.length) {
      const grown = new BigInt64Array(this.keptStats.length * 2);
      grown.set(this.keptStats);
      this.keptStats = grown;
    }
    this.keptRels.push(rel);
    const a = this.keptStats;
    a[i] = kind;
    a[i + 1] = st.dev;
    a[i + 2] = st.ino;
    a[i + 3] = sizeOrHash;
    a[i + 4] = st.mtimeNs;
    a[i + 5] = st.ctimeNs;
  }

  /**
   * A staged hard link whose target was left in place: the staged name becomes a second name of the live file,
   * which must still be the one compared (its record then takes the new ctime our link gave it).
   */
  linkKept(target: string, stagedAbs: string): void {
    const i = this.keptRels.lastIndexOf(target);
    const a = this.keptStats;
    const o = i * KEPT_FIELDS;
    const st = i === -1 || this.unkept.has(target) ? null : lstatOrNull(this.live(target));
    if (!st || st.ino !== a[o + 2] || st.ctimeNs !== a[o + 5]) throw new LiveChangedError(target);
    fs.linkSync(this.live(target), stagedAbs);
    const now = lstatOrNull(stagedAbs);
    if (!now || now.ino !== st.ino) throw new LiveChangedError(target);
    a[o + 5] = now.ctimeNs;
  }

  private markPartial(rel: string): void {
    if (rel === this.lastPartial) return;
    this.lastPartial = rel;
    let cur = rel;
    while (!this.partial.has(cur)) {
      this.partial.add(cur);
      cur = parentOf(cur);
    }
  }

  /**
   * Once the archive is read, for each live entry the archive does not have (parents first): moved aside when
   * its directory is sparse; a live directory holding kept paths is entered instead (its entries come next).
   */
  added(rel: string, isDir: boolean): void {
    if (this.zones.get(parentOf(rel)) !== 'sparse') return;
    if (isDir && this.holdsKept(rel)) {
      this.zones.set(rel, 'sparse');
      this.markPartial(rel);
      return;
    }
    this.units.set(rel, false);
  }

  /** The walk of the live tree read the names of `rel`. */
  names(rel: string, names: readonly string[]): void {
    const r = this.sparseDirs.rows.get(rel);
    if (r !== undefined) this.sparseDirs.setNames(r, hashNames(names));
  }

  /** A live name a code rollback keeps (var, .git, a staging directory, ...): its directory stays in place. */
  keptName(parent: string): void {
    this.markPartial(parent);
  }

  /**
   * A live directory kept (it holds kept paths) where the archive has no directory: everything else in it is
   * moved aside, as the full restore's plan does (tree-plan.ts).
   */
  private moveAsideBut(rel: string): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.live(rel));
    } catch {
      return;
    }
    for (const name of names) {
      const child = `${rel}/${name}`;
      if (this.keep(child, name)) continue;
      const st = lstatOrNull(this.live(child));
      if (st?.isDirectory() && this.holdsKept(child)) this.moveAsideBut(child);
      else this.units.set(child, false);
    }
  }

  /** A path a code rollback never touches (and magebackup's own names). */
  private keep(rel: string, name: string): boolean {
    return name.startsWith(INTERNAL_PREFIX) || (this.code && isCodeExcludedName(rel, name));
  }

  /** Does the live directory hold, at any depth, a path a code rollback keeps? */
  holdsKept(rel: string): boolean {
    if (rel === '') return true;
    if (this.code && ROOT_EXCLUDES.some((r) => r.startsWith(rel + '/'))) return true;
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(this.live(rel), { withFileTypes: true });
    } catch {
      return false;
    }
    for (const e of ents) if (this.keep(`${rel}/${e.name}`, e.name)) return true;
    for (const e of ents) if (e.isDirectory() && this.holdsKept(`${rel}/${e.name}`)) return true;
    return false;
  }

  /**
   * The swap plan, once the archive is read and the live tree walked. A live directory holding kept paths where
   * the archive has a file or symlink stays a directory (reported through `keptDir`, as the full restore does).
   */
  finish(keptDir: (rel: string) => void): SparseResult {
    // sparse directories not staged at all stay in place
    for (const rel of this.sparseDirs.rows.keys()) if (!this.stagedDirs.has(rel)) this.markPartial(rel);
    // a live directory holding kept paths is never replaced by a staged file or symlink (nor moved with its parent)
    for (const [rel, hasNew] of this.units) {
      if (!hasNew || this.zones.has(rel)) continue;
      const st = lstatOrNull(this.live(rel));
      if (st?.isDirectory() && this.holdsKept(rel)) {
        keptDir(rel);
        this.units.delete(rel);
        this.markPartial(rel);
        this.moveAsideBut(rel);
      }
    }
    const units: SparseUnit[] = [];
    const rows = this.sparseDirs.rows;
    // is a directory inside one swapped whole (or itself one)? memoised, the sparse directories by row (0: not
    // known yet, 1: no, 2: yes): the parents come up again and again (a Map of them was ~4 MB on the bench store)
    const rowMemo = new Uint8Array(rows.size);
    const otherMemo = new Map<string, boolean>();
    const dirInWhole = (rel: string): boolean => {
      if (rel === '') return false; // the root is always partial
      const r = rows.get(rel);
      if (r !== undefined) {
        if (rowMemo[r] === 0) rowMemo[r] = !this.partial.has(rel) || dirInWhole(parentOf(rel)) ? 2 : 1;
        return rowMemo[r] === 2;
      }
      let v = otherMemo.get(rel);
      if (v === undefined) {
        v = dirInWhole(parentOf(rel));
        otherMemo.set(rel, v);
      }
      return v;
    };
    const whole = (rel: string): boolean => rows.has(rel) && !this.partial.has(rel);
    const inWhole = (rel: string): boolean => dirInWhole(parentOf(rel));
    const unitRels = new Set<string>();
    for (const [rel, hasNew] of this.units) {
      if (inWhole(rel)) continue;
      unitRels.add(rel);
      units.push({ rel, hasNew });
    }
    for (const rel of rows.keys()) {
      if (rel !== '' && whole(rel) && !inWhole(rel)) {
        unitRels.add(rel);
        units.push({ rel, hasNew: true });
      }
    }
    units.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
    const touched = new Set<string>();
    for (const r of unitRels) touched.add(parentOf(r));
    const fixes: SparseDirFix[] = [];
    const oldFixes: SparseDirFix[] = [];
    for (const [rel, r] of rows) {
      if (rel === '' || unitRels.has(rel) || inWhole(rel)) continue;
      const w = this.sparseDirs.want(r);
      if (!w) continue;
      const l = this.sparseDirs.old(r);
      // the mtime at the archive's precision (whole seconds in ustar): a directory a backup then a rollback left
      // alone keeps its sub-second part, as a kept file does, instead of ~58k fixes on the bench store
      const same = w.mode === l.mode && w.uid === l.uid && w.gid === l.gid && sameMtime(l.mtimeNs, w.mtime);
      if (!same || touched.has(rel)) {
        fixes.push({ rel, ...w });
        oldFixes.push({ rel, mode: l.mode, uid: l.uid, gid: l.gid, mtime: Number(l.mtimeNs) / 1e9 });
      }
    }
    // what stays in place: the kept files (not inside a unit) and every sparse directory left in place. Counted
    // first (a flag per kept file and per sparse directory), then written once into shared memory at its size:
    // no array of ~155k paths nor their joined copy on the heap
    const fileStays = new Uint8Array(this.keptRels.length);
    let keptFiles = 0;
    let bytes = 0;
    for (let i = 0; i < this.keptRels.length; i++) {
      const rel = this.keptRels[i]!;
      if (this.unkept.has(rel) || inWhole(rel)) continue;
      fileStays[i] = 1;
      keptFiles++;
      bytes += Buffer.byteLength(rel) + 1;
    }
    const dirStays = new Uint8Array(rows.size);
    let keptDirs = 0;
    for (const [rel, r] of rows) {
      if (unitRels.has(rel) || inWhole(rel)) continue;
      dirStays[r] = 1;
      keptDirs++;
      bytes += Buffer.byteLength(rel) + 1;
    }
    const n = keptFiles + keptDirs;
    const names = Buffer.from(new SharedArrayBuffer(bytes));
    const stats = new BigInt64Array(new SharedArrayBuffer(n * KEPT_FIELDS * 8));
    let at = 0;
    let k = 0;
    for (let i = 0; i < this.keptRels.length; i++) {
      if (fileStays[i] === 0) continue;
      at += names.write(this.keptRels[i]!, at);
      names[at++] = 0;
      stats.set(this.keptStats.subarray(i * KEPT_FIELDS, (i + 1) * KEPT_FIELDS), k++ * KEPT_FIELDS);
    }
    // a directory's stat from before the walk read its names: a name added since moves its mtime, and the
    // re-check then reads the names again, which must be those the walk saw (what the walk found added is moved
    // aside)
    for (const [rel, r] of rows) {
      if (dirStays[r] === 0) continue;
      at += names.write(rel, at);
      names[at++] = 0;
      this.sparseDirs.keptRow(r, stats, k++ * KEPT_FIELDS);
    }
    const kept: KeptSet = { count: n, names: new Uint8Array(names.buffer, 0, bytes), stats };
    return { keptFiles, units, fixes, oldFixes, kept };
  }
}

export function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i === -1 ? '' : rel.slice(0, i);
}

function lstatOrNull(p: string): fs.BigIntStats | null {
  try {
    return fs.lstatSync(p, { bigint: true });
  } catch {
    return null;
  }
}
