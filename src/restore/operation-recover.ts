/**
 * Recovery of interrupted rollbacks (operation.ts): every journal in the private state directory is checked
 * (signed with this store's key, naming only the store's own paths) and its operation finished or undone.
 * 'committing' → every part forward (the prepared database too, through its `decide`); 'staging' or 'aborting'
 * → every part back; 'committed' → the old content deleted (after waiting for a background deletion still
 * running).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { DbConnectionConfig } from '../db/types.js';
import { CliError } from '../errors.js';
import type { EventSink, Part } from '../events.js';
import {
  listSigned,
  openStateDir,
  readSigned,
  removeSigned,
  stateDirExists,
  writeSigned,
} from '../store/state-dir.js';
import type { StorePaths } from '../store/paths.js';
import { OP_PREFIX, OperationIncompleteError, type OpJournal } from './operation-journal.js';

// Every command of a store runs this recovery first, mostly with nothing to recover: the tree swap (with the
// extraction code it imports) and the database restore code are imported only when they have something to do
// (~20 modules, 20-35 ms of CPU at each start otherwise).
const treeSwap = () => import('./tree-swap.js');
const dbRecovery = () => import('../db/restore-recovery.js');

/** Is `pid` still the deleter that was started for `dirs` (and not a reused pid)? */
async function deleterRunning(d: { pid: number; dirs: string[] }): Promise<boolean> {
  const cmdline = await fsp.readFile(`/proc/${d.pid}/cmdline`, 'utf8').catch(() => '');
  const args = cmdline.split('\0');
  return d.dirs.length > 0 && d.dirs.every((dir) => args.includes(dir));
}

/** Waits for a rollback's background deletion that still runs (it is the next run's I/O otherwise, unseen). */
async function waitForDeleter(d: { pid: number; dirs: string[] }, onEvent: EventSink): Promise<boolean> {
  if (!(await deleterRunning(d))) return false;
  onEvent({
    type: 'info',
    message: `Waiting for the files replaced by the last rollback to be deleted (background process ${d.pid})`,
  });
  while (await deleterRunning(d)) await new Promise((r) => setTimeout(r, 100));
  return true;
}

const PART_WORD: Record<Part, string> = { code: 'code', media: 'media', db: 'database' };

function partsOf(j: OpJournal): string {
  const parts: Part[] = [...new Set([...j.trees.map((t) => t.target), ...j.staging.map((s) => s.target)])];
  if (j.db) parts.push('db');
  const words = parts.map((p) => PART_WORD[p]);
  return words.length <= 1
    ? (words[0] ?? 'nothing')
    : `${words.slice(0, -1).join(', ')} and ${words.at(-1)!}`;
}

function isRel(rel: unknown, allowEmpty: boolean): boolean {
  if (typeof rel !== 'string') return false;
  if (rel === '') return allowEmpty;
  return (
    !rel.includes('\0') &&
    !path.isAbsolute(rel) &&
    path.posix.normalize(rel) === rel &&
    rel.split('/').every((c) => c !== '..' && c !== '.' && c !== '')
  );
}

/**
 * The real media directory, as locate() finds it, also while a killed swap has it moved aside (a symlinked
 * pub/media then dangles): resolved from the link, not from what it points to.
 */
async function mediaLiveDir(paths: StorePaths): Promise<string> {
  const media = path.join(paths.root, 'pub', 'media');
  const st = await fsp.lstat(media).catch(() => null);
  if (!st?.isSymbolicLink()) return media;
  const target = path.resolve(path.dirname(media), await fsp.readlink(media));
  const parent = await fsp.realpath(path.dirname(target)).catch(() => path.dirname(target));
  return path.join(parent, path.basename(target));
}

