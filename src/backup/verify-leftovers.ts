/**
 * What `backups:verify --deep` creates for a while — extraction directories and throwaway databases holding a
 * full copy of the store's data — is registered before it is created, in a private directory of var/backups
 * named after the run (`.magebackup-verify-<pid>-<random>/run.json`). A run removes its own on every way it
 * ends; what a killed one (kill -9, power loss) left is removed by the next magebackup command of the store.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DbFlags } from '../db/config.js';
import { WarningCode, type EventSink } from '../events.js';
import { isPidAlive } from '../fs/lock.js';

export const VERIFY_DIR_PREFIX = '.magebackup-verify-';
export const VERIFY_DB_PREFIX = 'magebackup_verify_';
const RUN_FILE = 'run.json';
const DIR_RE = /^\.magebackup-verify-(\d+)-[0-9a-f]+$/;
const DB_RE = /^magebackup_verify_\d+_[0-9a-f]+$/;

interface RunRecord {
  pid: number;
  host: string;
  started: string;
  databases: string[];
}

export interface VerifyRun {
  /** the run's private directory (0700); extraction directories go inside it */
  readonly dir: string;
  /** a database name for this run, registered before the caller creates it */
  newDatabase(): Promise<string>;
  /** the database was dropped */
  databaseDropped(name: string): Promise<void>;
  /** remove the directory; what could not be removed is returned (each named) */
  close(): Promise<string[]>;
}

async function writeRecord(dir: string, r: RunRecord): Promise<void> {
  const tmp = path.join(dir, `${RUN_FILE}.tmp`);
  await fsp.writeFile(tmp, JSON.stringify(r) + '\n', { mode: 0o600 });
  await fsp.rename(tmp, path.join(dir, RUN_FILE));
}

export async function openVerifyRun(backupsDir: string): Promise<VerifyRun> {
  const suffix = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const dir = path.join(backupsDir, `${VERIFY_DIR_PREFIX}${suffix}`);
  await fsp.mkdir(dir, { mode: 0o700 });
  const record: RunRecord = {
    pid: process.pid,
    host: os.hostname(),
    started: new Date().toISOString(),
    databases: [],
  };
  await writeRecord(dir, record);
  return {
    dir,
    async newDatabase() {
      const name = `${VERIFY_DB_PREFIX}${process.pid}_${randomBytes(4).toString('hex')}`;
      record.databases.push(name);
      await writeRecord(dir, record);
      return name;
    },
    async databaseDropped(name) {
      record.databases = record.databases.filter((d) => d !== name);
      await writeRecord(dir, record);
    },
    async close() {
      if (record.databases.length > 0) return record.databases.map((d) => `database ${d}`);
      try {
        await fsp.rm(dir, { recursive: true, force: true });
        return [];
      } catch {
        return [dir];
      }
    },
  };
}

async function readRecord(dir: string): Promise<RunRecord | null> {
  try {
    const r = JSON.parse(await fsp.readFile(path.join(dir, RUN_FILE), 'utf8')) as Partial<RunRecord>;
    if (typeof r.pid !== 'number' || typeof r.host !== 'string' || !Array.isArray(r.databases)) return null;
    return {
      pid: r.pid,
      host: r.host,
      started: String(r.started),
      databases: r.databases.filter((d): d is string => typeof d === 'string' && DB_RE.test(d)),
    };
  } catch {
    return null;
  }
}

/** The databases and directories that dead `backups:verify --deep` runs left in `backupsDir`. */
export async function findVerifyLeftovers(
  backupsDir: string,
): Promise<Array<{ dir: string; pid: number; databases: string[] }>> {
  let names: string[];
  try {
    names = await fsp.readdir(backupsDir);
  } catch {
    return [];
  }
  const found: Array<{ dir: string; pid: number; databases: string[] }> = [];
  for (const name of names) {
    const m = DIR_RE.exec(name);
    if (!m) continue;
    const dir = path.join(backupsDir, name);
    const st = await fsp.lstat(dir).catch(() => null);
    if (!st?.isDirectory()) continue;
    const record = await readRecord(dir);
    const pid = record?.pid ?? Number(m[1]);
    if (record && record.host !== os.hostname()) continue;
    if (pid === process.pid || isPidAlive(pid)) continue;
    found.push({ dir, pid, databases: record?.databases ?? [] });
  }
  return found;
}

