/**
 * The private state directory `var/backups/.magebackup-state` (0700, checked like var/backups itself): journals
 * of operations in progress live here and nowhere else. `var/` and `pub/media` belong to the web server user, so
 * nothing found there is ever trusted as state. Each journal carries an HMAC-SHA256 made with a key kept here
 * (`key`, 0600, created once): a journal copied from another store, or written by anything but magebackup, does
 * not verify.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { CliError, errnoCode } from '../errors.js';
import { ensureDir, fsyncDir, mapCreateError, openExclusive } from '../fs/atomic.js';
import type { StorePaths } from './paths.js';

export const STATE_DIR_NAME = '.magebackup-state';
const KEY_FILE = 'key';
const KEY_BYTES = 32;

export interface StateDir {
  dir: string;
  key: Buffer;
}

export function stateDirPath(paths: StorePaths): string {
  return path.join(paths.backupsDir, STATE_DIR_NAME);
}

/** Opens (creating when missing) the checked state directory and its key. Call under the store's lock. */
export async function openStateDir(paths: StorePaths): Promise<StateDir> {
  await ensureDir(paths.backupsDir, 0o700);
  const dir = stateDirPath(paths);
  await ensureDir(dir, 0o700);
  return { dir, key: await readOrCreateKey(path.join(dir, KEY_FILE)) };
}

/** The state directory if it exists (for commands that only look); never creates anything. */
export async function stateDirExists(paths: StorePaths): Promise<boolean> {
  const st = await fsp.lstat(stateDirPath(paths)).catch(() => null);
  return st?.isDirectory() ?? false;
}

async function readOrCreateKey(file: string): Promise<Buffer> {
  for (;;) {
    try {
      const fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        const st = await fh.stat();
        const me = process.getuid?.() ?? 0;
        if (!st.isFile() || st.uid !== me || (st.mode & 0o077) !== 0 || st.size !== KEY_BYTES) {
          throw new CliError(
            `${file} is not magebackup's journal key (a ${KEY_BYTES}-byte file of uid ${me}, mode 0600): move it away after checking the store`,
          );
        }
        return await fh.readFile();
      } finally {
        await fh.close();
      }
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') {
        if (err instanceof CliError) throw err;
        throw new CliError(`Cannot read the journal key ${file}: ${errnoCode(err) ?? String(err)}`, {
          cause: err,
        });
      }
    }
    // Created complete or not at all: written to a private temp name, then linked into place.
    const tmp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
    try {
      const fh = await openExclusive(tmp, 0o600);
      try {
        await fh.writeFile(randomBytes(KEY_BYTES));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.link(tmp, file).catch((err: unknown) => {
        if (errnoCode(err) !== 'EEXIST') throw err;
      });
    } catch (err) {
      throw mapCreateError(err, file);
    } finally {
      await fsp.rm(tmp, { force: true });
    }
    await fsyncDir(path.dirname(file));
  }
}

function mac(key: Buffer, body: string): string {
  return createHmac('sha256', key).update(body).digest('hex');
}

/** Writes `<dir>/<name>` complete or not at all (temp, fsync, rename, fsync dir), with its HMAC. */
export async function writeSigned(state: StateDir, name: string, data: unknown): Promise<void> {
  const body = JSON.stringify(data);
  const file = path.join(state.dir, name);
  const tmp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  try {
    const fh = await openExclusive(tmp, 0o600);
    try {
      // the body once, as it was signed (a sparse rollback's journal holds ~116k directory fixes: 12 MB of JSON,
      // which the former `{"body": "<escaped>"}` copied twice more at each of a rollback's saves)
      for (const piece of [`${SIGNED_HEAD}${mac(state.key, body)}${SIGNED_BODY}`, body, SIGNED_TAIL]) {
        const { bytesWritten } = await fh.write(piece);
        if (bytesWritten !== Buffer.byteLength(piece)) throw new Error(`short write to ${tmp}`);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw mapCreateError(err, file);
  }
  await fsyncDir(state.dir);
}

/** Reads a signed file; anything not signed with this store's key is refused with one line naming it. */
export async function readSigned(state: StateDir, name: string): Promise<unknown> {
  const file = path.join(state.dir, name);
  let text: string;
  const fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW).catch((err: unknown) => {
    throw new CliError(`Cannot read the journal ${file}: ${errnoCode(err) ?? String(err)}`, { cause: err });
  });
  try {
    text = await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
  const untrusted = (): never => {
    throw new CliError(
      `Untrusted journal ${file}: not written by magebackup for this store; nothing was done with it (move it away after checking the store)`,
    );
  };
  const signed = splitSigned(text);
  if (!signed) return untrusted();
  const want = Buffer.from(mac(state.key, signed.body), 'hex');
  const got = Buffer.from(signed.hmac, 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return untrusted();
  try {
    return JSON.parse(signed.body) as unknown;
  } catch {
    return untrusted(); // signed but not JSON: not ours either
  }
}

/**
 * A signed file: `{"hmac":"<64 hex>","body":<the JSON signed, byte for byte>}` (one line), or the former
 * `{"body":"<the JSON as a string>","hmac":"<hex>"}` of a journal an earlier version left behind.
 */
const SIGNED_HEAD = '{"hmac":"';
const SIGNED_BODY = '","body":';
const SIGNED_TAIL = '}\n';
const HMAC_HEX = 64;

function splitSigned(text: string): { hmac: string; body: string } | null {
  if (text.startsWith(SIGNED_HEAD)) {
    const at = SIGNED_HEAD.length + HMAC_HEX;
    if (!text.endsWith(SIGNED_TAIL) || text.slice(at, at + SIGNED_BODY.length) !== SIGNED_BODY) return null;
    return {
      hmac: text.slice(SIGNED_HEAD.length, at),
      body: text.slice(at + SIGNED_BODY.length, -SIGNED_TAIL.length),
    };
  }
  let outer: { body?: unknown; hmac?: unknown };
  try {
    outer = JSON.parse(text) as { body?: unknown; hmac?: unknown };
  } catch {
    return null;
  }
  if (typeof outer.body !== 'string' || typeof outer.hmac !== 'string') return null;
  return { hmac: outer.hmac, body: outer.body };
}

/**
 * Removes a signed file. When no journal is left, the key and the directory go too (a key only has to outlive
 * the journals signed with it): var/backups holds nothing of ours between operations.
 */
export async function removeSigned(state: StateDir, name: string): Promise<void> {
  await fsp.rm(path.join(state.dir, name), { force: true });
  const left = await fsp.readdir(state.dir).catch(() => null);
  if (!left) return; // already tidied away
  if (left.every((n) => n === KEY_FILE)) {
    await fsp.rm(path.join(state.dir, KEY_FILE), { force: true });
    await fsp.rmdir(state.dir).catch(() => {});
    await fsyncDir(path.dirname(state.dir));
    return;
  }
  await fsyncDir(state.dir);
}

export async function listSigned(state: StateDir, prefix: string): Promise<string[]> {
  return (await fsp.readdir(state.dir)).filter((n) => n.startsWith(prefix) && n.endsWith('.json')).sort();
}
