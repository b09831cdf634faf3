/**
 * Atomic, crash-safe replacement of the code tree or pub/media by the content of an archive.
 *
 * 1. stageTree: extract into `<dir>/.magebackup-staging-<ts>-<target>/new` on the same filesystem as the
 *    target. The extraction reads the whole archive, so it is the verification: on any fault the staging
 *    directory is removed and nothing live was touched.
 * 2. commitStagedTree: flush the staged files (syncfs), write+fsync a journal listing every rename, then for each
 *    swap unit rename live → `<staging>/old/…` and staged → live, fsync the parent directories, drop the journal,
 *    delete the staging directory (old content included).
 *    Units: media = the media directory itself (or its children when it is a mount point); code = the top-most
 *    paths that contain nothing a code rollback must keep (var, pub/media, pub/static, update, node_modules,
 *    .git, ...): every root child but var/pub/update, inside pub every child but media/static, and so on.
 * 3. recoverInterruptedSwaps: a run killed (even SIGKILL) before the journal was durable left the live store
 *    untouched: its staging dir is deleted. After that point the journal makes the swap idempotent: the next
 *    run rolls it forward (every unit's state is visible from which of live/new exists), then deletes it.
 */
import fs, { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { CliError, errnoCode, throwIfAborted } from '../errors.js';
import {
  extractArchive,
  type ArchiveProgress,
  type ArchiveWarning,
  type ExtractResult,
} from '../archive/extract.js';
import { INTERNAL_PREFIX, ROOT_EXCLUDES, isCodeExcludedName } from '../archive/extract-filter.js';

const execFileP = promisify(execFile);

export const STAGING_PREFIX = `${INTERNAL_PREFIX}staging-`;
const JOURNAL = 'journal.json';

export interface StagedTree {
  root: string;
  target: 'code' | 'media';
  /** `<…>/.magebackup-staging-<ts>-<target>`: holds new/ (the extracted archive), old/, journal.json */
  stagingDir: string;
  /** the directory whose content is replaced: the store root (code) or the real media directory */
  liveDir: string;
  /** 'whole': liveDir itself is renamed (media); 'children': its children are (code, media mount point) */
  mode: 'whole' | 'children';
  archive: string;
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  stats: ExtractResult;
  onWarning?: (w: ArchiveWarning) => void;
}

interface JournalUnit {
  /** relative to liveDir ('' = liveDir itself) */
  rel: string;
  /** the staged tree has this path: it is moved in */
  hasNew: boolean;
}

interface DirFix {
  rel: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

interface Journal {
  version: 1;
  target: 'code' | 'media';
  stagingDir: string;
  liveDir: string;
  units: JournalUnit[];
  /** directories kept (not swapped) that get the staged attributes once their children are swapped */
  fixes: DirFix[];
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
  /** for tests: the timestamp in the staging directory's name */
  now?: number;
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
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
}

/** Where a target lives and where its staging directory goes (same filesystem, so renames are atomic). */
async function locate(
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
  await fsp.mkdir(stagingDir, { mode: 0o700 });
  try {
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
      const mode = ra ? ra.mode & 0o7777 : live ? live.mode & 0o7777 : 0o755;
      if (process.getuid?.() === 0) {
        if (ra) await fsp.chown(newDir, ra.uid, ra.gid);
        else if (live) await fsp.chown(newDir, live.uid, live.gid);
      }
      await fsp.chmod(newDir, mode);
      if (ra) await fsp.utimes(newDir, ra.mtime, ra.mtime);
    }
    return {
      root,
      target: o.target,
      stagingDir,
      liveDir,
      mode,
      archive: o.archive,
      entries: stats.entries,
      files: stats.files,
      dirs: stats.dirs,
      symlinks: stats.symlinks,
      bytes: stats.bytes,
      stats,
      ...(o.onWarning ? { onWarning: o.onWarning } : {}),
    };
  } catch (err) {
    await fsp.rm(stagingDir, { recursive: true, force: true });
    throw err;
  }
}

/** Removes a staged tree that will not be committed. Leaves it alone once a commit wrote its journal. */
export async function discardStagedTree(s: StagedTree): Promise<void> {
  if (await lstatOrNull(path.join(s.stagingDir, JOURNAL))) return; // recoverInterruptedSwaps finishes it
  await removeTree(s.stagingDir);
}

export interface CommitOptions {
  /**
   * 'now' (default): delete the old content before returning. 'background': return once the swap is durable and
   * let a detached `rm -rf` delete the staging directory (old content included); on a busy disk deleting 100k
   * files can take as long as extracting them. A leftover is removed by the next recoverInterruptedSwaps.
   * 'later': return once the swap is durable; the caller runs the returned `cleanup()` when it likes (e.g. after
   * leaving maintenance mode, still under the lock), so the store is back online sooner.
   */
  removeOld?: 'now' | 'background' | 'later';
}

export interface CommitResult {
  /** deletes the old content (a no-op unless removeOld was 'later'); never throws for a missing directory */
  cleanup: () => Promise<void>;
}

export async function commitStagedTree(s: StagedTree, o: CommitOptions = {}): Promise<CommitResult> {
  const newDir = path.join(s.stagingDir, 'new');
  const stagingDev = (await fsp.stat(s.stagingDir)).dev;
  let units: JournalUnit[];
  let fixes: DirFix[] = [];
  if (s.mode === 'whole') {
    units = [{ rel: '', hasNew: true }];
  } else {
    const plan = planChildren(s.liveDir, newDir, s.target === 'code', (rel, message) =>
      s.onWarning?.({ code: 'KEPT_PATH', path: rel, message }),
    );
    units = plan.units;
    fixes = plan.fixes;
    if (s.target === 'media') {
      const st = await fsp.stat(newDir);
      fixes.push({ rel: '', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtimeMs / 1000 });
    }
  }
  // Everything a rename could trip over is checked before the first one.
  for (const u of units) {
    const live = path.join(s.liveDir, u.rel);
    const st = await lstatOrNull(live);
    if (st && st.dev !== stagingDev) {
      throw new CliError(
        `Cannot swap ${live} atomically: it is on another filesystem (a mount point?) than ${s.stagingDir}`,
      );
    }
  }
  await syncFilesystem(newDir);
  await fsp.mkdir(path.join(s.stagingDir, 'old'), { mode: 0o700 });
  const journal: Journal = {
    version: 1,
    target: s.target,
    stagingDir: s.stagingDir,
    liveDir: s.liveDir,
    units,
    fixes,
  };
  await writeJournal(s.stagingDir, journal);
  try {
    await replay(journal);
  } catch (err) {
    throw new CliError(
      `The ${s.target} rollback failed half-way through its swap (${(err as Error).message}); ` +
        `run magebackup again to finish it from the journal in ${s.stagingDir}`,
      { cause: err },
    );
  }
  await fsp.rm(path.join(s.stagingDir, JOURNAL));
  await fsyncDir(s.stagingDir);
  const noop = { cleanup: () => Promise.resolve() };
  if (o.removeOld === 'later') return { cleanup: () => removeTree(s.stagingDir) };
  if (o.removeOld === 'background') {
    const child = spawn('rm', ['-rf', '--', s.stagingDir], { detached: true, stdio: 'ignore' });
    child.on('error', () => {}); // no rm: the next run's recovery removes it
    child.unref();
    return noop;
  }
  await removeTree(s.stagingDir);
  return noop;
}

/**
 * Finishes (rolls forward) or removes what interrupted runs left: staging directories in the store root, beside
 * and inside the real media directory. Call it under the store lock, before staging anything.
 * Returns one line per staging directory handled.
 */
export async function recoverInterruptedSwaps(root: string): Promise<string[]> {
  root = path.resolve(root);
  const dirs = new Set<string>([root]);
  const media = await fsp.realpath(path.join(root, 'pub', 'media')).catch(() => null);
  if (media) {
    dirs.add(media);
    dirs.add(path.dirname(media));
  }
  const done: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch {
      continue;
    }
    for (const name of names.sort()) {
      if (!name.startsWith(STAGING_PREFIX)) continue;
      const stagingDir = path.join(dir, name);
      const journal = await readJournal(stagingDir);
      if (journal) {
        try {
          await replay(journal);
        } catch (err) {
          throw new CliError(
            `Could not finish the interrupted ${journal.target} rollback journaled in ${stagingDir}: ${(err as Error).message}`,
            { cause: err },
          );
        }
        await fsp.rm(path.join(stagingDir, JOURNAL));
        await fsyncDir(stagingDir);
        await removeTree(stagingDir);
        done.push(`finished the interrupted ${journal.target} rollback swap (${stagingDir})`);
      } else {
        await removeTree(stagingDir);
        done.push(`removed the unused staging directory ${stagingDir}`);
      }
    }
  }
  return done;
}

