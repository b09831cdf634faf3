/**
 * SHA-256 computed while bytes are written, on a worker thread.
 *
 * StreamingHash: a file's sum. The writer calls `update()` with each buffer right after it reached the file (in
 * file order), and `digest()` at the end. This replaces a second read of a finished backup (a 600 MB dump: ~1 s
 * of main-thread hashing after the last byte).
 * HashStreams: several sums on one worker (the dump's per-table row hashes, ~0.5 s of SHA-256 on a 600 MB dump
 * that the row writer's thread no longer spends).
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
const POOL_MAX = 16;

type Digest = { hex: string; size: number };

/** The worker, its buffers, and the digests awaited from it. */
export class HashWorker {
  readonly #worker: Worker;
  readonly #pool: ArrayBuffer[] = [];
  readonly #waiting = new Map<number, { resolve: (d: Digest) => void; reject: (err: Error) => void }>();
  #failed: Error | null = null;
  /** answers awaited (digests, a catch-up): while any is, the worker keeps the process alive */
  #awaited = 0;
  /** bytes posted and not yet handed back */
  backlog = 0;
  #onFree: (() => void)[] = [];
  /** where the buffers of chunk() come back, once hashed */
  onChunkFree: ((buf: ArrayBuffer) => void) | null = null;

  constructor() {
    this.#worker = new Worker(new URL('./hash-worker.js', import.meta.url), {
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    const failAll = (err: Error): void => {
      this.#failed ??= err;
      this.backlog = 0;
      const f = this.#onFree;
      this.#onFree = [];
      for (const x of f) x();
      const w = [...this.#waiting.values()];
      this.#waiting.clear();
      for (const x of w) x.reject(err);
    };
    this.#worker.on('error', failAll);
    this.#worker.on('exit', (code) => failAll(new Error(`hash worker exited (code ${code})`)));
    this.#worker.on('message', (m: HashReply) => {
      if (m.t === 'free' || m.t === 'chunk-free') {
        this.backlog -= m.buf.byteLength;
        if (m.t === 'chunk-free') this.onChunkFree?.(m.buf);
        else if (this.#pool.length < POOL_MAX) this.#pool.push(m.buf);
        const w = this.#onFree;
        this.#onFree = [];
        for (const f of w) f();
        return;
      }
      const w = this.#waiting.get(m.id);
      this.#waiting.delete(m.id);
      if (w) this.#release();
      w?.resolve(m);
    });
    // the worker must never keep the process alive (an abandoned hash is just dropped)
    this.#worker.unref();
  }

  /** Copies `buf` into the worker's buffers for stream `id`; `buf` may be reused at once. */
  update(id: number, buf: Uint8Array): void {
    for (let off = 0; off < buf.byteLength; off += SLOT) {
      const len = Math.min(SLOT, buf.byteLength - off);
      const ab = this.#pool.pop() ?? new ArrayBuffer(SLOT);
      new Uint8Array(ab, 0, len).set(buf.subarray(off, off + len));
      this.backlog += SLOT;
      this.#worker.postMessage({ t: 'data', id, buf: ab, len } satisfies HashRequest, [ab]);
    }
  }

  /**
   * Hashes parts of `buf` ([stream id, start, end, ...], in order) without a copy: `buf` moves to the worker (it
   * is detached here) and comes back through onChunkFree once hashed.
   */
  chunk(buf: ArrayBuffer, parts: number[]): void {
    this.backlog += buf.byteLength;
    this.#worker.postMessage({ t: 'chunk', buf, parts } satisfies HashRequest, [buf]);
  }

  /** Resolves once the backlog is at most `bytes` (or the worker failed: the digest says so). */
  async below(bytes: number): Promise<void> {
    if (this.backlog <= bytes || this.#failed !== null) return;
    this.#hold();
    try {
      while (this.backlog > bytes && this.#failed === null) {
        await new Promise<void>((resolve) => this.#onFree.push(resolve));
      }
    } finally {
      this.#release();
    }
  }

  #hold(): void {
    if (this.#awaited++ === 0) this.#worker.ref();
  }
  #release(): void {
    if (--this.#awaited === 0) this.#worker.unref();
  }

  /** Stream `id`'s SHA-256 and size. */
  digest(id: number): Promise<Digest> {
    return new Promise<Digest>((resolve, reject) => {
      if (this.#failed) {
        reject(this.#failed);
        return;
      }
      this.#waiting.set(id, { resolve, reject });
      // awaited: now the worker must keep the process alive until it answers
      this.#hold();
      this.#worker.postMessage({ t: 'end', id } satisfies HashRequest);
    });
  }

  /** The worker ends once it has answered what was asked before. */
  close(): void {
    this.#worker.postMessage({ t: 'close' } satisfies HashRequest);
  }

  async terminate(): Promise<void> {
    await this.#worker.terminate();
  }
}

export class StreamingHash {
  readonly #worker = new HashWorker();
  #size = 0;
  #result: Promise<FileSum> | null = null;

  /** The bytes that were just written. Copied into the worker's buffers; `buf` may be reused at once. */
  update(buf: Uint8Array): void {
    if (this.#result) return;
    this.#size += buf.byteLength;
    this.#worker.update(0, buf);
  }

  /** The SHA-256 of everything passed to update(); the worker ends. */
  digest(): Promise<FileSum> {
    if (this.#result) return this.#result;
    const sum = this.#worker.digest(0);
    this.#worker.close();
    this.#result = sum.then((m) => {
      if (m.size !== this.#size) throw new Error(`hash worker saw ${m.size} bytes of ${this.#size}`);
      return { sha256: m.hex, size: m.size };
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

/** One of HashStreams' sums. */
export interface HashStream {
  update(buf: Uint8Array): void;
  /** the hex SHA-256 of what update() was given; no update() after it */
  digest(): Promise<string>;
}

/** Any number of SHA-256 sums on one worker thread, each fed and finished on its own. */
export class HashStreams {
  readonly #worker = new HashWorker();
  #next = 0;
  #open = new Set<number>();
  #closed = false;

  open(): HashStream {
    if (this.#closed) throw new Error('HashStreams closed');
    const id = this.#next++;
    this.#open.add(id);
    let done: Promise<string> | null = null;
    return {
      update: (buf) => {
        if (!done && buf.byteLength > 0) this.#worker.update(id, buf);
      },
      digest: () => {
        if (done) return done;
        this.#open.delete(id);
        done = this.#worker.digest(id).then((m) => m.hex);
        if (this.#closed && this.#open.size === 0) this.#worker.close();
        done.catch(() => {}); // the caller awaits it; a rejection before that is not an unhandled one
        return done;
      },
    };
  }

  /** Bytes given to update() that the worker has not hashed yet (a writer holds back while it is large). */
  get backlog(): number {
    return this.#worker.backlog;
  }

  /** Resolves once the backlog is at most `bytes`. */
  below(bytes: number): Promise<void> {
    return this.#worker.below(bytes);
  }

  /** No more streams: the worker ends once every open one was digested. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#open.size === 0) this.#worker.close();
  }

  /** Stops the worker; digests not yet answered fail. */
  async abandon(): Promise<void> {
    this.#closed = true;
    await this.#worker.terminate();
  }
}
