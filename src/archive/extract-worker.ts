/**
 * Worker thread body for verify and extract: gunzip (zlib, in libuv's pool) → TarReader → a sink doing plain
 * synchronous fs calls (extract-sink.ts). Synchronous calls in a worker are ~45x faster than node-tar's async
 * unpacker on trees of many small files, and keep the main thread free for signals and progress. Talks to
 * extract.ts by messages (extract-types.ts).
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { TarReader, TarFormatError } from './tar-read.js';
import { UnsafeEntryError } from './extract-plan.js';
import { LiveChangedError } from './extract-compare.js';
import { startPrefetch } from './prefetch-worker.js';
import { startRemoteCompare, type RemoteComparer } from './compare-thread.js';
import { IoError, LimitError, extractionBound } from './extract-limits.js';
import { Sink } from './extract-sink.js';
import { startLiveWalk } from './live-walk.js';
import type { KeptSet } from './extract-sparse.js';
import type { WorkerInput, WorkerMessage } from './extract-types.js';
import { WarningCode } from '../events.js';

export type { WorkerInput, WorkerMessage, WorkerResult } from './extract-types.js';
export { LimitError, extractionBound, type Bound } from './extract-limits.js';
export { Sink } from './extract-sink.js';

class Interrupted extends Error {}

const READ_CHUNK = 64 * 1024;

/**
 * Runs the extraction. Its last message is 'done' (with a sparse plan's kept set, in shared memory: the thread
 * then ends, and its heap with it, before the swap) or 'error'.
 */
async function run(input: WorkerInput, post: (m: WorkerMessage) => void): Promise<void> {
  const abortFlag = new Int32Array(input.abort);
  let sink: Sink | undefined;
  let reader: TarReader | undefined;
  // pipeline() may report the AbortError of the streams it tore down instead of what the consumer threw
  let consumerError: unknown;
  let prefetch: (() => void) | undefined;
  let stopWalk: (() => void) | undefined;
  let remote: RemoteComparer | undefined;
  try {
    const fd = fs.openSync(input.file, 'r');
    const fileSize = fs.fstatSync(fd).size;
    const bound = extractionBound(input.limit.dir, input.limit.maxBytes);
    // backups:diff: the comparison with the live tree runs on a thread of its own (compare-thread.ts)
    remote =
      input.compare && input.mode === 'verify'
        ? startRemoteCompare(input.compare.liveDir, input.filter)
        : undefined;
    const s = new Sink(
      input,
      (code, p, message) => post({ t: 'warning', code, path: p, message }),
      bound,
      fs.statfsSync(input.limit.dir).bsize,
      remote,
    );
    sink = s;
    const r = new TarReader(s);
    reader = r;
    if (s.cmp && input.filter === 'code' && !remote) prefetch = startPrefetch(input.compare!.liveDir, s.cmp);
    // backups:diff: the walk for added files runs on its own thread beside the stream (a rollback's sparse plan
    // walks at the end)
    const walk =
      s.cmp && !s.write ? startLiveWalk(input.compare!.liveDir, input.filter === 'code') : undefined;
    stopWalk = walk?.stop;
    let lastProgress = Date.now();
    const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
    let readToEnd = false;
    const piped = pipeline(
      // 64 KiB reads: a 1 MiB read buffer lives while gunzip turns it into ~5 MiB of tar (many scavenges), so
      // each one was promoted and waited for a full GC: 20-40 MB of dead buffers at times (the stream's RSS peak)
      fs.createReadStream('', { fd, highWaterMark: READ_CHUNK }),
      gunzip,
      async function (source: AsyncIterable<Buffer>) {
        try {
          for await (const chunk of source) {
            if (Atomics.load(abortFlag, 0) !== 0) throw new Interrupted();
            r.write(chunk);
            // metadata entries and skipped bodies are not in the sink's count: bound the whole stream too
            if (r.bytes > bound.bytes) throw s.limitError();
            if (remote) await remote.ready();
            const now = Date.now();
            if (now - lastProgress >= 200) {
              lastProgress = now;
              post({ t: 'progress', entries: s.result.entries, bytes: r.bytes });
            }
          }
          r.end();
          readToEnd = true;
        } catch (err) {
          consumerError = err;
          throw err;
        }
      },
    );
    try {
      await piped;
    } catch (err) {
      // zlib stops at a zero byte after a gzip member and the pipeline then aborts the file's read stream:
      // not a failure by itself; the bytes left are checked below
      if (!readToEnd || gunzip.bytesWritten >= fileSize) throw err;
    }
    prefetch?.();
    checkTrailingBytes(input.file, gunzip.bytesWritten, fileSize);
    s.checkEnd();
    let kept: KeptSet | undefined;
    if (s.cmp) {
      const sp = s.sp;
      const walked = walk ? await walk.result : undefined;
      if (remote) await remote.finish(s.cmp.changes);
      s.cmp.walkAdded((rel) => s.plan.kindOf(rel), sp, walked);
      // the path plan (~150k names on the bench store) is not needed past the walk: dropped before the plan
      // below is built (the peak RSS came at its end)
      s.dropPlan();
      if (sp) {
        const { kept: k, ...plan } = sp.finish((rel) =>
          post({
            t: 'warning',
            code: WarningCode.KEPT_PATH,
            path: rel,
            message: `${rel} is not a directory in the backup, but holds paths a code rollback keeps: kept as a directory`,
          }),
        );
        kept = k;
        s.result.sparse = { ...plan, keptCount: k.count };
      }
      s.result.changes = s.cmp.changes;
      if (s.write) {
        s.result.linked = [...s.cmp.linked.values()];
        s.result.linkedBytes = s.cmp.linkedBytes;
      }
    }
    s.finish();
    s.result.tarBytes = r.bytes;
    post({ t: 'progress', entries: s.result.entries, bytes: r.bytes });
    post({ t: 'done', result: s.result, ...(kept ? { kept } : {}) });
  } catch (err) {
    prefetch?.();
    stopWalk?.();
    remote?.stop();
    sink?.closeOpen();
    const e = consumerError ?? err;
    const zcode = (e as NodeJS.ErrnoException | undefined)?.code;
    if ((reader?.bytes ?? 0) > 0 && zcode === 'Z_DATA_ERROR' && /header check/.test((e as Error).message)) {
      // zlib read one gzip member fine, then something that is not gzip
      post({
        t: 'error',
        kind: 'format',
        message: 'data after a gzip member is not gzip (trailing garbage or damage)',
      });
    } else {
      post(toMessage(e));
    }
  }
}

