/**
 * Several loader connections working at once. The statements of one table go to one connection, in order;
 * session statements (SET ...) go to every connection at their place in the stream; anything else runs alone
 * after everything before it (a barrier). If the session runs with autocommit off (a dump may say so), a
 * connection commits when it moves to another table or runs out of work, so no other connection waits on its
 * locks. The reader waits when too many bytes are queued, so memory stays bounded.
 */
import type { Connection } from 'mysql2/promise';
import { queryRaw } from './restore-connect.js';

export interface PoolItem {
  raw: Buffer;
  line: number;
  /** the table it belongs to; undefined for session statements */
  table?: string;
  /**
   * DDL (CREATE/ALTER/DROP TABLE …): runs while no other connection runs DDL. Two connections running DDL at
   * once on tables related by foreign keys can wait on each other's metadata locks for ever.
   */
  ddl?: boolean;
  /** the statement as the dump has it, for messages (when `raw` names shadow tables) */
  shown?: Buffer;
}

export class StatementFailure extends Error {
  constructor(
    readonly item: PoolItem,
    override readonly cause: unknown,
  ) {
    super('statement failed');
  }
}

interface Worker {
  conn: Connection;
  queue: (PoolItem | undefined)[];
  head: number;
  table: string | undefined;
  txOpen: boolean;
  busy: boolean;
  wake: (() => void) | undefined;
  done: Promise<void>;
}

const IDLE_COMMIT_MS = 200;

export class LoaderPool {
  private workers: Worker[];
  private owner = new Map<string, Worker>();
  private queuedBytes = 0;
  private waiters: (() => void)[] = [];
  private closed = false;
  /** the end of the DDL statement running now (one at a time across the connections) */
  private ddlTail: Promise<void> = Promise.resolve();
  failure: StatementFailure | undefined;

  constructor(
    conns: Connection[],
    private readonly maxQueuedBytes = 32 << 20,
  ) {
    this.workers = conns.map((conn) => {
      const w: Worker = {
        conn,
        queue: [],
        head: 0,
        table: undefined,
        txOpen: false,
        busy: false,
        wake: undefined,
        done: Promise.resolve(),
      };
      w.done = this.run(w);
      return w;
    });
  }

  private notify(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const f of ws) f();
  }

  private pending(w: Worker): number {
    return w.queue.length - w.head;
  }

  private async run(w: Worker): Promise<void> {
    for (;;) {
      if (this.closed || this.failure) return;
      const item = w.queue[w.head];
      if (item === undefined) {
        w.busy = false;
        this.notify();
        const woke = await new Promise<boolean>((resolve) => {
          const t = setTimeout(() => {
            w.wake = undefined;
            resolve(false);
          }, IDLE_COMMIT_MS);
          w.wake = () => {
            clearTimeout(t);
            w.wake = undefined;
            resolve(true);
          };
        });
        if (!woke && w.txOpen && !this.closed && !this.failure && this.pending(w) === 0) {
          // nothing to do for a while: commit, so that no other connection waits on this table's locks
          w.busy = true;
          try {
            await w.conn.query('COMMIT');
            w.txOpen = false;
          } catch (err) {
            this.fail(new StatementFailure({ raw: Buffer.from('COMMIT'), line: 0 }, err));
            return;
          }
        }
        continue;
      }
      w.busy = true;
      try {
        if (item.table !== undefined && item.table !== w.table) {
          if (w.txOpen) {
            await w.conn.query('COMMIT');
            w.txOpen = false;
          }
          w.table = item.table;
        }
        if (item.ddl) {
          if (w.txOpen) {
            await w.conn.query('COMMIT');
            w.txOpen = false;
          }
          const prev = this.ddlTail;
          let release!: () => void;
          this.ddlTail = new Promise<void>((r) => (release = r));
          try {
            await prev;
            if (this.failure || this.closed) return;
            await queryRaw(w.conn, item.raw);
          } finally {
            release();
          }
        } else {
          await queryRaw(w.conn, item.raw);
        }
        if (item.table !== undefined) w.txOpen = true;
      } catch (err) {
        this.fail(new StatementFailure(item, err));
        return;
      }
      w.queue[w.head++] = undefined;
      if (w.head > 1024 && w.head * 2 > w.queue.length) {
        w.queue = w.queue.slice(w.head);
        w.head = 0;
      }
      this.queuedBytes -= item.raw.length;
      if (this.queuedBytes <= this.maxQueuedBytes) this.notify();
    }
  }

  private fail(f: StatementFailure): void {
    if (!this.failure) this.failure = f;
    this.notify();
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  private push(w: Worker, item: PoolItem): void {
    w.queue.push(item);
    this.queuedBytes += item.raw.length;
    w.wake?.();
  }

  /** Queue a statement of `item.table` on the connection that owns the table. */
  dispatchTable(item: PoolItem & { table: string }): void {
    this.check();
    let w = this.owner.get(item.table);
    if (!w) {
      w = this.workers[0]!;
      let best = Infinity;
      for (const c of this.workers) {
        const load = this.pending(c) + (c.busy ? 1 : 0);
        if (load < best) {
          best = load;
          w = c;
        }
      }
      this.owner.set(item.table, w);
    }
    this.push(w, item);
  }

  /** Queue a session statement on every connection. */
  broadcast(raw: Buffer, line: number): void {
    this.check();
    for (const w of this.workers) this.push(w, { raw, line });
  }

  /** Resolves when the queued bytes are under the limit (backpressure for the reader). */
  async room(): Promise<void> {
    while (this.queuedBytes > this.maxQueuedBytes && !this.failure) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
    this.check();
  }

  /** Waits until every queued statement ran, then commits every connection. */
  async drain(): Promise<void> {
    for (;;) {
      this.check();
      if (this.workers.every((w) => this.pending(w) === 0 && !w.busy)) break;
      await new Promise<void>((r) => this.waiters.push(r));
    }
    for (const w of this.workers) {
      if (w.txOpen) {
        try {
          await w.conn.query('COMMIT');
        } catch (err) {
          this.fail(new StatementFailure({ raw: Buffer.from('COMMIT'), line: 0 }, err));
          this.check();
        }
        w.txOpen = false;
      }
      w.table = undefined;
    }
  }

  /** Runs one statement alone: after everything queued before it, before anything queued after. */
  async barrier(item: PoolItem): Promise<void> {
    await this.drain();
    const w = this.workers[0]!;
    w.busy = true;
    try {
      await queryRaw(w.conn, item.raw);
      await w.conn.query('COMMIT');
    } catch (err) {
      this.fail(new StatementFailure(item, err));
    } finally {
      w.busy = false;
    }
    this.check();
  }

  /** Stops the workers (after drain() for a clean end, or at once on failure/abort). */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.workers) w.wake?.();
    this.notify();
    await Promise.all(this.workers.map((w) => w.done));
  }
}
