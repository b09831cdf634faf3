/**
 * Atomic, crash-safe replacement of the code tree or pub/media by the content of an archive.
 *
 * 1. stageTree: extract into `<dir>/.magebackup-staging-<ts>-<target>/new` on the same filesystem as the
 *    target (renames must stay atomic). The extraction reads the whole archive, so it is the verification: on
 *    any fault the staging directory is removed and nothing live was touched. It ends with the swap plan (a
 *    TreeJournal): the swap units, and the attributes of the directories that are kept.
 *    Units: media = the media directory itself (or its children when it is a mount point); code = the top-most
 *    paths that contain nothing a code rollback must keep (var, pub/media, pub/static, update, node_modules,
 *    .git, ...): every root child but var/pub/update, inside pub every child but media/static, and so on.
 * 2. swapForward: for each unit rename live → `<staging>/old/…` and staged → live; swapBack undoes it. Both are
 *    idempotent (every unit's state is visible from which of live/new/old exists), so a killed swap is finished
 *    or undone by running either again from its journal.
 *
 * The journal is not kept here: the staging directories sit beside trees the web server user can write, so a
 * journal found there could be anyone's. operation.ts keeps it, signed, in the private state directory. A swap
 * never enters a symlink: the parents of every unit are checked to be real directories, and where the archive
 * has a symlink (or file) at a directory that holds kept paths, nothing below it is read or renamed: the live
 * directory is kept (with a warning). A code archive whose `pub` is not a directory is refused by extraction.
 */
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CliError, errnoCode, throwIfAborted } from '../errors.js';
import { WarningCode } from '../events.js';
import { fsyncDir } from '../fs/atomic.js';
import {
  extractArchive,
  type ArchiveProgress,
  type ArchiveWarning,
  type ExtractResult,
} from '../archive/extract.js';
import { INTERNAL_PREFIX, ROOT_EXCLUDES, isCodeExcludedName } from '../archive/extract-filter.js';

const execFileP = promisify(execFile);

export const STAGING_PREFIX = `${INTERNAL_PREFIX}staging-`;
export const STAGING_NAME_RE = /^\.magebackup-staging-\d+-(code|media)$/;

export interface JournalUnit {
  /** relative to liveDir ('' = liveDir itself) */
  rel: string;
  /** the staged tree has this path: it is moved in */
  hasNew: boolean;
}

export interface DirFix {
  rel: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

/** Everything needed to perform, finish or undo one tree's swap; kept in the operation's signed journal. */
export interface TreeJournal {
  target: 'code' | 'media';
  /** `<…>/.magebackup-staging-<ts>-<target>`: holds new/ (the extracted archive) and old/ */
  stagingDir: string;
  /** the staging directory's inode: a directory swapped in at its path is not ours */
  stagingIno: number;
  /** the directory whose content is replaced: the store root (code) or the real media directory */
  liveDir: string;
  /** 'whole': liveDir itself is renamed (media); 'children': its children are (code, media mount point) */
  mode: 'whole' | 'children';
  units: JournalUnit[];
  /** directories kept (not swapped) that get the staged attributes once their children are swapped */
  fixes: DirFix[];
  /** the same directories' attributes before the swap (put back by swapBack) */
  oldFixes: DirFix[];
}

export interface StagedTree {
  root: string;
  target: 'code' | 'media';
  stagingDir: string;
  liveDir: string;
  archive: string;
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  stats: ExtractResult;
  journal: TreeJournal;
}

export interface StageTreeOptions {
  root: string;
  target: 'code' | 'media';
  archive: string;
  signal?: AbortSignal;
  onProgress?: (p: ArchiveProgress) => void;
  onWarning?: (w: ArchiveWarning) => void;
  /** extraction policy (see extract.ts): keep set-id bits and world-writable modes; restore outside symlinks */
  keepModes?: boolean;
  allowOutsideLinks?: boolean;
  /** called with the staging directory's path before it is created (the operation journals it first) */
  register?: (stagingDir: string) => Promise<void>;
  /** for tests: the timestamp in the staging directory's name */
  now?: number;
  /** stage every file anew (no hard links to equal live files: see src/archive/extract-compare.ts) */
  full?: boolean;
}

async function lstatOrNull(p: string): Promise<fs.Stats | null> {
  try {
    return await fsp.lstat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
}

function lstatSyncOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
    throw err;
  }
}

