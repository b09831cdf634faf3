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
 * prepared database: nothing changed. An operation a crash interrupted is finished or undone from its journal
 * by recoverOperations (operation-recover.ts), which every command runs before it reads or writes the store.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { PreparedRestore, RestoreResult } from '../db/restore.js';
import { CliError, InterruptedError } from '../errors.js';
import { recheckLinked, throwIfChanged } from '../archive/extract-links.js';
import {
  flushStaged,
  removeStaging,
  removeTree,
  stageTree,
  swapBack,
  swapForward,
  type StageTreeOptions,
  type StagedTree,
  type SwapHooks,
} from './tree-swap.js';
import { openStateDir, removeSigned, writeSigned, type StateDir } from '../store/state-dir.js';
import type { StorePaths } from '../store/paths.js';
import { OP_PREFIX, OperationIncompleteError, type OpJournal, type Phase } from './operation-journal.js';

export { OP_PREFIX, OperationIncompleteError, type OpJournal, type Phase };

/** Test seams (production passes none): a crash test SIGKILLs itself at one of these points. */
export interface OperationHooks extends SwapHooks {
  /** called at each step of a commit: 'committing', 'swapped-<target>', 'db-committed', 'committed' */
  onCommitStep?: (step: string) => void;
}

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
    try {
      for (const s of this.staged) {
        recheckLinked(path.join(s.stagingDir, 'new'), s.stats.linked ?? [], s.liveDir);
        if (s.stats.kept) throwIfChanged(await s.stats.kept.recheck());
      }
    } finally {
      this.releaseKept();
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
    // An interruption stays one (exit 130, or 129 for SIGHUP), however late in the operation it came.
    const Failure = cause instanceof InterruptedError ? InterruptedError : CliError;
    throw new Failure(
      `The rollback could not finish (${why}): every part was put back as it was before, nothing changed`,
      { cause },
    );
  }

  private async removeAll(): Promise<void> {
    for (const t of this.j.trees) await removeStaging(t);
    for (const s of this.j.staging) await removeTree(s.dir);
    await removeSigned(this.state, this.name);
  }

  /** The extraction threads holding what the sparse stagings leave in place end (their re-check is over). */
  private releaseKept(): void {
    for (const s of this.staged) s.stats.kept?.release();
  }

  /** Before commit: removes everything staged and the journal (the caller discards a prepared database). */
  async discard(): Promise<void> {
    this.releaseKept();
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
