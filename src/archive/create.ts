import { promises as fsp } from 'node:fs';
import { availableParallelism } from 'node:os';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { CliError, InterruptedError, describeAbort, errnoCode, throwIfAborted } from '../errors.js';
import { excludePatternsOf, type ExcludeFn } from './excludes.js';
import { ParallelGzipWriter } from './gzip-parallel.js';
import {
  CTRL_HELPER,
  CTRL_HSEQ,
  CTRL_INTS,
  CTRL_STATE,
  CTRL_USED,
  HELPER_GONE,
  STATE_ABORT,
  STATE_GO,
  walkTree,
  type Totals,
  type WalkEntry,
  type WalkWarning,
  type WorkerInput,
  type WorkerMessage,
} from './tar-worker-lib.js';

export interface CreateArchiveOptions {
  /** entries are relative to it */
  sourceDir: string;
  /** already created (empty, 0600) by writeAtomic; written here; the caller fsyncs and renames */
  outFile: string;
  /** from compileExcludes() it runs in the worker thread; any other function makes the walk run on this thread */
  exclude?: ExcludeFn;
  /** sourceDir may itself be a symlink to a directory (symlinked pub/media): follow it (only it) */
  followRoot?: boolean;
  /** gzip level 0-9; default 6. 1 MiB members whose sample does not compress are stored whatever the level. */
  level?: number;
  /** abort → stop promptly, terminate the worker, throw InterruptedError */
  signal?: AbortSignal;
  /** after the walk, before any byte is written; may throw (e.g. not enough space) to abort the run */
  onScan?: (totals: { files: number; dirs: number; symlinks: number; bytes: number }) => void | Promise<void>;
  /** throttled to ~10 calls/s, plus one at the end */
  onProgress?: (p: { files: number; bytes: number }) => void;
  onWarning?: (w: {
    code: 'UNREADABLE' | 'SPECIAL_FILE' | 'VANISHED';
    path: string;
    message: string;
  }) => void;
  /** called with each compressed piece right after it was written to the file, in file order (a StreamingHash) */
  onWritten?: (buf: Buffer) => void;
}

export interface CreateArchiveResult {
  files: number;
  dirs: number;
  symlinks: number;
  /** uncompressed file content bytes */
  bytes: number;
  /** size of the .tgz written */
  size: number;
  warnings: number;
}

/** Uncompressed tar bytes per batch and per gzip member. */
const BATCH_SIZE = 1 << 20;
/** Batches the worker may have produced that the gzip writer has not taken yet. */
const MAX_UNACKED = 4;
const PROGRESS_INTERVAL_MS = 100;
/** Directories this deep are the units of work the two walking threads share. */
const SPLIT_DEPTH = 3;

let liveWorkers = 0;
/** Archive worker threads currently running (tests check that an abort leaves none behind). */
export function activeArchiveWorkers(): number {
  return liveWorkers;
}

async function resolveRoot(sourceDir: string, followRoot: boolean): Promise<string> {
  let st;
  try {
    st = await fsp.lstat(sourceDir);
  } catch (err) {
    throw new CliError(`Cannot read ${sourceDir}: ${errnoCode(err) ?? String(err)}`, { cause: err });
  }
  if (st.isSymbolicLink()) {
    if (!followRoot) throw new CliError(`${sourceDir} is a symbolic link; refusing to archive through it`);
    try {
      const real = await fsp.realpath(sourceDir);
      st = await fsp.stat(real);
      if (!st.isDirectory()) throw new CliError(`${sourceDir} does not point to a directory`);
      return real;
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`${sourceDir} is a broken symbolic link (${errnoCode(err) ?? String(err)})`, {
        cause: err,
      });
    }
  }
  if (!st.isDirectory()) throw new CliError(`${sourceDir} is not a directory`);
  return sourceDir.length > 1 ? sourceDir.replace(/\/+$/, '') : sourceDir;
}

/**
 * Writes `sourceDir` as a gzip'd POSIX tar (ustar + pax where needed) to `outFile`: entries relative to sourceDir,
 * pre-order, sorted, directories with a trailing '/', symlinks stored as symlinks, modes/mtimes/owners kept.
 * Sockets, FIFOs and devices are skipped, unreadable and vanishing paths reported; none of them stops the run.
 *
 * The walk and file reads run in a worker thread with synchronous fs calls; this thread gzips 1 MiB members in
 * parallel on the libuv threadpool and writes them, and stays free for progress and signals.
 */
