/**
 * Retention (`backups:prune`, `--prune`): which snapshots to keep, and removing the rest under the store's lock.
 *
 * Rules (a snapshot kept by any rule is kept; days and weeks are UTC calendar days and ISO weeks; the count rules
 * apply to each part — code, media, database — on its own):
 *   keepWithin S  — every snapshot made in the last S seconds (default policy: 14 days)
 *   keepLast N    — the N newest backups of each part
 *   keepDaily N   — the newest backup of each part for each of the N most recent days that have one
 *   keepWeekly N  — the newest backup of each part for each of the N most recent weeks that have one
 * The rules count restorable snapshots (complete ones and Magento's manifest-less ones). A corrupt snapshot is
 * kept only while keepWithin covers it. An incomplete one (a crashed or failed run) is always removed, with any
 * `.partial` file. The newest complete backup of each part (and the newest restorable one) is never removed.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { UsageError, throwIfAborted } from '../errors.js';
import { noEvents, type EventSink, type Part } from '../events.js';

const PARTS: readonly Part[] = ['code', 'media', 'db'];
import { PARTIAL_SUFFIX, fsyncDir } from '../fs/atomic.js';
import { acquireStoreLock } from '../store/lock.js';
import { listSnapshots, type SnapshotInfo, type SnapshotStatus } from '../store/snapshot-list.js';
import { recoverStore } from '../restore/recover.js';
import { assertMagentoRoot, type StorePaths } from '../store/paths.js';

export interface RetentionPolicy {
  /** seconds */
  keepWithin?: number;
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
}

export const DEFAULT_KEEP_WITHIN = 14 * 86400;
export const DEFAULT_POLICY: Readonly<RetentionPolicy> = Object.freeze({ keepWithin: DEFAULT_KEEP_WITHIN });

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };

/**
 * "14d", "36h", "2w", "1d12h", "90m", "3600s" → seconds (the syntax of --keep-within and the web's keepWithin);
 * anything else throws a RangeError whose message says what is expected.
 */
export function parseDuration(value: string): number {
  const t = value.trim();
  if (!/^(\d+[smhdw])+$/.test(t)) throw new RangeError('Expected a duration such as 14d, 36h, 2w or 1d12h.');
  let seconds = 0;
  for (const m of t.matchAll(/(\d+)([smhdw])/g)) seconds += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
  if (!Number.isSafeInteger(seconds)) throw new RangeError('The duration is too long.');
  return seconds;
}

export function formatDuration(seconds: number): string {
  for (const [u, n] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (seconds >= n && seconds % n === 0) return `${seconds / n}${u}`;
  }
  return `${seconds}s`;
}

/** A policy that keeps nothing: it would remove every backup but the newest. */
export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return !(p.keepWithin ?? 0) && !(p.keepLast ?? 0) && !(p.keepDaily ?? 0) && !(p.keepWeekly ?? 0);
}

export const EMPTY_POLICY_MESSAGE = 'Empty retention policy: it would remove every backup but the newest';

/** Throws a UsageError for a negative or fractional count, or a policy that keeps nothing. */
export function assertPolicy(p: RetentionPolicy): void {
  for (const [k, v] of Object.entries(p)) {
    if (v !== undefined && (!Number.isSafeInteger(v) || (v as number) < 0)) {
      throw new UsageError(`Invalid retention policy: ${k} must be a whole number >= 0`);
    }
  }
  if (isEmptyPolicy(p)) throw new UsageError(EMPTY_POLICY_MESSAGE);
}

export function describePolicy(p: RetentionPolicy): string {
  const parts: string[] = [];
  if (p.keepWithin) parts.push(`within ${formatDuration(p.keepWithin)}`);
  if (p.keepLast) parts.push(`last ${p.keepLast}`);
  if (p.keepDaily) parts.push(`${p.keepDaily} daily`);
  if (p.keepWeekly) parts.push(`${p.keepWeekly} weekly`);
  return `keep ${parts.join(', ')}`;
}

