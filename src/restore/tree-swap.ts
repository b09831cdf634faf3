/**
 * Atomic, crash-safe replacement of the code tree or pub/media by the content of an archive. This module is the
 * API of the tree swap; its pieces:
 *
 * 1. Stage (tree-stage.ts): extract into `<dir>/.magebackup-staging-<ts>-<target>/new` on the same filesystem
 *    as the target; the extraction is the verification. It ends with the swap plan.
 * 2. Plan (tree-plan.ts): where the target lives, and which units are renamed (the top-most paths that hold
 *    nothing a code rollback must keep) and which directories are kept.
 * 3. Journal (tree-journal.ts): the plan as a TreeJournal, the staging directory's layout, its removal.
 * 4. Swap (here): swapForward renames each unit live → `<staging>/old/…` and staged → live; swapBack undoes it.
 *    Both are idempotent (every unit's state is visible from which of live/new/old exists), so a killed swap is
 *    finished or undone by running either again from its journal.
 *
 * The journal is not kept here: the staging directories sit beside trees the web server user can write, so a
 * journal found there could be anyone's. operation.ts keeps it, signed, in the private state directory. A swap
 * never enters a symlink: the parents of every unit are checked to be real directories. A code archive whose
 * `pub` is not a directory is refused by extraction.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CliError } from '../errors.js';
import { fsyncDir } from '../fs/atomic.js';
import { syncFilesystem } from './tree-stage.js';
import { stagingPresent, unitPaths, type DirFix, type TreeJournal } from './tree-journal.js';

export { stageTree, flushStaged, type StagedTree, type StageTreeOptions } from './tree-stage.js';
export {
  STAGING_NAME_RE,
  STAGING_PREFIX,
  removeStaging,
  removeTree,
  type DirFix,
  type JournalUnit,
  type TreeJournal,
} from './tree-journal.js';

/** Test seams (production passes none): a crash test SIGKILLs itself after a chosen rename, or throws there. */
export interface SwapHooks {
  /** called after every rename of the swap */
  afterRename?: () => void;
}

/**
 * Performs or finishes a swap: idempotent, every unit's progress is visible on disk. The per-unit calls are
 * synchronous: a sparse code rollback swaps a unit per changed file, and ~8 round trips each through libuv's pool
 * took 3-20 s for ~1k units on the loaded benchmark machine (a few ms each), against well under a second this way.
 */
export async function swapForward(t: TreeJournal, hooks: SwapHooks = {}): Promise<void> {
  if (!(await stagingPresent(t))) return;
  fs.mkdirSync(path.join(t.stagingDir, 'old'), { recursive: true, mode: 0o700 });
  const rename = renamer(hooks);
  const touched = new TouchedDirs();
  const checked = new Set<string>();
  const made = new Set<string>();
  for (const u of t.units) {
    const { live, staged, old } = unitPaths(t, u);
    assertNoLinkBetween(t.liveDir, u.rel, checked);
    if (u.hasNew) {
      if (!existsNoFollow(staged)) continue; // already moved in
      if (existsNoFollow(live)) moveAside(live, old, rename, made);
      rename(staged, live);
    } else if (existsNoFollow(live)) {
      moveAside(live, old, rename, made);
    }
    touched.add(path.dirname(live));
  }
  applyFixes(t, t.fixes, touched);
  await syncDirs(t, t.fixes, touched);
}

/**
 * The renamed-in-or-out directories to disk: an fsync each when they are few; past that one syncfs (a sparse code
 * rollback touches a directory per changed file: ~900 fsyncs took 3-7 s on the benchmark store, one syncfs 0.1 s).
 */
async function syncDirs(t: TreeJournal, fixes: DirFix[], touched: TouchedDirs): Promise<void> {
  if (!touched.many) {
    for (const d of touched.few) await fsyncDir(d).catch(() => {});
    return;
  }
  if (await syncFilesystem(t.liveDir)) return;
  // no sync(1) at all: an fsync each, the directories listed again from the journal
  const all = new Set<string>();
  for (const u of t.units) all.add(path.dirname(unitPaths(t, u).live));
  for (const f of fixes) all.add(f.rel === '' ? t.liveDir : path.join(t.liveDir, f.rel));
  for (const d of all) await fsyncDir(d).catch(() => {});
}