/** Where a target lives and where its staging directory goes (same filesystem, so renames are atomic). */
export async function locate(
  root: string,
  target: 'code' | 'media',
): Promise<{ liveDir: string; stagingParent: string; mode: 'whole' | 'children' }> {
  const rootSt = await fsp.stat(root);
  if (target === 'code') return { liveDir: root, stagingParent: root, mode: 'children' };
  const mediaPath = path.join(root, 'pub', 'media');
  const lst = await lstatOrNull(mediaPath);
  let liveDir = mediaPath;
  if (lst?.isSymbolicLink()) {
    // Magento #13218: pub/media may be a symlink to shared storage; restore into its target, keep the link.
    try {
      liveDir = await fsp.realpath(mediaPath);
    } catch (err) {
      throw new CliError(`pub/media is a symlink whose target does not exist: ${mediaPath}`, { cause: err });
    }
    if (!(await fsp.stat(liveDir)).isDirectory())
      throw new CliError(`pub/media does not point to a directory: ${liveDir}`);
  } else if (lst && !lst.isDirectory()) {
    throw new CliError(`Media path ${mediaPath} is not a directory`);
  }
  const parent = path.dirname(liveDir);
  await fsp.mkdir(parent, { recursive: true });
  const parentSt = await fsp.stat(parent);
  const liveSt = lst ? await fsp.stat(liveDir) : null;
  if (liveSt && liveSt.dev !== parentSt.dev) {
    // a mount point (a Docker volume, NFS): it cannot be renamed; swap its children, staging inside it
    return { liveDir, stagingParent: liveDir, mode: 'children' };
  }
  return { liveDir, stagingParent: parentSt.dev === rootSt.dev ? root : parent, mode: 'whole' };
}

export async function stageTree(o: StageTreeOptions): Promise<StagedTree> {
  throwIfAborted(o.signal);
  const root = path.resolve(o.root);
  const { liveDir, stagingParent, mode } = await locate(root, o.target);
  const stagingDir = path.join(stagingParent, `${STAGING_PREFIX}${o.now ?? Date.now()}-${o.target}`);
  await o.register?.(stagingDir);
  await fsp.mkdir(stagingDir, { mode: 0o700 });
  try {
    const stagingIno = (await fsp.lstat(stagingDir)).ino;
    const newDir = path.join(stagingDir, 'new');
    await fsp.mkdir(newDir, { mode: 0o700 });
    const flusher = startFlusher(newDir);
    let stats: ExtractResult;
    // what is restored belongs to the owner of what it replaces, never to ids an archive names
    const ownerSt = (await fsp.stat(liveDir).catch(() => null)) ?? (await fsp.stat(root));
    try {
      stats = await extractArchive({
        file: o.archive,
        destDir: newDir,
        filter: o.target,
        owner: { uid: ownerSt.uid, gid: ownerSt.gid },
        keepModes: o.keepModes ?? false,
        allowOutsideLinks: o.allowOutsideLinks ?? false,
        ...(o.full ? {} : { liveDir }),
        ...(o.signal ? { signal: o.signal } : {}),
        ...(o.onProgress ? { onProgress: o.onProgress } : {}),
        ...(o.onWarning ? { onWarning: o.onWarning } : {}),
      });
    } finally {
      await flusher.stop();
    }
    if (o.target === 'media') {
      // the staged directory becomes the media directory: give it the archive's root attributes, else the
      // current media directory's, else 0755
      const ra = stats.rootAttrs;
      const live = await fsp.stat(liveDir).catch(() => null);
      const m = ra ? ra.mode & 0o7777 : live ? live.mode & 0o7777 : 0o755;
      if (process.getuid?.() === 0) {
        if (ra) await fsp.chown(newDir, ra.uid, ra.gid);
        else if (live) await fsp.chown(newDir, live.uid, live.gid);
      }
      await fsp.chmod(newDir, m);
      if (ra) await fsp.utimes(newDir, ra.mtime, ra.mtime);
    }
    const journal: TreeJournal = {
      target: o.target,
      stagingDir,
      stagingIno,
      liveDir,
      mode,
      units: [{ rel: '', hasNew: true }],
      fixes: [],
      oldFixes: [],
    };
    if (mode === 'children') {
      const plan = planChildren(liveDir, newDir, o.target === 'code', (rel, message) =>
        o.onWarning?.({ code: WarningCode.KEPT_PATH, path: rel, message }),
      );
      journal.units = plan.units;
      journal.fixes = plan.fixes;
      journal.oldFixes = plan.oldFixes;
      if (o.target === 'media') {
        journal.fixes.push(attrs('', await fsp.stat(newDir)));
        journal.oldFixes.push(attrs('', await fsp.stat(liveDir)));
      }
    }
    // Everything a rename could trip over is checked before the first one.
    for (const u of journal.units) {
      const live = path.join(liveDir, u.rel);
      const st = await lstatOrNull(live);
      const stagingDev = (await fsp.stat(stagingDir)).dev;
      if (st && st.dev !== stagingDev) {
        throw new CliError(
          `Cannot swap ${live} atomically: it is on another filesystem (a mount point?) than ${stagingDir}`,
        );
      }
    }
    return {
      root,
      target: o.target,
      stagingDir,
      liveDir,
      archive: o.archive,
      entries: stats.entries,
      files: stats.files,
      dirs: stats.dirs,
      symlinks: stats.symlinks,
      bytes: stats.bytes,
      stats,
      journal,
    };
  } catch (err) {
    await removeTree(stagingDir);
    throw err;
  }
}

