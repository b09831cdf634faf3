import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { CliError, errnoCode } from '../errors.js';

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
 *
 * `flushEveryMs`: while `fn` writes, start the write-back of what it has written so far every that many ms (an
 * fdatasync of the partial file, one at a time, on the thread pool), so that the final fsync does not have to
 * write the whole file at the end (with the default dirty-page limits a 170 MB dump stays in the page cache until
 * then: ~0.15 s of fsync after the last byte). Only when the writes are done: the final fsync, as without it.
 * A failed early flush fails the write (its error would otherwise be reported to that flush only).
 */
export async function writeAtomic<T>(
  finalPath: string,
  fn: (partialPath: string) => Promise<T>,
  options: { mode?: number; overwrite?: boolean; flushEveryMs?: number } = {},
): Promise<T> {
  const mode = options.mode ?? 0o600;
  const partial = finalPath + PARTIAL_SUFFIX;
  // Exclusive and no-follow: never reuse someone else's partial, never write through a planted link.
  const fh = await openExclusive(partial, mode);
  const flusher = options.flushEveryMs ? earlyFlusher(fh, options.flushEveryMs) : undefined;
  if (!flusher) await fh.close();
  try {
    let result: T;
    try {
      result = await fn(partial);
    } catch (err) {
      await flusher?.stop().catch(() => {});
      throw err;
    }
    // stops the timer, waits for a flush in flight, closes the handle; throws a flush's error
    await flusher?.stop();
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

/** writeAtomic's early write-back: an fdatasync of `fh` every `everyMs` (never two at once) until stop(). */
function earlyFlusher(fh: fsp.FileHandle, everyMs: number): { stop(): Promise<void> } {
  let inFlight: Promise<void> | undefined;
  let failed: Error | undefined;
  const timer = setInterval(() => {
    if (inFlight || failed !== undefined) return;
    inFlight = fh
      .datasync()
      .catch((err: unknown) => {
        failed = err instanceof Error ? err : new Error(String(err));
      })
      .finally(() => {
        inFlight = undefined;
      });
  }, everyMs);
  // never what keeps the process alive
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await inFlight;
      await fh.close();
      if (failed !== undefined) throw failed;
    },
  };
}

/** Flags for a file we create: it must not exist yet (not even as a dangling symlink) and is never followed. */
export const EXCLUSIVE_CREATE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

export function openExclusive(file: string, mode = 0o600): Promise<fsp.FileHandle> {
  return fsp.open(file, EXCLUSIVE_CREATE, mode);
}

function uid(): number {
  return process.getuid?.() ?? 0;
}

function shortError(err: unknown): string {
  const code = errnoCode(err);
  return code ?? (err instanceof Error ? err.message : String(err));
}

/**
 * A private directory of ours, e.g. var/backups (0700), checked like sshd's StrictModes: created with `mode` when
 * missing (its parent, e.g. `var/`, may belong to the web server user: only this last component is created, and
 * never through a link), then opened without following a link and checked: a real directory, owned by the running
 * user or root, not writable by group or others, writable by us. Anything else is refused with one line saying how
 * to fix it. A directory of ours that others may read is tightened to `mode`.
 * Returns the directory's device and inode (the identity a later check compares against).
 */
