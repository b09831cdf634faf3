import { promises as fsp } from 'node:fs';
import { CliError, errnoCode } from '../errors.js';
import { formatBytesPlain } from './units.js';

export async function freeBytes(dir: string): Promise<number> {
  const st = await fsp.statfs(dir);
  return st.bavail * st.bsize;
}

/** Fail before writing when the backup directory clearly cannot hold what is about to be written. */
export async function ensureFreeSpace(dir: string, needed: number, what: string): Promise<void> {
  const free = await freeBytes(dir);
  if (free < needed) {
    throw new CliError(
      `Not enough free disk space in ${dir} for the ${what}: about ${formatBytesPlain(needed)} needed, ` +
        `${formatBytesPlain(free)} free`,
    );
  }
}

/** ENOSPC half-way through is reported as one clear line naming the file. */
export function mapWriteError(err: unknown, file: string): unknown {
  const code = errnoCode(err);
  if (code === 'ENOSPC') return new CliError(`Disk full while writing ${file}`, { cause: err });
  if (code === 'EDQUOT') return new CliError(`Disk quota exceeded while writing ${file}`, { cause: err });
  return err;
}
