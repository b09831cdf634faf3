/**
 * Reading only some tables of a dump (a selective rollback, issue 14): the byte ranges of the uncompressed dump
 * that the manifest's table sections give (store/content-hashes.ts), checked before and while they are read.
 *
 * What a table's section depends on: the header's session settings (SET NAMES, TIME_ZONE, UNIQUE_CHECKS,
 * FOREIGN_KEY_CHECKS, SQL_MODE, SQL_NOTES) and the delimiter `;`. Every section of our dumps leaves both as it
 * found them (a trigger sets its own sql_mode and character set, then puts them back; its DELIMITER block ends
 * with `DELIMITER ;`). So the head (header and sequences), then any sections in file order, then the tail (view
 * placeholders, events, routines, views, footer) are the statements a whole read gives, minus the tables left out.
 *
 * Used only when the file's SHA-256 equals the manifest's (the manifest describes this very file). A manifest
 * that is wrong anyway must not load the wrong thing: before a plain .sql is read, every section must start with
 * its table's `-- Table structure` comment (otherwise the dump is read whole); while the ranges are read, every
 * range must start with what it should and end between statements, and every statement in it must belong there
 * (a table's range: that table's statements only; its triggers' range: triggers on it; the head: session settings
 * and sequences; the tail: definitions) — otherwise the load stops with nothing changed live.
 *
 * .sql.gz: the tail is at the file's end, so the whole gzip stream is inflated anyway; only the ranges' bytes are
 * split into statements (the other tables' bytes are skipped unparsed). Measured on the shared, loaded bench machine
 * (2026-12-02): inflating ran at ~20 MB/s (SHA-256 at ~245 MB/s), i.e. ~30 s for the bench's 618 MB dump, more than
 * a whole selective .sql rollback. Recording gzip-member-aligned offsets (the parallel gzip writer's member starts)
 * would remove it; not done yet: the bench's and the default dumps are .sql.
 */
import { promises as fsp } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { createReadStream } from 'node:fs';
import { RestoreError } from './restore-errors.js';
import { tableHead } from './dump-sql.js';
import { isGzipFile, READ_CHUNK } from './sql-reader.js';
import type { DbContentHashes } from './table-hash.js';

export interface DumpRange {
  offset: number;
  length: number;
  /** 1-based line of `offset` */
  line: number;
  /** what it may hold (see the file comment) */
  part: 'head' | 'table' | 'triggers' | 'tail';
  table?: string;
}

/** The ranges a selective rollback reads, in file order: the tables not kept are loaded, every trigger is held. */
export function dumpRanges(c: DbContentHashes, kept: ReadonlySet<string>): DumpRange[] | null {
  const tail = c.tail;
  const first = c.tables[0]?.section;
  if (!tail || !first) return null;
  const out: DumpRange[] = [{ offset: 0, length: first.offset, line: 1, part: 'head' }];
  for (const t of c.tables) {
    const s = t.section;
    if (!s) return null;
    if (!kept.has(t.name))
      out.push({ offset: s.offset, length: s.length, line: s.line, part: 'table', table: t.name });
    if (s.triggers > 0) {
      out.push({
        offset: s.offset + s.length,
        length: s.triggers,
        line: s.triggersLine,
        part: 'triggers',
        table: t.name,
      });
    }
  }
  out.push({ offset: tail.offset, length: tail.end - tail.offset, line: tail.line, part: 'tail' });
  return out;
}

/** The first bytes a range must have (a table's section starts with its comment and DROP TABLE). */
function expectedStart(r: DumpRange): Buffer | null {
  if (r.part === 'table') return Buffer.from(tableHead(r.table ?? ''), 'latin1');
  // a trigger's context: its sql_mode saved first (dump-sql.ts withContext)
  if (r.part === 'triggers') return Buffer.from('/*!50003 SET @saved_sql_mode = @@sql_mode */;\n');
  return null;
}

/**
 * The ranges to read of a selective rollback, or why the dump is read whole instead (a plain .sql whose size or
 * section starts do not match the manifest). A .sql.gz is checked while it is read.
 */
