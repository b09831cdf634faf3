/**
 * A thread that posts one result and ends: the walk of the live tree for files added since a backup
 * (live-walk.ts) and the re-check of what a sparse rollback leaves in place (extract-links.ts). `result` settles
 * with the thread's one message; it rejects when the thread fails or ends without one, and when `stop` ended it.
 * A thread that cannot start at all is `started: false` (the caller then does the work itself).
 */
import { Worker, type ResourceLimits } from 'node:worker_threads';

export type OneShot = { started: false } | { started: true; result: Promise<unknown>; stop: () => void };

export function startOneShot(url: URL, workerData: unknown, limits: ResourceLimits, what: string): OneShot {
  let w: Worker;
  try {
    w = new Worker(url, { workerData, resourceLimits: limits });
  } catch {
    return { started: false };
  }
  // not unref'd: the caller may wait for nothing else (the thread ends by itself, or `stop` ends it)
  const result = new Promise<unknown>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`${what} exited (code ${code}) without a result`)));
  });
  return { started: true, result, stop: () => void w.terminate().catch(() => {}) };
}
