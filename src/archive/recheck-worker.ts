/** Worker thread of recheckKept (extract-links.ts): one shard of what a sparse rollback left in place. */
import { parentPort, workerData } from 'node:worker_threads';
import { firstChanged } from './extract-links.js';
import type { KeptSet } from './extract-sparse.js';

const input = workerData as { liveDir: string; kept: KeptSet };
parentPort?.postMessage(firstChanged(input.liveDir, input.kept) ?? null);
