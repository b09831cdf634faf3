/**
 * SHA-256 of a file computed while it is written, on a worker thread: the writer calls `update()` with each
 * buffer right after it reached the file (in file order), and `digest()` at the end. This replaces a second read
 * of a finished backup (a 600 MB dump: ~1 s of main-thread hashing after the last byte).
 * Memory: data travels in 1 MiB buffers that the worker hands back; a few are in use at a time.
 */
import { Worker } from 'node:worker_threads';
import type { HashReply, HashRequest } from './hash-worker.js';

export interface FileSum {
  sha256: string;
  size: number;
}

const SLOT = 1 << 20;
/** buffers kept for reuse; more are allocated only while the worker lags behind */
const POOL_MAX = 8;

export class StreamingHash {
  readonly #worker: Worker;
  readonly #pool: ArrayBuffer[] = [];
  #size = 0;
  #result: Promise<FileSum> | null = null;
  #failed: Error | null = null;
  #onDigest: ((m: { hex: string; size: number }) => void) | null = null;

  constructor() {
    this.#worker = new Worker(new URL('./hash-worker.js', import.meta.url), {
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    this.#worker.on('error', (err) => {
      this.#failed = err;
    });
    this.#worker.on('message', (m: HashReply) => {
      if (m.t === 'free') {
        if (this.#pool.length < POOL_MAX) this.#pool.push(m.buf);
      } else this.#onDigest?.(m);
    });
    // the worker must never keep the process alive (an abandoned hash is just dropped)
    this.#worker.unref();
  }

  /** The bytes that were just written. Copied into the worker's buffers; `buf` may be reused at once. */
  update(buf: Uint8Array): void {
    if (this.#result) return;
    for (let off = 0; off < buf.byteLength; off += SLOT) {
      const len = Math.min(SLOT, buf.byteLength - off);
      const ab = this.#pool.pop() ?? new ArrayBuffer(SLOT);
      new Uint8Array(ab, 0, len).set(buf.subarray(off, off + len));
      this.#size += len;
      this.#worker.postMessage({ t: 'data', buf: ab, len } satisfies HashRequest, [ab]);
    }
  }

  /** The SHA-256 of everything passed to update(); the worker ends. */
  digest(): Promise<FileSum> {
    if (this.#result) return this.#result;
    this.#result = new Promise<FileSum>((resolve, reject) => {
      if (this.#failed) {
        reject(this.#failed);
        return;
      }
      this.#onDigest = (m) => {
        if (m.size !== this.#size) reject(new Error(`hash worker saw ${m.size} bytes of ${this.#size}`));
        else resolve({ sha256: m.hex, size: m.size });
      };
      // awaited: now the worker must keep the process alive until it answers
      this.#worker.ref();
      this.#worker.once('error', reject);
      this.#worker.once('exit', (code) => reject(new Error(`hash worker exited (code ${code})`)));
      this.#worker.postMessage({ t: 'end' } satisfies HashRequest);
    });
    return this.#result;
  }

  /** Stops the worker without a result (a failed or interrupted write). */
  async abandon(): Promise<void> {
    if (!this.#result) this.#result = Promise.reject(new Error('hash abandoned'));
    this.#result.catch(() => {});
    await this.#worker.terminate();
  }
}
