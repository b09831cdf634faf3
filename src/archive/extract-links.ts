/**
 * The last check of a selective rollback's hard links (extract-compare.ts), run just before the swap: every
 * staged file that is a hard link to a live file must still be the inode that was compared, with the same size,
 * mtime and ctime. A write, truncate, chmod, chown, utimes, rename-over or new link through the live name moves
 * the ctime (which no unprivileged process can set back), so a file touched between staging and swap is caught:
 * the rollback is refused before anything live changed, and can simply be run again.
 *
 * The window left: a change made after this check and before the swap's renames (milliseconds, journal write
 * included), and writes through a descriptor opened on the live file BEFORE the swap and kept open after it: with
 * a full extraction such a writer would write into the replaced file; here it writes into the restored one, the
 * same inode. Maintenance mode (on during a rollback unless --no-maintenance) keeps Magento itself from writing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { CliError } from '../errors.js';
import type { LinkedFile } from './extract-compare.js';
import { KEPT_FIELDS, KIND_DIR, nameHash, type KeptSet } from './extract-sparse.js';
import { startOneShot } from './one-shot-thread.js';

/** Throws a CliError naming the first linked file that changed since it was compared. */
export function recheckLinked(stagedDir: string, linked: readonly LinkedFile[], liveDir: string): void {
  for (const l of linked) {
    let st: fs.BigIntStats | null = null;
    try {
      st = fs.lstatSync(path.join(stagedDir, l.rel), { bigint: true });
    } catch {
      st = null;
    }
    if (
      !st ||
      st.ino !== l.ino ||
      st.dev !== l.dev ||
      st.size !== l.size ||
      st.mtimeNs !== l.mtimeNs ||
      st.ctimeNs !== l.ctimeNs
    ) {
      throw changedError(path.join(liveDir, l.rel));
    }
  }
}

/** The re-check's verdict (a KeptHandle's recheck): the live path that changed is refused. */
export function throwIfChanged(changed: string | undefined): void {
  if (changed !== undefined) throw changedError(changed);
}

function changedError(p: string): CliError {
  return new CliError(
    `${p} was changed while the rollback was being prepared (after it was compared with the backup): the rollback was stopped before the swap, nothing was changed; run it again`,
  );
}

/**
 * The same for what a sparse rollback leaves in place (extract-sparse.ts): each kept file or symlink is still the
 * inode compared, unchanged; each kept directory still the same directory, and when its mtime or ctime moved (our
 * own staging directory of another part, say) it still holds the same names. One lstat each, on a thread of its
 * own (startRecheck). Returns the first entry (its live path) that is not what was compared, or undefined.
 */
export function firstChanged(liveDir: string, kept: KeptSet): string | undefined {
  const a = kept.stats;
  const names = Buffer.from(kept.names.buffer, kept.names.byteOffset, kept.names.byteLength);
  let start = 0;
  for (let i = 0; i < kept.count; i++) {
    const end = names.indexOf(0, start);
    const rel = names.toString('utf8', start, end);
    start = end + 1;
    const o = i * KEPT_FIELDS;
    const abs = rel === '' ? liveDir : `${liveDir}/${rel}`;
    const st = fs.lstatSync(abs, { bigint: true, throwIfNoEntry: false });
    if (!st || st.ino !== a[o + 2] || st.dev !== a[o + 1]) return abs;
    if (a[o] === KIND_DIR) {
      if (!st.isDirectory()) return abs;
      if (st.mtimeNs === a[o + 4] && st.ctimeNs === a[o + 5]) continue;
      if (nameHash(abs) !== a[o + 3]) return abs;
      continue;
    }
    if (st.size !== a[o + 3] || st.mtimeNs !== a[o + 4] || st.ctimeNs !== a[o + 5]) return abs;
  }
  return undefined;
}

interface RecheckInput {
  recheckKept: true;
  liveDir: string;
  kept: KeptSet;
}

/**
 * firstChanged on a thread of its own: ~155k lstat on the bench store (1-2 s) that would otherwise hold the main
 * thread (signals, progress). The kept set is in shared memory: the thread reads it where it is. `stop` ends the
 * thread (its promise then rejects). A thread that cannot start: the check runs here.
 */
export function startRecheck(
  liveDir: string,
  kept: KeptSet,
): { result: Promise<string | undefined>; stop: () => void } {
  const input: RecheckInput = { recheckKept: true, liveDir, kept };
  const t = startOneShot(
    new URL('./extract-links.js', import.meta.url),
    input,
    { maxYoungGenerationSizeMb: 4 },
    `the re-check thread of ${liveDir}`,
  );
  if (!t.started) return { result: Promise.resolve(firstChanged(liveDir, kept)), stop: () => {} };
  return {
    result: t.result.then((m) => (m as { changed: string | null }).changed ?? undefined),
    stop: t.stop,
  };
}

const input = workerData as Partial<RecheckInput> | null;
if (parentPort && input?.recheckKept === true && typeof input.liveDir === 'string' && input.kept) {
  parentPort.postMessage({ changed: firstChanged(input.liveDir, input.kept) ?? null });
}
