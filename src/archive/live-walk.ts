/**
 * The live tree's walk for files added since a backup (extract-compare.ts `walkAdded`, the only walk of it):
 * every name that is not a directory, under every directory reached through real directories only (a symlink is listed, never entered),
 * excluded paths (code) and magebackup's own `.magebackup-*` names left out. A directory that cannot be read is
 * skipped.
 *
 * `backups:diff` runs it on a thread of its own (`startLiveWalk`) while the extraction thread compares the archive:
 * its ~48k directories' opens, getdents and closes (~1 s of system time on the bench store, which libuv's pool
 * would not save: each request's round trip costs this VM about as much) leave the thread that decides the
 * command's time. The thread ends with its walk, before the stream does (no memory at the stream's end).
 */
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { INTERNAL_PREFIX, isCodeExcludedName } from './extract-filter.js';
import { startOneShot } from './one-shot-thread.js';

/** What a walk reports besides the non-directories it finds (the sparse plan's needs, extract-compare.ts). */
export interface LiveWalkHooks {
  /** Every name read from the directory `rel` ('' for the root), before any of them is visited. */
  names?: (rel: string, names: readonly string[]) => void;
  /** A name in `parent` left out (excluded or `.magebackup-*`). */
  skipped?: (parent: string) => void;
}

/**
 * The one walk of the live tree: calls `entry` for every name not left out, parent first, and enters a name only
 * when readdir's own type says directory (a symlink is reported, never entered). `entry` returns false to have a
 * directory not entered.
 */
export function walkLive(
  liveDir: string,
  code: boolean,
  entry: (rel: string, isDir: boolean) => boolean | void,
  hooks: LiveWalkHooks = {},
): void {
  const visit = (rel: string): void => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(rel === '' ? liveDir : `${liveDir}/${rel}`, { withFileTypes: true });
    } catch {
      return;
    }
    hooks.names?.(
      rel,
      ents.map((d) => d.name),
    );
    for (const d of ents) {
      const name = d.name;
      const child = rel === '' ? name : `${rel}/${name}`;
      // (the walk never enters an excluded directory: only this name, or a root-anchored path, can be one)
      if (name.startsWith(INTERNAL_PREFIX) || (code && isCodeExcludedName(child, name))) {
        hooks.skipped?.(rel);
        continue;
      }
      const isDir = d.isDirectory();
      if (entry(child, isDir) !== false && isDir) visit(child);
    }
  };
  visit('');
}

/** The relative paths of the walk's non-directories, each followed by a NUL (one string: one copy to hand over). */
export function listLiveFiles(liveDir: string, code: boolean): string {
  const out: string[] = [];
  walkLive(liveDir, code, (rel, isDir) => {
    if (!isDir) out.push(rel + '\0');
  });
  return out.join('');
}

interface WalkInput {
  liveWalk: true;
  liveDir: string;
  code: boolean;
}

/**
 * Starts the walk on its own thread. Resolves with its paths, or undefined when the thread failed (the caller
 * then walks itself). `stop` ends the thread (a failed extraction must call it).
 */
export function startLiveWalk(
  liveDir: string,
  code: boolean,
): { result: Promise<string | undefined>; stop: () => void } {
  const input: WalkInput = { liveWalk: true, liveDir, code };
  const t = startOneShot(
    new URL('./live-walk.js', import.meta.url),
    input,
    { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
    `the walk of ${liveDir}`,
  );
  if (!t.started) return { result: Promise.resolve(undefined), stop: () => {} };
  const result = t.result.then(
    (m) => (typeof m === 'string' ? m : undefined),
    () => undefined,
  );
  return { result, stop: t.stop };
}

const input = workerData as Partial<WalkInput> | null;
if (parentPort && input?.liveWalk === true && typeof input.liveDir === 'string') {
  parentPort.postMessage(listLiveFiles(input.liveDir, input.code === true));
}
