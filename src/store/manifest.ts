/**
 * `<ts>_manifest.json`: the last file a backup run writes (atomically, 0600), after every part is complete and
 * hashed. Its presence is what makes a run complete: a run without it is incomplete and is never used silently.
 * While a run is under way, `<ts>_manifest.json.running` marks its timestamp as ours, so a crashed run's
 * leftovers are told apart from Magento's own backups (which never have a manifest, and stay usable).
 */
import type { DbContentHashes } from './content-hashes.js';
import type { FileSum } from '../fs/streaming-hash.js';
import { promises as fsp, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { FileHashReply } from './file-hash-worker.js';
import os from 'node:os';
import path from 'node:path';
import { CliError, InterruptedError, describeAbort, errnoCode, throwIfAborted } from '../errors.js';
import type { Part } from '../events.js';
import { writeAtomic } from '../fs/atomic.js';
import { LOCK_FILE, isPidAlive } from '../fs/lock.js';
import { backupFileName } from './backup-name.js';

/** One part a backup run wrote, as the manifest records it. */
export interface BackupPartResult {
  part: Part;
  file: string;
  path: string;
  size: number;
  files?: number;
  bytes?: number;
  tables?: number;
  rows?: number;
  /** database: per-table hashes of what was dumped (a selective rollback loads only the tables that differ) */
  content?: DbContentHashes;
}

export const MANIFEST_FORMAT = 'magebackup-manifest';
export const MANIFEST_VERSION = 1;
export const RUN_MARKER_SUFFIX = '.running';

export interface ManifestPart {
  part: Part;
  /** file name in var/backups */
  file: string;
  size: number;
  sha256: string;
  /** archives: regular files / directories / symlinks and uncompressed content bytes */
  files?: number;
  bytes?: number;
  /** code archive: the exclude patterns it was made with */
  excludes?: string[];
  /** database dump */
  tables?: number;
  rows?: number;
  compressed?: boolean;
  database?: string;
  strip?: string[];
  stripDefiners?: boolean;
  /**
   * per-table hashes of the rows as dumped, normalised schemas and definitions (db/table-hash.ts); absent in
   * older manifests: such a dump is always restored whole
   */
  content?: DbContentHashes;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  /** the snapshot id: the run's unix timestamp, as in every part's name */
  id: string;
  timestamp: number;
  /** when the run started / when its manifest was written (ISO) */
  created: string;
  completed: string;
  tool: { name: 'magebackup'; version: string };
  /** the command that made it (setup:backup, snapshot:create) */
  command: string;
  /** absolute Magento root the backup was taken from */
  root: string;
  /** database server version (SELECT VERSION()), when the database was backed up */
  serverVersion?: string;
  /** warnings of the run (unreadable files skipped ...) */
  warnings: number;
  parts: ManifestPart[];
}

export function manifestFileName(timestamp: number): string {
  return backupFileName(timestamp, 'manifest');
}

export function runMarkerName(timestamp: number): string {
  return manifestFileName(timestamp) + RUN_MARKER_SUFFIX;
}

let cachedVersion: string | undefined;
/** magebackup's version, from package.json (dist/src/store/ → ../../../package.json; src/store/ → ../../). */
export function toolVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'magebackup' && typeof pkg.version === 'string') return (cachedVersion = pkg.version);
    } catch {
      // try the next candidate
    }
  }
  return (cachedVersion = 'unknown');
}

export type { FileSum };

function unreadable(file: string, err: unknown): CliError {
  if (errnoCode(err) === 'ENOENT') return new CliError(`Backup file ${file} is missing`, { cause: err });
  const why = err instanceof Error ? err.message : String(err);
  return new CliError(`Backup file ${file} cannot be read: ${why}`, { cause: err });
}

/**
 * SHA-256 of a file, hex, by a streaming read (the file may be far larger than memory), on a worker thread
 * (file-hash-worker.ts): the caller's thread stays free for the work done meanwhile (a rollback compares the
 * live database while its dump is checked).
 */