/**
 * The swap units of a 'children' swap: walk down from liveDir only through directories that hold something
 * that must be kept; everything else is swapped whole.
 */
function planChildren(
  liveDir: string,
  newDir: string,
  code: boolean,
  warn: (rel: string, message: string) => void,
): { units: JournalUnit[]; fixes: DirFix[] } {
  const units: JournalUnit[] = [];
  const fixes: DirFix[] = [];
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
        if (newSt?.isDirectory()) {
          fixes.push({
            rel: childRel,
            mode: newSt.mode & 0o7777,
            uid: newSt.uid,
            gid: newSt.gid,
            mtime: newSt.mtimeMs / 1000,
          });
        }
        visit(childRel, newSt?.isDirectory() ?? false);
        continue;
      }
      units.push({ rel: childRel, hasNew: newSt !== null });
    }
  };
  visit('', true);
  return { units, fixes };
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

/** Idempotent: every unit's progress is visible on disk, so this both performs and finishes a swap. */
async function replay(j: Journal): Promise<void> {
  const newDir = path.join(j.stagingDir, 'new');
  const oldDir = path.join(j.stagingDir, 'old');
  const touched = new Set<string>();
  for (const u of j.units) {
    const live = u.rel === '' ? j.liveDir : path.join(j.liveDir, u.rel);
    const staged = u.rel === '' ? newDir : path.join(newDir, u.rel);
    const old = u.rel === '' ? path.join(oldDir, 'tree') : path.join(oldDir, u.rel);
    if (u.hasNew) {
      if (!(await lstatOrNull(staged))) continue; // already moved in
      if (await lstatOrNull(live)) await moveAside(live, old);
      await rename(staged, live);
    } else if (await lstatOrNull(live)) {
      await moveAside(live, old);
    }
    touched.add(path.dirname(live));
  }
  for (const f of j.fixes) {
    const p = f.rel === '' ? j.liveDir : path.join(j.liveDir, f.rel);
    if (process.getuid?.() === 0) await fsp.chown(p, f.uid, f.gid).catch(() => {});
    await fsp.chmod(p, f.mode);
    await fsp.utimes(p, f.mtime, f.mtime);
    touched.add(p);
  }
  for (const d of touched) await fsyncDir(d).catch(() => {});
}

