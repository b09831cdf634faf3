/**
 * Which backup files a rollback uses: the names given on the command line resolved to files of the right kind in
 * var/backups (never a file of an incomplete run), and the per-table content hashes a dump's manifest records.
 * Read-only; the errors name the option a file was given with.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseContentHashes, type DbContentHashes } from '../db/table-hash.js';
import { CliError, UsageError, errnoCode } from '../errors.js';
import { parseBackupName, type BackupKind } from '../store/backup-name.js';
import type { StorePaths } from '../store/paths.js';
import {
  isIncompleteRun,
  manifestFileName,
  readManifest,
  runMarkerName,
  type ManifestPart,
} from '../store/manifest.js';

const OPTION_OF: Record<Exclude<BackupKind, 'manifest'>, string> = {
  code: '-c/--code-file',
  media: '-m/--media-file',
  db: '-d/--db-file',
};
const KIND_HINT: Record<Exclude<BackupKind, 'manifest'>, string> = {
  code: 'a code backup (<ts>_filesystem.tgz or <ts>_filesystem_code.tgz)',
  media: 'a media backup (<ts>_filesystem_media.tgz)',
  db: 'a database backup (<ts>_db.sql or <ts>_db.sql.gz)',
};

/** The file must exist in var/backups and be of the kind its option asks for (Magento restored the wrong one). */
export async function resolveBackupFile(
  paths: StorePaths,
  name: string,
  kind: Exclude<BackupKind, 'manifest'>,
): Promise<string> {
  const option = OPTION_OF[kind];
  if (name === '' || name !== path.basename(name)) {
    throw new UsageError(
      `${option}: give a file name from var/backups (as info:backups:list shows it), not a path: ${name}`,
    );
  }
  const parsed = parseBackupName(name);
  if (!parsed || parsed.kind !== kind) {
    const is = parsed ? `a ${parsed.kind} backup` : 'not a backup file name';
    throw new UsageError(`${option} expects ${KIND_HINT[kind]}, but ${name} is ${is}`);
  }
  const file = path.join(paths.backupsDir, name);
  const st = await fsp.stat(file).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  });
  if (!st) throw new CliError(`Backup file ${file} not found (see info:backups:list)`);
  if (!st.isFile()) throw new CliError(`Backup file ${file} is not a regular file`);
  if (await isIncompleteRun(paths.backupsDir, parsed.timestamp)) {
    throw new CliError(
      `Backup file ${file} belongs to a run that did not complete (${runMarkerName(parsed.timestamp)} and no manifest): it is never restored`,
    );
  }
  return file;
}

/** The manifest's table hashes for this dump, or null (no manifest, not this file, no or unknown hashes). */
export async function contentHashesOf(
  backupsDir: string,
  dumpFile: string,
): Promise<{ hashes: DbContentHashes; part: ManifestPart } | null> {
  const parsed = parseBackupName(path.basename(dumpFile));
  if (!parsed) return null;
  const manifest = await readManifest(
    path.join(backupsDir, manifestFileName(parsed.timestamp)),
    parsed.timestamp,
  ).catch(() => null);
  const part = manifest?.parts.find((p) => p.part === 'db' && p.file === path.basename(dumpFile));
  const hashes = part ? parseContentHashes(part.content) : null;
  return part && hashes ? { hashes, part } : null;
}