export async function hashFile(
  file: string,
  o: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
): Promise<FileSum> {
  throwIfAborted(o.signal);
  const worker = new Worker(new URL('./file-hash-worker.js', import.meta.url), {
    workerData: { file },
    resourceLimits: { maxYoungGenerationSizeMb: 4 },
  });
  let onAbort: (() => void) | undefined;
  try {
    const sum = await new Promise<FileSum>((resolve, reject) => {
      onAbort = () => reject(new InterruptedError(describeAbort(o.signal?.reason)));
      o.signal?.addEventListener('abort', onAbort, { once: true });
      worker.on('error', (err) => reject(unreadable(file, err)));
      worker.on('exit', () => reject(unreadable(file, new Error('the hashing thread ended early'))));
      worker.on('message', (m: FileHashReply) => {
        if (m.t === 'progress') o.onProgress?.(m.bytes);
        else if (m.t === 'done') resolve({ sha256: m.sha256, size: m.size });
        else reject(unreadable(file, Object.assign(new Error(m.message), m.code ? { code: m.code } : {})));
      });
    });
    o.onProgress?.(sum.size);
    return sum;
  } finally {
    if (onAbort) o.signal?.removeEventListener('abort', onAbort);
    await worker.terminate();
  }
}

/**
 * A backup file against its manifest entry: its size, then its SHA-256 (a file of the wrong size is not read).
 * Returns the problem as one line naming the file, or null; and the SHA-256 when it was computed.
 */
export async function checkAgainstManifest(
  file: string,
  expect: Pick<ManifestPart, 'size' | 'sha256'>,
  o: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
): Promise<{ problem: string | null; sha256?: string }> {
  const name = path.basename(file);
  const size = await fsp.stat(file).then(
    (st) => st.size,
    (err: unknown) => {
      throw unreadable(file, err);
    },
  );
  if (size !== expect.size) return { problem: `${name} has ${size} bytes, its manifest says ${expect.size}` };
  const got = await hashFile(file, o);
  if (got.size !== expect.size)
    return { problem: `${name} has ${got.size} bytes, its manifest says ${expect.size}`, sha256: got.sha256 };
  if (got.sha256 !== expect.sha256) {
    return {
      problem: `${name}: SHA-256 ${got.sha256} does not match the manifest's ${expect.sha256} (the file changed or is corrupt)`,
      sha256: got.sha256,
    };
  }
  return { problem: null, sha256: got.sha256 };
}

/** The manifest entries of a run's parts, from runBackup's results and their sums (same order). */
export function manifestParts(
  parts: readonly BackupPartResult[],
  sums: readonly FileSum[],
  o: { excludes: string[]; compress: boolean; strip: string[]; stripDefiners: boolean; database?: string },
): ManifestPart[] {
  return parts.map((p, i) => {
    const sum = sums[i];
    if (!sum || sum.size !== p.size)
      throw new CliError(`Backup file ${p.path} changed while it was being hashed`);
    const entry: ManifestPart = { part: p.part, file: p.file, size: p.size, sha256: sum.sha256 };
    if (p.files !== undefined) entry.files = p.files;
    if (p.bytes !== undefined) entry.bytes = p.bytes;
    if (p.part === 'code') entry.excludes = o.excludes;
    if (p.part === 'db') {
      if (p.tables !== undefined) entry.tables = p.tables;
      if (p.rows !== undefined) entry.rows = p.rows;
      entry.compressed = o.compress;
      if (o.database !== undefined) entry.database = o.database;
      entry.strip = o.strip;
      entry.stripDefiners = o.stripDefiners;
      if (p.content !== undefined) entry.content = p.content;
    }
    return entry;
  });
}

export function buildManifest(o: {
  timestamp: number;
  started: Date;
  completed: Date;
  command: string;
  root: string;
  serverVersion?: string | undefined;
  warnings: number;
  parts: ManifestPart[];
}): Manifest {
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    id: String(o.timestamp),
    timestamp: o.timestamp,
    created: o.started.toISOString(),
    completed: o.completed.toISOString(),
    tool: { name: 'magebackup', version: toolVersion() },
    command: o.command,
    root: o.root,
    ...(o.serverVersion ? { serverVersion: o.serverVersion } : {}),
    warnings: o.warnings,
    parts: o.parts,
  };
}

/** Written at the start of a run: this timestamp is a magebackup run that has not finished (yet). */
export async function writeRunMarker(
  backupsDir: string,
  timestamp: number,
  info: { command: string; started: string },
): Promise<string> {
  const file = path.join(backupsDir, runMarkerName(timestamp));
  await fsp.writeFile(file, JSON.stringify({ pid: process.pid, host: os.hostname(), ...info }) + '\n', {
    mode: 0o600,
    flag: 'wx',
  });
  return file;
}