export async function createArchive(o: CreateArchiveOptions): Promise<CreateArchiveResult> {
  throwIfAborted(o.signal);
  const level = o.level ?? 6;
  if (!Number.isInteger(level) || level < 0 || level > 9)
    throw new RangeError(`gzip level must be 0-9, got ${level}`);
  const root = await resolveRoot(o.sourceDir, o.followRoot ?? false);
  const displayRoot = o.sourceDir.length > 1 ? o.sourceDir.replace(/\/+$/, '') : o.sourceDir;

  let warnings = 0;
  const emitWarning = (w: WalkWarning): void => {
    warnings++;
    o.onWarning?.({ code: w.code, path: w.path, message: w.message });
  };

  let patterns: readonly string[] | null = [];
  let entries: WalkEntry[] | null = null;
  if (o.exclude !== undefined) {
    patterns = excludePatternsOf(o.exclude) ?? null;
    if (patterns === null) {
      // An arbitrary callback cannot cross into the worker: walk here (blocking this thread for the walk only).
      entries = walkTree(root, displayRoot, o.exclude, emitWarning).entries;
      throwIfAborted(o.signal);
    }
  }

  const fh = await fsp.open(o.outFile, 'w');
  // Members of images and other already-compressed data are stored, not recompressed for nothing.
  const gz = new ParallelGzipWriter(fh, {
    level,
    chunkSize: BATCH_SIZE,
    storeIncompressible: true,
    ...(o.onWritten ? { onWritten: o.onWritten } : {}),
  });
  const ctrlBuf = new SharedArrayBuffer(CTRL_INTS * 4);
  const ctrl = new Int32Array(ctrlBuf);
  // A second thread shares the walk (syscall-bound) when there is a second core and the walk runs in workers.
  const channel = entries === null && availableParallelism() > 1 ? new MessageChannel() : null;
  const common = {
    root,
    displayRoot,
    patterns,
    batchSize: BATCH_SIZE,
    maxChunks: MAX_UNACKED,
    ctrl: ctrlBuf,
    splitDepth: SPLIT_DEPTH,
  };
  const spawn = (
    input: WorkerInput,
    transfer: MessagePort[],
  ): { worker: Worker; exited: Promise<number> } => {
    const worker = new Worker(new URL('./tar-worker.js', import.meta.url), {
      workerData: input,
      transferList: transfer,
      // A small young generation keeps the walk's garbage (a Stats object per path) from inflating RSS.
      resourceLimits: { maxYoungGenerationSizeMb: 8 },
    });
    liveWorkers++;
    const exited = new Promise<number>((resolve) => {
      worker.once('exit', (code) => {
        liveWorkers--;
        resolve(code);
      });
    });
    return { worker, exited };
  };

  let writer: { worker: Worker; exited: Promise<number> };
  let helper: { worker: Worker; exited: Promise<number> } | null = null;
  try {
    writer = spawn(
      { ...common, entries, role: 'writer', port: channel?.port1 ?? null },
      channel ? [channel.port1] : [],
    );
  } catch (err) {
    gz.destroy();
    await fh.close();
    throw err;
  }
  if (channel) {
    try {
      helper = spawn({ ...common, entries: null, role: 'helper', port: channel.port2 }, [channel.port2]);
      helper.worker.on('error', () => {
        // Not fatal: the writer walks whatever the helper did not deliver.
      });
      void helper.exited.then(() => {
        Atomics.store(ctrl, CTRL_HELPER, HELPER_GONE);
        Atomics.notify(ctrl, CTRL_HSEQ);
      });
    } catch {
      Atomics.store(ctrl, CTRL_HELPER, HELPER_GONE);
    }
  } else {
    Atomics.store(ctrl, CTRL_HELPER, HELPER_GONE);
  }
  const worker = writer.worker;
  const exited = writer.exited;

  let lastProgress = 0;
  const progress = (files: number, bytes: number, force: boolean): void => {
    if (o.onProgress === undefined) return;
    const now = Date.now();
    if (!force && now - lastProgress < PROGRESS_INTERVAL_MS) return;
    lastProgress = now;
    o.onProgress({ files, bytes });
  };

  let failure: unknown = undefined;
  let settled = false;
  let resolveDone!: (t: Totals) => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<Totals>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });

  const fail = (err: unknown): void => {
    if (settled) return;
    settled = true;
    failure = err;
    Atomics.store(ctrl, CTRL_STATE, STATE_ABORT);
    Atomics.notify(ctrl, CTRL_STATE);
    Atomics.notify(ctrl, CTRL_USED);
    gz.destroy();
    rejectDone(err);
  };

  const onAbort = (): void => fail(new InterruptedError(describeAbort(o.signal?.reason)));
  o.signal?.addEventListener('abort', onAbort, { once: true });

  let chain: Promise<void> = Promise.resolve();
  let workerDone = false;
  worker.on('message', (m: WorkerMessage) => {
    if (m.t === 'done') workerDone = true;
    if (settled) return;
    switch (m.t) {
      case 'scan':
        chain = chain
          .then(async () => {
            await o.onScan?.(m.totals);
            if (settled) return;
            Atomics.store(ctrl, CTRL_STATE, STATE_GO);
            Atomics.notify(ctrl, CTRL_STATE);
          })
          .catch(fail);
        break;
      case 'chunk':
        chain = chain
          .then(async () => {
            if (settled) return;
            await gz.write(Buffer.from(m.buf, 0, m.len));
            Atomics.sub(ctrl, CTRL_USED, 1);
            Atomics.notify(ctrl, CTRL_USED);
            progress(m.files, m.bytes, false);
          })
          .catch(fail);
        break;
      case 'warn':
        try {
          emitWarning(m.w);
        } catch (err) {
          fail(err);
        }
        break;
      case 'done':
        chain = chain
          .then(() => {
            if (settled) return;
            settled = true;
            resolveDone(m.totals);
          })
          .catch(fail);
        break;
    }
  });
  worker.on('error', fail);
  void exited.then((code) => {
    if (!workerDone) fail(new Error(`archive worker exited early (code ${code})`));
  });

  try {
    const totals = await done;
    const { bytesOut } = await gz.end();
    // An abort that came after the last byte still wins: the caller discards the partial file.
    throwIfAborted(o.signal);
    progress(totals.files, totals.bytes, true);
    return { ...totals, size: bytesOut, warnings };
  } catch (err) {
    if (failure === undefined) failure = err;
    throw failure;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    if (failure !== undefined) {
      Atomics.store(ctrl, CTRL_STATE, STATE_ABORT);
      Atomics.notify(ctrl, CTRL_STATE);
      Atomics.notify(ctrl, CTRL_USED);
      gz.destroy();
      await Promise.all([worker.terminate(), helper?.worker.terminate()]);
    }
    await exited;
    await helper?.exited;
    // Pending compressions/writes may still hold the handle briefly; their results are discarded.
    await chain.catch(() => {});
    await gz.drain();
    await fh.close();
  }
}
