/**
 * Safe, fast extraction of a .tgz backup into a new empty directory. The whole archive is read (gzip CRC of
 * every member, tar structure, end-of-archive marker) while extracting, so a successful extraction IS the
 * verification pass. Any fault: the destination directory is removed and a CliError naming the archive thrown.
 *
 * What an archive cannot do (each is refused, or neutralised and reported as a warning):
 * - write outside the destination: absolute names, '..', writing through a symlink or replacing a directory
 *   (extract-plan.ts); devices; in a code archive, `pub` (which holds the kept pub/media) as a non-directory;
 * - restore symlinks whose target leaves the tree (absolute, or '..' above its root, through other links too),
 *   unless `allowOutsideLinks` (OUTSIDE_LINK);
 * - restore magebackup's own `.magebackup-*` state (INTERNAL_PATH: skipped; `verify` fails the archive);
 * - set-id bits, sticky files, world-writable modes: dropped unless `keepModes` (SPECIAL_MODE, WORLD_WRITABLE);
 * - choose owners: everything belongs to `owner` (the live tree's owner) or the running user;
 * - fill the disk: the entries' declared sizes are counted as they come and the extraction stops once they pass
 *   the destination's free space less a margin (or `maxBytes`), before writing the entry that passes it;
 * - hide data after the end-of-archive marker or the last gzip member: refused (zero padding is accepted).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { WarningCodeValue } from '../events.js';
import { CliError, InterruptedError, describeAbort, throwIfAborted } from '../errors.js';
import type { WorkerInput, WorkerMessage, WorkerResult } from './extract-types.js';
import type { KeptSet } from './extract-sparse.js';
import { startRecheck } from './extract-links.js';

export type { LinkedFile, TreeChanges } from './extract-compare.js';
export type { KeptSet, SparsePlanResult, SparseResult } from './extract-sparse.js';

export interface ArchiveStats {
  /** file-system entries (files, hard links, directories, symlinks) */
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  /** bytes of regular file contents */
  bytes: number;
}

/**
 * What a sparse staging leaves in place (extract-sparse.ts KeptSet), in shared memory: the extraction thread
 * that built it has ended (its heap of ~65 MB on the bench store lived on until the swap when it kept the set and
 * re-checked it: the peak RSS of a code rollback); the re-check runs on a small thread of its own that reads the
 * set where it is (extract-links.ts startRecheck).
 */
export interface KeptHandle {
  /** entries left in place */
  readonly count: number;
  /** re-checks them all (extract-links.ts firstChanged): the first live path that changed, or undefined */
  recheck(): Promise<string | undefined>;
  /** the set (tests) */
  fetch(): Promise<KeptSet>;
  /** lets the set go and ends a re-check under way; idempotent. Any request after it rejects. */
  release(): void;
}

/**
 * What an extraction gives back: the archive's counts, and with `liveDir` what differs and the swap plan; with
 * a sparse plan the handle on what it leaves in place.
 */
export type ExtractResult = WorkerResult & { kept?: KeptHandle };

export interface ArchiveProgress {
  entries: number;
  /** uncompressed tar bytes read so far */
  bytes: number;
}

export interface ArchiveWarning {
  /**
   * stable code: SPECIAL_FILE, EXCLUDED_PATH, OUTSIDE_MEDIA, LINK_TARGET_SKIPPED, INTERNAL_PATH, SPECIAL_MODE,
   * WORLD_WRITABLE, OUTSIDE_LINK; `path` is '' for a line that counts further entries with the same code
   */
  code: WarningCodeValue;
  path: string;
  message: string;
}

export interface ExtractOptions {
  file: string;
  /** a new, empty directory; removed again if the extraction fails */
  destDir: string;
  signal?: AbortSignal;
  onProgress?: (p: ArchiveProgress) => void;
  onWarning?: (w: ArchiveWarning) => void;
  /**
   * 'code': leave out the paths a code rollback never restores (var/, pub/media, node_modules, ...);
   * 'media': also accept archives whose names start with pub/media/ (Magento's own media backups).
   */
  filter?: 'none' | 'code' | 'media';
  /** who gets what is restored when we run as root (the live tree's owner); default: the running user */
  owner?: { uid: number; gid: number };
  /** keep set-id bits and world-writable modes as archived (still reported) */
  keepModes?: boolean;
  /** restore symlinks whose target leaves the tree (reported) instead of refusing the archive */
  allowOutsideLinks?: boolean;
  /** stop once the archive expands to more than this (the destination's free space less a margin anyway) */
  maxBytes?: number;
  /**
   * the live directory this extraction will replace (same filesystem): a file equal to its live twin (type,
   * mode, owner, mtime and bytes) is staged as a hard link to it instead of a new copy (extract-compare.ts)
   */
  liveDir?: string;
  /**
   * with `liveDir`, a code tree: stage only what differs and leave equal files in place where only we can change
   * the directories (extract-sparse.ts); the result's `sparse` is then the swap plan
   */
  sparse?: boolean;
}

