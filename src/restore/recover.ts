import type { DbConnectionConfig } from '../db/types.js';
import type { EventSink } from '../events.js';
import { restoreDeadRunMaintenance } from '../maintenance/maintenance.js';
import { heldLock } from '../fs/lock.js';
import { recoverOperations } from './operation-recover.js';
import type { StorePaths } from '../store/paths.js';

/**
 * Puts the store back together after runs that were killed, before any command reads or writes it (so a backup
 * never archives a half-swapped tree): finishes or undoes interrupted rollbacks from their signed journals in the
 * private state directory (all parts to the same side), finishes the store database's interrupted restores, and
 * then puts back the maintenance mode a killed run had changed. Call it right after taking the store's lock.
 * `db`: the store's database, when the command has its connection settings.
 * Emits one info line per thing done and returns them.
 */
export async function recoverStore(o: {
  paths: StorePaths;
  db?: DbConnectionConfig | undefined;
  onEvent: EventSink;
}): Promise<string[]> {
  let done: string[];
  try {
    done = await recoverOperations(o);
  } catch (err) {
    // a killed run's "maintenance on" record must survive until the store can be made whole
    heldLock(o.paths.backupsDir)?.keepForRecovery();
    throw err;
  }
  for (const r of done) o.onEvent({ type: 'info', message: `Recovered from an interrupted run: ${r}` });
  // Only once the data is whole again: a store that cannot be put back stays in maintenance.
  await restoreDeadRunMaintenance(o.paths.root, o.onEvent);
  return done;
}
