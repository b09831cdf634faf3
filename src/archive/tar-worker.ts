/**
 * Worker thread of createArchive: walks the tree and produces the tar stream with synchronous fs calls, in
 * batches handed to the main thread (which gzips them in parallel and writes them). Flow control goes through a
 * SharedArrayBuffer: the worker blocks in Atomics.wait while too many batches are unacknowledged, and stops when
 * the main thread sets STATE_ABORT.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { errnoCode } from '../errors.js';
import { compileExcludeMatcher, matchLeaf } from './excludes.js';
import {
  AbortedInWorker,
  CTRL_STATE,
  CTRL_USED,
  KIND_FILE,
  OPEN_FLAGS,
  STATE_ABORT,
  STATE_WAIT,
  TarBatcher,
  closeSync,
  openSync,
  totalsOf,
  walkTree,
  type WalkWarning,
  type WorkerInput,
  type WorkerMessage,
} from './tar-worker-lib.js';

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

function run(): void {
  let walked = input.entries;
  let totals;
  if (walked === null) {
    const m = compileExcludeMatcher(input.patterns ?? []);
    let n = 0;
    const r = walkTree(
      input.root,
      input.displayRoot,
      (rel, isDir) => {
        if ((++n & 1023) === 0) checkAbort();
        return matchLeaf(m, rel, isDir);
      },
      warn,
    );
    walked = r.entries;
    totals = r.totals;
  } else {
    totals = totalsOf(walked);
  }
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
