/**
 * In-process stand-ins for the process's streams, signals and exit, for main() / RunContext / reporters. A fake
 * terminal answers like a tty.WriteStream (isTTY, columns, cursorTo, moveCursor, clearLine), writing the same
 * ANSI sequences as node does, so a test can see a spinner drawn and its line cleared.
 */
import { EventEmitter } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import type { Io } from '../../src/cli/io.js';

export class FakeStream extends Writable {
  text = '';
  isTTY: boolean;
  columns: number | undefined;
  constructor(o: { tty?: boolean; columns?: number } = {}) {
    super();
    this.isTTY = o.tty ?? false;
    this.columns = o.tty ? (o.columns ?? 80) : undefined;
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
  // tty.WriteStream's cursor methods (ora calls them on its stream)
  cursorTo(x: number, _y?: unknown, cb?: () => void): boolean {
    this.write(`\x1b[${x + 1}G`);
    cb?.();
    return true;
  }
  moveCursor(dx: number, dy: number, cb?: () => void): boolean {
    if (dy < 0) this.write(`\x1b[${-dy}A`);
    if (dy > 0) this.write(`\x1b[${dy}B`);
    if (dx) this.write(dx < 0 ? `\x1b[${-dx}D` : `\x1b[${dx}C`);
    cb?.();
    return true;
  }
  clearLine(_dir: number, cb?: () => void): boolean {
    this.write('\x1b[2K');
    cb?.();
    return true;
  }
  /** the lines written, without a trailing empty one */
  lines(): string[] {
    return this.text.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1);
  }
}

export interface FakeIo extends Io {
  stdout: FakeStream;
  stderr: FakeStream;
  signals: EventEmitter;
  /** the codes io.exit was called with */
  exits: number[];
}

/** stdin: not a terminal unless `answer` is given (then a terminal that types it). */
export function fakeIo(
  o: { tty?: boolean; columns?: number; env?: NodeJS.ProcessEnv; cwd?: string; answer?: string } = {},
): FakeIo {
  const stdin = new PassThrough() as PassThrough & { isTTY?: boolean };
  if (o.answer !== undefined) {
    stdin.isTTY = true;
    stdin.end(o.answer);
  } else stdin.end();
  const exits: number[] = [];
  return {
    stdout: new FakeStream({
      tty: o.tty ?? false,
      ...(o.columns !== undefined ? { columns: o.columns } : {}),
    }),
    stderr: new FakeStream({
      tty: o.tty ?? false,
      ...(o.columns !== undefined ? { columns: o.columns } : {}),
    }),
    stdin,
    env: o.env ?? {},
    cwd: o.cwd ?? process.cwd(),
    signals: new EventEmitter(),
    exits,
    exit: (code) => void exits.push(code),
  };
}

/** argv as bin/magebackup.js passes it */
export const argv = (...args: string[]) => ['node', 'magebackup', ...args];

export const ANSI = /\x1b\[/;