export interface PruneDecision {
  id: string;
  timestamp: number;
  status: SnapshotStatus;
  keep: boolean;
  /** why kept (rules that keep it) or removed */
  reasons: string[];
  size: number;
  files: string[];
}

function dayOf(ts: number): string {
  return new Date(ts * 1000).toISOString().slice(0, 10);
}

/** ISO 8601 week (UTC) as "2026-W48". */
export function isoWeekOf(ts: number): string {
  const d = new Date(ts * 1000);
  const day = (d.getUTCDay() + 6) % 7; // Monday 0
  const thursday = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - day + 3));
  const yearStart = Date.UTC(thursday.getUTCFullYear(), 0, 1);
  const week = 1 + Math.floor((thursday.getTime() - yearStart) / (7 * 86400_000));
  return `${thursday.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

/**
 * Pure: decide for every snapshot (newest first, as listSnapshots returns them). The count rules apply per part:
 * `keepLast: 2` keeps the 2 newest code backups, the 2 newest media backups and the 2 newest database backups,
 * wherever they are (two database-only runs never push out the only code and media backups); a snapshot kept
 * for any of its parts is kept whole. The newest complete (and the newest restorable) backup of each part is
 * never removed.
 */
export function planPrune(
  snapshots: readonly SnapshotInfo[],
  policy: RetentionPolicy,
  nowMs: number,
): PruneDecision[] {
  assertPolicy(policy);
  const sorted = [...snapshots].sort((a, b) => b.timestamp - a.timestamp);
  const reasons = new Map<SnapshotInfo, string[]>(sorted.map((s) => [s, []]));
  const keep = (s: SnapshotInfo, why: string) => {
    const r = reasons.get(s)!;
    if (!r.includes(why)) r.push(why);
  };
  const restorable = sorted.filter((s) => s.status === 'complete' || s.status === 'legacy');
  const nowS = Math.floor(nowMs / 1000);

  if (policy.keepWithin) {
    for (const s of sorted) {
      if (s.status !== 'incomplete' && s.timestamp >= nowS - policy.keepWithin)
        keep(s, `within ${formatDuration(policy.keepWithin)}`);
    }
  }
  for (const part of PARTS) {
    const withPart = restorable.filter((s) => s.parts.includes(part));
    if (policy.keepLast) for (const s of withPart.slice(0, policy.keepLast)) keep(s, `last ${part}`);
    const buckets = (n: number | undefined, bucketOf: (ts: number) => string, word: string) => {
      if (!n) return;
      const seen = new Set<string>();
      for (const s of withPart) {
        const b = bucketOf(s.timestamp);
        if (seen.has(b)) continue;
        if (seen.size >= n) break;
        seen.add(b);
        keep(s, `${word} ${part} ${b}`);
      }
    };
    buckets(policy.keepDaily, dayOf, 'daily');
    buckets(policy.keepWeekly, isoWeekOf, 'weekly');
    const newestComplete = sorted.find((s) => s.status === 'complete' && s.parts.includes(part));
    if (newestComplete) keep(newestComplete, `newest complete ${part}`);
    const newestRestorable = withPart[0];
    if (newestRestorable && newestRestorable !== newestComplete)
      keep(newestRestorable, `newest restorable ${part}`);
  }

  return sorted.map((s) => {
    const why = reasons.get(s)!;
    const kept = why.length > 0;
    const removeWhy =
      s.status === 'incomplete'
        ? 'incomplete: left by a crashed or failed run'
        : s.status === 'corrupt'
          ? 'corrupt and outside the policy'
          : 'outside the policy';
    return {
      id: s.id,
      timestamp: s.timestamp,
      status: s.status,
      keep: kept,
      reasons: kept ? why : [removeWhy],
      size: s.totalSize,
      files: s.files.map((f) => f.name),
    };
  });
}

export interface PruneResult {
  policy: RetentionPolicy;
  dryRun: boolean;
  kept: PruneDecision[];
  removed: PruneDecision[];
  /** `.partial` files removed that belong to no snapshot */
  strayPartials: string[];
  /** bytes removed (or that would be) */
  freed: number;
}

export interface PruneOptions {
  root: string;
  policy: RetentionPolicy;
  dryRun?: boolean;
  /** the clock, in ms (tests inject it) */
  now?: () => number;
  signal?: AbortSignal;
  onEvent?: EventSink;
  command?: string;
}

/** `backups:prune`: takes the store's lock (also for a dry run, so a run in progress is never judged). */
export async function pruneBackups(o: PruneOptions): Promise<PruneResult> {
  assertPolicy(o.policy);
  const onEvent = o.onEvent ?? noEvents;
  const paths = await assertMagentoRoot(o.root);
  const lock = await acquireStoreLock(paths, { command: o.command ?? 'backups:prune', onEvent });
  try {
    await recoverStore({ paths, onEvent });
    return await pruneLocked({
      paths,
      policy: o.policy,
      nowMs: (o.now ?? Date.now)(),
      dryRun: o.dryRun ?? false,
      signal: o.signal,
      onEvent,
    });
  } finally {
    await lock.release();
  }
}

/** The prune itself; the caller holds the store's lock (runBackup's `prune` option runs it under its own). */
export async function pruneLocked(o: {
  paths: StorePaths;
  policy: RetentionPolicy;
  nowMs: number;
  dryRun?: boolean;
  signal?: AbortSignal | undefined;
  onEvent?: EventSink;
}): Promise<PruneResult> {
  const onEvent = o.onEvent ?? noEvents;
  const dryRun = o.dryRun ?? false;
  const { snapshots } = await listSnapshots(o.paths.root, { now: () => o.nowMs });
  const decisions = planPrune(snapshots, o.policy, o.nowMs);
  const kept = decisions.filter((d) => d.keep);
  const removed = decisions.filter((d) => !d.keep);
  const dir = o.paths.backupsDir;

  // .partial files that match no backup name (listSnapshots groups the others with their run).
  const grouped = new Set(snapshots.flatMap((s) => s.files.map((f) => f.name)));
  const strayPartials = (await fsp.readdir(dir).catch(() => [] as string[])).filter(
    (n) => n.endsWith(PARTIAL_SUFFIX) && !grouped.has(n),
  );

  const verb = dryRun ? 'Would remove' : 'Removed';
  for (const d of removed) {
    throwIfAborted(o.signal);
    if (!dryRun)
      await removeSnapshotFiles(
        dir,
        snapshots.find((s) => s.id === d.id)!,
      );
    onEvent({
      type: 'info',
      message: `${verb} snapshot ${d.id} (${d.status}, ${d.reasons.join(', ')}): ${d.files.join(', ')}`,
    });
  }
  for (const name of strayPartials) {
    if (!dryRun) await fsp.rm(path.join(dir, name), { force: true });
    onEvent({ type: 'info', message: `${verb} ${name}, left by an interrupted run` });
  }
  if (!dryRun && (removed.length > 0 || strayPartials.length > 0)) await fsyncDir(dir);
  return {
    policy: o.policy,
    dryRun,
    kept,
    removed,
    strayPartials,
    freed: removed.reduce((n, d) => n + d.size, 0),
  };
}

/**
 * Parts first, then leftovers, the manifest last: a prune killed half-way leaves a manifest with missing parts
 * (listed as corrupt, removed by the next prune), never parts that look like a manifest-less Magento backup.
 */
async function removeSnapshotFiles(dir: string, s: SnapshotInfo): Promise<void> {
  const rank = (k: string) => (k === 'manifest' ? 2 : k === 'marker' ? 1 : 0);
  const files = [...s.files].sort((a, b) => rank(a.kind) - rank(b.kind));
  for (const f of files) await fsp.rm(path.join(dir, f.name), { force: true });
}
