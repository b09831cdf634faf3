/**
 * What an extraction may write (the destination's free space and inodes less a margin, or a limit), and the
 * errors an extraction names an entry with.
 */
import fs from 'node:fs';
import { formatBytesPlain } from '../fs/units.js';

/** The archive expands to more than the disk can take (or the limit allows). */
export class LimitError extends Error {
  constructor(
    message: string,
    readonly entry?: string,
  ) {
    super(message);
  }
}

/** Warnings of one code named one by one; past that, one line counts the rest (a media tree may have 100k). */
export const NAMED_WARNINGS = 20;
/** A margin of free space never used by an extraction: 5 % of what is free, at most 256 MiB. */
const MARGIN_FRACTION = 0.05;
const MAX_MARGIN = 256 << 20;

export interface Bound {
  bytes: number;
  inodes: number;
  /** why: for the message */
  what: string;
  /** the directory whose filesystem is counted */
  dir: string;
}

/** How much an extraction into `dir` may write: its free space (and inodes) less a margin, capped by maxBytes. */
export function extractionBound(dir: string, maxBytes?: number): Bound {
  const st = fs.statfsSync(dir);
  const avail = st.bavail * st.bsize;
  const margin = Math.min(MAX_MARGIN, Math.floor(avail * MARGIN_FRACTION));
  let bytes = avail - margin;
  let what =
    `the free space in ${dir} (${formatBytesPlain(avail)}` +
    (margin > 0 ? `, less a margin of ${formatBytesPlain(margin)})` : ')');
  if (maxBytes !== undefined && maxBytes < bytes) {
    bytes = maxBytes;
    what = `the limit of ${formatBytesPlain(maxBytes)}`;
  }
  // some filesystems (btrfs) report no inode counts: no inode bound there
  const inodes = st.files > 0 ? st.ffree - Math.min(1000, Math.floor(st.ffree * MARGIN_FRACTION)) : Infinity;
  return { bytes: Math.max(0, bytes), inodes, what, dir };
}

/** A file-system call failed on an entry (the entry is named in the message). */
export class IoError extends Error {
  constructor(
    override readonly cause: NodeJS.ErrnoException,
    readonly entry: string,
  ) {
    super(cause.message);
  }
}
