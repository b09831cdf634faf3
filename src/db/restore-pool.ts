/**
 * Several loader connections working at once. The statements of one table go to one connection (its owner), in
 * order; a table's reorderable INSERTs (plain whole-row INSERTs: any order gives the same rows) may also go to a
 * second connection (one that had less queued than the first when one of them came), after the table's statements
 * before them (its DDL), and the table's next other statement waits for them. Session statements (SET ...) go to every
 * connection at their place in the stream; anything else runs alone after everything before it (a barrier). If
 * the session runs with autocommit off (a dump may say so), a connection commits when it moves to another table,
 * before it waits for another connection, or when it runs out of work, so no other connection waits on its locks.
 * The reader waits when too many bytes are queued, so memory stays bounded.
 */
import type { Connection } from 'mysql2/promise';
import { queryRaw } from './restore-connect.js';

export interface PoolItem {
  /** the statement's bytes, or its parts in order */
  raw: Buffer | readonly Buffer[];
  line: number;
  /** the table it belongs to; undefined for session statements */
  table?: string;
  /**
   * DDL (CREATE/ALTER/DROP TABLE …): runs while no other connection runs DDL. Two connections running DDL at
   * once on tables related by foreign keys can wait on each other's metadata locks for ever.
   * 'build': a shadow table's keys built after its rows (restore-indexes.ts), seconds to minutes on a big table:
   * it starts after the DDL before it, and only DDL that may reach other tables (`true`) waits for it to end;
   * 'own': DDL that acts on its own table's definition only (DROP TABLE, CREATE TABLE without LIKE or SELECT,
   * DISABLE/ENABLE KEYS, dropping keys): serialized with the other DDL, but runs while keys are built (a CREATE
   * TABLE whose foreign key references the table being built does not wait for it: measured on 10.11).
   */
  ddl?: boolean | 'build' | 'own';
  /** the statement as the dump has it, for messages (when `raw` names shadow tables) */
  shown?: Buffer;
  /** a plain whole-row INSERT: may run on the table's second connection, in any order with the table's others */
  reorderable?: boolean;
  /** runs only once this has happened (another connection ran the statements of its table it must follow) */
  after?: Gate;
  /** opened when the statement ran */
  opens?: Gate;
  /** called once the statement ran (its bytes are no longer needed: restore-load.ts reuses their memory) */
  done?: () => void;
  /** runs this on the connection instead of sending `raw` (which then only names it in messages) */
  run?: (conn: Connection) => Promise<unknown>;
}

/** A point in another connection's queue: open once the statement before it ran. */
interface Gate {
  open: boolean;
  opened: Promise<void>;
  release: () => void;
}

function gate(): Gate {
  let release!: () => void;
  const g: Gate = { open: false, opened: new Promise<void>((r) => (release = r)), release: () => {} };
  g.release = () => {
    g.open = true;
    release();
  };
  return g;
}

const OPEN: Gate = (() => {
  const g = gate();
  g.release();
  return g;
})();

/** Where a table's statements go. */
interface TableRoute {
  /** the connection that runs its statements in order; then, once taken, the one that shares its INSERTs */
  owners: Worker[];
  /** opens when the last statement queued on the first owner that is not a reorderable INSERT ran */
  ordered: Gate;
  /** opens when the last statement queued on the second owner ran */
  shared: Gate;
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

export function byteLength(raw: Buffer | readonly Buffer[]): number {
  if (Buffer.isBuffer(raw)) return raw.length;
  let n = 0;
  for (const b of raw) n += b.length;
  return n;
}

export class LoaderPool {
  private workers: Worker[];
  private routes = new Map<string, TableRoute>();
  /** a failure or close() happened: gates are no longer waited for */
  private stopped: Promise<void>;
  private stop!: () => void;
  /** statements in flight are no longer waited for (their connections are destroyed) */
  private abandoned: Promise<void>;
  private abandon!: () => void;
  /** reorderable INSERTs may go to a second connection (off once the dump touches autocommit) */
  spread = true;
  private queuedBytes = 0;
  private waiters: (() => void)[] = [];
  private closed = false;
  /** the end of the DDL statement running now (one at a time across the connections) */
  private ddlTail: Promise<void> = Promise.resolve();
  /** the key builds running now (settled, never rejected) */
  private builds = new Set<Promise<void>>();
  failure: StatementFailure | undefined;

