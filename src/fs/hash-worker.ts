/**
 * Worker side of StreamingHash and HashStreams: SHA-256 of the byte chunks posted to it, per stream id, in order
 * (a 'chunk' message carries parts of several streams in one buffer: the dump's file and its tables' rows).
 * Off the main thread, so hashing a 600 MB dump (and its tables' rows) costs the dumper no time: it runs on the
 * other core while the dumper formats rows. Each chunk's buffer is transferred back once hashed, so the main
 * thread reuses a few buffers instead of leaving hundreds of megabytes of garbage for this thread's collector.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

export type HashRequest =
  | { t: 'data'; id: number; buf: ArrayBuffer; len: number }
  /** a buffer holding several streams' bytes: parts is [id, start, end, ...]; handed back as 'chunk-free' */
  | { t: 'chunk'; buf: ArrayBuffer; parts: number[] }
  | { t: 'end'; id: number }
  | { t: 'close' };
export type HashReply =
  | { t: 'free'; buf: ArrayBuffer }
  | { t: 'chunk-free'; buf: ArrayBuffer }
  | { t: 'digest'; id: number; hex: string; size: number };

const streams = new Map<number, { hash: Hash; size: number }>();
const stream = (id: number): { hash: Hash; size: number } => {
  let s = streams.get(id);
  if (!s) streams.set(id, (s = { hash: createHash('sha256'), size: 0 }));
  return s;
};
parentPort!.on('message', (m: HashRequest) => {
  if (m.t === 'data') {
    const s = stream(m.id);
    s.hash.update(new Uint8Array(m.buf, 0, m.len));
    s.size += m.len;
    parentPort!.postMessage({ t: 'free', buf: m.buf } satisfies HashReply, [m.buf]);
  } else if (m.t === 'chunk') {
    const p = m.parts;
    for (let i = 0; i + 2 < p.length; i += 3) {
      const s = stream(p[i]!);
      const start = p[i + 1]!;
      const end = p[i + 2]!;
      s.hash.update(new Uint8Array(m.buf, start, end - start));
      s.size += end - start;
    }
    parentPort!.postMessage({ t: 'chunk-free', buf: m.buf } satisfies HashReply, [m.buf]);
  } else if (m.t === 'end') {
    const s = stream(m.id);
    streams.delete(m.id);
    parentPort!.postMessage({
      t: 'digest',
      id: m.id,
      hex: s.hash.digest('hex'),
      size: s.size,
    } satisfies HashReply);
  } else parentPort!.close();
});
