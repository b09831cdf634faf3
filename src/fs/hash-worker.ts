/**
 * Worker side of StreamingHash: SHA-256 of the byte chunks posted to it, in order. Off the main thread, so
 * hashing a 600 MB dump costs the dumper no time (it runs on the other core while the dumper formats rows).
 * Each chunk's buffer is transferred back once hashed, so the main thread reuses a few buffers instead of
 * leaving hundreds of megabytes of garbage for this thread's collector.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

export type HashRequest = { t: 'data'; buf: ArrayBuffer; len: number } | { t: 'end' };
export type HashReply = { t: 'free'; buf: ArrayBuffer } | { t: 'digest'; hex: string; size: number };

const hash = createHash('sha256');
let size = 0;
parentPort!.on('message', (m: HashRequest) => {
  if (m.t === 'data') {
    hash.update(new Uint8Array(m.buf, 0, m.len));
    size += m.len;
    parentPort!.postMessage({ t: 'free', buf: m.buf } satisfies HashReply, [m.buf]);
  } else {
    parentPort!.postMessage({ t: 'digest', hex: hash.digest('hex'), size } satisfies HashReply);
    parentPort!.close();
  }
});