function attrs(rel: string, st: fs.Stats): DirFix {
  return { rel, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtimeMs / 1000 };
}

/**
 * The swap units of a 'children' swap: walk down from liveDir only through directories that hold something
 * that must be kept; everything else is swapped whole. Neither side is ever entered through a symlink.
 */
function planChildren(
  liveDir: string,
  newDir: string,
  code: boolean,
  warn: (rel: string, message: string) => void,
): { units: JournalUnit[]; fixes: DirFix[]; oldFixes: DirFix[] } {
  const units: JournalUnit[] = [];
  const fixes: DirFix[] = [];
  const oldFixes: DirFix[] = [];
  const keep = (rel: string, name: string): boolean =>
    name.startsWith(INTERNAL_PREFIX) || (code && isCodeExcludedName(rel, name));
  // `staged`: newDir/rel is a real directory. When the backup has a symlink (or file) there, nothing below it is
  // staged: reading or renaming through it would follow the link out of the staging directory.
  const visit = (rel: string, staged: boolean): void => {
    const liveNames = readdirOrEmpty(path.join(liveDir, rel));
    const newNames = staged ? readdirOrEmpty(path.join(newDir, rel)) : [];
    const all = [...new Set([...liveNames, ...newNames])].sort();
    for (const name of all) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      if (keep(childRel, name)) continue;
      const liveSt = lstatSyncOrNull(path.join(liveDir, childRel));
      const newSt = staged ? lstatSyncOrNull(path.join(newDir, childRel)) : null;
      if (code && liveSt?.isSymbolicLink() && ROOT_EXCLUDES.some((r) => r.startsWith(childRel + '/'))) {
        throw new CliError(
          `Cannot roll back the code: ${path.join(liveDir, childRel)} is a symlink, and it holds paths a code rollback must keep`,
        );
      }
      if (code && liveSt?.isDirectory() && holdsKept(path.join(liveDir, childRel), childRel)) {
        if (newSt && !newSt.isDirectory()) {
          warn(
            childRel,
            `${childRel} is not a directory in the backup, but holds paths a code rollback keeps: kept as a directory`,
          );
        }
        if (newSt?.isDirectory()) fixes.push(attrs(childRel, newSt));
        oldFixes.push(attrs(childRel, liveSt));
        visit(childRel, newSt?.isDirectory() ?? false);
        continue;
      }
      units.push({ rel: childRel, hasNew: newSt !== null });
    }
  };
  visit('', true);
  return { units, fixes, oldFixes };
}

/** Does the live directory hold, at any depth, a path a code rollback keeps? */
function holdsKept(abs: string, rel: string): boolean {
  if (ROOT_EXCLUDES.some((r) => r.startsWith(rel + '/'))) return true;
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(abs, { withFileTypes: true });
  } catch {
    return false;
  }
  for (const e of ents) {
    if (isCodeExcludedName(`${rel}/${e.name}`, e.name) || e.name.startsWith(INTERNAL_PREFIX)) return true;
  }
  for (const e of ents) {
    if (e.isDirectory() && holdsKept(path.join(abs, e.name), `${rel}/${e.name}`)) return true;
  }
  return false;
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}

/**
 * Is the staging directory still the one we made (same inode, a real directory)? false when it is gone (the
 * swap was finished and cleaned up); a CliError when something else sits at its path.
 */
