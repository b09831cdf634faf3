/**
 * Worker thread of createArchive: walks the tree and produces the tar stream with synchronous fs calls, in
 * batches handed to the main thread (which gzips them in parallel and writes them). Flow control goes through a
 * SharedArrayBuffer: the worker blocks in Atomics.wait while too many batches are unacknowledged, and stops when
 * the main thread sets STATE_ABORT.
 */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { errnoCode } from '../errors.js';
import { compileExcludeMatcher, matchLeaf } from './excludes.js';
import {
  AbortedInWorker,
  CTRL_HELPER,
  CTRL_HSEQ,
  CTRL_STATE,
  CTRL_TASK,
  CTRL_USED,
  HELPER_GONE,
  KIND_FILE,
  OPEN_FLAGS,
  STATE_ABORT,
  STATE_WAIT,
  closeSync,
  openSync,
  totalsOf,
  walkInto,
  walkTree,
  type TaskResult,
  type WalkCtx,
  type WalkEntry,
  type WalkTask,
  type WalkWarning,
  type WorkerInput,
  type WorkerMessage,
} from './tar-worker-lib.js';
import { TarBatcher } from './tar-encode.js';

const input = workerData as WorkerInput;
const port = parentPort;
if (port === null) throw new Error('tar-worker must run as a worker thread');
const ctrl = new Int32Array(input.ctrl);

function post(m: WorkerMessage, transfer?: ArrayBuffer[]): void {
  port?.postMessage(m, transfer);
}

function checkAbort(): void {
  if (Atomics.load(ctrl, CTRL_STATE) === STATE_ABORT) throw new AbortedInWorker();
}

function warn(w: WalkWarning): void {
  post({ t: 'warn', w });
}

function displayPath(rel: string): string {
  return input.displayRoot.endsWith('/') ? input.displayRoot + rel : input.displayRoot + '/' + rel;
}

type IsExcluded = (rel: string, isDir: boolean) => boolean;

function makeIsExcluded(): IsExcluded {
  const m = compileExcludeMatcher(input.patterns ?? []);
  let n = 0;
  return (rel, isDir) => {
    if ((++n & 1023) === 0) checkAbort();
    return matchLeaf(m, rel, isDir);
  };
}

function walkTask(ctx: WalkCtx, t: WalkTask, warnTo: (w: WalkWarning) => void): WalkEntry[] {
  const out: Array<WalkEntry | number> = [];
  walkInto({ ...ctx, warn: warnTo, splitDepth: Infinity, tasks: [] }, t.abs, t.rel, 0, out);
  return out as WalkEntry[];
}

/** Helper thread: the same shallow walk gives the same task list; claim tasks and send their entries. */
function runHelper(port: MessagePort): void {
  const ctx: WalkCtx = {
    displayRoot: input.displayRoot,
    isExcluded: makeIsExcluded(),
    warn: () => {}, // the writer reports the shallow part
    splitDepth: input.splitDepth,
    tasks: [],
  };
  walkInto(ctx, input.root, '', 0, []);
  for (;;) {
    checkAbort();
    const i = Atomics.add(ctrl, CTRL_TASK, 1);
    const t = ctx.tasks[i];
    if (t === undefined) break;
    const warnings: WalkWarning[] = [];
    const entries = walkTask(ctx, t, (w) => warnings.push(w));
    const r: TaskResult = { i, rel: t.rel, entries, warnings };
    port.postMessage(r);
    Atomics.add(ctrl, CTRL_HSEQ, 1);
    Atomics.notify(ctrl, CTRL_HSEQ);
  }
}

