/**
 * Read a .tgz backup to its end without writing anything: gzip CRC of every member, tar headers and checksums,
 * the end-of-archive marker, and the same path-safety rules as extraction (an archive that could not be
 * restored safely does not verify). Used by `backups:verify`; a rollback verifies by extracting into staging.
 */
import { runArchiveWorker, type ArchiveProgress, type ArchiveStats } from './extract.js';

export type { ArchiveStats, ArchiveProgress } from './extract.js';

export async function verifyArchive(
  file: string,
  o: {
    signal?: AbortSignal;
    onProgress?: (p: ArchiveProgress) => void;
    filter?: 'none' | 'code' | 'media';
  } = {},
): Promise<ArchiveStats & { tarBytes: number }> {
  const r = await runArchiveWorker({ mode: 'verify', file, filter: o.filter ?? 'none' }, o);
  return {
    entries: r.entries,
    files: r.files,
    dirs: r.dirs,
    symlinks: r.symlinks,
    bytes: r.bytes,
    tarBytes: r.tarBytes,
  };
}
