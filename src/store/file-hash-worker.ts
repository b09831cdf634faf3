/**
 * Worker side of manifest.ts hashFile: reads one file and computes its SHA-256 off the main thread. A selective
 * database rollback checks a 600 MB dump against its manifest while the main thread compares the live tables
 * (it formats every row: the rollback's bound); here the read and the hash (~2-3 s of CPU) run on the other core.
 * Input: workerData `{ file }`. Messages: progress every 64 MiB, then the digest, or the read's error.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

export type FileHashReply =
  | { t: 'progress'; bytes: number }
  | { t: 'done'; sha256: string; size: number }
  | { t: 'error'; message: string; code?: string };

const { file } = workerData as { file: string };
const post = (m: FileHashReply): void => parentPort!.postMessage(m);
try {
  const fd = openSync(file, 'r');
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(4 << 20);
    let size = 0;
    let reported = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      size += n;
      if (size - reported >= 64 << 20) {
        reported = size;
        post({ t: 'progress', bytes: size });
      }
    }
    post({ t: 'done', sha256: hash.digest('hex'), size });
  } finally {
    closeSync(fd);
  }
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  post({ t: 'error', message: e?.message ?? String(err), ...(e?.code ? { code: e.code } : {}) });
}