  constructor(
    conns: Connection[],
    private readonly maxQueuedBytes = 32 << 20,
  ) {
    this.stopped = new Promise<void>((r) => (this.stop = r));
    this.abandoned = new Promise<void>((r) => (this.abandon = r));
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
            if (!(await this.settle(w.conn.query('COMMIT')))) return;
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
        if (item.after && !item.after.open) {
          // another connection runs what this statement must follow: never wait while holding a transaction
          if (w.txOpen) {
            if (!(await this.settle(w.conn.query('COMMIT')))) return;
            w.txOpen = false;
          }
          await Promise.race([item.after.opened, this.stopped]);
          if (this.failure || this.closed) return;
        }
        if (item.table !== undefined && item.table !== w.table) {
          if (w.txOpen) {
            if (!(await this.settle(w.conn.query('COMMIT')))) return;
            w.txOpen = false;
          }
          w.table = item.table;
        }
        if (item.ddl) {
          if (w.txOpen) {
            if (!(await this.settle(w.conn.query('COMMIT')))) return;
            w.txOpen = false;
          }
          const prev = this.ddlTail;
          if (item.ddl === 'build') {
            await prev;
            if (this.failure || this.closed) return;
            const sent = this.send(w.conn, item);
            const done = sent.then(
              () => {},
              () => {},
            );
            this.builds.add(done);
            try {
              if (!(await this.settle(sent))) return;
            } finally {
              this.builds.delete(done);
            }
          } else {
            const builds = item.ddl === true ? [...this.builds] : [];
            let release!: () => void;
            this.ddlTail = new Promise<void>((r) => (release = r));
            try {
              await prev;
              await Promise.all(builds);
              if (this.failure || this.closed) return;
              if (!(await this.settle(this.send(w.conn, item)))) return;
            } finally {
              release();
            }
          }
        } else {
          if (!(await this.settle(this.send(w.conn, item)))) return;
        }
        if (item.table !== undefined) w.txOpen = true;
        item.opens?.release();
        item.done?.();
      } catch (err) {
        this.fail(new StatementFailure(item, err));
        return;
      }
      w.queue[w.head++] = undefined;
      if (w.head > 1024 && w.head * 2 > w.queue.length) {
        w.queue = w.queue.slice(w.head);
        w.head = 0;
      }
      this.queuedBytes -= byteLength(item.raw);
      if (this.queuedBytes <= this.maxQueuedBytes) this.notify();
    }
  }

  private send(conn: Connection, item: PoolItem): Promise<unknown> {
    return item.run ? item.run(conn) : queryRaw(conn, item.raw);
  }

  /**
   * Waits for a statement, or until the pool stopped. A statement in flight on a connection that is destroyed
   * after another one failed never settles: mysql2 drops its callback once the connection is closing (the
   * database server killed mid-load: one connection sees the loss, the loader destroys both, and the other
   * statement would be waited for ever). Resolves false once a statement failed or the pool was closed with
   * its connections destroyed; its later outcome is ignored. Closed otherwise (the loader refused a statement),
   * a statement in flight is waited for: a shadow table it creates must exist before the clean-up looks.
   */
  private async settle(p: Promise<unknown>): Promise<boolean> {
    return Promise.race([p.then(() => true), this.abandoned.then(() => false)]);
  }

  private fail(f: StatementFailure): void {
    if (!this.failure) this.failure = f;
    this.stop();
    this.abandon();
    this.notify();
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  private push(w: Worker, item: PoolItem): void {
    w.queue.push(item);
    this.queuedBytes += byteLength(item.raw);
    w.wake?.();
  }

  private load(w: Worker): number {
    return this.pending(w) + (w.busy ? 1 : 0);
  }

  /**
   * Queue a statement of `item.table` on the connection that owns the table, or a reorderable INSERT on the
   * table's second connection when that one has less to do (taken when it had less queued than the first).
   */
  dispatchTable(item: PoolItem & { table: string }): void {
    this.check();
    let route = this.routes.get(item.table);
    if (!route) {
      let w = this.workers[0]!;
      for (const c of this.workers) if (this.load(c) < this.load(w)) w = c;
      route = { owners: [w], ordered: OPEN, shared: OPEN };
      this.routes.set(item.table, route);
    }
    const first = route.owners[0]!;
    if (!item.reorderable || !this.spread) {
      // after the INSERTs queued on the second connection; the next ones there wait for this
      if (route.owners.length > 1 && !route.shared.open) item.after = route.shared;
      route.ordered = item.opens = gate();
      this.push(first, item);
      return;
    }
    if (route.owners.length === 1) {
      // the least busy other connection, if it has less queued than the first: not only an idle one, or a table
      // that comes while the others still work through the table before it (a dump's last table, behind its
      // biggest) would run on one connection while the other ends its share and then waits
      let other: Worker | undefined;
      for (const c of this.workers) {
        if (c !== first && this.load(c) < this.load(first) && (!other || this.load(c) < this.load(other)))
          other = c;
      }
      if (other) route.owners.push(other);
    }
    const second = route.owners[1];
    if (!second || this.load(first) <= this.load(second)) {
      this.push(first, item);
      return;
    }
    if (!route.ordered.open) item.after = route.ordered;
    route.shared = item.opens = gate();
    this.push(second, item);
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

  /**
   * Stops the workers (after drain() for a clean end, or at once on failure/abort); `destroyed`: the connections
   * were destroyed, so a statement in flight is not waited for.
   */
  async close(o: { destroyed?: boolean } = {}): Promise<void> {
    this.closed = true;
    this.stop();
    if (o.destroyed) this.abandon();
    for (const w of this.workers) w.wake?.();
    this.notify();
    await Promise.all(this.workers.map((w) => w.done));
  }
}
