/**
 * A rollback of several parts (code, media, database) is one journaled operation with one outcome: every part
 * ends as the backup's, or every part as it was.
 *
 * The journal (`op-<id>.json`, signed: state-dir.ts) lives in the private state directory and names the store,
 * each staging directory before it is created, each tree's swap plan, and the prepared database restore.
 * Phases: 'staging' (nothing live changed yet) → 'committing' (written once everything is staged and flushed:
 * the point of no return) → 'committed' (only old content left to delete). 'aborting' marks an undo in progress.
 *
 * Commit order: the trees are swapped first (renames, which is where a refusal happens: an immutable or
 * read-only directory), then the database (one RENAME TABLE). A refused rename undoes the trees and discards the
 * prepared database: nothing changed. recoverOperations (run by every command before it reads or writes the
 * store): 'committing' → every part forward (the prepared database too, through its `decide`); 'staging' or
 * 'aborting' → every part back; 'committed' → the old content deleted. It trusts only journals signed with
 * this store's key whose paths are the store's own.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { recoverInterruptedRestores, type PreparedRestore, type RestoreResult } from '../db/restore.js';
import type { DbConnectionConfig } from '../db/types.js';
import { CliError } from '../errors.js';
import { recheckLinked } from '../archive/extract-links.js';
import type { EventSink, Part } from '../events.js';
import {
  STAGING_NAME_RE,
  flushStaged,
  removeStaging,
  removeTree,
  stageTree,
  swapBack,
  swapForward,
  type StageTreeOptions,
  type StagedTree,
  type SwapHooks,
  type TreeJournal,
} from './tree-swap.js';
import {
  listSigned,
  openStateDir,
  readSigned,
  removeSigned,
  stateDirExists,
  writeSigned,
  type StateDir,
} from '../store/state-dir.js';
import type { StorePaths } from '../store/paths.js';

type Phase = 'staging' | 'committing' | 'aborting' | 'committed';

interface OpJournal {
  version: 2;
  id: string;
  root: string;
  rootDev: number;
  rootIno: number;
  pid: number;
  started: string;
  phase: Phase;
  /** staging directories made (or about to be) before their plan is known */
  staging: Array<{ target: 'code' | 'media'; dir: string }>;
  trees: TreeJournal[];
  /** the prepared database restore (its id names it for recoverInterruptedRestores' decide) */
  db: { id: string } | null;
  /**
   * 'committed' only: the detached process deleting the replaced content (deleteInBackground); the next run's
   * recovery waits for it if it still runs, removes what is left, then the journal
   */
  deleter?: { pid: number; dirs: string[] };
}

const OP_PREFIX = 'op-';

/** Test seams (production passes none): a crash test SIGKILLs itself at one of these points. */
export interface OperationHooks extends SwapHooks {
  /** called at each step of a commit: 'committing', 'swapped-<target>', 'db-committed', 'committed' */
  onCommitStep?: (step: string) => void;
}

/** The swap could not be undone either: live data is mixed; maintenance must stay on. */
export class OperationIncompleteError extends CliError {}

export interface CommitOutcome {
  db?: RestoreResult;
  /** deletes the replaced content and the journal (call after leaving maintenance, still under the lock) */
  cleanup: () => Promise<void>;
  /**
   * Instead of cleanup: the replaced content is deleted by a detached low-priority process (nice 19, ionice
   * idle class) recorded in the journal, so the command returns at once; the next run of the store waits for it
   * if it still runs (saying so), finishes it and removes the journal. Returns the process id.
   */
  deleteInBackground: () => Promise<number | undefined>;
}

export class RollbackOperation {
  private committed = false;
  /** the staged trees (their hard links to live files are checked again just before the swap) */
  private readonly staged: StagedTree[] = [];
  private constructor(
    private readonly state: StateDir,
    private readonly j: OpJournal,
    private readonly hooks: OperationHooks,
  ) {}

  static async begin(paths: StorePaths, hooks: OperationHooks = {}): Promise<RollbackOperation> {
    const state = await openStateDir(paths);
    const st = await fsp.stat(paths.root);
    const j: OpJournal = {
      version: 2,
      id: `${Date.now()}-${randomBytes(4).toString('hex')}`,
      root: paths.root,
      rootDev: st.dev,
      rootIno: st.ino,
      pid: process.pid,
      started: new Date().toISOString(),
      phase: 'staging',
      staging: [],
      trees: [],
      db: null,
    };
    const op = new RollbackOperation(state, j, hooks);
    await op.save();
    return op;
  }

  get phase(): Phase {
    return this.j.phase;
  }

  private get name(): string {
    return `${OP_PREFIX}${this.j.id}.json`;
  }

  private async save(): Promise<void> {
    await writeSigned(this.state, this.name, this.j);
  }

