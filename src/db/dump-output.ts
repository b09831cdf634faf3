/**
 * Where the dump's SQL goes: a byte sink filled synchronously by the row writer, handed over in 1 MiB chunks to the
 * plain file or the parallel gzip writer. Writes are serialised; the producer is held back (by promise, or by
 * pausing the connection) while more than HIGH_WATER bytes wait for the disk.
 */
import type { FileHandle } from 'node:fs/promises';
import type { ParallelGzipWriter } from '../archive/gzip-parallel.js';
import type { DumpHashes } from './dump-hashes.js';
import { ByteSink } from './sql-values.js';

/** bytes handed to the writer at a time */
export const CHUNK = 1 << 20;
/**
 * the sink's buffer: a chunk and room for what crosses its end. The row writer hands the sink over only between
 * socket reads (≤ 64 KiB each, up to ~2x that as SQL): with less room the sink grew (a fresh 2 MiB buffer, a copy,
 * and a buffer that could not be reused) every few chunks.
 */
const SINK_BYTES = CHUNK + 256 * 1024;
/** pause reading rows while this many bytes wait to be written */
const HIGH_WATER = 8 * CHUNK;
/** written chunk buffers kept for the sink (as many as can wait for the disk: each is reused, never faulted in again) */
const FREE_MAX = HIGH_WATER / CHUNK + 2;

/**
 * What dumpRows writes one table's rows to: the dump's Output, or a table hasher (table-hash.ts) that encodes a
 * live table's rows exactly as the dump does. The seam between the dumper and the selective rollback: keep it.
 */
export interface RowOutput {
  readonly sink: ByteSink;
  readonly error: Error | undefined;
  readonly congested: boolean;
  /** hand the sink's bytes on if a chunk is full (or `force`); synchronous, called between rows only */
  flush(force?: boolean): void;
  drained(): Promise<void>;
  text(s: string): Promise<void>;
}

