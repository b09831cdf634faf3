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
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { CliError } from '../errors.js';
import { fsyncDir } from '../fs/atomic.js';
import { syncFilesystem } from './tree-stage.js';
import { lstatOrNull, stagingPresent, unitPaths, type DirFix, type TreeJournal } from './tree-journal.js';

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

/** Performs or finishes a swap: idempotent, every unit's progress is visible on disk. */
export async function swapForward(t: TreeJournal, hooks: SwapHooks = {}): Promise<void> {
  if (!(await stagingPresent(t))) return;
  await fsp.mkdir(path.join(t.stagingDir, 'old'), { recursive: true, mode: 0o700 });
  const rename = renamer(hooks);
  const touched = new Set<string>();
  const checked = new Set<string>();
  for (const u of t.units) {
    const { live, staged, old } = unitPaths(t, u);
    await assertNoLinkBetween(t.liveDir, u.rel, checked);
    if (u.hasNew) {
      if (!(await lstatOrNull(staged))) continue; // already moved in
      if (await lstatOrNull(live)) await moveAside(live, old, rename);
      await rename(staged, live);
    } else if (await lstatOrNull(live)) {
      await moveAside(live, old, rename);
    }
    touched.add(path.dirname(live));
  }
  await applyFixes(t, t.fixes, touched);
  await syncDirs(touched);
}

/**
 * The renamed-in-or-out directories to disk: an fsync each when they are few; past that one syncfs (a sparse code
 * rollback touches a directory per changed file: ~900 fsyncs took 3-7 s on the benchmark store, one syncfs 0.1 s).
 */
async function syncDirs(touched: Set<string>): Promise<void> {
  if (touched.size > MAX_DIR_FSYNCS) {
    const first = touched.values().next().value;
    if (first !== undefined && (await syncFilesystem(first))) return;
  }
  for (const d of touched) await fsyncDir(d).catch(() => {});
}

const MAX_DIR_FSYNCS = 32;

/** Undoes a swap, complete or partial: idempotent, the mirror of swapForward. */
export async function swapBack(t: TreeJournal, hooks: SwapHooks = {}): Promise<void> {
  if (!(await stagingPresent(t))) return;
  const rename = renamer(hooks);
  const touched = new Set<string>();
  const checked = new Set<string>();
  for (const u of [...t.units].reverse()) {
    const { live, staged, old } = unitPaths(t, u);
    await assertNoLinkBetween(t.liveDir, u.rel, checked);
    const liveSt = await lstatOrNull(live);
    if (u.hasNew && liveSt && !(await lstatOrNull(staged))) {
      // the live path is the staged one: move it back into the staging directory
      await fsp.mkdir(path.dirname(staged), { recursive: true, mode: 0o700 });
      await rename(live, staged);
    }
    if ((await lstatOrNull(old)) && !(await lstatOrNull(live))) await rename(old, live);
    touched.add(path.dirname(live));
  }
  await applyFixes(t, t.oldFixes, touched);
  await syncDirs(touched);
}

/** The parents of a unit below liveDir must be real directories: a swap never enters a symlink. */
async function assertNoLinkBetween(liveDir: string, rel: string, checked: Set<string>): Promise<void> {
  const parts = rel.split('/').slice(0, -1);
  let cur = liveDir;
  for (const p of parts) {
    cur = path.join(cur, p);
    if (checked.has(cur)) continue;
    const st = await lstatOrNull(cur);
    if (st && !st.isDirectory()) {
      throw new CliError(`${cur} is not a real directory (a symlink?): the swap does not go through it`);
    }
    checked.add(cur);
  }
}

async function applyFixes(t: TreeJournal, fixes: DirFix[], touched: Set<string>): Promise<void> {
  for (const f of fixes) {
    const p = f.rel === '' ? t.liveDir : path.join(t.liveDir, f.rel);
    const st = await lstatOrNull(p);
    if (!st?.isDirectory()) continue; // never through a link
    if (process.getuid?.() === 0) await fsp.lchown(p, f.uid, f.gid).catch(() => {});
    await fsp.chmod(p, f.mode);
    await fsp.lutimes(p, f.mtime, f.mtime);
    touched.add(p);
  }
}

type Rename = (from: string, to: string) => Promise<void>;

function renamer(hooks: SwapHooks): Rename {
  return async (from, to) => {
    await fsp.rename(from, to);
    hooks.afterRename?.();
  };
}

async function moveAside(live: string, old: string, rename: Rename): Promise<void> {
  await fsp.mkdir(path.dirname(old), { recursive: true, mode: 0o700 });
  await rename(live, old);
}
