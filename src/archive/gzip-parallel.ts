import { write as fsWrite } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { gzip as zlibGzip, type ZlibOptions } from 'node:zlib';

export interface ParallelGzipOptions {
  /** gzip level 0-9, default 6 */
  level?: number;
  /** uncompressed bytes per gzip member, default 1 MiB */
  chunkSize?: number;
  /** members being compressed or written at once, default cores + 1 */
  concurrency?: number;
  /**
   * Store (level 0) a member whose sampled bytes look random (images, archives): spends no CPU on data that
   * would not shrink. Default false.
   */
  storeIncompressible?: boolean;
  /** called with each compressed member right after it was written, in file order (e.g. a StreamingHash) */
  onWritten?: (buf: Buffer) => void;
}

export const DEFAULT_GZIP_CHUNK = 1 << 20;

/**
 * The level magebackup compresses code archives and .sql.gz dumps with. Measured on the medium benchmark store:
 * level 5 makes output ~1 % larger than level 6 (code 83.4 vs 82.6 MB; SQL 12.7 vs 12.5 % of its size) for
 * 15-40 % less CPU (zlib: 1.5 vs 2.6 s per 128 MB of SQL), which on a 2-core machine is wall time.
 */
export const BACKUP_GZIP_LEVEL = 5;

const SAMPLE_SLICES = 8;
const SAMPLE_SLICE = 4096;
/**
 * Order-0 entropy (bits per byte) above which a sample counts as incompressible. JPEG/PNG/WebP/zip data sits at
 * 7.9-8.0; text and code at 4-6; tar headers or a few small files inside a member barely move it.
 */
const INCOMPRESSIBLE_BITS = 7.8;

/**
 * Byte-histogram entropy of a few slices: a few microseconds in JS, where a trial deflate would cost a zlib
 * stream per member on the main thread.
 */
export function looksIncompressible(chunk: Buffer): boolean {
  if (chunk.length < SAMPLE_SLICES * SAMPLE_SLICE * 2) return false;
  const counts = new Uint32Array(256);
  const step = Math.floor((chunk.length - SAMPLE_SLICE) / (SAMPLE_SLICES - 1));
  for (let s = 0; s < SAMPLE_SLICES; s++) {
    const start = s * step;
    for (let i = start; i < start + SAMPLE_SLICE; i++) {
      const v = chunk[i] as number;
      counts[v] = (counts[v] as number) + 1;
    }
  }
  const n = SAMPLE_SLICES * SAMPLE_SLICE;
  let bits = 0;
  for (let b = 0; b < 256; b++) {
    const c = counts[b] as number;
    if (c > 0) bits -= (c / n) * Math.log2(c / n);
  }
  return bits > INCOMPRESSIBLE_BITS;
}

