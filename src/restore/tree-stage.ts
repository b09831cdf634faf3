/**
 * Staging a tree: the archive is extracted into `<staging>/new` on the same filesystem as its target. The
 * extraction reads the whole archive, so it is the verification: on any fault the staging directory is removed
 * and nothing live was touched. It ends with the swap plan (tree-plan.ts). flushStaged() writes the staged tree
 * to disk before the operation's journal says "committing".
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { throwIfAborted } from '../errors.js';
import { WarningCode } from '../events.js';
import {
  extractArchive,
  type ArchiveProgress,
  type ArchiveWarning,
  type ExtractResult,
} from '../archive/extract.js';
import { STAGING_PREFIX, removeTree, type TreeJournal } from './tree-journal.js';
import { locate, planSwap } from './tree-plan.js';

const execFileP = promisify(execFile);

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

export async function stageTree(o: StageTreeOptions): Promise<StagedTree> {
  throwIfAborted(o.signal);
  const root = path.resolve(o.root);
  const { liveDir, stagingParent, mode } = await locate(root, o.target);
  const stagingDir = path.join(stagingParent, `${STAGING_PREFIX}${o.now ?? Date.now()}-${o.target}`);
  await o.register?.(stagingDir);
  await fsp.mkdir(stagingDir, { mode: 0o700 });
  // with a sparse plan it holds the extraction thread that keeps what stays in place: ended on any failure here
  let stats: ExtractResult | undefined;
  try {
    const stagingIno = (await fsp.lstat(stagingDir)).ino;
    const newDir = path.join(stagingDir, 'new');
    await fsp.mkdir(newDir, { mode: 0o700 });
    // a sparse code rollback writes only what differs: no flushing during it (each flush is a process)
    const sparse = !o.full && o.target === 'code' && mode === 'children';
    const flusher = sparse ? { stop: async () => {} } : startFlusher(newDir);
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
        ...(o.full ? {} : { liveDir, sparse }),
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
    const journal = await planSwap({
      target: o.target,
      stagingDir,
      stagingIno,
      liveDir,
      mode,
      onKept: (rel, message) => o.onWarning?.({ code: WarningCode.KEPT_PATH, path: rel, message }),
      ...(stats.sparse ? { sparse: stats.sparse } : {}),
    });
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
    stats?.kept?.release();
    await removeTree(stagingDir);
    throw err;
  }
}

/** Flushes a staged tree before its journal says "committing": one syncfs(2) instead of an fsync per file. */
export async function flushStaged(t: TreeJournal): Promise<void> {
  const dir = path.join(t.stagingDir, 'new');
  if (!(await syncFilesystem(dir))) throw new Error(`could not flush ${dir} to disk (sync failed)`);
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

/**
 * The filesystem holding `dir` to disk: one syncfs(2) (`sync -f`; plain `sync` when that fails) instead of an
 * fsync per file. Resolves false when neither could run.
 */
export async function syncFilesystem(dir: string): Promise<boolean> {
  try {
    await execFileP('sync', ['-f', dir]);
    return true;
  } catch {
    return execFileP('sync', []).then(
      () => true,
      () => false,
    );
  }
}
