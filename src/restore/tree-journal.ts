/**
 * The record of one tree swap (TreeJournal) and where its pieces sit on disk.
 *
 * A staging directory `<…>/.magebackup-staging-<ts>-<target>` holds `new/` (the extracted archive) and `old/`
 * (what a swap moved aside). The journal names it by path and inode, lists the swap units and the attributes of
 * the directories that are kept; operation.ts keeps it, signed, in the private state directory (a journal found
 * beside the trees, which the web server user can write, could be anyone's).
 */
import type fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CliError, errnoCode } from '../errors.js';
import { INTERNAL_PREFIX } from '../archive/extract-filter.js';

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

export async function lstatOrNull(p: string): Promise<fs.Stats | null> {
  try {
    return await fsp.lstat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
}

export function attrs(rel: string, st: fs.Stats): DirFix {
  return { rel, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtimeMs / 1000 };
}

/** A unit's three places: live, staged (new/…) and moved aside (old/…). */
export function unitPaths(t: TreeJournal, u: JournalUnit): { live: string; staged: string; old: string } {
  const newDir = path.join(t.stagingDir, 'new');
  const oldDir = path.join(t.stagingDir, 'old');
  return u.rel === ''
    ? { live: t.liveDir, staged: newDir, old: path.join(oldDir, 'tree') }
    : { live: path.join(t.liveDir, u.rel), staged: path.join(newDir, u.rel), old: path.join(oldDir, u.rel) };
}

/**
 * Is the staging directory still the one we made (same inode, a real directory)? false when it is gone (the
 * swap was finished and cleaned up); a CliError when something else sits at its path.
 */
export async function stagingPresent(t: TreeJournal): Promise<boolean> {
  const st = await lstatOrNull(t.stagingDir);
  if (!st) return false;
  if (!st.isDirectory() || st.ino !== t.stagingIno) {
    throw new CliError(
      `${t.stagingDir} is not the staging directory magebackup made (replaced by someone else?): the ${t.target} swap was not touched`,
    );
  }
  return true;
}

/** Removes a staging directory (the old content after a swap, the new one after an undo). */
export async function removeStaging(t: TreeJournal): Promise<void> {
  if (await stagingPresent(t).catch(() => false)) await removeTree(t.stagingDir);
}

/** rm -rf: GNU rm is several times faster than fs.rm on 100k-file trees, and does not follow symlinks. */
export async function removeTree(dir: string): Promise<void> {
  try {
    await execFileP('rm', ['-rf', '--', dir]);
  } catch {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