async function stagingPresent(t: TreeJournal): Promise<boolean> {
  const st = await lstatOrNull(t.stagingDir);
  if (!st) return false;
  if (!st.isDirectory() || st.ino !== t.stagingIno) {
    throw new CliError(
      `${t.stagingDir} is not the staging directory magebackup made (replaced by someone else?): the ${t.target} swap was not touched`,
    );
  }
  return true;
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

function unitPaths(t: TreeJournal, u: JournalUnit): { live: string; staged: string; old: string } {
  const newDir = path.join(t.stagingDir, 'new');
  const oldDir = path.join(t.stagingDir, 'old');
  return u.rel === ''
    ? { live: t.liveDir, staged: newDir, old: path.join(oldDir, 'tree') }
    : { live: path.join(t.liveDir, u.rel), staged: path.join(newDir, u.rel), old: path.join(oldDir, u.rel) };
}

/** Performs or finishes a swap: idempotent, every unit's progress is visible on disk. */
export async function swapForward(t: TreeJournal): Promise<void> {
  if (!(await stagingPresent(t))) return;
  await fsp.mkdir(path.join(t.stagingDir, 'old'), { recursive: true, mode: 0o700 });
  const touched = new Set<string>();
  const checked = new Set<string>();
  for (const u of t.units) {
    const { live, staged, old } = unitPaths(t, u);
    await assertNoLinkBetween(t.liveDir, u.rel, checked);
    if (u.hasNew) {
      if (!(await lstatOrNull(staged))) continue; // already moved in
      if (await lstatOrNull(live)) await moveAside(live, old);
      await rename(staged, live);
    } else if (await lstatOrNull(live)) {
      await moveAside(live, old);
    }
    touched.add(path.dirname(live));
  }
  await applyFixes(t, t.fixes, touched);
  for (const d of touched) await fsyncDir(d).catch(() => {});
}

/** Undoes a swap, complete or partial: idempotent, the mirror of swapForward. */
export async function swapBack(t: TreeJournal): Promise<void> {
  if (!(await stagingPresent(t))) return;
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
  for (const d of touched) await fsyncDir(d).catch(() => {});
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

/** Removes a staging directory (the old content after a swap, the new one after an undo). */
export async function removeStaging(t: TreeJournal): Promise<void> {
  if (await stagingPresent(t).catch(() => false)) await removeTree(t.stagingDir);
}

let renameHook: ((n: number) => void) | undefined;
let renames = 0;
/** Tests only: called after every rename of a swap (a crash test SIGKILLs itself in it, or throws). */
export function setSwapTestHook(fn: ((n: number) => void) | undefined): void {
  renameHook = fn;
  renames = 0;
}

async function rename(from: string, to: string): Promise<void> {
  await fsp.rename(from, to);
  renameHook?.(++renames);
}

async function moveAside(live: string, old: string): Promise<void> {
  await fsp.mkdir(path.dirname(old), { recursive: true, mode: 0o700 });
  await rename(live, old);
}

/** Flushes a staged tree before its journal says "committing": one syncfs(2) instead of an fsync per file. */
export async function flushStaged(t: TreeJournal): Promise<void> {
  await syncFilesystem(path.join(t.stagingDir, 'new'));
}

/**
 * While extracting, flush what has been written so far (syncfs every second, one at a time): the kernel would
 * otherwise keep it all dirty and leave the whole write-back to the sync before the journal, with the disk idle
 * during the extraction. Errors are ignored: the sync before the journal is the one that counts.
 */
function startFlusher(dir: string): { stop: () => Promise<void> } {
  let running: Promise<unknown> | null = null;
  const timer = setInterval(() => {
    if (running) return;
    running = execFileP('sync', ['-f', dir])
      .catch(() => {})
      .finally(() => {
        running = null;
      });
  }, FLUSH_INTERVAL_MS);
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

const FLUSH_INTERVAL_MS = 1000;

/** Flush a staged tree before the journal: one syncfs(2) (`sync -f`) instead of an fsync per file. */
async function syncFilesystem(dir: string): Promise<void> {
  try {
    await execFileP('sync', ['-f', dir]);
  } catch {
    await execFileP('sync', []);
  }
}

/** rm -rf: GNU rm is several times faster than fs.rm on 100k-file trees, and does not follow symlinks. */
export async function removeTree(dir: string): Promise<void> {
  try {
    await execFileP('rm', ['-rf', '--', dir]);
  } catch {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
