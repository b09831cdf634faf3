import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EventSink, MaintenanceState } from '../events.js';
import { CliError, errnoCode } from '../errors.js';
import { openExclusive } from '../fs/atomic.js';
import { LOCK_FILE, deadLockHolder, heldLock, isPidAlive, readLock, type Lock } from '../fs/lock.js';

/** Magento's flag. `var/.maintenance.ip` (allowed IPs) sits beside it and is never touched. */
export const MAINTENANCE_FLAG = path.join('var', '.maintenance.flag');

export function maintenanceFlagPath(root: string): string {
  return path.join(root, MAINTENANCE_FLAG);
}

function backupsDirOf(root: string): string {
  return path.join(path.resolve(root), 'var', 'backups');
}

/** Anything at the flag's path (a file, or a link: never followed) means on, as for Magento's own check. */
export async function isMaintenanceEnabled(root: string): Promise<boolean> {
  try {
    await fsp.lstat(maintenanceFlagPath(root));
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

/**
 * `var/` belongs to the web server user: the flag is created exclusively and never through a link (a dangling
 * `.maintenance.flag` link made root create its target); whatever is already there is left as it is.
 * Turning it off removes the name itself (unlink never follows a link).
 */
export async function setMaintenance(root: string, enabled: boolean): Promise<void> {
  const flag = maintenanceFlagPath(root);
  try {
    if (enabled) {
      if (await isMaintenanceEnabled(root)) return;
      await fsp.mkdir(path.dirname(flag), { recursive: true });
      try {
        const fh = await openExclusive(flag, 0o664);
        await fh.close();
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw err;
      }
    } else {
      await fsp.rm(flag, { force: true });
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(
      `Cannot turn maintenance mode ${enabled ? 'on' : 'off'}: ${flag}: ${errnoCode(err) ?? String(err)}`,
      { cause: err },
    );
  }
}

const putBack = new WeakSet<Lock>();

/**
 * The run whose lock this one took over was killed (kill -9, power loss) after turning maintenance mode on:
 * turn it off again, as that run would have, and say so. Does nothing when there is no such record; safe to
 * call more than once. Called before a run looks at maintenance mode itself.
 */
export async function restoreDeadRunMaintenance(root: string, onEvent: EventSink): Promise<void> {
  const lock = heldLock(backupsDirOf(root));
  const dead = lock?.takenOver;
  if (!lock || !dead?.maintenance || putBack.has(lock)) return;
  putBack.add(lock);
  if (dead.maintenance.changed && !dead.maintenance.found) {
    const on = await isMaintenanceEnabled(root);
    if (on) await setMaintenance(root, false);
    onEvent({
      type: 'info',
      message: on
        ? `The killed run (pid ${dead.pid}, ${dead.command}, started ${dead.started}) had turned maintenance mode on: turned it off again, as it was before that run`
        : `The killed run (pid ${dead.pid}, ${dead.command}, started ${dead.started}) had turned maintenance mode on; it is off already`,
    });
  }
  await lock.recordMaintenance(undefined);
}

/**
 * For commands that only look (maintenance:status, info:backups:list, snapshot:list): a line warning that a run
 * died holding the lock and may have left maintenance mode on, or null.
 */
export async function deadRunNotice(root: string): Promise<string | null> {
  const dead = await deadLockHolder(backupsDirOf(root));
  if (!dead) return null;
  const which = `magebackup run (pid ${dead.pid}, ${dead.command}, started ${dead.started}) was killed`;
  if (dead.maintenance?.changed) {
    return `A ${which} after turning maintenance mode on, and left it on: the next magebackup run (e.g. backups:prune --dry-run) turns it off again, or run maintenance:disable`;
  }
  return `A ${which} and may have left maintenance mode on or a rollback unfinished: the next magebackup run that takes the lock (e.g. backups:prune --dry-run) puts the store back`;
}

/**
 * For a command that only looks (backups:diff): another magebackup run holds the lock now and is rolling the
 * store back, so what the look finds may be half of that rollback.
 */
export async function liveRollbackNotice(root: string): Promise<string | null> {
  const info = await readLock(path.join(backupsDirOf(root), LOCK_FILE));
  if (!info || info.host !== os.hostname() || info.pid === process.pid || !isPidAlive(info.pid)) return null;
  if (!/rollback|restore/.test(info.command)) return null;
  return `A magebackup run (pid ${info.pid}, ${info.command}, started ${info.started}) is rolling this store back: what this shows may be half of its work; run it again once that run has ended`;
}

export interface MaintenanceHandle {
  /** maintenance was already on before this run */
  readonly wasEnabled: boolean;
  /** put the flag back the way it was before the run; safe to call more than once */
  restore(): Promise<void>;
}

/**
 * Turn maintenance on for the duration of a run, remembering the previous state (Magento #7951/#9918 switched
 * it off when it had been on). The returned handle's restore() is the disposer for success, error and abort alike.
 * The state found and whether this run changed it are recorded in the run's lock first, so that the run after a
 * kill -9 can put it back (restoreDeadRunMaintenance).
 */
export async function enterMaintenance(root: string, onEvent: EventSink): Promise<MaintenanceHandle> {
  await restoreDeadRunMaintenance(root, onEvent);
  const lock = heldLock(backupsDirOf(root));
  const wasEnabled = await isMaintenanceEnabled(root);
  if (wasEnabled) {
    await lock?.recordMaintenance({ found: true, changed: false });
    onEvent({ type: 'maintenance', state: 'already-enabled' });
  } else {
    // recorded before the flag exists: a kill between the two leaves "changed" and no flag, which is harmless
    await lock?.recordMaintenance({ found: false, changed: true });
    await setMaintenance(root, true);
    onEvent({ type: 'maintenance', state: 'enabled' });
  }
  let restored = false;
  return {
    wasEnabled,
    async restore() {
      if (restored) return;
      restored = true;
      let state: MaintenanceState;
      if (wasEnabled) {
        // Someone may have removed it meanwhile; the state before the run was "on", so it ends on.
        await setMaintenance(root, true);
        state = 'left-enabled';
      } else {
        await setMaintenance(root, false);
        state = 'disabled';
      }
      await lock?.recordMaintenance({ found: wasEnabled, changed: false }).catch(() => {});
      onEvent({ type: 'maintenance', state });
    },
  };
}

/** A no-op handle for --no-maintenance. */
export const noMaintenance: MaintenanceHandle = { wasEnabled: false, restore: async () => {} };
