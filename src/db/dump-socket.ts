/**
 * The dump connection's socket: read into one reused buffer instead of a fresh one per read.
 *
 * Node allocates a new 64 KiB buffer for every socket read; the kernel then copies the data into pages it has to
 * map first. On the bench's narrow tables (166 MB of rows) that was ~7,000 page faults in `read` alone, plus the
 * garbage of ~2,600 external buffers. Here the socket reads (Node's `onread`) into one buffer, and:
 * - while the row framer (dump-rows.ts) is installed, each read goes to it as a view of that buffer: it writes
 *   the whole row packets out at once and hands mysql2 only copies of what it does not take;
 * - at any other time (handshake, queries, column definitions) each read is copied into a fresh buffer of its
 *   exact size and emitted as the ordinary 'data' event mysql2 listens to: mysql2 keeps slices of what it reads
 *   (column definitions, rows as buffers), so it must never see the reused buffer.
 */
import net from 'node:net';
import type { DbConnectionConfig } from './types.js';

/** bytes per socket read (Node's own default) */
const READ_BYTES = 64 * 1024;

/** Where a socket's reads go while somebody takes them straight from the read buffer. */
export interface DirectReads {
  /**
   * Takes a view of the read buffer, valid only during the call: whatever it keeps or hands on it must copy.
   * null: reads are copied and emitted as 'data'.
   */
  consumer: ((chunk: Buffer) => void) | null;
}

const DIRECT = Symbol('magebackup direct reads');

/** The DirectReads of a socket made by dumpSocket, or undefined for any other stream. */
export function directReadsOf(stream: unknown): DirectReads | undefined {
  return (stream as { [DIRECT]?: DirectReads } | null)?.[DIRECT];
}

/**
 * A connected socket for mysql2's `stream` option, as mysql2 would make it (TCP: no delay, keep-alive), reading
 * into one reused buffer. Only for connections without TLS or compression (mysql2 would wrap or inflate the
 * stream; the dumper uses neither).
 */
export function dumpSocket(cfg: DbConnectionConfig): net.Socket {
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  const reads: DirectReads = { consumer: null };
  let socket: net.Socket;
  const onread = {
    buffer,
    callback: (n: number, buf: Uint8Array): boolean => {
      const view = Buffer.from(buf.buffer, buf.byteOffset, n);
      const direct = reads.consumer;
      if (direct) direct(view);
      else socket.emit('data', Buffer.from(view));
      return true;
    },
  };
  if (cfg.socketPath !== undefined) {
    socket = net.connect({ path: cfg.socketPath, onread });
  } else {
    socket = net.connect({ host: cfg.host ?? 'localhost', port: cfg.port ?? 3306, onread });
    socket.setNoDelay(true);
    socket.once('connect', () => socket.setKeepAlive(true, 1));
  }
  (socket as unknown as { [DIRECT]: DirectReads })[DIRECT] = reads;
  return socket;
}
