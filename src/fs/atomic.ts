import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';

export const PARTIAL_SUFFIX = '.partial';

/** fsync a directory so a rename or create inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function fsyncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * A file is complete or invisible: `fn` writes `<finalPath>.partial` (created here, empty, mode 0600), which is
 * then fsynced and renamed over `finalPath`, and the directory fsynced. On any error or abort the partial file
 * is removed and the error rethrown. Refuses to replace an existing `finalPath` unless `overwrite` is set.
 */
export async function writeAtomic<T>(
  finalPath: string,
  fn: (partialPath: string) => Promise<T>,
  options: { mode?: number; overwrite?: boolean } = {},
): Promise<T> {
  const mode = options.mode ?? 0o600;
  const partial = finalPath + PARTIAL_SUFFIX;
  // 'wx': never reuse someone else's partial; the lock guarantees no other run writes here.
  const fh = await fsp.open(partial, 'wx', mode);
  await fh.close();
  try {
    const result = await fn(partial);
    await fsp.chmod(partial, mode);
    await fsyncFile(partial);
    if (!options.overwrite) {
      // link+unlink would be atomic-no-replace; a plain existence check is enough under the run lock.
      const exists = await fsp
        .lstat(finalPath)
        .then(() => true)
        .catch(() => false);
      if (exists) throw new Error(`refusing to overwrite ${finalPath}`);
    }
    await fsp.rename(partial, finalPath);
    await fsyncDir(path.dirname(finalPath));
    return result;
  } catch (err) {
    await fsp.rm(partial, { force: true });
    throw err;
  }
}

/** Create a directory (and parents) and force its mode, e.g. var/backups 0700. */
export async function ensureDir(dir: string, mode: number): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode });
  await fsp.chmod(dir, mode);
}