export async function extractArchive(o: ExtractOptions): Promise<ExtractResult> {
  throwIfAborted(o.signal);
  const entries = await fsp.readdir(o.destDir);
  if (entries.length > 0) throw new Error(`extractArchive: ${o.destDir} is not empty`);
  try {
    return await runArchiveWorker(
      {
        mode: 'extract',
        file: o.file,
        destDir: o.destDir,
        filter: o.filter ?? 'none',
        ...(o.owner ? { owner: o.owner } : {}),
        keepModes: o.keepModes ?? false,
        allowOutsideLinks: o.allowOutsideLinks ?? false,
        limit: { dir: o.destDir, ...(o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {}) },
        ...(o.liveDir !== undefined
          ? { compare: { liveDir: await realLiveDir(o.liveDir), sparse: o.sparse ?? false } }
          : {}),
      },
      o,
    );
  } catch (err) {
    await fsp.rm(o.destDir, { recursive: true, force: true });
    throw err;
  }
}

/** The live directory resolved (descriptors' real paths are compared with it); a missing one as given. */
export async function realLiveDir(dir: string): Promise<string> {
  return fsp.realpath(dir).catch(() => path.resolve(dir));
}

/** Runs the verify/extract worker and maps its outcome to a result or a CliError naming the archive. */
export function runArchiveWorker(
  input: Omit<WorkerInput, 'abort' | 'chown' | 'umask'>,
  o: {
    signal?: AbortSignal;
    onProgress?: (p: ArchiveProgress) => void;
    onWarning?: (w: ArchiveWarning) => void;
  },
): Promise<ExtractResult> {
  throwIfAborted(o.signal);
  const abort = new SharedArrayBuffer(4);
  const flag = new Int32Array(abort);
  const full: WorkerInput = {
    ...input,
    abort,
    chown: process.getuid?.() === 0,
    umask: process.umask(),
  };
  return new Promise<ExtractResult>((resolve, reject) => {
    const worker = new Worker(new URL('./extract-worker.js', import.meta.url), {
      workerData: full,
      // a smaller young generation: more frequent (cheap) scavenges, a smaller peak RSS
      resourceLimits: { maxYoungGenerationSizeMb: 8 },
    });
    let settled = false;
    const onAbort = (): void => {
      Atomics.store(flag, 0, 1);
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      o.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    worker.on('message', (m: WorkerMessage) => {
      switch (m.t) {
        case 'progress':
          o.onProgress?.({ entries: m.entries, bytes: m.bytes });
          break;
        case 'warning':
          o.onWarning?.({ code: m.code, path: m.path, message: m.message });
          break;
        case 'done':
          settle(() => resolve(m.kept && m.result.sparse ? withKept(m.result, m.kept, full) : m.result));
          break;
        case 'error':
          settle(() =>
            reject(
              m.kind === 'interrupted'
                ? new InterruptedError(describeAbort(o.signal?.reason))
                : toError(m, full),
            ),
          );
          break;
      }
    });
    worker.on('error', (err) => settle(() => reject(err)));
    worker.on('exit', (code) =>
      settle(() =>
        reject(new Error(`archive worker for ${input.file} exited (code ${code}) without a result`)),
      ),
    );
  });
}

function withKept(r: WorkerResult, set: KeptSet, input: WorkerInput): ExtractResult {
  const liveDir = input.compare!.liveDir;
  let held: KeptSet | undefined = set;
  let stopRecheck: (() => void) | undefined;
  const released = (): Error => new Error('the kept set was released');
  const kept: KeptHandle = {
    count: set.count,
    recheck: async () => {
      if (!held) throw released();
      const c = startRecheck(liveDir, held);
      stopRecheck = c.stop;
      try {
        return await c.result;
      } finally {
        stopRecheck = undefined;
      }
    },
    fetch: () => (held ? Promise.resolve(held) : Promise.reject(released())),
    release: () => {
      held = undefined;
      stopRecheck?.();
    },
  };
  return { ...r, kept };
}

function toError(m: Extract<WorkerMessage, { t: 'error' }>, input: WorkerInput): Error {
  const file = input.file;
  const at = m.entry ? ` (at entry "${m.entry}")` : '';
  switch (m.kind) {
    case 'format':
      return new CliError(`Archive ${file} is damaged or not a tar archive: ${m.message}${at}`);
    case 'gzip': {
      const why =
        m.code === 'Z_BUF_ERROR'
          ? 'it is truncated (unexpected end of the gzip stream)'
          : m.message.includes('header check')
            ? 'it is not a gzip file'
            : `gzip data error (${m.message})`;
      return new CliError(`Archive ${file} is damaged: ${why}`);
    }
    case 'unsafe':
      return new CliError(`Archive ${file} is refused: entry "${m.entry ?? '?'}" ${m.message}`);
    case 'limit':
      return new CliError(`Archive ${file} is refused: ${m.message}${at}`);
    case 'live-changed':
      return new CliError(`Rollback from ${file} stopped: ${m.message}`);
    case 'io': {
      if (m.entry === undefined) return new CliError(`Cannot read archive ${file}: ${m.message}`);
      if (m.code === 'ENOSPC')
        return new CliError(`Disk full while extracting ${file} into ${input.destDir}`);
      if (m.code === 'EDQUOT')
        return new CliError(`Disk quota exceeded while extracting ${file} into ${input.destDir}`);
      return new CliError(`Cannot extract "${m.entry}" from ${file} into ${input.destDir}: ${m.message}`);
    }
    default:
      return new Error(`archive worker failed on ${file}: ${m.message}`);
  }
}
