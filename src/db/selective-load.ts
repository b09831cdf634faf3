/**
 * A selective database rollback's comparison and load, overlapped (issue 14): the live tables are compared with
 * the backup's hashes (delta.ts) while the dump is checked against its manifest (SHA-256), and each table found to
 * differ starts loading into its shadow table at once, from its own section of the dump (dump-ranges.ts
 * RangeFeed), instead of after the last table was compared. Every table is still compared; the kept ones are known
 * when the comparison ends.
 *
 * The verification rule holds: the load reads the triggers' sections and the tail (the definitions and the
 * footer) only after the comparison ended AND the dump's SHA-256 matched its manifest, so the load ends (and
 * anything can be swapped) only then. A failed comparison or check stops the load; its shadow tables are dropped
 * (prepareDatabaseRestore's own clean-up) and nothing live changed. A kill at any point leaves a journal in phase
 * 'loading' or later, which the next run handles as for any load (restore-recovery.ts).
 *
 * A .sql.gz (one stream, read in file order) and a dump without usable table sections are compared first and
 * loaded after, as before.
 */
import { isGzipFile } from './sql-reader.js';
import { isRestoreFailure } from './restore-errors.js';
import { dumpRanges, planDumpRanges, RangeFeed, type DumpRange } from './dump-ranges.js';
import { compareLiveDatabase, keptTables, type LiveComparison } from './delta.js';
import { prepareDatabaseRestore, type PreparedRestore, type RestoreOptions } from './restore.js';
import type { DbContentHashes } from './table-hash.js';

export interface SelectiveLoadOptions {
  /** the restore's options (the kept tables and ranges are this module's) */
  restore: Omit<RestoreOptions, 'keep' | 'ranges'>;
  hashes: DbContentHashes;
  /** checks the dump against its manifest: a problem (its hashes are then not used), or null */
  check: (signal: AbortSignal) => Promise<string | null>;
  /** the comparison and the check ended (the rest of the load, if any, follows) */
  onCompared?: (delta: LiveComparison) => void;
  /** the sections of a plain .sql do not match the manifest: it is read whole (said by the caller) */
  onSectionsUnused?: (problem: string) => void;
}

export type SelectiveLoad =
  | { delta: LiveComparison; prepared: PreparedRestore }
  /** the dump does not match its manifest: nothing was loaded, the caller restores every table */
  | { problem: string };

/** Compares the live tables and loads those that differ into shadow tables (see the file comment). */
export async function compareAndLoad(o: SelectiveLoadOptions): Promise<SelectiveLoad> {
  const file = o.restore.file;
  const stop = new AbortController();
  const outer = o.restore.signal;
  const onAbort = (): void => stop.abort(outer?.reason);
  if (outer?.aborted) onAbort();
  else outer?.addEventListener('abort', onAbort, { once: true });
  try {
    const plan =
      o.hashes.tail !== undefined && !(await isGzipFile(file).catch(() => true))
        ? await planDumpRanges(file, o.hashes, new Set())
        : null;
    if (plan && 'problem' in plan) o.onSectionsUnused?.(plan.problem);
    if (!plan || 'problem' in plan) return await compareThenLoad(o, stop.signal, plan === null); // null: a .sql.gz, or no sections
    return await overlapped(o, stop, plan.ranges);
  } finally {
    outer?.removeEventListener('abort', onAbort);
    stop.abort(); // a comparison or check still running is abandoned (a check that found a problem)
  }
}

/** Compare, check, then load (a .sql.gz, or no usable sections). */
async function compareThenLoad(
  o: SelectiveLoadOptions,
  signal: AbortSignal,
  /** read only the sections of the tables that differ (a .sql.gz: checked while it is read) */
  sections: boolean,
): Promise<SelectiveLoad> {
  const comparing = compareLiveDatabase({ config: o.restore.config, backup: o.hashes, signal });
  comparing.catch(() => {}); // awaited below, or abandoned when the check fails
  const problem = await o.check(signal);
  if (problem !== null) return { problem };
  const delta = await comparing;
  o.onCompared?.(delta);
  const keep = keptTables(delta);
  const plan =
    sections && keep.length > 0
      ? await planDumpRanges(o.restore.file, o.hashes, new Set(keep.map((k) => k.name)))
      : null;
  const ranges =
    plan && 'ranges' in plan ? { list: plan.ranges, tables: o.hashes.tables.map((t) => t.name) } : undefined;
  const prepared = await prepareDatabaseRestore({ ...o.restore, keep, ...(ranges ? { ranges } : {}) });
  return { delta, prepared };
}

async function overlapped(
  o: SelectiveLoadOptions,
  stop: AbortController,
  all: readonly DumpRange[],
): Promise<SelectiveLoad> {
  const feed = new RangeFeed(stop.signal);
  const head = all[0];
  if (head?.part !== 'head') throw new Error('the ranges of a dump start with its head');
  feed.push(head);
  const sectionOf = new Map(all.filter((r) => r.part === 'table').map((r) => [r.table, r]));
  let delta: LiveComparison | undefined;
  const comparing = compareLiveDatabase({
    config: o.restore.config,
    backup: o.hashes,
    signal: stop.signal,
    onDecided: (t) => {
      const r = sectionOf.get(t.name);
      if (t.state !== 'equal' && r) feed.push(r);
    },
  });
  const checking = o.check(stop.signal);
  // the caller's signal (it also interrupts the commit, later); a failed comparison or check stops the load by
  // failing its feed
  const preparing = prepareDatabaseRestore({
    ...o.restore,
    keep: () => {
      if (!delta) throw new Error('the load ended before the comparison');
      return keptTables(delta);
    },
    ranges: { list: feed, tables: o.hashes.tables.map((t) => t.name) },
  });
  // each is awaited below, or abandoned once another failed
  for (const p of [comparing, checking, preparing]) p.catch(() => {});
  /** a load that fails early ends the wait (it cannot succeed before the feed ends) */
  const loadFailed = preparing.then(() => new Promise<never>(() => {}));
  const settle = async (): Promise<void> => {
    stop.abort();
    await Promise.allSettled([comparing, checking, preparing]);
  };
  let problem: string | null;
  try {
    [delta, problem] = await Promise.race([Promise.all([comparing, checking]), loadFailed]);
  } catch (err) {
    // The load's own error says what became of the database: interrupted (its shadow tables are dropped), or
    // the server gone (its shadow tables are left for the next run, and the error names them).
    const loadError = (): Promise<unknown> =>
      preparing.then(
        () => undefined,
        (e: unknown) => e,
      );
    const interrupted = outerAborted(o) ? await loadError() : undefined;
    await settle();
    if (outerAborted(o)) throw interrupted ?? err;
    const loadErr = await loadError();
    if (isRestoreFailure(loadErr) && loadErr.leftovers.length > 0) throw loadErr;
    throw err;
  }
  if (problem !== null) {
    await settle();
    return { problem };
  }
  o.onCompared?.(delta);
  // verified and compared: the rest of what is read (every table's triggers, then the definitions and the footer)
  const kept = new Set(keptTables(delta).map((k) => k.name));
  for (const r of dumpRanges(o.hashes, kept) ?? []) {
    if (r.part === 'triggers' || r.part === 'tail') feed.push(r);
  }
  feed.end();
  try {
    return { delta, prepared: await preparing };
  } catch (err) {
    await settle();
    throw err;
  }
}

const outerAborted = (o: SelectiveLoadOptions): boolean => o.restore.signal?.aborted === true;