export async function ensureDir(dir: string, mode: number): Promise<{ dev: number; ino: number }> {
  const parent = path.dirname(dir);
  try {
    await fsp.mkdir(dir, { mode });
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') {
      // var/ itself is missing (a fresh checkout): create it the usual way, then ours.
      await fsp.mkdir(parent, { recursive: true, mode: 0o755 }).catch((e: unknown) => {
        throw new CliError(`Cannot create ${parent}: ${shortError(e)}`, { cause: e });
      });
      return ensureDir(dir, mode);
    }
    if (code === 'ENOSPC') throw new CliError(`Disk full: cannot create ${dir}`, { cause: err });
    if (code !== 'EEXIST') {
      throw new CliError(
        `Cannot create ${dir}: ${shortError(err)} (create it as a directory owned by the user running magebackup, mode 0700)`,
        { cause: err },
      );
    }
  }
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (err) {
    let code = errnoCode(err);
    // O_DIRECTORY|O_NOFOLLOW on a link fails with ENOTDIR on Linux: tell a link from a file
    if (code === 'ENOTDIR' && (await fsp.lstat(dir).catch(() => null))?.isSymbolicLink()) code = 'ELOOP';
    if (code === 'ELOOP') {
      throw new CliError(
        `${dir} is a symlink: magebackup keeps backups only in a real directory (replace the link by a directory owned by the user running magebackup, mode 0700)`,
        { cause: err },
      );
    }
    if (code === 'ENOTDIR') {
      throw new CliError(`${dir} is not a directory: move it away so magebackup can create it`, {
        cause: err,
      });
    }
    if (code === 'EACCES') {
      throw new CliError(
        `${dir} is not accessible by the user running magebackup (uid ${uid()}): run magebackup as its owner`,
        { cause: err },
      );
    }
    throw new CliError(`Cannot open ${dir}: ${shortError(err)}`, { cause: err });
  }
  try {
    const st = await fh.stat();
    const me = uid();
    if (st.uid !== me && st.uid !== 0) {
      throw new CliError(
        `${dir} belongs to uid ${st.uid}, not to the user running magebackup (uid ${me}) or root: that user could read every backup; ` +
          `fix it with: chown ${me} ${dir} && chmod 700 ${dir}`,
      );
    }
    if ((st.mode & 0o022) !== 0) {
      throw new CliError(
        `${dir} is writable by ${st.mode & 0o002 ? 'others' : 'its group'} (mode ${(st.mode & 0o7777).toString(8)}): ` +
          `anything in it could have been planted; check its content, then fix it with: chmod 700 ${dir}`,
      );
    }
    if ((st.mode & 0o7777) !== mode) {
      try {
        await fh.chmod(mode);
      } catch (err) {
        throw new CliError(`Cannot make ${dir} mode ${mode.toString(8)}: ${shortError(err)}`, { cause: err });
      }
    }
    try {
      await fsp.access(dir, fsc.W_OK | fsc.X_OK);
    } catch (err) {
      const code = errnoCode(err);
      const why =
        code === 'EPERM'
          ? `is immutable (lsattr -d ${dir}; chattr -i ${dir})`
          : code === 'EROFS'
            ? 'is on a read-only filesystem'
            : 'is not writable by the user running magebackup: run as its owner, or fix its permissions';
      throw new CliError(`${dir} ${why}`, { cause: err });
    }
    // What we checked is what the path names now (not a directory swapped in meanwhile).
    const now = await fsp.lstat(dir);
    if (now.dev !== st.dev || now.ino !== st.ino) throw new CliError(`${dir} changed while it was checked`);
    return { dev: st.dev, ino: st.ino };
  } finally {
    await fh.close();
  }
}

/**
 * Maps an error from creating a file in a checked directory (immutable, read-only, full) to one line.
 * Anything else is returned as it is.
 */
export function mapCreateError(err: unknown, file: string): unknown {
  if (err instanceof CliError) return err;
  const code = errnoCode(err);
  const dir = path.dirname(file);
  if (code === 'ENOSPC') return new CliError(`Disk full: cannot write ${file}`, { cause: err });
  if (code === 'EDQUOT') return new CliError(`Disk quota exceeded: cannot write ${file}`, { cause: err });
  if (code === 'EROFS')
    return new CliError(`${dir} is on a read-only filesystem: cannot write ${file}`, { cause: err });
  if (code === 'EPERM' || code === 'EACCES') {
    return new CliError(
      `Cannot write ${file}: ${code} (is ${dir} immutable or read-only? lsattr -d ${dir}; chattr -i ${dir})`,
      { cause: err },
    );
  }
  if (code === 'EEXIST' || code === 'ELOOP') {
    return new CliError(`${file} already exists (or is a link): refusing to write through it`, {
      cause: err,
    });
  }
  return err;
}