export async function planDumpRanges(
  file: string,
  c: DbContentHashes,
  kept: ReadonlySet<string>,
): Promise<{ ranges: DumpRange[] } | { problem: string } | null> {
  const all = dumpRanges(c, new Set());
  const ranges = dumpRanges(c, kept);
  if (!all || !ranges) return null;
  if (await isGzipFile(file)) return { ranges };
  const fh = await fsp.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size !== c.tail?.end) {
      return { problem: `it has ${size} bytes, its manifest's table sections describe ${c.tail?.end}` };
    }
    for (const r of all) {
      const want = expectedStart(r);
      if (!want) continue;
      const got = Buffer.alloc(want.length);
      const { bytesRead } = await fh.read(got, 0, want.length, r.offset);
      if (bytesRead !== want.length || !got.equals(want)) {
        return {
          problem: `its manifest's section of table ${r.table ?? ''} (${r.part === 'table' ? 'structure and rows' : 'triggers'}, byte ${r.offset}) does not start there`,
        };
      }
    }
  } finally {
    await fh.close();
  }
  return { ranges };
}

/** Bytes the loader reads (for its progress): the ranges of a plain file, the whole file when gzip'd. */
export async function rangesTotal(file: string, ranges: readonly DumpRange[]): Promise<number> {
  if (await isGzipFile(file)) return (await fsp.stat(file)).size;
  return ranges.reduce((n, r) => n + r.length, 0);
}

export class RangeMismatch extends RestoreError {}

function mismatch(file: string, why: string): RangeMismatch {
  return new RangeMismatch(
    `Database backup ${file} does not match its manifest's table sections (${why}): nothing was loaded from it; roll back with --full to read it whole`,
  );
}

/**
 * The bytes of the ranges in order (inflated first for .sql.gz). `onRange` is called before a range's first
 * bytes are given (the reader must be between statements there); a range that does not start with what it
 * should, or a gzip stream that does not end where the manifest says, throws RangeMismatch.
 */
export function openDumpRanges(
  file: string,
  ranges: readonly DumpRange[] | AsyncIterable<DumpRange>,
  o: { signal?: AbortSignal; onRawBytes?: (bytes: number) => void; onRange: (r: DumpRange) => void },
): AsyncIterable<Buffer> {
  const checkStart = (r: DumpRange, first: Buffer): void => {
    const want = expectedStart(r);
    if (want && !first.subarray(0, want.length).equals(want)) {
      throw mismatch(
        file,
        `${r.part === 'table' ? 'the section' : 'the triggers'} of table ${r.table ?? ''} at line ${r.line} starts with other bytes`,
      );
    }
  };
  return {
    async *[Symbol.asyncIterator]() {
      if (await isGzipFile(file)) {
        // one stream in file order: the ranges must all be known
        if (!Array.isArray(ranges)) throw new Error('the ranges of a .sql.gz are read in file order');
        yield* inflatedRanges(file, ranges, o, checkStart);
        return;
      }
      const fh = await fsp.open(file, 'r');
      try {
        for await (const r of ranges) {
          o.onRange(r);
          let at = r.offset;
          const end = r.offset + r.length;
          while (at < end) {
            o.signal?.throwIfAborted();
            const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, end - at));
            const { bytesRead } = await fh.read(buf, 0, buf.length, at);
            if (bytesRead === 0) throw mismatch(file, `it ends before byte ${end}`);
            const chunk = buf.subarray(0, bytesRead);
            if (at === r.offset) checkStart(r, chunk);
            at += bytesRead;
            o.onRawBytes?.(bytesRead);
            yield chunk;
          }
        }
      } finally {
        await fh.close();
      }
    },
  };
}