  /** Stages a tree; its staging directory is journaled before it exists, its plan once it is complete. */
  async stage(o: StageTreeOptions): Promise<StagedTree> {
    const s = await stageTree({
      ...o,
      register: async (dir) => {
        this.j.staging.push({ target: o.target, dir });
        await this.save();
      },
    });
    this.j.trees.push(s.journal);
    this.staged.push(s);
    await this.save();
    return s;
  }

  async setDb(prepared: { id: string }): Promise<void> {
    this.j.db = { id: prepared.id };
    await this.save();
  }

  /**
   * Swaps every staged tree in, then commits the database. A refused rename undoes what was swapped and discards
   * the database: a CliError saying nothing changed. If that undo fails too: OperationIncompleteError.
   */
  async commit(db?: PreparedRestore): Promise<CommitOutcome> {
    for (const t of this.j.trees) await flushStaged(t);
    // a live file written since it was compared and linked: refused here, before anything live changes
    for (const s of this.staged) {
      recheckLinked(path.join(s.stagingDir, 'new'), s.stats.linked ?? [], s.liveDir);
    }
    this.j.phase = 'committing';
    await this.save();
    this.hooks.onCommitStep?.('committing');
    let dbResult: RestoreResult | undefined;
    try {
      for (const t of this.j.trees) {
        await swapForward(t, this.hooks);
        this.hooks.onCommitStep?.(`swapped-${t.target}`);
      }
      if (db) {
        dbResult = await db.commit();
        this.hooks.onCommitStep?.('db-committed');
      }
    } catch (err) {
      const live = (err as { live?: string }).live;
      if (dbResult || live === 'restored') {
        // the database is new: the trees stay new with it
        this.committed = true;
        this.j.phase = 'committed';
        await this.save();
        throw err;
      }
      if (live === 'recovery-pending') {
        // the database's own journal is finished by the next run (this journal, still 'committing', tells it
        // to go forward, with the trees); the caller keeps maintenance on meanwhile
        this.committed = true;
        throw err;
      }
      await this.undo(err, db);
    }
    this.committed = true;
    this.j.phase = 'committed';
    await this.save();
    this.hooks.onCommitStep?.('committed');
    return {
      ...(dbResult ? { db: dbResult } : {}),
      cleanup: async () => {
        for (const t of this.j.trees) await removeStaging(t);
        await removeSigned(this.state, this.name);
      },
      deleteInBackground: async () => {
        const dirs: string[] = [];
        for (const t of this.j.trees) {
          const st = await fsp.lstat(t.stagingDir).catch(() => null);
          if (st?.isDirectory() && st.ino === t.stagingIno) dirs.push(t.stagingDir);
        }
        if (dirs.length === 0) {
          await removeSigned(this.state, this.name);
          return undefined;
        }
        const pid = spawnDeleter(dirs);
        if (pid === undefined) {
          for (const t of this.j.trees) await removeStaging(t);
          await removeSigned(this.state, this.name);
          return undefined;
        }
        this.j.deleter = { pid, dirs };
        await this.save();
        return pid;
      },
    };
  }

  private async undo(cause: unknown, db: PreparedRestore | undefined): Promise<never> {
    const why = cause instanceof Error ? cause.message : String(cause);
    try {
      this.j.phase = 'aborting';
      await this.save();
      for (const t of [...this.j.trees].reverse()) await swapBack(t, this.hooks);
      await db?.discard();
    } catch (err) {
      throw new OperationIncompleteError(
        `The rollback could not finish (${why}) and could not be undone (${err instanceof Error ? err.message : String(err)}): ` +
          'maintenance mode stays on; run magebackup again to finish it from its journal',
        { cause: err },
      );
    }
    await this.removeAll();
    throw new CliError(
      `The rollback could not finish (${why}): every part was put back as it was before, nothing changed`,
      { cause },
    );
  }

  private async removeAll(): Promise<void> {
    for (const t of this.j.trees) await removeStaging(t);
    for (const s of this.j.staging) await removeTree(s.dir);
    await removeSigned(this.state, this.name);
  }

  /** Before commit: removes everything staged and the journal (the caller discards a prepared database). */
  async discard(): Promise<void> {
    if (this.committed || this.j.phase !== 'staging') return;
    await this.removeAll();
  }
}

/** `rm -rf` of the given directories in a detached process at the lowest CPU and I/O priority. */
function spawnDeleter(dirs: string[]): number | undefined {
  const script =
    'command -v ionice >/dev/null 2>&1 && exec nice -n 19 ionice -c 3 rm -rf -- "$@"; exec nice -n 19 rm -rf -- "$@"';
  try {
    const child = spawn('/bin/sh', ['-c', script, 'magebackup-delete-replaced', ...dirs], {
      detached: true,
      stdio: 'ignore',
    });
    child.on('error', () => {});
    child.unref();
    return child.pid;
  } catch {
    return undefined;
  }
}

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
    const m = STAGING_NAME_RE.exec(path.basename(dir));
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
  if (o.db) done.push(...(await recoverInterruptedRestores(o.db, (id) => sides.get(id))));
  for (const f of finish) await f();
  return done;
}
