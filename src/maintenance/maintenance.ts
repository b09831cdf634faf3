import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { EventSink, MaintenanceState } from '../events.js';
import { errnoCode } from '../errors.js';

/** Magento's flag. `var/.maintenance.ip` (allowed IPs) sits beside it and is never touched. */
export const MAINTENANCE_FLAG = path.join('var', '.maintenance.flag');

export function maintenanceFlagPath(root: string): string {
  return path.join(root, MAINTENANCE_FLAG);
}

export async function isMaintenanceEnabled(root: string): Promise<boolean> {
  try {
    await fsp.lstat(maintenanceFlagPath(root));
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

export async function setMaintenance(root: string, enabled: boolean): Promise<void> {
  const flag = maintenanceFlagPath(root);
  if (enabled) {
    await fsp.mkdir(path.dirname(flag), { recursive: true });
    // Magento touches an empty file; 'a' keeps an existing one as it is.
    const fh = await fsp.open(flag, 'a', 0o664);
    await fh.close();
  } else {
    await fsp.rm(flag, { force: true });
  }
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
 */
export async function enterMaintenance(root: string, onEvent: EventSink): Promise<MaintenanceHandle> {
  const wasEnabled = await isMaintenanceEnabled(root);
  if (wasEnabled) {
    onEvent({ type: 'maintenance', state: 'already-enabled' });
  } else {
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
      onEvent({ type: 'maintenance', state });
    },
  };
}

/** A no-op handle for --no-maintenance. */
export const noMaintenance: MaintenanceHandle = { wasEnabled: false, restore: async () => {} };