/** Writer's walk, sharing the directories at splitDepth with the helper thread when there is one. */
function scan(): WalkEntry[] {
  if (input.entries !== null) return input.entries;
  const isExcluded = makeIsExcluded();
  const port = input.port;
  if (port === null) return walkTree(input.root, input.displayRoot, isExcluded, warn).entries;
  const ctx: WalkCtx = {
    displayRoot: input.displayRoot,
    isExcluded,
    warn,
    splitDepth: input.splitDepth,
    tasks: [],
  };
  const skeleton: Array<WalkEntry | number> = [];
  walkInto(ctx, input.root, '', 0, skeleton);
  const tasks = ctx.tasks;
  const results: Array<WalkEntry[] | undefined> = new Array<WalkEntry[] | undefined>(tasks.length);
  let missing = tasks.length;
  for (;;) {
    checkAbort();
    const i = Atomics.add(ctrl, CTRL_TASK, 1);
    const t = tasks[i];
    if (t === undefined) break;
    results[i] = walkTask(ctx, t, warn);
    missing--;
  }
  const drain = (): void => {
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
      const r = m.message as TaskResult;
      // The helper's own shallow walk may differ if the tree changed in between: only take matching tasks.
      if (results[r.i] === undefined && tasks[r.i]?.rel === r.rel) {
        results[r.i] = r.entries;
        for (const w of r.warnings) warn(w);
        missing--;
      }
    }
  };
  while (missing > 0) {
    checkAbort();
    const seq = Atomics.load(ctrl, CTRL_HSEQ);
    const gone = Atomics.load(ctrl, CTRL_HELPER) === HELPER_GONE;
    drain();
    if (missing === 0) break;
    if (gone) {
      // The helper finished (or died) without covering everything: walk the rest here.
      tasks.forEach((t, i) => {
        if (results[i] === undefined) results[i] = walkTask(ctx, t, warn);
      });
      break;
    }
    Atomics.wait(ctrl, CTRL_HSEQ, seq, 100);
  }
  const entries: WalkEntry[] = [];
  for (const it of skeleton) {
    if (typeof it === 'number') {
      for (const e of results[it] ?? []) entries.push(e);
    } else {
      entries.push(it);
    }
  }
  return entries;
}

function run(): void {
  if (input.role === 'helper') {
    if (input.port !== null) runHelper(input.port);
    return;
  }
  const walked = scan();
  const totals = totalsOf(walked);
  post({ t: 'scan', totals });
  // The main thread runs onScan (progress totals, disk space check) before any byte is written.
  while (Atomics.load(ctrl, CTRL_STATE) === STATE_WAIT) Atomics.wait(ctrl, CTRL_STATE, STATE_WAIT);
  checkAbort();

  let files = 0;
  let bytes = 0;
  const done: { files: number; dirs: number; symlinks: number; bytes: number } = {
    files: 0,
    dirs: 0,
    symlinks: 0,
    bytes: 0,
  };
  const tar = new TarBatcher(input.batchSize, (ab, len) => {
    for (;;) {
      checkAbort();
      const used = Atomics.load(ctrl, CTRL_USED);
      if (used < input.maxChunks) break;
      Atomics.wait(ctrl, CTRL_USED, used);
    }
    Atomics.add(ctrl, CTRL_USED, 1);
    post({ t: 'chunk', buf: ab, len, files, bytes }, [ab]);
  });
  const onBytes = (n: number): void => {
    bytes += n;
  };

  for (const e of walked) {
    if (e.kind !== KIND_FILE) {
      tar.header(e, 0);
      if (e.link === undefined) done.dirs++;
      else done.symlinks++;
      continue;
    }
    checkAbort();
    const abs = input.root + '/' + e.rel;
    if (e.size === 0) {
      // Nothing to read; an empty file restores the same whether or not it is readable now.
      tar.header(e, 0);
    } else {
      let fd: number;
      try {
        fd = openSync(abs, OPEN_FLAGS);
      } catch (err) {
        const code = errnoCode(err);
        const gone = code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR';
        warn({
          code: gone ? 'VANISHED' : 'UNREADABLE',
          path: displayPath(e.rel),
          message: gone
            ? 'vanished (or was replaced) during the backup'
            : `cannot open: ${code ?? String(err)}`,
        });
        continue;
      }
      try {
        tar.header(e, e.size);
        const problem = tar.fileData(fd, e.size, onBytes);
        if (problem !== null) {
          warn({
            code: problem.startsWith('shrank') ? 'VANISHED' : 'UNREADABLE',
            path: displayPath(e.rel),
            message: problem,
          });
        }
      } finally {
        closeSync(fd);
      }
    }
    files++;
    done.files++;
    done.bytes += e.size;
  }
  tar.finish();
  post({ t: 'done', totals: done });
}

try {
  run();
} catch (err) {
  if (!(err instanceof AbortedInWorker)) throw err;
}
