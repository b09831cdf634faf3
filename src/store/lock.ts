import type { EventSink } from '../events.js';
import { ensureDir } from '../fs/atomic.js';
import { acquireLock, type Lock } from '../fs/lock.js';
import type { StorePaths } from './paths.js';

/**
 * Takes the store's lock (`var/backups/.lock`, creating var/backups 0700 if needed), as every command that reads
 * or writes var/backups does first. Taking over a dead run's lock is reported as an info event, the same for every
 * command. The caller then runs recoverStore (restore/recover.ts) before anything else.
 */
export async function acquireStoreLock(
  paths: StorePaths,
  o: { command: string; onEvent: EventSink },
): Promise<Lock> {
  await ensureDir(paths.backupsDir, 0o700);
  return acquireLock(paths.backupsDir, {
    command: o.command,
    onStale: (info) =>
      o.onEvent({
        type: 'info',
        message: `Took over the lock left by pid ${info.pid} (started ${info.started}), which is no longer running`,
      }),
  });
}