/** Every path a journal names must be the store's own: its root, its media directory, their staging dirs. */
async function validate(data: unknown, paths: StorePaths, file: string): Promise<OpJournal> {
  const { STAGING_NAME_RE: stagingName } = await treeSwap();
  const refuse = (why: string): never => {
    throw new CliError(
      `Journal ${file} ${why}: refused, nothing was done with it (move it away after checking the store)`,
    );
  };
  const j = data as OpJournal;
  if (!j || j.version !== 2 || !Array.isArray(j.trees) || !Array.isArray(j.staging))
    refuse('is not readable');
  if (!['staging', 'committing', 'aborting', 'committed'].includes(j.phase)) refuse('has no valid phase');
  const st = await fsp.stat(paths.root);
  if (j.root !== paths.root || j.rootDev !== st.dev || j.rootIno !== st.ino)
    refuse(`belongs to another store (${String(j.root)})`);
  const places: Record<'code' | 'media', { live: string; parents: string[] }> = {
    code: { live: paths.root, parents: [paths.root] },
    media: { live: '', parents: [] },
  };
  if (j.trees.some((t) => t.target === 'media') || j.staging.some((s) => s.target === 'media')) {
    const live = await mediaLiveDir(paths);
    places.media = { live, parents: [paths.root, path.dirname(live), live] };
  }
  const stagingOk = (target: unknown, dir: unknown): boolean => {
    if (target !== 'code' && target !== 'media') return false;
    if (typeof dir !== 'string') return false;
    const m = stagingName.exec(path.basename(dir));
    return !!m && m[1] === target && places[target].parents.includes(path.dirname(dir));
  };
  for (const s of j.staging) if (!stagingOk(s.target, s.dir)) refuse(`names a path outside this store`);
  for (const t of j.trees) {
    if (!stagingOk(t.target, t.stagingDir) || t.liveDir !== places[t.target].live)
      refuse('names a path outside this store');
    if (t.mode !== 'whole' && t.mode !== 'children') refuse('has no valid swap mode');
    const whole = t.mode === 'whole';
    if (!Array.isArray(t.units) || (whole && (t.units.length !== 1 || t.units[0]?.rel !== '')))
      refuse('has no valid swap units');
    for (const u of t.units) if (!isRel(u.rel, whole)) refuse(`names a path outside this store`);
    for (const f of [...t.fixes, ...t.oldFixes])
      if (!isRel(f.rel, true)) refuse('names a path outside this store');
  }
  if (j.db !== null && (typeof j.db !== 'object' || typeof j.db.id !== 'string'))
    refuse('has no valid database part');
  if (
    j.deleter !== undefined &&
    (!Number.isInteger(j.deleter.pid) ||
      !Array.isArray(j.deleter.dirs) ||
      !j.deleter.dirs.every((d) => j.trees.some((t) => t.stagingDir === d)))
  )
    refuse('has no valid deleter');
  return j;
}

/**
 * Finishes or undoes the rollbacks that were interrupted (see the file comment). `db`: the store's database
 * connection; without it, an operation with a database part is brought to its side for the trees, and its
 * journal kept until a run with the database finishes the database part (forward only; back needs nothing).
 * Returns one line per operation handled.
 */
export async function recoverOperations(o: {
  paths: StorePaths;
  db?: DbConnectionConfig | undefined;
  onEvent: EventSink;
}): Promise<string[]> {
  const done: string[] = [];
  const sides = new Map<string, 'forward' | 'back'>();
  const finish: Array<() => Promise<void>> = [];
  // Only a rollback creates the state directory: without it there is nothing of ours to recover.
  const state = (await stateDirExists(o.paths)) ? await openStateDir(o.paths) : null;
  for (const name of state ? await listSigned(state, OP_PREFIX) : []) {
    if (!state) break;
    const { removeStaging, removeTree, swapBack, swapForward } = await treeSwap();
    const file = path.join(state.dir, name);
    const j = await validate(await readSigned(state, name), o.paths, file);
    if (j.phase === 'committed') {
      const waited = j.deleter ? await waitForDeleter(j.deleter, o.onEvent) : false;
      let left = false;
      for (const t of j.trees) {
        left ||= (await fsp.lstat(t.stagingDir).catch(() => null)) !== null;
        await removeStaging(t);
      }
      await removeSigned(state, name);
      // a background deletion that finished on its own leaves only its journal: nothing worth a line
      if (left || waited || !j.deleter)
        done.push(`removed the content replaced by a finished rollback of ${partsOf(j)}`);
      continue;
    }
    let side: 'forward' | 'back' = j.phase === 'committing' ? 'forward' : 'back';
    let note = '';
    if (side === 'forward') {
      try {
        for (const t of j.trees) await swapForward(t);
      } catch (err) {
        // cannot be finished (a rename refused): undo every part instead
        note = ` (it could not be finished: ${err instanceof Error ? err.message : String(err)})`;
        side = 'back';
        j.phase = 'aborting';
        await writeSigned(state, name, j);
      }
    }
    if (side === 'back') {
      try {
        for (const t of [...j.trees].reverse()) await swapBack(t);
      } catch (err) {
        throw new OperationIncompleteError(
          `The interrupted rollback of ${partsOf(j)} (journal ${file}) can be neither finished nor undone: ${err instanceof Error ? err.message : String(err)}; maintenance mode stays on`,
          { cause: err },
        );
      }
    }
    if (j.db) sides.set(j.db.id, side);
    const pendingDb = j.db !== null && !o.db && side === 'forward';
    finish.push(async () => {
      for (const t of j.trees) await removeStaging(t);
      for (const s of j.staging) await removeTree(s.dir);
      if (!pendingDb) await removeSigned(state, name);
    });
    done.push(
      side === 'forward'
        ? `finished the interrupted rollback of ${partsOf(j)}: all of it is now the backup's${pendingDb ? ' (the database part is finished by the next run with database access: setup:rollback or setup:backup --db)' : ''}`
        : `undid the interrupted rollback of ${partsOf(j)}${note}: all of it is as it was before`,
    );
  }
  if (o.db) {
    const { recoverInterruptedRestores } = await dbRecovery();
    done.push(...(await recoverInterruptedRestores(o.db, (id) => sides.get(id))));
  }
  for (const f of finish) await f();
  return done;
}