function gzipAsync(buf: Buffer, opts: ZlibOptions): Promise<Buffer> {
  // Output in a few large pieces: the default 16 KiB pieces cost a main-thread callback and allocation each.
  const chunkSize = Math.min(256 * 1024, Math.max(16 * 1024, buf.length + 1024));
  return new Promise((resolve, reject) => {
    zlibGzip(buf, { ...opts, chunkSize }, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

function writeAll(target: number | FileHandle, buf: Buffer): Promise<void> {
  if (typeof target !== 'number') {
    return target.write(buf).then(async (r) => {
      if (r.bytesWritten < buf.length) await writeAll(target, buf.subarray(r.bytesWritten));
    });
  }
  return new Promise((resolve, reject) => {
    fsWrite(target, buf, 0, buf.length, null, (err, n) => {
      if (err) reject(err);
      else if (n < buf.length) writeAll(target, buf.subarray(n)).then(resolve, reject);
      else resolve();
    });
  });
}

/**
 * Writes a gzip stream made of independent members of `chunkSize` input bytes, compressed concurrently on the
 * libuv threadpool and written in order at the file's current position. The concatenation is a valid gzip file
 * (RFC 1952 allows several members; gzip, GNU tar and Node's gunzip read it). Memory stays bounded: write()
 * resolves only once fewer than `concurrency` members are in flight.
 * A buffer passed to write() must not be modified afterwards (as with Node streams): it may be compressed as is.
 * The file descriptor / handle is not closed.
 */
export class ParallelGzipWriter {
  readonly #target: number | FileHandle;
  readonly #level: number;
  readonly #chunkSize: number;
  readonly #concurrency: number;
  readonly #storeIncompressible: boolean;
  readonly #onWritten: ((buf: Buffer) => void) | undefined;
  #stage: Buffer | null = null;
  #stageLen = 0;
  /** compressed members in order, each resolving once it has been written */
  #inFlight: Promise<void>[] = [];
  #writeTail: Promise<void> = Promise.resolve();
  #error: unknown = undefined;
  #destroyed = false;
  #ended = false;
  #bytesIn = 0;
  #bytesOut = 0;
  /** members submitted (an empty input still needs one) */
  #members = 0;

  constructor(fd: number | FileHandle, opts: ParallelGzipOptions = {}) {
    const level = opts.level ?? 6;
    if (!Number.isInteger(level) || level < 0 || level > 9)
      throw new RangeError(`gzip level must be 0-9, got ${level}`);
    this.#target = fd;
    this.#level = level;
    this.#chunkSize = Math.max(4096, Math.floor(opts.chunkSize ?? DEFAULT_GZIP_CHUNK));
    this.#concurrency = Math.max(1, Math.floor(opts.concurrency ?? availableParallelism() + 1));
    this.#storeIncompressible = opts.storeIncompressible ?? false;
    this.#onWritten = opts.onWritten;
  }

  get bytesIn(): number {
    return this.#bytesIn;
  }
  get bytesOut(): number {
    return this.#bytesOut;
  }

  async write(buf: Buffer): Promise<void> {
    this.#check();
    if (this.#ended) throw new Error('ParallelGzipWriter: write after end');
    this.#bytesIn += buf.length;
    let off = 0;
    // Common case for callers that already batch: a whole member, no copy.
    if (this.#stageLen === 0) {
      while (buf.length - off >= this.#chunkSize) {
        await this.#submit(buf.subarray(off, off + this.#chunkSize));
        off += this.#chunkSize;
      }
    }
    while (off < buf.length) {
      if (this.#stage === null) this.#stage = Buffer.allocUnsafe(this.#chunkSize);
      const n = buf.copy(this.#stage, this.#stageLen, off);
      this.#stageLen += n;
      off += n;
      if (this.#stageLen === this.#chunkSize) await this.#flushStage();
    }
  }

  /**
   * Compresses `buf` as one member of its own, whatever its size (after whatever write() staged). Once the
   * member's compressed bytes are written (after onWritten, in file order), `afterWrite(buf)` is called: the writer
   * reads `buf` no more, so the caller may fill it again. Saves the dumper a copy of each chunk into a stage and a
   * fresh buffer per chunk (each fresh MiB is ~256 page faults here).
   */
  async writeMember(buf: Buffer, afterWrite?: (input: Buffer) => void): Promise<void> {
    this.#check();
    if (this.#ended) throw new Error('ParallelGzipWriter: write after end');
    await this.#flushStage();
    this.#bytesIn += buf.length;
    await this.#submit(buf, afterWrite);
  }

  async end(): Promise<{ bytesIn: number; bytesOut: number }> {
    this.#check();
    if (!this.#ended) {
      this.#ended = true;
      // An empty input still produces one (empty) member, so the output is a valid gzip file.
      if (this.#stageLen > 0 || this.#members === 0) await this.#flushStage(true);
    }
    await Promise.all(this.#inFlight);
    await this.#writeTail;
    this.#check();
    return { bytesIn: this.#bytesIn, bytesOut: this.#bytesOut };
  }

  /** Stop: pending members are discarded (compressions already running finish on the threadpool). */
  destroy(): void {
    this.#destroyed = true;
    this.#stage = null;
    this.#stageLen = 0;
  }

  /** Resolves once no compression or write is running (after destroy(), before closing the file). */
  async drain(): Promise<void> {
    while (this.#inFlight.length > 0) await Promise.allSettled(this.#inFlight);
  }

  #check(): void {
    if (this.#error !== undefined) {
      throw this.#error instanceof Error
        ? this.#error
        : new Error('ParallelGzipWriter failed', { cause: this.#error });
    }
    if (this.#destroyed) throw new Error('ParallelGzipWriter: destroyed');
  }

  async #flushStage(force = false): Promise<void> {
    if (this.#stageLen === 0 && !force) return;
    const chunk = (this.#stage ?? Buffer.alloc(0)).subarray(0, this.#stageLen);
    this.#stage = null;
    this.#stageLen = 0;
    await this.#submit(chunk);
  }

  async #submit(chunk: Buffer, afterWrite?: (input: Buffer) => void): Promise<void> {
    while (this.#inFlight.length >= this.#concurrency) {
      await Promise.race(this.#inFlight);
      this.#check();
    }
    this.#members++;
    const compressed = this.#compress(chunk);
    // Handled below once the previous write is done; this only keeps an early failure from counting as unhandled.
    compressed.catch(() => {});
    // Writes stay in order: each waits for its own compression and the previous write.
    const written = this.#writeTail.then(async () => {
      const out = await compressed;
      if (this.#destroyed || this.#error !== undefined) return;
      await writeAll(this.#target, out);
      this.#bytesOut += out.length;
      this.#onWritten?.(out);
      afterWrite?.(chunk);
    });
    const tracked = written.then(
      () => {
        this.#remove(tracked);
      },
      (err: unknown) => {
        if (this.#error === undefined) this.#error = err;
        this.#remove(tracked);
      },
    );
    this.#writeTail = tracked;
    this.#inFlight.push(tracked);
  }

  async #compress(chunk: Buffer): Promise<Buffer> {
    if (this.#storeIncompressible && this.#level > 0 && looksIncompressible(chunk)) {
      return gzipAsync(chunk, { level: 0 });
    }
    return gzipAsync(chunk, { level: this.#level });
  }

  #remove(p: Promise<void>): void {
    const i = this.#inFlight.indexOf(p);
    if (i !== -1) void this.#inFlight.splice(i, 1);
  }
}