/**
 * Whether the run that wrote this marker is still running: it still holds the store's lock (`.lock` in the same
 * directory names its pid and host, and that pid is alive). A failed run released the lock; a killed one is dead.
 */
export async function isRunMarkerLive(file: string): Promise<{ pid: number; command: string } | null> {
  const read = async (f: string) => {
    try {
      return JSON.parse(await fsp.readFile(f, 'utf8')) as {
        pid?: unknown;
        host?: unknown;
        command?: unknown;
      };
    } catch {
      return null;
    }
  };
  const [marker, lock] = await Promise.all([read(file), read(path.join(path.dirname(file), LOCK_FILE))]);
  if (!marker || !lock || typeof marker.pid !== 'number') return null;
  if (lock.pid !== marker.pid || lock.host !== os.hostname() || marker.host !== os.hostname()) return null;
  if (!isPidAlive(marker.pid)) return null;
  return { pid: marker.pid, command: String(marker.command) };
}

/** A run marker without its manifest: that timestamp is a run still writing, or one that failed or was killed. */
export async function isIncompleteRun(backupsDir: string, timestamp: number): Promise<boolean> {
  const exists = (name: string) =>
    fsp.lstat(path.join(backupsDir, name)).then(
      () => true,
      () => false,
    );
  return (await exists(runMarkerName(timestamp))) && !(await exists(manifestFileName(timestamp)));
}

export async function removeRunMarker(backupsDir: string, timestamp: number): Promise<void> {
  await fsp.rm(path.join(backupsDir, runMarkerName(timestamp)), { force: true });
}

/** The manifest, complete or invisible (temp file, fsync, rename), mode 0600. Returns its path. */
export async function writeManifest(backupsDir: string, manifest: Manifest): Promise<string> {
  const file = path.join(backupsDir, manifestFileName(manifest.timestamp));
  await writeAtomic(file, (partial) => fsp.writeFile(partial, JSON.stringify(manifest, null, 2) + '\n'));
  return file;
}

function fail(file: string, why: string): never {
  throw new CliError(`Manifest ${file} is corrupt: ${why}`);
}

const PARTS: readonly Part[] = ['code', 'media', 'db'];
const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Checks the shape of a parsed manifest; throws a CliError naming the file and the first problem. */
export function validateManifest(data: unknown, file: string, timestamp?: number): Manifest {
  if (!data || typeof data !== 'object' || Array.isArray(data)) fail(file, 'not a JSON object');
  const m = data as Record<string, unknown>;
  if (m.format !== MANIFEST_FORMAT) fail(file, `format is not "${MANIFEST_FORMAT}"`);
  if (m.version !== MANIFEST_VERSION) {
    fail(
      file,
      `version ${JSON.stringify(m.version)} is not supported (this magebackup reads version ${MANIFEST_VERSION})`,
    );
  }
  if (!isCount(m.timestamp)) fail(file, 'no valid timestamp');
  if (timestamp !== undefined && m.timestamp !== timestamp)
    fail(file, `its timestamp ${String(m.timestamp)} is not the one in its name`);
  if (!Array.isArray(m.parts) || m.parts.length === 0) fail(file, 'no parts');
  const seen = new Set<string>();
  for (const p of m.parts as unknown[]) {
    if (!p || typeof p !== 'object') fail(file, 'a part is not an object');
    const part = p as Record<string, unknown>;
    if (!PARTS.includes(part.part as Part)) fail(file, `unknown part ${JSON.stringify(part.part)}`);
    if (seen.has(part.part as string)) fail(file, `part ${String(part.part)} listed twice`);
    seen.add(part.part as string);
    if (
      typeof part.file !== 'string' ||
      part.file !== path.basename(part.file) ||
      !part.file.startsWith(`${String(m.timestamp)}_`)
    ) {
      fail(file, `part ${String(part.part)} has no valid file name`);
    }
    if (!isCount(part.size)) fail(file, `part ${part.file} has no valid size`);
    if (typeof part.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(part.sha256))
      fail(file, `part ${part.file} has no valid sha256`);
  }
  return data as Manifest;
}

/** Reads and validates `file`; a missing file is null, anything unreadable or malformed a CliError naming it. */
export async function readManifest(file: string, timestamp?: number): Promise<Manifest | null> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw new CliError(
      `Manifest ${file} cannot be read: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    fail(file, 'not valid JSON (truncated?)');
  }
  return validateManifest(data, file, timestamp);
}
