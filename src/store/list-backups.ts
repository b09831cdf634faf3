import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { parseBackupName, type BackupKind } from './backup-name.js';
import { RUN_MARKER_SUFFIX } from './manifest.js';
import { assertMagentoRoot } from './paths.js';

export interface BackupFile {
  name: string;
  path: string;
  kind: Exclude<BackupKind, 'manifest'>;
  /** the type word of the name (filesystem, filesystem_code, db, ...) */
  type: string;
  timestamp: number;
  /** ISO time of the run, from the timestamp in the name */
  created: string;
  size: number;
  compressed: boolean;
  label?: string;
  /**
   * the file belongs to a magebackup run that has not completed (its `<ts>_manifest.json.running` marker is there
   * and its manifest is not): still being written, or left by a failed or killed run. Never offered for rollback.
   */
  incomplete: boolean;
}

const KIND_ORDER: Record<string, number> = { code: 0, media: 1, db: 2 };

/**
 * Backup files in <root>/var/backups (Magento 2.0–2.4 names and ours), newest first. Dot files, manifests,
 * partial files and anything that is not a backup name are left out. A missing directory is an empty list.
 */
export async function listBackups(
  root: string,
): Promise<{ dir: string; exists: boolean; backups: BackupFile[] }> {
  const dir = (await assertMagentoRoot(root)).backupsDir;
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { dir, exists: false, backups: [] };
    throw err;
  }
  // A run marker without a manifest: that run's parts are not backups (yet, or ever).
  const incomplete = new Set<number>();
  for (const name of names) {
    if (!name.endsWith(RUN_MARKER_SUFFIX)) continue;
    const p = parseBackupName(name.slice(0, -RUN_MARKER_SUFFIX.length));
    if (p?.kind === 'manifest' && !names.includes(p.name)) incomplete.add(p.timestamp);
  }
  const backups: BackupFile[] = [];
  await Promise.all(
    names.map(async (name) => {
      if (name.startsWith('.')) return;
      const parsed = parseBackupName(name);
      if (!parsed || parsed.kind === 'manifest') return;
      const file = path.join(dir, name);
      const st = await fsp.stat(file).catch(() => null);
      if (!st?.isFile()) return;
      backups.push({
        name,
        path: file,
        kind: parsed.kind,
        type: parsed.type,
        timestamp: parsed.timestamp,
        created: new Date(parsed.timestamp * 1000).toISOString(),
        size: st.size,
        compressed: parsed.compressed,
        incomplete: incomplete.has(parsed.timestamp),
        ...(parsed.label !== undefined ? { label: parsed.label } : {}),
      });
    }),
  );
  backups.sort(
    (a, b) =>
      b.timestamp - a.timestamp ||
      (KIND_ORDER[a.kind] ?? 9) - (KIND_ORDER[b.kind] ?? 9) ||
      a.name.localeCompare(b.name),
  );
  return { dir, exists: true, backups };
}
