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
import { CliError } from '../errors.js';
import type { LinkedFile } from './extract-compare.js';

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
      throw new CliError(
        `${path.join(liveDir, l.rel)} was changed while the rollback was being prepared (after it was compared with the backup): the rollback was stopped before the swap, nothing was changed; run it again`,
      );
    }
  }
}
