/**
 * `backups:diff`: the comparison with the live tree on a thread of its own. The extraction thread
 * (extract-worker.ts) inflates and parses the archive; what the comparison needs of each entry (its path, type,
 * owner, mode, mtime, size and, for a file, the bytes of its body as they were decompressed) it writes into
 * batches that move to this thread, which compares them with the live tree exactly as the extraction thread did
 * (LiveComparer in 'diff' mode, extract-compare.ts: open O_NOFOLLOW, fstat, read, compare the bytes; never size
 * and mtime alone). The ~97k opens, reads and closes of the bench store (~1.6 s warm, far more from the disk)
 * then run beside the inflate and the tar parsing, on the other core. Only the read-only diff: a rollback must
 * know whether a file differs before its body streams past (it writes the body then).
 *
 * Batches are ArrayBuffers moved (not copied) to this thread and back: POOL of them circulate, so at most about
 * POOL x BATCH bytes wait here; when none is free the extraction thread awaits one between two chunks of the
 * stream. What this thread found (modified, removed) comes back once, at the end.
 */
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { LiveComparer, type EntryComparer, type TreeChanges } from './extract-compare.js';
import { IoError } from './extract-limits.js';
import { startPrefetch } from './prefetch-worker.js';

const BATCH = 512 * 1024;
const POOL = 8;

/** record types (a byte each, then the fields) */
const FILE = 1;
const DATA = 2;
const END = 3;
const DIR = 4;
const SYMLINK = 5;
const HARDLINK = 6;

type Filter = 'none' | 'code' | 'media';

interface CompareThreadInput {
  compareThread: true;
  liveDir: string;
  filter: Filter;
}

type ToThread = { t: 'batch'; buf: ArrayBuffer; len: number } | { t: 'end' };
type FromThread =
  | { t: 'batch'; buf: ArrayBuffer }
  | { t: 'done'; modified: string[]; removed: string[] }
  | { t: 'error'; message: string; code?: string; entry: string };

/**
 * The extraction thread's side: an EntryComparer whose calls become records. Returns undefined when the thread
 * cannot be started (the extraction thread then compares itself).
 */
export function startRemoteCompare(liveDir: string, filter: Filter): RemoteComparer | undefined {
  try {
    return new RemoteComparer(liveDir, filter);
  } catch {
    return undefined;
  }
}

export class RemoteComparer implements EntryComparer {
  private readonly w: Worker;
  private readonly free: ArrayBuffer[] = [];
  private buf = Buffer.alloc(0);
  private view = new DataView(new ArrayBuffer(0));
  private at = 0;
  /** batches sent and not yet back */
  private out = 0;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private result: { modified: string[]; removed: string[] } | undefined;
  private ended = false;

  constructor(liveDir: string, filter: Filter) {
    const input: CompareThreadInput = { compareThread: true, liveDir, filter };
    this.w = new Worker(new URL('./compare-thread.js', import.meta.url), {
      workerData: input,
      resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 64 },
    });
    this.w.on('message', (m: FromThread) => {
      if (m.t === 'batch') {
        this.out--;
        if (m.buf.byteLength === BATCH) this.free.push(m.buf);
      } else if (m.t === 'done') {
        this.result = { modified: m.modified, removed: m.removed };
      } else {
        const cause = Object.assign(new Error(m.message), m.code ? { code: m.code } : {});
        this.failure ??= new IoError(cause, m.entry);
      }
      this.wakeUp();
    });
    this.w.on('error', (err) => {
      this.failure ??= err;
      this.wakeUp();
    });
    this.w.on('exit', () => {
      if (!this.result) this.failure ??= new Error('the comparison thread ended before the comparison');
      this.wakeUp();
    });
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async waitFor(ok: () => boolean): Promise<void> {
    while (!ok()) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    if (this.failure) throw this.failure;
  }

  /** Between two chunks of the stream: returns once a batch is free (the thread has caught up enough). */
  async ready(): Promise<void> {
    if (this.out < POOL && !this.failure) return;
    await this.waitFor(() => this.out < POOL);
  }

  /** The archive is read: the thread's findings, added to `changes`. */
  async finish(changes: TreeChanges): Promise<void> {
    this.flush();
    this.ended = true;
    this.post({ t: 'end' });
    await this.waitFor(() => this.result !== undefined);
    const r = this.result!;
    for (const p of r.modified) changes.modified.push(p);
    for (const p of r.removed) changes.removed.push(p);
    void this.w.terminate();
  }

  stop(): void {
    void this.w.terminate().catch(() => {});
  }

  private post(m: ToThread, transfer?: ArrayBuffer[]): void {
    this.w.postMessage(m, transfer);
  }

  private flush(): void {
    if (this.at === 0) return;
    const buf = this.buf.buffer;
    this.post({ t: 'batch', buf, len: this.at }, [buf]);
    this.out++;
    this.buf = Buffer.alloc(0);
    this.at = 0;
  }

  /** Room for `n` more bytes in the current batch. */
  private room(n: number): void {
    if (this.failure) throw this.failure;
    if (this.ended) throw new Error('the comparison thread was already told the end');
    if (this.at + n <= this.buf.length) return;
    this.flush();
    const ab = n <= BATCH ? (this.free.pop() ?? new ArrayBuffer(BATCH)) : new ArrayBuffer(n);
    this.buf = Buffer.from(ab);
    this.view = new DataView(ab);
  }

