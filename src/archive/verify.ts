/**
 * Read a .tgz backup to its end without writing anything: gzip CRC of every member, tar headers and checksums,
 * the end-of-archive marker, and the same path-safety rules as extraction (an archive that could not be
 * restored safely does not verify). Used by `backups:verify`; a rollback verifies by extracting into staging.
 */
import path from 'node:path';
import { runArchiveWorker, type ArchiveProgress, type ArchiveStats, type ArchiveWarning } from './extract.js';

export type { ArchiveStats, ArchiveProgress } from './extract.js';

/**
 * Verification fails an archive that holds `.magebackup-*` entries (a rollback would skip them), data after its
 * end marker, or that expands to more than the free space (less a margin) of `limitDir` (default: the archive's
 * directory) or `maxBytes`: a bomb is reported, never inflated to its end. Symlinks leaving the tree, set-id bits
 * and world-writable modes are warnings (a rollback refuses or neutralises them).
 */
export async function verifyArchive(
  file: string,
  o: {
    signal?: AbortSignal;
    onProgress?: (p: ArchiveProgress) => void;
    onWarning?: (w: ArchiveWarning) => void;
    filter?: 'none' | 'code' | 'media';
    limitDir?: string;
    maxBytes?: number;
  } = {},
): Promise<ArchiveStats & { tarBytes: number }> {
  const r = await runArchiveWorker(
    {
      mode: 'verify',
      file,
      filter: o.filter ?? 'none',
      keepModes: false,
      allowOutsideLinks: false,
      limit: {
        dir: o.limitDir ?? path.dirname(path.resolve(file)),
        ...(o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {}),
      },
    },
    o,
  );
  return {
    entries: r.entries,
    files: r.files,
    dirs: r.dirs,
    symlinks: r.symlinks,
    bytes: r.bytes,
    tarBytes: r.tarBytes,
  };
}