async function* inflatedRanges(
  file: string,
  ranges: readonly DumpRange[],
  o: { signal?: AbortSignal; onRawBytes?: (bytes: number) => void; onRange: (r: DumpRange) => void },
  checkStart: (r: DumpRange, first: Buffer) => void,
): AsyncGenerator<Buffer> {
  const raw = createReadStream(file, { highWaterMark: READ_CHUNK, signal: o.signal });
  if (o.onRawBytes) {
    const cb = o.onRawBytes;
    raw.on('data', (b: Buffer | string) => cb(b.length));
  }
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  raw.on('error', (err) => gunzip.destroy(err));
  raw.pipe(gunzip);
  let pos = 0;
  let i = 0;
  let started = false;
  /** a range's first bytes, held until there are enough to check them (null: checked, or nothing to check) */
  let pending: Buffer[] | null = null;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      const from = pos;
      pos += chunk.length;
      while (i < ranges.length) {
        const r = ranges[i]!;
        const end = r.offset + r.length;
        if (r.offset >= pos) break;
        if (!started) {
          started = true;
          o.onRange(r);
          pending = expectedStart(r) ? [] : null;
        }
        const piece = chunk.subarray(Math.max(0, r.offset - from), Math.min(chunk.length, end - from));
        if (pending !== null) {
          pending.push(piece);
          const have = pending.reduce((n, b) => n + b.length, 0);
          if (have < (expectedStart(r)?.length ?? 0) && end > pos) break;
          const joined = Buffer.concat(pending);
          pending = null;
          checkStart(r, joined);
          yield joined;
        } else {
          yield piece;
        }
        if (end > pos) break;
        i++;
        started = false;
      }
    }
  } finally {
    raw.destroy();
    gunzip.destroy();
  }
  const last = ranges[ranges.length - 1];
  if (last && pos !== last.offset + last.length) {
    throw mismatch(
      file,
      `its uncompressed size is ${pos} bytes, the manifest's sections end at ${last.offset + last.length}`,
    );
  }
}

/**
 * Ranges given as they become known, for a load that starts while the comparison still runs: a plain .sql's
 * ranges may be read in any order after its head (each table's section needs only the head's session settings;
 * see the file comment), so a table is loaded as soon as it is found to differ. `end()` after the last one
 * (the triggers and the tail, in file order); `fail()` or the signal's abort ends the reader with that error.
 */
export class RangeFeed implements AsyncIterable<DumpRange> {
  readonly #queue: DumpRange[] = [];
  #ended = false;
  #failed: { err: unknown } | undefined;
  #wake: (() => void) | undefined;
  constructor(signal?: AbortSignal) {
    signal?.addEventListener('abort', () => this.fail(signal.reason), { once: true });
  }

  push(r: DumpRange): void {
    if (this.#ended) throw new Error('a range pushed after the end');
    this.#queue.push(r);
    this.#poke();
  }

  end(): void {
    this.#ended = true;
    this.#poke();
  }

  fail(err: unknown): void {
    this.#failed ??= { err };
    this.#poke();
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<DumpRange> {
    for (;;) {
      if (this.#failed) throw this.#failed.err;
      const r = this.#queue.shift();
      if (r) {
        yield r;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}

/** Checks that every statement read from a range belongs there (see the file comment). */
export class RangeGuard {
  #range: DumpRange | undefined;
  readonly #tables: ReadonlySet<string>;
  /** `tables`: every table that has a section (a head may hold table statements of sequences only) */
  constructor(
    private readonly file: string,
    tables: readonly string[],
  ) {
    this.#tables = new Set(tables);
  }

  enter(r: DumpRange): void {
    this.#range = r;
  }

  /** a table statement (`table`: the table it names) at `line` */
  table(table: string, line: number): void {
    const r = this.#range;
    const ok =
      r !== undefined &&
      ((r.part === 'table' && r.table === table) || (r.part === 'head' && !this.#tables.has(table)));
    if (!ok) this.#fail(line, `a statement on table ${table}`);
  }

  /** a definition (`triggerOn`: the table of a CREATE TRIGGER) at `line` */
  definition(object: string, triggerOn: string | undefined, line: number): void {
    const r = this.#range;
    const ok =
      r !== undefined &&
      (r.part === 'tail' || (r.part === 'triggers' && (object !== 'trigger' || triggerOn === r.table)));
    if (!ok)
      this.#fail(line, `a ${object} definition${triggerOn !== undefined ? ` on table ${triggerOn}` : ''}`);
  }

  /** any other statement that is neither a session setting nor skipped */
  other(line: number): void {
    this.#fail(line, 'a statement our dumps never write');
  }

  #fail(line: number, what: string): never {
    const r = this.#range;
    const where =
      r === undefined
        ? 'before any section'
        : r.table !== undefined
          ? `in the ${r.part === 'table' ? 'section' : 'triggers'} of table ${r.table}`
          : `in its ${r.part}`;
    throw mismatch(this.file, `line ${line} holds ${what} ${where}`);
  }
}

export function notBetweenStatements(file: string, r: DumpRange): RangeMismatch {
  const what =
    r.table !== undefined
      ? `${r.part === 'table' ? 'the section' : 'the triggers'} of table ${r.table}`
      : `its ${r.part}`;
  return mismatch(file, `the part read before ${what} (line ${r.line}) does not end between statements`);
}