  private str(s: string): void {
    const n = this.buf.write(s, this.at + 4, 'utf8');
    this.view.setUint32(this.at, n);
    this.at += 4 + n;
  }

  private u32(v: number): void {
    this.view.setUint32(this.at, v);
    this.at += 4;
  }

  private f64(v: number): void {
    this.view.setFloat64(this.at, v);
    this.at += 8;
  }

  startFile(
    rel: string,
    e: { size: number; mtime: number },
    want: { mode: number; uid: number; gid: number },
  ): boolean {
    this.room(1 + 4 + rel.length * 3 + 28);
    this.buf[this.at++] = FILE;
    this.str(rel);
    this.f64(e.size);
    this.f64(e.mtime);
    this.u32(want.mode);
    this.u32(want.uid);
    this.u32(want.gid);
    return true;
  }

  data(chunk: Buffer): undefined {
    let off = 0;
    while (off < chunk.length) {
      this.room(6);
      const n = Math.min(this.buf.length - this.at - 5, chunk.length - off);
      this.buf[this.at++] = DATA;
      this.u32(n);
      chunk.copy(this.buf, this.at, off, off + n);
      this.at += n;
      off += n;
    }
    return undefined;
  }

  end(): undefined {
    this.room(1);
    this.buf[this.at++] = END;
    return undefined;
  }

  dir(rel: string): void {
    this.room(1 + 4 + rel.length * 3);
    this.buf[this.at++] = DIR;
    this.str(rel);
  }

  symlink(rel: string, target: string, uid: number, gid: number): boolean {
    this.room(1 + 8 + (rel.length + target.length) * 3 + 8);
    this.buf[this.at++] = SYMLINK;
    this.str(rel);
    this.str(target);
    this.u32(uid);
    this.u32(gid);
    return false;
  }

  hardlink(rel: string, target: string): boolean {
    this.room(1 + 8 + (rel.length + target.length) * 3);
    this.buf[this.at++] = HARDLINK;
    this.str(rel);
    this.str(target);
    return false;
  }
}

/** The thread's side: replays the records into a LiveComparer ('diff'). */
function serve(input: CompareThreadInput, port: NonNullable<typeof parentPort>): void {
  const cmp = new LiveComparer({ liveDir: input.liveDir, link: false, filter: input.filter });
  const stopWarmer = input.filter === 'code' ? startPrefetch(input.liveDir, cmp) : undefined;
  const noCreate = (): number => -1;
  let comparing = false;
  let cur = '';
  let failed = false;
  const apply = (ab: ArrayBuffer, len: number): void => {
    const b = Buffer.from(ab, 0, len);
    const v = new DataView(ab, 0, len);
    let at = 0;
    const str = (): string => {
      const n = v.getUint32(at);
      const s = b.toString('utf8', at + 4, at + 4 + n);
      at += 4 + n;
      return s;
    };
    while (at < len) {
      const t = b[at++];
      switch (t) {
        case FILE: {
          cur = str();
          const size = v.getFloat64(at);
          const mtime = v.getFloat64(at + 8);
          const want = { mode: v.getUint32(at + 16), uid: v.getUint32(at + 20), gid: v.getUint32(at + 24) };
          at += 28;
          comparing = cmp.startFile(cur, { size, mtime }, want, '', noCreate, 'diff');
          break;
        }
        case DATA: {
          const n = v.getUint32(at);
          at += 4;
          if (comparing && cmp.data(b.subarray(at, at + n)) !== undefined) comparing = false;
          at += n;
          break;
        }
        case END:
          if (comparing) cmp.end();
          comparing = false;
          break;
        case DIR:
          cur = str();
          cmp.dir(cur);
          break;
        case SYMLINK: {
          cur = str();
          const target = str();
          cmp.symlink(cur, target, v.getUint32(at), v.getUint32(at + 4));
          at += 8;
          break;
        }
        case HARDLINK: {
          cur = str();
          cmp.hardlink(cur, str());
          break;
        }
        default:
          throw new Error(`bad record type ${t} in a comparison batch`);
      }
    }
  };
  port.on('message', (m: ToThread) => {
    if (m.t === 'end') {
      stopWarmer?.();
      if (!failed) {
        const reply: FromThread = { t: 'done', modified: cmp.changes.modified, removed: cmp.changes.removed };
        port.postMessage(reply);
      }
      port.close();
      return;
    }
    if (!failed) {
      try {
        apply(m.buf, m.len);
      } catch (err) {
        failed = true;
        stopWarmer?.();
        cmp.abort();
        const e = err as NodeJS.ErrnoException;
        const reply: FromThread = {
          t: 'error',
          message: e?.message ?? String(err),
          ...(typeof e?.code === 'string' ? { code: e.code } : {}),
          entry: cur,
        };
        port.postMessage(reply);
      }
    }
    const back: FromThread = { t: 'batch', buf: m.buf };
    port.postMessage(back, [m.buf]);
  });
}

const input = workerData as Partial<CompareThreadInput> | null;
if (parentPort && input?.compareThread === true && typeof input.liveDir === 'string') {
  serve(input as CompareThreadInput, parentPort);
}
