/**
 * Backup file names. One run uses one unix timestamp for all its parts:
 *   <ts>_filesystem.tgz (code; Magento 2.4 writes <ts>_filesystem_code.tgz), <ts>_filesystem_media.tgz,
 *   <ts>_db.sql (ours may be <ts>_db.sql.gz), <ts>_manifest.json (ours, written last).
 * Magento's admin backups add a name: <ts>_db_<name>.sql, <ts>_snapshot_<name>.tgz, <ts>_nomedia.tgz ...
 */
export type BackupKind = 'code' | 'media' | 'db' | 'manifest';

export interface ParsedBackupName {
  name: string;
  timestamp: number;
  kind: BackupKind;
  /** the type word in the name: filesystem, filesystem_code, filesystem_media, media, db, snapshot, nomedia, manifest */
  type: string;
  /** a user-given label (Magento's named backups), if any */
  label?: string;
  compressed: boolean;
}

const TYPE_KIND: Record<string, BackupKind> = {
  filesystem_media: 'media',
  filesystem_code: 'code',
  filesystem: 'code',
  nomedia: 'code',
  snapshot: 'code',
  media: 'media',
  db: 'db',
  manifest: 'manifest',
};

// Longest type words first, so "filesystem_media" is not read as "filesystem" labelled "media".
const TYPES = Object.keys(TYPE_KIND).sort((a, b) => b.length - a.length);
const NAME_RE = new RegExp(
  `^(\\d{1,12})_(${TYPES.join('|')})(?:_([A-Za-z0-9][A-Za-z0-9._-]*?))?\\.(tgz|tar\\.gz|sql\\.gz|sql|gz|json)$`,
);

const EXT_OK: Record<BackupKind, readonly string[]> = {
  code: ['tgz', 'tar.gz'],
  media: ['tgz', 'tar.gz'],
  db: ['sql', 'sql.gz', 'gz'],
  manifest: ['json'],
};

export function parseBackupName(name: string): ParsedBackupName | null {
  const m = NAME_RE.exec(name);
  if (!m) return null;
  const [, ts, type, label, ext] = m as unknown as [string, string, string, string | undefined, string];
  const kind = TYPE_KIND[type];
  if (!kind || !EXT_OK[kind].includes(ext)) return null;
  const parsed: ParsedBackupName = {
    name,
    timestamp: Number(ts),
    kind,
    type,
    compressed: ext.endsWith('gz'),
  };
  if (label !== undefined) parsed.label = label;
  return parsed;
}

export function backupFileName(
  timestamp: number,
  kind: BackupKind,
  options: { compress?: boolean } = {},
): string {
  switch (kind) {
    case 'code':
      return `${timestamp}_filesystem.tgz`;
    case 'media':
      return `${timestamp}_filesystem_media.tgz`;
    case 'db':
      return options.compress ? `${timestamp}_db.sql.gz` : `${timestamp}_db.sql`;
    case 'manifest':
      return `${timestamp}_manifest.json`;
  }
}

export const KIND_LABEL: Record<BackupKind, string> = {
  code: 'Code',
  media: 'Media',
  db: 'DB',
  manifest: 'Manifest',
};