/**
 * zlib stops at the end of the last gzip member when a zero byte follows, and ignores the rest of the file
 * (tape padding). Zeros are fine; anything else there is data another tool might read and we would not.
 */
function checkTrailingBytes(file: string, consumed: number, size: number): void {
  if (consumed >= size) return;
  const n = size - consumed;
  if (n > 8 << 20) throw new TarFormatError(`${n} bytes after the end of the gzip data`);
  const buf = Buffer.alloc(n);
  const fd = fs.openSync(file, 'r');
  try {
    let off = 0;
    while (off < n) {
      const got = fs.readSync(fd, buf, off, n - off, consumed + off);
      if (got === 0) break;
      off += got;
    }
  } finally {
    fs.closeSync(fd);
  }
  if (buf.some((b) => b !== 0)) {
    throw new TarFormatError(`${n} bytes of data after the end of the gzip data (appended or damaged)`);
  }
}

function toMessage(err: unknown): WorkerMessage {
  if (err instanceof Interrupted) return { t: 'error', kind: 'interrupted', message: 'interrupted' };
  if (err instanceof LiveChangedError)
    return { t: 'error', kind: 'live-changed', message: err.message, entry: err.rel };
  if (err instanceof LimitError)
    return { t: 'error', kind: 'limit', message: err.message, ...(err.entry ? { entry: err.entry } : {}) };
  if (err instanceof TarFormatError)
    return { t: 'error', kind: 'format', message: err.message, entry: err.entry };
  if (err instanceof UnsafeEntryError)
    return { t: 'error', kind: 'unsafe', message: err.message, entry: err.entry };
  if (err instanceof IoError) {
    return { t: 'error', kind: 'io', message: err.cause.message, entry: err.entry, code: err.cause.code };
  }
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && e.code.startsWith('Z_'))
    return { t: 'error', kind: 'gzip', message: e.message, code: e.code };
  if (typeof e?.code === 'string') return { t: 'error', kind: 'io', message: e.message, code: e.code };
  return { t: 'error', kind: 'internal', message: e?.stack ?? String(err) };
}

// Only when started by runArchiveWorker: a test's own worker thread may import this module for Sink.
const input = workerData as Partial<WorkerInput> | null;
if (parentPort && input?.abort instanceof SharedArrayBuffer && typeof input.file === 'string') {
  const port = parentPort;
  void run(input as WorkerInput, (m) => port.postMessage(m));
}
