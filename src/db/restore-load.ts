/**
 * Loading a dump into shadow tables of the live database (the live tables are not touched): one pass over
 * the file, table statements redirected to shadow tables and spread over several connections, session
 * statements sent to all, definitions held back for after the swap. A dump is hostile input: anything that
 * could act on a live table before the swap is refused (see restore-redirect.ts).
 */
import { promises as fsp } from 'node:fs';
import type { Connection } from 'mysql2/promise';
import { CliError, InterruptedError, describeAbort, throwIfAborted } from '../errors.js';
import { WarningCode } from '../events.js';
import { isLockWaitTimeout, isServerGone, sqlMessage } from './restore-connect.js';
import { loader, release, type Ctx } from './restore-context.js';
import { RestoreError } from './restore-errors.js';
import { rows, str } from './restore-catalog.js';
import { RESERVED_PREFIX, shadowName, type HeldDefinition } from './restore-journal.js';
import { classifyStatement, definitionTarget, triggerTable } from './restore-parse.js';
import { byteLength, LoaderPool, StatementFailure } from './restore-pool.js';
import { DEFER_AFTER_BYTES, DeferredKeys } from './restore-indexes.js';
import { redirectTableStatement, sessionRefusal, type Redirected } from './restore-redirect.js';
import {
  isGzipFile,
  openDumpStream,
  RecyclingFileReader,
  StatementSplitter,
  type RawStatement,
} from './sql-reader.js';
import { describeStreamError, incompleteDump } from './verify-dump.js';
import {
  notBetweenStatements,
  openDumpRanges,
  RangeGuard,
  RangeMismatch,
  rangesTotal,
  type DumpRange,
} from './dump-ranges.js';
import { SqlModeTracker } from './sql-mode.js';
import { statementExcerpt, statementHead, type Lexing } from './sql-tokens.js';

/**
 * autocommit stays ON: measured on MariaDB 10.11, one transaction per table (the "bulk insert into an empty
 * table" path) loaded a 140 MB single-table dump in 60-80 s against 35-51 s with a commit per ~1 MB INSERT.
 */
const SESSION_DEFAULTS =
  "SET SESSION foreign_key_checks = 0, unique_checks = 0, sql_mode = 'NO_AUTO_VALUE_ON_ZERO', autocommit = 1";

// loading

export interface LoadResult {
  statements: number;
  /** tables whose secondary keys were built after their rows */
  keysBuiltAfterRows: number;
  /** tables created by the dump, in order */
  tables: string[];
  held: HeldDefinition[];
  refs: Record<string, string>;
  newFks: Record<string, string>;
}

/** the bytes of a statement's start that its classification and redirection read (an INSERT's: 4 KiB) */
const HEAD_READ = 4096;

