/**
 * Worker thread that warms the page cache for a code rollback's (or backups:diff's) comparison
 * (extract-compare.ts). The comparison reads every live file once, synchronously, one at a time, in the archive's
 * order: on a store whose files are not in memory (a server where they were not read lately, or this benchmark
 * machine, whose memory manager drops pages not touched for a minute) that is one disk read after another. This
 * thread walks the live tree in the same order (sorted pre-order, the order create.ts writes) and reads the files
 * ahead of the comparison, several at a time (libuv's pool), so the comparison finds them in memory. It reads
 * only as far as the comparison asks (`progress[3]`): the comparison asks while its own reads are slow (from the
 * disk); on a tree in memory the warmer reads nothing.
 *
 * It decides nothing: what it reads is thrown away, every check is the comparison's own. It only reads regular
 * files (by the directory entry's type, opened O_NOFOLLOW|O_NONBLOCK) in directories that only root or we can
 * change (as extract-sparse.ts requires of a directory whose files are kept in place), so nobody else can turn a
 * directory into a link that leads it elsewhere. It stays at most AHEAD files ahead of the comparison, and skips
 * what the comparison already passed (the comparison counts its files in `progress[0]`); `progress[1] != 0` stops it.
 * When after PROBE files the comparison read the bytes of fewer than a quarter of them (every file changed: the
 * metadata already differs), it stops: reading them would only compete with the writes.
 */
import fs from 'node:fs';
import { Worker, workerData } from 'node:worker_threads';
import { INTERNAL_PREFIX, isCodeExcludedName } from './extract-filter.js';

export interface PrefetchInput {
  liveDir: string;
  /**
   * Int32Array: [0] files the comparison has started, [1] != 0: stop, [2] files whose bytes it reads, [3] the
   * file (by [0]'s count) up to which it wants the cache warmed
   */
  progress: SharedArrayBuffer;
}

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = fs.constants;
const OPEN_LIVE = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
/** files read at once (libuv's pool has 4 threads, which the extraction's inflate shares) */
const SLOTS = 3;
/** how far ahead of the comparison it may get (files) */
const AHEAD = 3000;
const BUF = 256 * 1024;
/** after this many files, a comparison that reads the bytes of fewer than a quarter of them is not warmed */
const PROBE = 2000;
/** a bigger file is read only this far (the comparison reads the rest itself) */
const MAX_BYTES = 4 << 20;

const me = BigInt(process.getuid?.() ?? -1);

/** A real directory only root or we can change. */
function trustedDir(abs: string): boolean {
  let st: fs.BigIntStats | undefined;
  try {
    st = fs.lstatSync(abs, { bigint: true, throwIfNoEntry: false });
  } catch {
    return false;
  }
  return (
    st !== undefined && st.isDirectory() && (st.uid === 0n || st.uid === me) && (st.mode & 0o022n) === 0n
  );
}

/** The live regular files in the archive's order, lazily (only the current path of directories is held). */
export function* liveFiles(liveDir: string): Generator<string> {
  const walk = function* (rel: string): Generator<string> {
    const abs = rel === '' ? liveDir : `${liveDir}/${rel}`;
    if (!trustedDir(abs)) return;
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(abs, { withFileTypes: true });
    } catch {
      return;
    }
    ents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const d of ents) {
      const name = d.name;
      const child = rel === '' ? name : `${rel}/${name}`;
      if (name.startsWith(INTERNAL_PREFIX) || isCodeExcludedName(child, name)) continue;
      if (d.isDirectory()) yield* walk(child);
      else if (d.isFile()) yield `${liveDir}/${child}`;
    }
  };
  yield* walk('');
}

function run(input: PrefetchInput): void {
  const ctl = new Int32Array(input.progress);
  const files = liveFiles(input.liveDir);
  const bufs: Buffer[] = Array.from({ length: SLOTS }, () => Buffer.allocUnsafe(BUF));
  const free = [...bufs];
  let mine = 0;
  let ended = false;
  let waiting = false;
  const pump = (): void => {
    waiting = false;
    while (!ended && free.length > 0) {
      if (Atomics.load(ctl, 1) !== 0) {
        ended = true;
        return;
      }
      const theirs = Atomics.load(ctl, 0);
      if (theirs >= PROBE && Atomics.load(ctl, 2) * 4 < theirs) {
        // most files differ by their metadata already (every file changed): their bytes are never read
        ended = true;
        return;
      }
      // the comparison asks for warming while its reads come from the disk (extract-compare.ts noteRead)
      if (mine - theirs >= AHEAD || mine >= Atomics.load(ctl, 3)) {
        if (!waiting) {
          waiting = true;
          setTimeout(pump, 5);
        }
        return;
      }
      const next = files.next();
      if (next.done) {
        ended = true;
        return;
      }
      mine++;
      if (mine <= theirs) continue; // the comparison is past it already
      readAhead(next.value, free.pop()!, (buf) => {
        free.push(buf);
        pump();
      });
    }
  };
  pump();
}

/** Reads a file into `buf` (thrown away), chunk after chunk, up to MAX_BYTES; every error just ends it. */
function readAhead(file: string, buf: Buffer, done: (buf: Buffer) => void): void {
  fs.open(file, OPEN_LIVE, (err, fd) => {
    if (err) return done(buf);
    let pos = 0;
    const step = (): void => {
      fs.read(fd, buf, 0, buf.length, pos, (e, n) => {
        pos += n;
        if (e || n < buf.length || pos >= MAX_BYTES) fs.close(fd, () => done(buf));
        else step();
      });
    };
    step();
  });
}

/**
 * Starts the page-cache warmer for a comparison (LiveComparer, extract-compare.ts) on demand: the comparer counts its files where the warmer
 * sees them. The thread is started only when the comparison first asks for warming (its reads come from the
 * disk): on a tree in memory it costs neither its start nor its memory. Returns its stop; a warmer that fails is
 * simply gone.
 */
export function startPrefetch(
  liveDir: string,
  cmp: { progress: Int32Array | undefined; warmWanted: (() => void) | undefined },
): () => void {
  const progress = new SharedArrayBuffer(16);
  const ctl = new Int32Array(progress);
  let w: Worker | undefined;
  let stopped = false;
  cmp.progress = ctl;
  cmp.warmWanted = () => {
    if (w !== undefined || stopped) return;
    try {
      w = new Worker(new URL('./prefetch-worker.js', import.meta.url), {
        workerData: { liveDir, progress },
        resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
      });
    } catch {
      stopped = true;
      return;
    }
    w.on('error', () => {});
    w.unref();
  };
  return () => {
    stopped = true;
    Atomics.store(ctl, 1, 1);
    if (w) void w.terminate().catch(() => {});
  };
}

const input = workerData as Partial<PrefetchInput> | null;
if (input?.progress instanceof SharedArrayBuffer && typeof input.liveDir === 'string') {
  try {
    run(input as PrefetchInput);
  } catch {
    // a cache warmer: nothing it meets is a reason to fail
  }
}