/** Where the SQL goes: the plain file, or the parallel gzip writer. Writes are serialised; backpressure by promise. */
export class Output implements RowOutput {
  readonly sink = new ByteSink(SINK_BYTES);
  bytes = 0;
  /** line breaks in the bytes handed to the writer (for position()) */
  #lines = 0;
  #pending = 0;
  #tail: Promise<void> = Promise.resolve();
  #error: Error | undefined = undefined;
  #waiters: (() => void)[] = [];
  /**
   * Written chunks' buffers, for the sink to fill again (compressed ones once the gzip writer has written their
   * member). A fresh 1 MiB buffer is fresh memory for the kernel to map page by page: ~270 page faults per MiB of
   * SQL, a third of the dump's system time.
   */
  #free: Buffer[] = [];
  /** the row stream the bytes written now belong to (tap), and where in the sink they started */
  #tap: number | null = null;
  #tapFrom = 0;
  /** the sink's row ranges so far: [stream id, start, end, ...] */
  #parts: number[] = [];
  constructor(
    private readonly fh: FileHandle,
    private readonly gz: ParallelGzipWriter | null,
    private readonly onWritten: ((buf: Buffer) => void) | undefined,
    /**
     * The hash worker (the rows' hashes, and the file's when it hashesFile): its backlog is held to the same
     * bound as the writes. A plain file's written chunks move to it and come back for the sink.
     */
    private readonly hashes?: DumpHashes,
  ) {
    if (hashes) {
      hashes.onChunkBack = (ab) => {
        if (ab.byteLength === SINK_BYTES && this.#free.length < FREE_MAX) this.#free.push(Buffer.from(ab));
      };
    }
  }

  get error(): Error | undefined {
    return this.#error;
  }
  get congested(): boolean {
    return this.#pending >= HIGH_WATER || (this.hashes !== undefined && this.hashes.backlog >= HIGH_WATER);
  }

  /**
   * Every byte written from now until the next tap() is also hashed into row stream `id` of the hash worker, in
   * order (the per-table row hash of the manifest, table-hash.ts); null stops it.
   */
  tap(id: number | null): void {
    this.#markTap();
    this.#tap = id;
  }
  #markTap(): void {
    if (this.#tap !== null && this.sink.len > this.#tapFrom)
      this.#parts.push(this.#tap, this.#tapFrom, this.sink.len);
    this.#tapFrom = this.sink.len;
  }

  /** Hand the sink's bytes to the writer if a chunk is full (or `force`). Synchronous: safe in row callbacks. */
  flush(force = false): void {
    if (this.sink.len === 0 || (!force && this.sink.len < CHUNK)) return;
    this.#markTap();
    this.#tapFrom = 0;
    const parts = this.#parts;
    this.#parts = [];
    const buf = this.sink.take(SINK_BYTES, this.#free.pop());
    const size = buf.length; // buf moves to the hash worker once written (detached: length 0)
    this.bytes += size;
    this.#lines += countLines(buf, size);
    this.#pending += size;
    const hashes = this.hashes;
    const own = buf.byteOffset === 0 && buf.buffer.byteLength === SINK_BYTES;
    this.#tail = this.#tail.then(async () => {
      if (this.#error !== undefined) return;
      try {
        if (this.gz) {
          // one member per chunk; once it is compressed and written the chunk goes on as a plain file's does
          await this.gz.writeMember(buf, () => {
            if (hashes) hashes.rows(buf, parts, own);
            else if (own) this.#reuse(buf);
          });
        } else {
          await writeFully(this.fh, buf);
          this.onWritten?.(buf);
          // written (onWritten copies what it keeps): the sink may fill this buffer again, once hashed
          if (hashes) hashes.chunk(buf, parts, own);
          else if (own) this.#reuse(buf);
        }
      } catch (err) {
        this.#error = err instanceof Error ? err : new Error(`write failed: ${JSON.stringify(err)}`);
      } finally {
        this.#pending -= size;
        if (this.#pending < HIGH_WATER / 2 || this.#error !== undefined) {
          const w = this.#waiters;
          this.#waiters = [];
          for (const f of w) f();
        }
      }
    });
  }

  #reuse(buf: Buffer): void {
    if (this.#free.length < FREE_MAX) this.#free.push(Buffer.from(buf.buffer, 0, SINK_BYTES));
  }

  /** Where the next byte goes in the uncompressed dump: offset and 1-based line (the manifest's table sections). */
  position(): { offset: number; line: number } {
    return {
      offset: this.bytes + this.sink.len,
      line: this.#lines + countLines(this.sink.buf, this.sink.len) + 1,
    };
  }

  /** Resolves once the backlog (writes, and hashes when given) is below half the high-water mark. */
  drained(): Promise<void> {
    const written =
      this.#pending < HIGH_WATER / 2 || this.#error !== undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => this.#waiters.push(resolve));
    if (this.hashes === undefined || this.hashes.backlog <= HIGH_WATER / 2) return written;
    return Promise.all([written, this.hashes.below(HIGH_WATER / 2)]).then(() => {});
  }

  async text(s: string): Promise<void> {
    this.sink.utf8(s);
    this.flush();
    if (this.congested) await this.drained();
    this.check();
  }
  /** a byte string (one char per byte) */
  async bin(s: string): Promise<void> {
    const n = s.length;
    this.sink.ensure(n);
    this.sink.len += this.sink.buf.write(s, this.sink.len, 'latin1');
    this.flush();
    if (this.congested) await this.drained();
    this.check();
  }
  async raw(b: Buffer): Promise<void> {
    this.sink.bytes(b);
    this.flush();
    if (this.congested) await this.drained();
    this.check();
  }
  check(): void {
    if (this.#error !== undefined) throw this.#error;
  }
  async finish(): Promise<void> {
    this.flush(true);
    await this.#tail;
    this.check();
    if (this.gz) await this.gz.end();
  }
  async abandon(): Promise<void> {
    await this.#tail.catch(() => {});
    if (this.gz) {
      this.gz.destroy();
      await this.gz.drain();
    }
  }
}

function countLines(buf: Buffer, end: number): number {
  const b = buf.subarray(0, end);
  let n = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
}

async function writeFully(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}
