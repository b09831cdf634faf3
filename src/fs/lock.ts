import { randomBytes } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LockedError, errnoCode } from '../errors.js';
import { fsyncDir, mapCreateError, openExclusive } from './atomic.js';

export const LOCK_FILE = '.lock';

/** What a run did to maintenance mode, recorded in its lock so the run after a kill -9 can put it back. */
export interface LockMaintenance {
  /** the flag was there when the run started */
  found: boolean;
  /** the run turned it on (or was about to) and has not turned it off again */
  changed: boolean;
}

export interface LockInfo {
  pid: number;
  host: string;
  started: string;
  command: string;
  maintenance?: LockMaintenance;
}

export interface Lock {
  readonly file: string;
  /** the lock of a dead run that this one took over (its maintenance record tells what to put back) */
  readonly takenOver: LockInfo | null;
  /** rewrite the lock with this run's maintenance record (atomically: temp file, rename) */
  recordMaintenance(m: LockMaintenance | undefined): Promise<void>;
  /**
   * The store could not be made whole and a journal will let the next run do it: keep the lock (with its record
   * "maintenance turned on, not put back") at release, so that run takes it over like a dead run's and turns
   * maintenance off once it has recovered.
   */
  keepForRecovery(): void;
  release(): Promise<void>;
}

/** Locks this process holds, by directory: enterMaintenance finds the run's lock here to record in it. */
const held = new Map<string, Lock>();

export function heldLock(dir: string): Lock | undefined {
  return held.get(path.resolve(dir));
}

/** Is process `pid` running on this host? (EPERM: it exists but belongs to someone else.) */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/** Reads a lock file without following a link (a planted link is no lock of ours). */
export async function readLock(file: string): Promise<LockInfo | null> {
  let text: string;
  try {
    const fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return null;
  }
  try {
    const info = JSON.parse(text) as Partial<LockInfo>;
    if (typeof info.pid !== 'number' || typeof info.host !== 'string') return null;
    const m = info.maintenance;
    return {
      pid: info.pid,
      host: info.host,
      started: String(info.started),
      command: String(info.command),
      ...(m && typeof m.found === 'boolean' && typeof m.changed === 'boolean'
        ? { maintenance: { found: m.found, changed: m.changed } }
        : {}),
    };
  } catch {
    return null;
  }
}

/** A lock whose holder is dead (this host, pid gone): the run was killed without cleaning up. */
export async function deadLockHolder(dir: string): Promise<LockInfo | null> {
  const info = await readLock(path.join(dir, LOCK_FILE));
  if (!info || info.host !== os.hostname() || isPidAlive(info.pid)) return null;
  return info;
}

function describe(info: LockInfo): string {
  return `pid ${info.pid} on ${info.host}, ${info.command}, started ${info.started}`;
}

/** A fresh name beside `file`, created exclusively (never through a planted link), holding `body`. */
async function writeTemp(file: string, body: string): Promise<string> {
  const tmp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  let fh;
  try {
    fh = await openExclusive(tmp, 0o600);
  } catch (err) {
    throw mapCreateError(err, tmp);
  }
  try {
    await fh.writeFile(body);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await fsp.rm(tmp, { force: true });
    throw mapCreateError(err, tmp);
  }
  await fh.close();
  return tmp;
}

/**
 * One run at a time per store: `<dir>/.lock` holds pid, host, start time and command. A lock left by a dead
 * process on this host is taken over (reported through onStale, and kept as `takenOver` so the caller can put
 * back what that run left); a live one makes this run fail with exit 11.
 * `dir` must be a checked private directory (ensureDir); every file made here is still created exclusively.
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
  let takenOver: LockInfo | null = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    // Until the dead run's maintenance state is put back, this lock carries its record: a kill -9 of this run
    // before then leaves the next run the same job.
    const mine: LockInfo = takenOver?.maintenance?.changed
      ? { ...info, maintenance: takenOver.maintenance }
      : info;
    // Write the body to a private file and link it into place: the lock appears complete or not at all.
    const tmp = await writeTemp(file, JSON.stringify(mine) + '\n');
    let linked = false;
    try {
      await fsp.link(tmp, file);
      linked = true;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw mapCreateError(err, file);
    } finally {
      await fsp.rm(tmp, { force: true });
    }
    if (linked) {
      const lock = makeLock(file, mine, takenOver);
      held.set(path.resolve(dir), lock);
      return lock;
    }
    const holder = await readLock(file);
    if (holder === null) {
      // Unreadable lock: written by something else. Only remove it when it is clearly old.
      const st = await fsp.lstat(file).catch(() => null);
      if (st && Date.now() - st.mtimeMs < 60_000) {
        throw new LockedError(`Another magebackup run holds the lock ${file} (unreadable lock file)`);
      }
    } else if (
      holder.host !== info.host ||
      // a lock this process left behind on purpose (see release) is as stale as a dead run's
      (isPidAlive(holder.pid) && !(holder.pid === process.pid && !held.has(path.resolve(dir))))
    ) {
      throw new LockedError(`Another magebackup run holds the lock ${file}: ${describe(holder)}`);
    } else {
      options.onStale?.(holder);
    }
    // Take over: move the stale lock aside, and make sure it is the one we judged stale.
    const aside = `${file}.stale.${randomBytes(8).toString('hex')}`;
    try {
      await fsp.rename(file, aside);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue;
      throw mapCreateError(err, aside);
    }
    const moved = await readLock(aside);
    if (moved && holder && (moved.pid !== holder.pid || moved.started !== holder.started)) {
      // Another process took it over between our read and our rename: give it back.
      await fsp.link(aside, file).catch(() => {});
      await fsp.rm(aside, { force: true });
      throw new LockedError(`Another magebackup run holds the lock ${file}: ${describe(moved)}`);
    }
    await fsp.rm(aside, { force: true });
    // The dead run's record is kept until this run has put its maintenance state back (see recoverStore).
    if (moved?.maintenance?.changed) takenOver = moved;
    else takenOver ??= moved;
  }
  throw new LockedError(`Could not take the lock ${file}`);
}

function makeLock(file: string, info: LockInfo, takenOver: LockInfo | null): Lock {
  let released = false;
  let keep = false;
  let current: LockInfo = info;
  const dir = path.dirname(file);
  const write = async (next: LockInfo) => {
    const tmp = await writeTemp(file, JSON.stringify(next) + '\n');
    try {
      await fsp.rename(tmp, file);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw mapCreateError(err, file);
    }
    await fsyncDir(dir).catch(() => {});
    current = next;
  };
  let pending: Promise<void> = Promise.resolve();
  return {
    file,
    takenOver,
    async recordMaintenance(m) {
      await pending;
      const rest: LockInfo = { ...current };
      delete rest.maintenance;
      pending = write(m ? { ...rest, maintenance: m } : rest);
      await pending;
    },
    keepForRecovery() {
      keep = true;
    },
    async release() {
      if (released) return;
      released = true;
      await pending.catch(() => {});
      held.delete(path.resolve(dir));
      const now = await readLock(file);
      if (!now || now.pid !== info.pid || now.host !== info.host) return;
      if (keep && now.maintenance?.changed && !now.maintenance.found) return;
      await fsp.rm(file, { force: true });
    },
  };
}