let renameHook: ((n: number) => void) | undefined;
let renames = 0;
/** Tests only: called after every rename of a swap (a crash test SIGKILLs itself in it). */
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

async function writeJournal(stagingDir: string, j: Journal): Promise<void> {
  const tmp = path.join(stagingDir, `${JOURNAL}.tmp`);
  const fh = await fsp.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(j));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, path.join(stagingDir, JOURNAL));
  await fsyncDir(stagingDir);
}

async function readJournal(stagingDir: string): Promise<Journal | null> {
  let text: string;
  try {
    text = await fsp.readFile(path.join(stagingDir, JOURNAL), 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
    throw err;
  }
  let j: Journal;
  try {
    j = JSON.parse(text) as Journal;
  } catch (err) {
    // written to a temp file, fsynced and renamed: a torn journal means someone else wrote it
    throw new CliError(
      `Unreadable swap journal ${path.join(stagingDir, JOURNAL)}: move it away after checking the store`,
      {
        cause: err,
      },
    );
  }
  const same = async (a: string, b: string): Promise<boolean> =>
    (await fsp.realpath(a).catch(() => path.resolve(a))) ===
    (await fsp.realpath(b).catch(() => path.resolve(b)));
  if (j.version !== 1 || !Array.isArray(j.units) || !(await same(j.stagingDir, stagingDir))) {
    throw new CliError(
      `Unexpected swap journal ${path.join(stagingDir, JOURNAL)}: move it away after checking the store`,
    );
  }
  return j;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
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
async function removeTree(dir: string): Promise<void> {
  try {
    await execFileP('rm', ['-rf', '--', dir]);
  } catch {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
