/**
 * Full verification of a database dump before anything is touched: every byte is read (for .sql.gz the gzip
 * stream is decoded to its end, which checks its CRC and length), split into statements, and the dump must end
 * with its footer line. Dumps of mysqldump/mariadb-dump, Magento and magebackup all end with
 * `-- Dump completed on <date>` (Magento's `... GMT`, without a final newline).
 */
import { promises as fsp } from 'node:fs';
import { CliError, InterruptedError, describeAbort, errnoCode, throwIfAborted } from '../errors.js';
import {
  isGzipFile,
  openDumpStream,
  StatementSplitter,
  type EndState,
  type RawStatement,
} from './sql-reader.js';

export type DumpFlavour = 'magebackup' | 'mysqldump' | 'magento';

export interface VerifyResult {
  /** size of the file on disk */
  bytes: number;
  /** statements in the dump */
  statements?: number;
  footer: DumpFlavour;
}

const HEAD_BYTES = 4096;
const TAIL_BYTES = 4096;

/** Which program wrote the dump, from its first lines. */
export function dumpFlavour(head: string): DumpFlavour {
  if (/^-- Magento DB backup/m.test(head)) return 'magento';
  if (/magebackup/i.test(head.split('\n').slice(0, 3).join('\n'))) return 'magebackup';
  return 'mysqldump';
}

/**
 * The database name a dump was taken from, if its header says (`-- Host: h    Database: name`). magebackup
 * writes a name that holds line breaks, controls, a backslash or edge blanks as a JSON string.
 */
export function dumpedDatabaseFromHeader(head: string): string | undefined {
  const m = /^-- Host: .*?\bDatabase: (.+?)\s*$/m.exec(head);
  const v = m?.[1];
  if (!v) return undefined;
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"') && dumpFlavour(head) === 'magebackup') {
    try {
      const decoded: unknown = JSON.parse(v);
      if (typeof decoded === 'string') return decoded;
    } catch {
      // not ours: the raw text
    }
  }
  return v;
}

function lastLine(tail: Buffer): string {
  const text = tail.toString('utf8').replace(/[\s\0]+$/, '');
  const nl = text.lastIndexOf('\n');
  return text.slice(nl + 1).trim();
}

/** Reads the start of a dump (decompressed). */
export async function readDumpHead(file: string, bytes = HEAD_BYTES): Promise<string> {
  const parts: Buffer[] = [];
  let got = 0;
  for await (const chunk of openDumpStream(file)) {
    parts.push(chunk);
    got += chunk.length;
    if (got >= bytes) break;
  }
  return Buffer.concat(parts).subarray(0, bytes).toString('utf8');
}

/** The dump's file read failed: one line naming the file and why (missing, unreadable, corrupt gzip, …). */
export function describeStreamError(file: string, err: unknown, gz: boolean): CliError {
  const code = errnoCode(err);
  if (code === 'ENOENT') return new CliError(`Database backup ${file} does not exist`, { cause: err });
  if (code === 'EACCES' || code === 'EPERM')
    return new CliError(`Database backup ${file} is not readable`, { cause: err });
  if (code === 'EISDIR') return new CliError(`Database backup ${file} is a directory`, { cause: err });
  if (gz || (code !== undefined && code.startsWith('Z_'))) {
    const why = code === 'Z_BUF_ERROR' ? 'truncated' : 'corrupt';
    return new CliError(`Database backup ${file} is ${why}: its gzip data does not decode to the end`, {
      cause: err,
    });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new CliError(`Database backup ${file} cannot be read: ${msg}`, { cause: err });
}

/** The dump's size; throws a CliError when it is missing, not a regular file or empty. */
export async function dumpFileSize(file: string): Promise<number> {
  let st: Awaited<ReturnType<typeof fsp.stat>>;
  try {
    st = await fsp.stat(file);
  } catch (err) {
    throw describeStreamError(file, err, false);
  }
  if (!st.isFile()) {
    throw new CliError(
      `Database backup ${file} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}`,
    );
  }
  const size = Number(st.size);
  if (size === 0) throw new CliError(`Database backup ${file} is empty`);
  return size;
}

/**
 * A plain dump whose last line is not its `-- Dump completed` footer, refused before anything is loaded (a
 * truncated file, the common case); a .sql.gz is checked at the end of the load that decodes it.
 */
export async function missingFooter(file: string): Promise<CliError | undefined> {
  if (await isGzipFile(file)) return undefined;
  const fh = await fsp.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const tail = Buffer.alloc(Math.min(TAIL_BYTES, size));
    await fh.read(tail, 0, tail.length, size - tail.length);
    return incompleteDump(file, 'clean', ';', tail);
  } finally {
    await fh.close();
  }
}

/**
 * Why a dump read to its end is not complete (it ends inside a statement, string, identifier or comment, or
 * without the `-- Dump completed` footer as its last line), or undefined. `tail` is its last decoded bytes.
 */
export function incompleteDump(
  file: string,
  end: EndState,
  delimiter: string,
  tail: Buffer,
): CliError | undefined {
  if (end !== 'clean') {
    const what =
      end === 'string'
        ? 'a quoted string'
        : end === 'identifier'
          ? 'a quoted identifier'
          : end === 'comment'
            ? 'a comment'
            : `a statement (no closing "${delimiter}")`;
    return new CliError(`Database backup ${file} is truncated: it ends inside ${what}`);
  }
  if (!/^-- Dump completed\b/.test(lastLine(tail))) {
    return new CliError(
      `Database backup ${file} is incomplete: it does not end with a "-- Dump completed" line (truncated or still being written?)`,
    );
  }
  return undefined;
}

/**
 * Reads the whole dump; throws a CliError naming the file and the problem (missing, unreadable, corrupt or
 * truncated gzip, ends inside a statement or string, no `-- Dump completed` footer).
 */
export async function verifyDump(
  file: string,
  o: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
): Promise<VerifyResult> {
  throwIfAborted(o.signal);
  const size = await dumpFileSize(file);

  const splitter = new StatementSplitter();
  const sink: RawStatement[] = [];
  let head: Buffer = Buffer.alloc(0);
  let tail: Buffer = Buffer.alloc(0);
  let rawBytes = 0;
  let lastReport = 0;
  let gz = false;
  try {
    gz = await isGzipFile(file);
    const stream = openDumpStream(file, {
      signal: o.signal,
      onRawBytes: (n) => {
        rawBytes += n;
        if (o.onProgress && (rawBytes - lastReport >= 8 << 20 || rawBytes === size)) {
          lastReport = rawBytes;
          o.onProgress(rawBytes);
        }
      },
    });
    for await (const chunk of stream) {
      if (head.length < HEAD_BYTES) head = Buffer.concat([head, chunk.subarray(0, HEAD_BYTES - head.length)]);
      tail =
        chunk.length >= TAIL_BYTES
          ? chunk.subarray(chunk.length - TAIL_BYTES)
          : Buffer.concat([tail, chunk]).subarray(-TAIL_BYTES);
      splitter.push(chunk, sink);
      sink.length = 0;
    }
  } catch (err) {
    if (o.signal?.aborted) throw new InterruptedError(describeAbort(o.signal.reason), { cause: err });
    throw describeStreamError(file, err, gz);
  }
  const incomplete = incompleteDump(file, splitter.end(sink), splitter.delimiter, tail);
  if (incomplete) throw incomplete;
  o.onProgress?.(size);
  return { bytes: size, statements: splitter.count, footer: dumpFlavour(head.toString('utf8')) };
}
