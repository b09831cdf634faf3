/**
 * The history log: one line of JSON per backup, rollback/restore, prune, verify and maintenance change, whether it
 * came from the CLI or the web interface. An append-only file in var/backups (0600), read back by
 * `backups:history` and the web's History page.
 *
 * var/backups is checked like the rest of our private state (ensureDir), but the log is still treated as
 * hostile when read: a line that does not parse or does not have the expected shape is skipped (and counted),
 * and only the last MAX_READ bytes of each file are read. It is opened without following a link and must be a
 * regular file of ours.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { CliError, errnoCode } from '../errors.js';
import { ensureDir } from '../fs/atomic.js';
import { storePaths } from '../store/paths.js';

export const HISTORY_FILE = '.magebackup-history.jsonl';
/** the previous log, once the current one grew past ROTATE_AT */
export const HISTORY_OLD_FILE = '.magebackup-history.1.jsonl';
export const ROTATE_AT = 1 << 20;

/** the history log's files: not a leftover of a run (tests that list var/backups leave them out) */
export function isHistoryFile(name: string): boolean {
  return name === HISTORY_FILE || name === HISTORY_OLD_FILE;
}
/** at most this much of each file is read (its end: the newest entries) */
export const MAX_READ = 2 << 20;
const MAX_TEXT = 2000;

export type HistoryOrigin = 'cli' | 'web';
export type HistoryResult = 'ok' | 'warnings' | 'failed' | 'interrupted' | 'locked';

export interface HistoryEntry {
  /** ISO time the action ended */
  time: string;
  origin: HistoryOrigin;
  /** the command, as the CLI names it (`snapshot:create`, `backups:prune`, `maintenance:enable`, ...) */
  command: string;
  result: HistoryResult;
  /** the exit code the CLI gave or would have given */
  exitCode: number;
  /** one line: what was done, or the error */
  message: string;
  /** the snapshot it concerns, when there is one */
  id?: string;
}

export interface ReadHistoryResult {
  entries: HistoryEntry[];
  /** lines that were not history entries (damaged or planted), skipped */
  skipped: number;
}

const ORIGINS: readonly string[] = ['cli', 'web'];
const RESULTS: readonly string[] = ['ok', 'warnings', 'failed', 'interrupted', 'locked'];

/** The result word of an exit code (see ExitCode). */
export function resultOfExitCode(code: number): HistoryResult {
  if (code === 0) return 'ok';
  if (code === 3) return 'warnings';
  if (code === 11) return 'locked';
  if (code === 129 || code === 130) return 'interrupted';
  return 'failed';
}

function oneLine(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > MAX_TEXT ? `${flat.slice(0, MAX_TEXT - 1)}…` : flat;
}

/** Checks one parsed line; null when it is not an entry. */
export function validateEntry(data: unknown): HistoryEntry | null {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return null;
  const d = data as Record<string, unknown>;
  if (typeof d.time !== 'string' || Number.isNaN(Date.parse(d.time))) return null;
  if (typeof d.origin !== 'string' || !ORIGINS.includes(d.origin)) return null;
  if (typeof d.command !== 'string' || !/^[a-z]+(:[a-z-]+)*( --[a-z-]+)*$/.test(d.command)) return null;
  if (typeof d.result !== 'string' || !RESULTS.includes(d.result)) return null;
  if (typeof d.exitCode !== 'number' || !Number.isInteger(d.exitCode)) return null;
  if (typeof d.message !== 'string') return null;
  if (d.id !== undefined && (typeof d.id !== 'string' || !/^\d{1,12}$/.test(d.id))) return null;
  return {
    time: new Date(d.time).toISOString(),
    origin: d.origin as HistoryOrigin,
    command: d.command,
    result: d.result as HistoryResult,
    exitCode: d.exitCode,
    message: oneLine(d.message),
    ...(d.id !== undefined ? { id: d.id } : {}),
  };
}

function uid(): number {
  return process.getuid?.() ?? 0;
}

/** Opens a log file of ours: never through a link, never a FIFO or device, never another user's file. */
async function openLog(file: string, flags: number): Promise<fsp.FileHandle | null> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, flags | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, 0o600);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' && !(flags & fsc.O_CREAT)) return null;
    if (code === 'ELOOP') throw new CliError(`${file} is a symlink: refusing to use it as the history log`);
    throw new CliError(`Cannot open the history log ${file}: ${code ?? String(err)}`, { cause: err });
  }
  const st = await fh.stat();
  if (!st.isFile() || st.nlink !== 1 || (st.uid !== uid() && st.uid !== 0)) {
    await fh.close();
    throw new CliError(
      `${file} is not a history log of ours (a ${st.isFile() ? 'file of another user or with other links' : 'special file'}): move it away`,
    );
  }
  return fh;
}

/**
 * Appends one entry. Each entry is one write() on an O_APPEND descriptor, so concurrent writers (the CLI and the
 * web server) never interleave. Past ROTATE_AT the log becomes HISTORY_OLD_FILE (replacing the older one): the log
 * stays bounded, and a writer that still holds the old descriptor writes into the old file, never losing a line.
 */
export async function appendHistory(root: string, entry: HistoryEntry): Promise<void> {
  const { backupsDir } = storePaths(root);
  await ensureDir(backupsDir, 0o700);
  const file = path.join(backupsDir, HISTORY_FILE);
  const fh = await openLog(file, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT);
  if (!fh) return;
  try {
    const clean: HistoryEntry = {
      time: entry.time,
      origin: entry.origin,
      command: entry.command,
      result: entry.result,
      exitCode: entry.exitCode,
      message: oneLine(entry.message),
      ...(entry.id !== undefined ? { id: entry.id } : {}),
    };
    await fh.write(JSON.stringify(clean) + '\n');
    await fh.sync();
    const { size } = await fh.stat();
    if (size > ROTATE_AT) await fsp.rename(file, path.join(backupsDir, HISTORY_OLD_FILE));
  } finally {
    await fh.close();
  }
}

/** The complete lines of the last MAX_READ bytes of a log file. */
async function readTail(file: string): Promise<string[]> {
  const fh = await openLog(file, fsc.O_RDONLY);
  if (!fh) return [];
  try {
    const { size } = await fh.stat();
    const length = Math.min(size, MAX_READ);
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, size - length + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    const lines = buf.subarray(0, got).toString('utf8').split('\n');
    // a cut first line (we started mid-file) and the empty last one are not entries
    if (length < size) lines.shift();
    return lines.filter((l) => l.length > 0);
  } finally {
    await fh.close();
  }
}

/** Every entry, oldest first. A store without var/backups has no history. */
export async function readHistory(root: string): Promise<ReadHistoryResult> {
  const { backupsDir } = storePaths(root);
  const st = await fsp.lstat(backupsDir).catch(() => null);
  if (!st) return { entries: [], skipped: 0 };
  await ensureDir(backupsDir, 0o700);
  const entries: HistoryEntry[] = [];
  let skipped = 0;
  for (const name of [HISTORY_OLD_FILE, HISTORY_FILE]) {
    for (const line of await readTail(path.join(backupsDir, name))) {
      let data: unknown;
      try {
        data = JSON.parse(line);
      } catch {
        skipped++;
        continue;
      }
      const e = validateEntry(data);
      if (e) entries.push(e);
      else skipped++;
    }
  }
  return { entries, skipped };
}