const MAX_DIR_FSYNCS = 32;

/**
 * The directories a swap changed: their paths are kept only while an fsync each is the plan (a first rollback
 * after a deploy that re-moded every directory fixes ~58k of them: their paths were ~10 MB held until the sync).
 */
class TouchedDirs {
  readonly few = new Set<string>();
  many = false;

  add(dir: string): void {
    if (this.many) return;
    this.few.add(dir);
    if (this.few.size > MAX_DIR_FSYNCS) {
      this.many = true;
      this.few.clear();
    }
  }
}

/** Undoes a swap, complete or partial: idempotent, the mirror of swapForward. */
export async function swapBack(t: TreeJournal, hooks: SwapHooks = {}): Promise<void> {
  if (!(await stagingPresent(t))) return;
  const rename = renamer(hooks);
  const touched = new TouchedDirs();
  const checked = new Set<string>();
  for (const u of [...t.units].reverse()) {
    const { live, staged, old } = unitPaths(t, u);
    assertNoLinkBetween(t.liveDir, u.rel, checked);
    if (u.hasNew && existsNoFollow(live) && !existsNoFollow(staged)) {
      // the live path is the staged one: move it back into the staging directory
      fs.mkdirSync(path.dirname(staged), { recursive: true, mode: 0o700 });
      rename(live, staged);
    }
    if (existsNoFollow(old) && !existsNoFollow(live)) rename(old, live);
    touched.add(path.dirname(live));
  }
  applyFixes(t, t.oldFixes, touched);
  await syncDirs(t, t.oldFixes, touched);
}

/** The parents of a unit below liveDir must be real directories: a swap never enters a symlink. */
function assertNoLinkBetween(liveDir: string, rel: string, checked: Set<string>): void {
  let cur = liveDir;
  let from = 0;
  for (let i = rel.indexOf('/'); i !== -1; i = rel.indexOf('/', i + 1)) {
    cur = `${cur}/${rel.slice(from, i)}`;
    from = i + 1;
    if (checked.has(cur)) continue;
    const st = lstatSyncOrNull(cur);
    if (st && !st.isDirectory()) {
      throw new CliError(`${cur} is not a real directory (a symlink?): the swap does not go through it`);
    }
    checked.add(cur);
  }
}

function applyFixes(t: TreeJournal, fixes: DirFix[], touched: TouchedDirs): void {
  const root = process.getuid?.() === 0;
  for (const f of fixes) {
    const p = f.rel === '' ? t.liveDir : path.join(t.liveDir, f.rel);
    const st = lstatSyncOrNull(p);
    if (!st?.isDirectory()) continue; // never through a link
    if (root) {
      try {
        fs.lchownSync(p, f.uid, f.gid);
      } catch {
        // as before: an owner that cannot be set is not a reason to stop the swap
      }
    }
    fs.chmodSync(p, f.mode);
    fs.lutimesSync(p, f.mtime, f.mtime);
    touched.add(p);
  }
}

function lstatSyncOrNull(p: string): fs.Stats | null {
  return fs.lstatSync(p, { throwIfNoEntry: false }) ?? null;
}

/** Something (anything, a dangling symlink too) is at `p`; never follows a link. */
function existsNoFollow(p: string): boolean {
  return lstatSyncOrNull(p) !== null;
}

type Rename = (from: string, to: string) => void;

function renamer(hooks: SwapHooks): Rename {
  return (from, to) => {
    fs.renameSync(from, to);
    hooks.afterRename?.();
  };
}

/** Moves a live unit into old/ (its parent directories there made once). */
function moveAside(live: string, old: string, rename: Rename, made: Set<string>): void {
  const dir = path.dirname(old);
  if (!made.has(dir)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    made.add(dir);
  }
  rename(live, old);
}