/**
 * Removes what dead verify runs left: their databases through `dropDatabase` (when the caller can reach the
 * server; without it, or if a drop fails, the directory and its record stay and a warning says what to do), then
 * their directories. Never throws: a leftover is reported, it never stops the command that found it.
 */
export async function removeVerifyLeftovers(o: {
  backupsDir: string;
  dropDatabase?: ((name: string) => Promise<void>) | undefined;
  onEvent: EventSink;
}): Promise<string[]> {
  const removed: string[] = [];
  for (const l of await findVerifyLeftovers(o.backupsDir)) {
    const kept: string[] = [];
    for (const db of l.databases) {
      try {
        if (!o.dropDatabase) throw new Error('no database connection');
        await o.dropDatabase(db);
        removed.push(`database ${db}`);
      } catch (err) {
        kept.push(db);
        o.onEvent({
          type: 'warning',
          code: WarningCode.VERIFY_LEFTOVER,
          message: `Database ${db}, left by a killed backups:verify --deep (pid ${l.pid}), could not be dropped (${err instanceof Error ? err.message : String(err)}): run backups:verify --deep again as the user that ran it (it removes it), or DROP DATABASE \`${db}\``,
        });
      }
    }
    try {
      if (kept.length > 0) {
        // Keep the record of what is still on the server; the extracted files can go.
        for (const e of await fsp.readdir(l.dir)) {
          if (e !== RUN_FILE) await fsp.rm(path.join(l.dir, e), { recursive: true, force: true });
        }
        await writeRecord(l.dir, { pid: l.pid, host: os.hostname(), started: '', databases: kept });
      } else {
        await fsp.rm(l.dir, { recursive: true, force: true });
        removed.push(l.dir);
      }
    } catch (err) {
      o.onEvent({
        type: 'warning',
        code: WarningCode.VERIFY_LEFTOVER,
        message: `${l.dir}, left by a killed backups:verify --deep (pid ${l.pid}), could not be removed: ${err instanceof Error ? err.message : String(err)}`,
      });
    }
  }
  for (const r of removed)
    o.onEvent({ type: 'info', message: `Removed ${r}, left by a killed backups:verify --deep` });
  return removed;
}

/**
 * Run by every command before it starts: removes what killed `backups:verify --deep` runs left in the store's
 * var/backups (and their databases, through the store's connection settings: env.php, MAGEBACKUP_DB_*, and the
 * command's --db-* flags). Never fails the command: what cannot be removed is a warning.
 */
export async function sweepVerifyLeftovers(o: {
  root: string;
  flags?: DbFlags;
  env: NodeJS.ProcessEnv;
  onEvent: EventSink;
}): Promise<void> {
  try {
    const backupsDir = path.join(path.resolve(o.root), 'var', 'backups');
    const found = await findVerifyLeftovers(backupsDir);
    if (found.length === 0) return;
    let dropDatabase: ((name: string) => Promise<void>) | undefined;
    if (found.some((f) => f.databases.length > 0)) {
      // the database code (mysql2, the env.php parser) only when there is a database to drop: every command
      // runs this sweep, and most find nothing
      const [{ resolveDbConfig }, { openConnection }] = await Promise.all([
        import('../db/config.js'),
        import('../db/connect.js'),
      ]);
      const config = await resolveDbConfig({ root: o.root, flags: o.flags ?? {}, env: o.env }).catch(
        () => undefined,
      );
      if (config) {
        dropDatabase = async (name) => {
          const conn = await openConnection(config, { database: null, connectTimeout: 5000 });
          try {
            await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
          } finally {
            await conn.end().catch(() => conn.destroy());
          }
        };
      }
    }
    await removeVerifyLeftovers({ backupsDir, dropDatabase, onEvent: o.onEvent });
  } catch {
    // A sweep is housekeeping: the command itself reports any real problem with the store.
  }
}
