/**
 * Where a tree swap happens and what it renames: locate() finds the live directory of a target and where its
 * staging directory goes (same filesystem, so renames are atomic); planSwap() turns a staged tree into its
 * TreeJournal.
 *
 * Units: media = the media directory itself (or its children when it is a mount point); code = the top-most
 * paths that contain nothing a code rollback must keep (var, pub/media, pub/static, update, node_modules,
 * .git, ...): every root child but var/pub/update, inside pub every child but media/static, and so on. Neither
 * side is ever entered through a symlink: where the archive has a symlink (or file) at a directory that holds
 * kept paths, nothing below it is read or renamed: the live directory is kept (with a warning).
 */
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { CliError, errnoCode } from '../errors.js';
import { INTERNAL_PREFIX, ROOT_EXCLUDES, isCodeExcludedName } from '../archive/extract-filter.js';
import type { SparsePlanResult } from '../archive/extract.js';
import { attrs, lstatOrNull, type DirFix, type JournalUnit, type TreeJournal } from './tree-journal.js';

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

/**
 * The swap plan of a tree staged in `<stagingDir>/new`; everything a rename could trip over (a unit on another
 * filesystem) is checked here, before the first one.
 */
export async function planSwap(o: {
  target: 'code' | 'media';
  stagingDir: string;
  stagingIno: number;
  liveDir: string;
  mode: 'whole' | 'children';
  onKept?: (rel: string, message: string) => void;
  /** a sparse staging (archive/extract-sparse.ts) comes with its own units and directory fixes */
  sparse?: SparsePlanResult;
}): Promise<TreeJournal> {
  const newDir = path.join(o.stagingDir, 'new');
  const journal: TreeJournal = {
    target: o.target,
    stagingDir: o.stagingDir,
    stagingIno: o.stagingIno,
    liveDir: o.liveDir,
    mode: o.mode,
    units: [{ rel: '', hasNew: true }],
    fixes: [],
    oldFixes: [],
  };
  if (o.sparse && o.mode === 'children') {
    journal.units = o.sparse.units;
    journal.fixes = o.sparse.fixes;
    journal.oldFixes = o.sparse.oldFixes;
  } else if (o.mode === 'children') {
    const plan = planChildren(o.liveDir, newDir, o.target === 'code', (rel, message) =>
      o.onKept?.(rel, message),
    );
    journal.units = plan.units;
    journal.fixes = plan.fixes;
    journal.oldFixes = plan.oldFixes;
    if (o.target === 'media') {
      journal.fixes.push(attrs('', await fsp.stat(newDir)));
      journal.oldFixes.push(attrs('', await fsp.stat(o.liveDir)));
    }
  }
  const stagingDev = (await fsp.stat(o.stagingDir)).dev;
  for (const u of journal.units) {
    const live = path.join(o.liveDir, u.rel);
    const st = await lstatOrNull(live);
    if (st && st.dev !== stagingDev) {
      throw new CliError(
        `Cannot swap ${live} atomically: it is on another filesystem (a mount point?) than ${o.stagingDir}`,
      );
    }
  }
  return journal;
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

function lstatSyncOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
    throw err;
  }
}
