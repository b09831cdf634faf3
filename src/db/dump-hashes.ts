/**
 * The dump's SHA-256s on one worker thread: the file's (the manifest's sum) and each table's rows (the manifest's
 * `rows`, table-hash.ts). A plain .sql's written chunks move to the worker (transferred, not copied) with the
 * places of the rows in them, are hashed there once for the file and once per table range, and come back for the
 * output to fill again. A .sql.gz's compressed output is copied to the worker; its SQL chunks move there the same
 * way once the gzip writer has compressed and written them.
 * Before: two workers (one for the file, started by run-backup, one for the rows), each byte copied to both.
 */
import type { FileSum } from '../fs/streaming-hash.js';
import { HashWorker } from '../fs/streaming-hash.js';

/** One table's rows: its stream id in the worker (ranges of the output's chunks are fed under it). */
export interface RowStream {
  readonly id: number;
  update(buf: Uint8Array): void;
  digest(): Promise<string>;
}

const FILE = 0;

export class DumpHashes {
  readonly #worker = new HashWorker();
  readonly #file: boolean;
  #fileBytes = 0;
  #next = FILE + 1;
  /** where a transferred chunk's buffer goes once hashed */
  onChunkBack: ((buf: ArrayBuffer) => void) | null = null;

  /** `file`: hash the file's bytes too (given by chunk() for a plain file, by written() for a compressed one). */
  constructor(file: boolean) {
    this.#file = file;
    this.#worker.onChunkFree = (buf) => this.onChunkBack?.(buf);
  }

  get hashesFile(): boolean {
    return this.#file;
  }

  /** A stream for one table's rows. */
  open(): RowStream {
    const id = this.#next++;
    let done: Promise<string> | null = null;
    return {
      id,
      update: (buf) => {
        if (!done && buf.byteLength > 0) this.#worker.update(id, buf);
      },
      digest: () => {
        if (done) return done;
        done = this.#worker.digest(id).then((m) => m.hex);
        done.catch(() => {}); // awaited by the caller; a rejection before that is not an unhandled one
        return done;
      },
    };
  }

  /**
   * A chunk of the plain file, just written: all of it is the file's next bytes (when the file is hashed), and
   * `parts` ([stream id, start, end, ...]) are rows of tables. `transfer`: buf's memory is its own (moved to the
   * worker and handed back to onChunkBack; it must start at offset 0); otherwise it is copied.
   */
  chunk(buf: Buffer, parts: number[], transfer: boolean): void {
    if (this.#file) {
      this.#fileBytes += buf.length;
      parts = [FILE, 0, buf.length, ...parts];
    }
    this.rows(buf, parts, transfer);
  }

  /**
   * Rows of tables in `buf` ([stream id, start, end, ...]) and nothing for the file (a compressed file's bytes
   * come by written()); `transfer` as for chunk().
   */
  rows(buf: Buffer, parts: number[], transfer: boolean): void {
    if (parts.length === 0) {
      if (transfer) this.onChunkBack?.(buf.buffer as ArrayBuffer);
      return;
    }
    if (transfer && buf.byteOffset === 0) {
      this.#worker.chunk(buf.buffer as ArrayBuffer, parts);
      return;
    }
    this.#copyParts(buf, parts);
  }

  /** Rows of tables in `buf` ([stream id, start, end, ...]), copied to the worker (`buf` may change afterwards). */
  #copyParts(buf: Buffer, parts: number[]): void {
    for (let i = 0; i + 2 < parts.length; i += 3) {
      const start = parts[i + 1]!;
      const end = parts[i + 2]!;
      if (end > start) this.#worker.update(parts[i]!, buf.subarray(start, end));
    }
  }

  /** Bytes of a compressed file, just written (copied). */
  written(buf: Buffer): void {
    this.#fileBytes += buf.length;
    this.#worker.update(FILE, buf);
  }

  /** The file's sum; call once every byte was given. */
  async fileSum(): Promise<FileSum> {
    const m = await this.#worker.digest(FILE);
    if (m.size !== this.#fileBytes) throw new Error(`hash worker saw ${m.size} bytes of ${this.#fileBytes}`);
    return { sha256: m.hex, size: m.size };
  }

  /** Bytes handed to the worker and not hashed yet. */
  get backlog(): number {
    return this.#worker.backlog;
  }
  below(bytes: number): Promise<void> {
    return this.#worker.below(bytes);
  }

  /** The worker ends once it answered the digests asked before. */
  close(): void {
    this.#worker.close();
  }
  async abandon(): Promise<void> {
    await this.#worker.terminate();
  }
}
