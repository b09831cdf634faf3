/**
 * Snapshots (the cloud CLI's snapshot:create|restore, locally): code, media and database backed up as one unit
 * under one id (the run's timestamp), and restored as one unit with setup:rollback's safety.
 */
import { runBackup, type RunBackupOptions, type RunBackupResult } from './run-backup.js';

export type CreateSnapshotOptions = Omit<RunBackupOptions, 'parts'>;

export interface CreateSnapshotResult extends RunBackupResult {
  id: string;
}

/** `snapshot:create` = `setup:backup --code --media --db`, one id. */
export async function createSnapshot(o: CreateSnapshotOptions): Promise<CreateSnapshotResult> {
  const r = await runBackup({
    ...o,
    parts: { code: true, media: true, db: true },
    command: o.command ?? 'snapshot:create',
  });
  return { id: String(r.timestamp), ...r };
}
