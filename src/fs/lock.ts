import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LockedError, errnoCode } from '../errors.js';

export const LOCK_FILE = '.lock';

export interface LockInfo {
  pid: number;
  host: string;
  started: string;
  command: string;
}

export interface Lock {
  readonly file: string;
  release(): Promise<void>;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return errnoCode(err) === 'EPERM';
  }
}

async function readLock(file: string): Promise<LockInfo | null> {
  try {
    const info = JSON.parse(await fsp.readFile(file, 'utf8')) as Partial<LockInfo>;
    if (typeof info.pid !== 'number' || typeof info.host !== 'string') return null;
    return { pid: info.pid, host: info.host, started: String(info.started), command: String(info.command) };
  } catch {
    return null;
  }
}

function describe(info: LockInfo): string {
  return `pid ${info.pid} on ${info.host}, ${info.command}, started ${info.started}`;
}

/**
 * One run at a time per store: `<dir>/.lock` holds pid, host, start time and command. A lock left by a dead
 * process on this host is taken over (reported through onStale); a live one makes this run fail with exit 11.
 */
export async function acquireLock(
  dir: string,
  options: { command: string; now?: () => Date; onStale?: (info: LockInfo) => void },
): Promise<Lock> {
  const file = path.join(dir, LOCK_FILE);
  const info: LockInfo = {
    pid: process.pid,
    host: os.hostname(),
    started: (options.now?.() ?? new Date()).toISOString(),
    command: options.command,
  };
  const body = JSON.stringify(info) + '\n';
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      // Write the body to a private file and link it into place: the lock appears complete or not at all.
      const tmp = `${file}.${process.pid}.${attempt}.tmp`;
      await fsp.writeFile(tmp, body, { mode: 0o600 });
      try {
        await fsp.link(tmp, file);
      } finally {
        await fsp.rm(tmp, { force: true });
      }
      let released = false;
      return {
        file,
        async release() {
          if (released) return;
          released = true;
          const current = await readLock(file);
          if (current && current.pid === info.pid && current.host === info.host)
            await fsp.rm(file, { force: true });
        },
      };
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    const holder = await readLock(file);
    if (holder === null) {
      // Unreadable lock: written by something else. Only remove it when it is clearly old.
      const st = await fsp.stat(file).catch(() => null);
      if (st && Date.now() - st.mtimeMs < 60_000) {
        throw new LockedError(`Another magebackup run holds the lock ${file} (unreadable lock file)`);
      }
    } else if (holder.host !== info.host || isAlive(holder.pid)) {
      throw new LockedError(`Another magebackup run holds the lock ${file}: ${describe(holder)}`);
    } else {
      options.onStale?.(holder);
    }
    // Take over: move the stale lock aside, and make sure it is the one we judged stale.
    const aside = `${file}.stale.${process.pid}`;
    try {
      await fsp.rename(file, aside);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue;
      throw err;
    }
    const moved = await readLock(aside);
    if (moved && holder && (moved.pid !== holder.pid || moved.started !== holder.started)) {
      // Another process took it over between our read and our rename: give it back.
      await fsp.link(aside, file).catch(() => {});
      await fsp.rm(aside, { force: true });
      throw new LockedError(`Another magebackup run holds the lock ${file}: ${describe(moved)}`);
    }
    await fsp.rm(aside, { force: true });
  }
  throw new LockedError(`Could not take the lock ${file}`);
}