/** DDL that acts on its own table's definition only, besides CREATE and DROP TABLE (see PoolItem.ddl) */
const OWN_DDL = /^ALTER\s+TABLE\s+(?:`(?:[^`]|``)+`|[\w$]+)\s+(?:DISABLE|ENABLE)\s+KEYS\s*;?\s*$/i;

/** Statements that would act on live data before the swap: never run from a dump. */
const REFUSED =
  /^(?:DELETE|UPDATE|LOAD|RENAME|HANDLER|CALL|GRANT|REVOKE|FLUSH|KILL|SHUTDOWN|INSTALL|UNINSTALL|(?:CREATE|DROP|ALTER|RENAME)\s+(?:USER|ROLE|SERVER|DATABASE|SCHEMA))\b/i;

/**
 * Reads the dump once and loads its tables into shadow tables of the live database; definitions are held.
 * Checks the dump's end (footer, no open statement) as it goes.
 */
export async function loadDump(
  ctx: Ctx,
  o: {
    file: string;
    id: string;
    concurrency: number;
    /** see RestoreOptions.deferKeysAfterBytes */
    deferKeysAfterBytes?: number;
    /** see RestoreOptions.readChunkBytes */
    readChunkBytes?: number;
    dumpedDb: string | undefined;
    signal?: AbortSignal;
    /** tables of the dump not loaded (kept live: a selective rollback); their definitions are still held */
    skip?: ReadonlySet<string>;
    /**
     * read only these byte ranges of the dump (a selective rollback: the head, the loaded tables, every table's
     * triggers, the tail; dump-ranges.ts), each checked to hold only what it should; `tables`: every table
     * that has a range of its own in the manifest
     */
    ranges?: { list: readonly DumpRange[] | AsyncIterable<DumpRange>; tables: readonly string[] };
  },
): Promise<LoadResult> {
  // ranges still being decided (RangeFeed): their total is not known yet
  const totalBytes = !o.ranges
    ? (await fsp.stat(o.file)).size
    : Array.isArray(o.ranges.list)
      ? await rangesTotal(o.file, o.ranges.list)
      : undefined;
  const guard = o.ranges ? new RangeGuard(o.file, o.ranges.tables) : undefined;
  const conns: Connection[] = [];
  for (let i = 0; i < o.concurrency; i++) {
    const c = await loader(ctx);
    conns.push(c);
    await c.query(SESSION_DEFAULTS);
    try {
      await c.query('SET SESSION sql_log_bin = 0');
    } catch {
      // needs BINLOG ADMIN/SUPER: the load is then replicated, which is correct, only slower
    }
  }
  const serverVersion = await versionOf(conns[0]!);
  /** the sql_mode the dump's SET statements give the loading sessions: it decides how quotes are read */
  const mode = new SqlModeTracker();
  const lexing = (): Lexing => ({
    serverVersion,
    noBackslashEscapes: mode.noBackslashEscapes,
    ansiQuotes: mode.ansiQuotes,
  });
  const pool = new LoaderPool(conns);
  const held: HeldDefinition[] = [];
  const tables: string[] = [];
  const seen = new Set<string>();
  const keyed = new Map<string, boolean>();
  const refs: Record<string, string> = {};
  const newFks: Record<string, string> = {};
  const fkByName = new Map<string, string>();
  let dumpedDb = o.dumpedDb;
  let useDb: string | undefined;
  let statements = 0;
  let rawBytes = 0;
  let lastProgress = Date.now();
  let lastTable: string | undefined;
  const splitter = new StatementSplitter();
  const out: RawStatement[] = [];
  let tail: Buffer = Buffer.alloc(0);
  /**
   * A whole plain file is read into reused buffers (RecyclingFileReader): a chunk is read into again once the
   * splitter is past it and every statement sent from it ran. Whatever outlives handle() otherwise (held
   * definitions, session statements, the tail) is copied out of it.
   */
  const reader =
    !o.ranges && !(await isGzipFile(o.file).catch(() => true))
      ? new RecyclingFileReader(
          o.file,
          {
            ...(o.signal ? { signal: o.signal } : {}),
            onRawBytes: (n: number) => {
              rawBytes += n;
            },
          },
          o.readChunkBytes,
        )
      : undefined;
  /** the reader's chunks the splitter may still hold */
  const reading: Buffer[] = [];
  const own = (b: Buffer): Buffer => (reader?.owns(b) ? Buffer.from(b) : b);
  /** the statement's bytes stay valid until it ran */
  const keep = (raw: Buffer | readonly Buffer[]): (() => void) | undefined => {
    if (!reader) return undefined;
    const parts = Buffer.isBuffer(raw) ? [raw] : raw;
    const mine = parts.filter((b) => reader.owns(b));
    if (mine.length === 0) return undefined;
    for (const b of mine) reader.retain(b);
    return () => {
      for (const b of mine) reader.release(b);
    };
  };
  const renames = {
    table: (name: string, db: string | undefined): string | undefined => {
      if (db !== undefined && db !== dumpedDb && db !== ctx.live) return undefined;
      const s = shadowName(o.id, name);
      refs[s] = name;
      return s;
    },
    constraint: (name: string, table: string | undefined): string => {
      const n = table !== undefined ? generatedFkNumber(name, table) : undefined;
      // InnoDB renames a foreign key named <table>_ibfk_<n> with its table: named after the shadow table, the
      // swap's RENAME TABLE gives it the dump's name (and the live table's own, which it renames too, gives way),
      // with no ALTER TABLE after the swap
      if (n !== undefined) return `${shadowName(o.id, table!)}_ibfk_${n}`;
      let t = fkByName.get(name);
      if (t === undefined) {
        t = `${RESERVED_PREFIX}${o.id}_c${fkByName.size + 1}`;
        fkByName.set(name, t);
        newFks[t] = name;
      }
      return t;
    },
  };

  /** big tables' secondary keys, built after their rows (restore-indexes.ts): bytes of plain INSERTs so far */
  const rowBytes = new Map<string, number>();
  /** tables whose keys were (queued to be) dropped and are still to be built */
  const deferred = new Map<string, { keys: DeferredKeys; shadow: string; line: number }>();
  const deferAfter = o.deferKeysAfterBytes ?? DEFER_AFTER_BYTES;
  let keysBuiltAfterRows = 0;
  /** queues the build of deferred keys (every table's but `except`), on the table's connection after its rows */
  const buildKeys = (except?: string): void => {
    for (const [table, d] of deferred) {
      if (table === except) continue;
      deferred.delete(table);
      pool.dispatchTable({
        raw: Buffer.from(`ALTER TABLE ${d.shadow} ADD (the keys dropped after line ${d.line})`),
        line: d.line,
        table,
        ddl: 'build',
        run: async (c) => {
          if (await d.keys.restore(c)) keysBuiltAfterRows++;
        },
      });
    }
  };
  const refuse = (s: RawStatement, why: string): RestoreError =>
    new RestoreError(
      `Database backup ${o.file} has a statement at line ${s.line} that a rollback does not run (${why}): ${statementExcerpt(s.raw)}`,
    );
  const skipped = new Set<string>();
  /** tables whose rows are other tables' (MERGE, FEDERATED, …), and those whose rows were skipped */
  const elsewhere = new Set<string>();
  const skippedRows = new Set<string>();
  /** a table of the dump that has the restore's reserved prefix: never loaded (it would pass for ours) */
  const reserved = (table: string, line: number): boolean => {
    if (!table.toLowerCase().startsWith(RESERVED_PREFIX)) return false;
    if (!skipped.has(table)) {
      skipped.add(table);
      ctx.emit({
        type: 'warning',
        code: WarningCode.RESERVED_TABLE,
        message: `Skipped table ${table} of database backup ${o.file} (line ${line}): names starting with ${RESERVED_PREFIX} belong to magebackup's restores`,
      });
    }
    return true;
  };
  /** the statement with its tables redirected to shadow tables; refused when that is not certain */
  const redirect = (s: RawStatement, head: string): Redirected & { table: string } => {
    // the splitter's values check holds in the default quoting only: the loader's sql_mode here must be that too
    const literal = s.literalValues && !mode.noBackslashEscapes && !mode.ansiQuotes;
    // then only its head is read (the name to redirect is in its first KiB): its rows are sent from the chunks
    // they were read into, never joined or copied
    const partial = literal && s.parts.length > 1 && s.parts[0]!.length >= HEAD_READ;
    const r = redirectTableStatement(partial ? s.parts[0]! : s.raw, renames, lexing(), literal);
    if (partial) r.raw = [...(Buffer.isBuffer(r.raw) ? [r.raw] : r.raw), ...s.parts.slice(1)];
    if (r.refusal !== undefined) throw refuse(s, r.refusal);
    if (r.target === undefined || r.unredirected.length > 0) {
      const t = r.unredirected[0] ?? classifyStatement(head, lexing()).kind;
      throw refuse(s, `it names table ${t}, which cannot be loaded into a shadow table`);
    }
    return { ...r, table: r.target };
  };

  const handle = async (s: RawStatement): Promise<void> => {
    const head = statementHead(s.head(HEAD_READ), undefined, lexing());
    const k = classifyStatement(head, lexing());
    statements++;
    switch (k.kind) {
      case 'skip':
        if (k.why === 'use' || k.why === 'create-database') {
          if (k.why === 'use' && useDb !== undefined && k.database !== useDb) {
            throw new RestoreError(
              `Database backup ${o.file} holds more than one database (${useDb}, ${k.database ?? ''} at line ${s.line}): restore one database at a time`,
            );
          }
          if (k.why === 'use') useDb = k.database;
          if (k.database !== undefined) dumpedDb = k.database;
        }
        return;
      case 'session': {
        const why = sessionRefusal(s.raw, lexing());
        if (why !== undefined) throw refuse(s, why);
        buildKeys();
        const raw = own(s.raw);
        const text = raw.toString('latin1');
        if (!mode.apply(text)) {
          throw refuse(s, 'it sets sql_mode to a value that cannot be read from the dump');
        }
        // autocommit off: one connection's open transaction would hold a table the other one inserts into
        if (/autocommit/i.test(text) && !/autocommit\s*:?=\s*(?:1|ON)\b[^,]*$/i.test(text))
          pool.spread = false;
        pool.broadcast(raw, s.line);
        held.push({ kind: 'session', line: s.line, raw });
        return;
      }
      case 'table': {
        if (k.database !== undefined && k.database !== dumpedDb && k.database !== ctx.live) {
          throw new RestoreError(
            `Database backup ${o.file} writes to another database (${k.database}) at line ${s.line}: restore one database at a time`,
          );
        }
        guard?.table(k.table, s.line);
        if (reserved(k.table, s.line)) return;
        if (o.skip?.has(k.table)) return;
        const r = redirect(s, head);
        const { raw, table } = r;
        if (reserved(table, s.line)) return;
        if (r.rowsElsewhere) elsewhere.add(table);
        else if (k.create) elsewhere.delete(table);
        if (elsewhere.has(table) && /^(?:INSERT|REPLACE|TRUNCATE)\b/i.test(head)) {
          if (!skippedRows.has(table)) {
            skippedRows.add(table);
            ctx.emit({
              type: 'warning',
              code: WarningCode.SKIPPED_ROWS,
              message: `Skipped the rows of table ${table} in database backup ${o.file} (line ${s.line}): its engine keeps no rows of its own (MERGE, FEDERATED, …), they belong to the tables it reads`,
            });
          }
          return;
        }
        if (k.create && !seen.has(table)) {
          seen.add(table);
          tables.push(table);
        }
        // a table with a primary key keeps its rows in key order: they may be inserted in any order
        if (k.create) keyed.set(table, /\bPRIMARY\s+KEY\b/i.test(s.raw.toString('latin1')));
        lastTable = table;
        const isDdl = !/^(?:INSERT|REPLACE|SELECT|DO)\b/i.test(head);
        const plainRows = r.reorderable === true && keyed.get(table) === true;
        if (deferred.size > 0) buildKeys(plainRows ? table : undefined);
        if (r.copies) {
          // CREATE TABLE … LIKE another: after everything before it (the other table's CREATE included)
          await pool.barrier({ raw, shown: s.raw, line: s.line, ddl: true });
          return;
        }
        const done = keep(raw);
        pool.dispatchTable({
          raw,
          ...(done ? { done } : {}),
          // for a message only: its start, not a second copy of megabytes of rows held while queued
          shown:
            raw === s.parts[0] && s.parts.length === 1
              ? undefined
              : Buffer.from(s.head(1024).subarray(0, 1024)),
          line: s.line,
          table,
          // CREATE … LIKE went above, CREATE … SELECT is refused
          ddl: !isDdl ? false : k.create || k.drop || OWN_DDL.test(head) ? 'own' : true,
          reorderable: plainRows,
        });
        if (plainRows) {
          const before = rowBytes.get(table) ?? 0;
          const after = before + byteLength(raw);
          rowBytes.set(table, after);
          if (before < deferAfter && after >= deferAfter) {
            const shadow = shadowName(o.id, table);
            const keys = new DeferredKeys(shadow);
            deferred.set(table, { keys, shadow, line: s.line });
            pool.dispatchTable({
              raw: Buffer.from(`ALTER TABLE ${shadow} DROP (its secondary keys, built after its rows)`),
              line: s.line,
              table,
              ddl: 'own',
              run: (c) => keys.drop(c),
            });
          }
        }
        await pool.room();
        return;
      }
      case 'definition': {
        const target = definitionTarget(head, lexing());
        const on = target?.object === 'trigger' ? triggerTable(head, lexing()) : undefined;
        guard?.definition(k.object, on, s.line);
        if (
          target !== undefined &&
          (target.name.toLowerCase().startsWith(RESERVED_PREFIX) || (on !== undefined && skipped.has(on)))
        ) {
          ctx.emit({
            type: 'warning',
            code: WarningCode.RESERVED_TABLE,
            message: `Skipped ${target.object} ${target.name} of database backup ${o.file} (line ${s.line}): it belongs to a table or name reserved for magebackup's restores`,
          });
          return;
        }
        held.push({ kind: k.object, line: s.line, raw: own(s.raw) });
        return;
      }
      case 'barrier': {
        guard?.other(s.line);
        if (k.table !== undefined) {
          throw refuse(
            s,
            `it wraps a statement on table ${k.table} in EXECUTE IMMEDIATE, which cannot be loaded into a shadow table`,
          );
        }
        if (REFUSED.test(head)) {
          throw new RestoreError(
            `Database backup ${o.file} has a statement at line ${s.line} that a rollback does not run (it would change the live database or the server before the swap): ${statementExcerpt(s.raw)}`,
          );
        }
        if (!/^DROP\s+(?:TEMPORARY\s+)?(?:TABLES?|SEQUENCE)\b/i.test(head)) {
          throw refuse(s, 'only table statements are loaded before the swap');
        }
        // DROP TABLE a, b: every name it gives must be a shadow table's
        const { raw } = redirect(s, head);
        buildKeys();
        await pool.barrier({ raw, shown: s.raw, line: s.line, ddl: true });
        return;
      }
    }
  };

  const read = {
    ...(o.signal ? { signal: o.signal } : {}),
    onRawBytes: (n: number) => {
      rawBytes += n;
    },
  };
  const ranges = o.ranges?.list;
  const chunks = checkedDumpStream(
    o.file,
    read,
    ranges
      ? openDumpRanges(o.file, ranges, {
          ...read,
          onRange: (r) => {
            if (r.offset > 0 && !splitter.jumpTo(r.line)) throw notBetweenStatements(o.file, r);
            guard?.enter(r);
          },
        })
      : reader?.chunks(),
  );
  try {
    for (;;) {
      const next = await chunks.next();
      if (next.done) break;
      const chunk = next.value;
      throwIfAborted(o.signal);
      tail = lastBytes(tail, chunk);
      splitter.push(chunk, out);
      for (const s of out) await handle(s);
      out.length = 0;
      if (reader) {
        reading.push(chunk);
        // the chunks before the oldest one the splitter holds bytes of (none: all of them) are released
        const oldest = splitter.oldestHeld((m) => reader.owns(m));
        let k = reading.findIndex((c) => c.buffer === oldest);
        if (k < 0) k = reading.length;
        for (const c of reading.splice(0, k)) reader.release(c);
      }
      const now = Date.now();
      if (now - lastProgress >= 500) {
        lastProgress = now;
        ctx.emit({
          type: 'progress',
          part: 'db',
          operation: 'rollback',
          bytes: rawBytes,
          ...(totalBytes !== undefined ? { totalBytes } : {}),
          ...(lastTable !== undefined ? { table: lastTable } : {}),
        });
      }
    }
    // the dump is verified as it is loaded: nothing is swapped in unless it was read to its complete end
    const incomplete = incompleteDump(o.file, splitter.end(out), splitter.delimiter, tail);
    if (incomplete) throw incomplete;
    for (const s of out) await handle(s);
    buildKeys();
    await pool.drain();
    throwIfAborted(o.signal);
    const bytes = totalBytes ?? rawBytes;
    ctx.emit({ type: 'progress', part: 'db', operation: 'rollback', bytes, totalBytes: bytes });
    return { statements, keysBuiltAfterRows, tables, held, refs, newFks };
  } catch (err) {
    let e = pool.failure ?? err;
    const gone = isServerGone(e instanceof StatementFailure ? e.cause : e);
    if (
      (e instanceof StatementFailure || e instanceof RestoreError) &&
      !(e instanceof RangeMismatch) &&
      !gone &&
      !o.signal?.aborted &&
      (await isGzipFile(o.file).catch(() => false))
    ) {
      // a statement failed or was refused: a gzip that does not decode to its complete end (a corrupt one decodes
      // to garbage before its check fails) is refused for that, the real cause
      e = (await unreadableRest(o.file, chunks, splitter, tail)) ?? e;
    }
    if (e instanceof StatementFailure) throw e;
    if (o.signal?.aborted && !(e instanceof InterruptedError)) {
      throw new InterruptedError(describeAbort(o.signal.reason), { cause: e });
    }
    if (e instanceof CliError || isServerGone(e)) throw e;
    throw new RestoreError(
      `Cannot read database backup ${o.file}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  } finally {
    await chunks.return(undefined).catch(() => {});
    const aborted = o.signal?.aborted === true;
    const destroyed = pool.failure !== undefined || aborted;
    if (pool.failure !== undefined && !aborted && !isServerGone(pool.failure.cause)) {
      // a statement failed on one connection while the others' still run on the server, and a CREATE TABLE the
      // server received completes even once our socket is gone: they are stopped (KILL QUERY) and their sessions
      // seen to end before the clean-up looks for shadow tables, or one would appear after it (an abort's kill
      // does the same: watchAbort)
      await ctx.conns.killThese(conns);
    } else if (destroyed) for (const c of conns) c.destroy();
    await pool.close({ destroyed });
    for (const c of conns) await release(ctx, c);
  }
}

/**
 * `n` when `name` is `<table>_ibfk_<n>`, the form InnoDB renames with its table (dict_table_rename_in_cache), for
 * a table name that is the same in InnoDB's file-name encoding and under any lower_case_table_names.
 */
export function generatedFkNumber(name: string, table: string): string | undefined {
  if (!/^[a-z0-9_]+$/.test(table) || !name.startsWith(`${table}_ibfk_`)) return undefined;
  const n = name.slice(table.length + 6);
  return /^[1-9][0-9]{0,8}$/.test(n) ? n : undefined;
}

/** The dump's bytes; a failed read (missing, unreadable, corrupt or truncated gzip) is one line naming the file. */
async function* checkedDumpStream(
  file: string,
  o: Parameters<typeof openDumpStream>[1] & {},
  /** another source of the dump's bytes (its byte ranges) */
  source?: AsyncIterable<Buffer>,
): AsyncGenerator<Buffer> {
  const gz = await isGzipFile(file).catch(() => false);
  try {
    for await (const chunk of source ?? openDumpStream(file, o)) yield chunk;
  } catch (err) {
    if (o.signal?.aborted || err instanceof RangeMismatch) throw err;
    throw describeStreamError(file, err, gz);
  }
}

/** The last 4 KiB read so far (where the footer line is looked for), a copy: the chunk's memory is reused. */
function lastBytes(tail: Buffer, chunk: Buffer): Buffer {
  return chunk.length >= 4096
    ? Buffer.from(chunk.subarray(chunk.length - 4096))
    : Buffer.concat([tail, chunk]).subarray(-4096);
}

/** Reads the rest of the dump (nothing is run): why it does not end completely, or undefined. */
async function unreadableRest(
  file: string,
  chunks: AsyncGenerator<Buffer>,
  splitter: StatementSplitter,
  tail: Buffer,
): Promise<CliError | undefined> {
  const sink: RawStatement[] = [];
  try {
    for await (const chunk of chunks) {
      tail = lastBytes(tail, chunk);
      splitter.push(chunk, sink);
      sink.length = 0;
    }
    return incompleteDump(file, splitter.end(sink), splitter.delimiter, tail);
  } catch (err) {
    return err instanceof CliError ? err : undefined;
  }
}

/** The server's version as executable comments number it (10.11.6 → 101106). */
async function versionOf(conn: Connection): Promise<number> {
  const r = await rows(conn, 'SELECT VERSION() AS v');
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(str(r[0]?.v));
  return m ? Number(m[1]) * 10000 + Number(m[2]) * 100 + Number(m[3]) : Infinity;
}

export function statementError(ctx: Ctx, file: string, f: StatementFailure, suffix: string): RestoreError {
  const where = f.item.line > 0 ? `line ${f.item.line} of ${file}` : file;
  if (isLockWaitTimeout(f.cause)) {
    const on = f.item.table !== undefined ? `table ${f.item.table}` : 'a table';
    return new RestoreError(
      `Database restore waited more than ${ctx.lockWait} s for a lock on ${on} (${where}; another session holds it) — ${suffix}`,
      { cause: f.cause },
    );
  }
  return new RestoreError(
    `Database restore failed at ${where}: ${sqlMessage(f.cause)} (statement: ${statementExcerpt(f.item.shown ?? (Buffer.isBuffer(f.item.raw) ? f.item.raw : Buffer.concat(f.item.raw)))}) — ${suffix}`,
    { cause: f.cause },
  );
}
