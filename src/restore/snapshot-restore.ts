/**
 * Snapshots (the cloud CLI's snapshot:create|restore, locally): code, media and database backed up as one unit
 * under one id (the run's timestamp), and restored as one unit with setup:rollback's safety.
 */
import path from 'node:path';
import { CliError, throwIfAborted } from '../errors.js';
import { noEvents, type EventSink } from '../events.js';
import { checkAgainstManifest } from '../store/manifest.js';
import { runRollback, type RunRollbackOptions, type RunRollbackResult } from './run-rollback.js';
import { getSnapshot, type SnapshotInfo } from '../store/snapshot-list.js';
import { storePaths } from '../store/paths.js';

export interface RestoreSnapshotOptions extends Omit<
  RunRollbackOptions,
  'codeFile' | 'mediaFile' | 'dbFile'
> {
  id: string;
  now?: () => number;
}

export interface RestoreSnapshotResult extends RunRollbackResult {
  id: string;
  /** false for a manifest-less (Magento) backup: nothing to check the files against */
  checksummed: boolean;
}

/**
 * `snapshot:restore <id>`: refuses an incomplete or corrupt snapshot, checks every part's size and SHA-256
 * against the manifest, then hands the parts to runRollback (which verifies each fully again while staging it,
 * and changes nothing live until all are staged). A Magento backup without a manifest is restored as it is.
 */
export async function restoreSnapshot(o: RestoreSnapshotOptions): Promise<RestoreSnapshotResult> {
  const onEvent = o.onEvent ?? noEvents;
  const s = await getSnapshot(o.root, o.id, o.now ? { now: o.now } : {});
  assertRestorable(s);
  const dir = storePaths(o.root).backupsDir;
  if (s.manifest) {
    await checkSums(s, dir, o.signal, onEvent);
  } else {
    onEvent({
      type: 'info',
      message: `Snapshot ${s.id} has no manifest (a Magento backup): its files cannot be checked against checksums`,
    });
  }
  throwIfAborted(o.signal);
  const { id: _id, now: _now, ...rest } = o;
  const r = await runRollback({
    ...rest,
    ...(s.partFiles.code ? { codeFile: s.partFiles.code } : {}),
    ...(s.partFiles.media ? { mediaFile: s.partFiles.media } : {}),
    ...(s.partFiles.db ? { dbFile: s.partFiles.db } : {}),
    command: o.command ?? 'snapshot:restore',
  });
  return { id: s.id, checksummed: !!s.manifest, ...r };
}

function assertRestorable(s: SnapshotInfo): void {
  if (s.status === 'incomplete') {
    throw new CliError(`Snapshot ${s.id} is incomplete and cannot be restored: ${s.problems.join('; ')}`);
  }
  if (s.status === 'corrupt') {
    throw new CliError(`Snapshot ${s.id} is corrupt and cannot be restored: ${s.problems.join('; ')}`);
  }
  if (s.problems.length > 0)
    throw new CliError(`Snapshot ${s.id} cannot be restored: ${s.problems.join('; ')}`);
  if (s.parts.length === 0) throw new CliError(`Snapshot ${s.id} has no code, media or database backup`);
}

async function checkSums(s: SnapshotInfo, dir: string, signal: AbortSignal | undefined, onEvent: EventSink) {
  const bad: string[] = [];
  for (const p of s.manifest!.parts) {
    throwIfAborted(signal);
    const file = path.join(dir, p.file);
    onEvent({ type: 'info', message: `Checking ${p.file} against the manifest (SHA-256)` });
    const { problem } = await checkAgainstManifest(file, p, {
      ...(signal ? { signal } : {}),
      onProgress: (bytes) =>
        onEvent({ type: 'progress', part: p.part, operation: 'verify', bytes, totalBytes: p.size }),
    });
    if (problem) bad.push(problem);
  }
  if (bad.length > 0) {
    throw new CliError(
      `Snapshot ${s.id} is corrupt and cannot be restored, nothing was changed: ${bad.join('; ')}`,
    );
  }
}
