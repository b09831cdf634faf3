/**
 * `backups:diff`, the database side (read-only): the live database against the table hashes the snapshot's
 * manifest recorded (db/table-hash.ts), compared exactly as a selective rollback compares it (db/delta.ts, one
 * consistent snapshot): tables whose schema or rows differ, with live and backup row counts, tables missing or
 * extra live, and views, triggers, routines and events that are missing, extra or changed.
 */
import path from 'node:path';
import { resolveDbConfig, type DbFlags } from '../db/config.js';
import { compareLiveDatabase, type DefinitionChange, type TableState } from '../db/delta.js';
import { parseContentHashes } from '../db/table-hash.js';
import { CliError } from '../errors.js';
import { noEvents, type EventSink } from '../events.js';
import type { SnapshotInfo } from '../store/snapshot-list.js';

export interface DbDiffTable {
  name: string;
  change: Exclude<TableState, 'equal'>;
  backupRows: number;
  liveRows?: number;
}

export interface DbDiff {
  part: 'db';
  file: string;
  /** false: the backup has no table hashes (older, Magento's, mariadb-dump's): nothing could be compared */
  compared: boolean;
  /** tables a rollback loads (every one but the equal ones), by name */
  tables: DbDiffTable[];
  /** tables of the backup equal live (a rollback keeps them) */
  equal: number;
  /** live tables the backup does not have */
  extraTables: string[];
  definitions: DefinitionChange[];
}

/** The live database against the snapshot's database backup (which it must have). */
export async function diffSnapshotDatabase(o: {
  root: string;
  snapshot: SnapshotInfo;
  db: { flags: DbFlags; env: NodeJS.ProcessEnv };
  signal?: AbortSignal;
  onEvent?: EventSink;
}): Promise<DbDiff> {
  const emit = o.onEvent ?? noEvents;
  const file = o.snapshot.partFiles.db;
  if (!file) throw new CliError(`Snapshot ${o.snapshot.id} has no database backup`);
  const part = o.snapshot.manifest?.parts.find((p) => p.part === 'db' && p.file === path.basename(file));
  const hashes = part ? parseContentHashes(part.content) : null;
  const result: DbDiff = {
    part: 'db',
    file,
    compared: hashes !== null,
    tables: [],
    equal: 0,
    extraTables: [],
    definitions: [],
  };
  if (!hashes) return result;
  const config = await resolveDbConfig({
    root: o.root,
    flags: o.db.flags,
    env: o.db.env,
    onWarning: (w) => emit({ type: 'warning', ...w }),
  });
  const cmp = await compareLiveDatabase({
    config,
    backup: hashes,
    counts: true,
    ...(o.signal ? { signal: o.signal } : {}),
  });
  for (const t of cmp.tables) {
    if (t.state === 'equal') {
      result.equal++;
      continue;
    }
    result.tables.push({
      name: t.name,
      change: t.state,
      backupRows: t.backupRows,
      ...(t.liveRows !== undefined ? { liveRows: t.liveRows } : {}),
    });
  }
  result.extraTables = cmp.extraTables;
  result.definitions = cmp.definitions;
  return result;
}

const WHY: Record<DbDiffTable['change'], string> = {
  rows: 'rows differ',
  schema: 'schema differs',
  missing: 'missing live',
  unhashed: 'no key or row hash: always restored',
};

/** Plain text: the counts, then one line per table ("R", "S", "-", "?") and per definition ("+", "-", "M"). */
export function formatDbDiff(d: DbDiff): string {
  if (!d.compared) {
    return `db since ${d.file}: not compared (the backup has no table hashes: a rollback restores every table)`;
  }
  const n = (c: DbDiffTable['change']): number => d.tables.filter((t) => t.change === c).length;
  const lines = [
    `db since ${d.file}: ${n('rows')} with other rows, ${n('schema')} with another schema, ${n('missing')} missing, ${d.extraTables.length} extra, ${n('unhashed')} always restored (${d.tables.length} table${d.tables.length === 1 ? '' : 's'} a rollback would restore, ${d.equal} equal); ${d.definitions.length} view/trigger/routine/event change${d.definitions.length === 1 ? '' : 's'}`,
  ];
  const mark: Record<DbDiffTable['change'], string> = { rows: 'M', schema: 'S', missing: '-', unhashed: '?' };
  for (const t of d.tables) {
    const counts = `backup ${t.backupRows} rows${t.liveRows !== undefined ? `, live ${t.liveRows}` : ''}`;
    lines.push(`  ${mark[t.change]} table ${t.name}: ${WHY[t.change]} (${counts})`);
  }
  for (const t of d.extraTables) lines.push(`  + table ${t}: not in the backup (kept by a rollback)`);
  const defMark = { missing: '-', extra: '+', changed: 'M', unreadable: '?' } as const;
  const defWhy = {
    missing: 'missing',
    extra: 'extra',
    changed: 'changed',
    unreadable:
      'body hidden from this database user (not its definer): not compared, a rollback creates it again',
  } as const;
  for (const x of d.definitions)
    lines.push(`  ${defMark[x.change]} ${x.object} ${x.name}: ${defWhy[x.change]}`);
  return lines.join('\n');
}
