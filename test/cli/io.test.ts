import assert from 'node:assert/strict';
import { test } from 'node:test';
import { processIo } from '../../src/cli/io.js';

void test('the real process Io creates process.stdin only when a run reads it', () => {
  // Node creates process.stdin on its first read; each run's start paid for it though only a confirmation reads it
  const own = Object.getOwnPropertyDescriptor(process, 'stdin');
  assert.ok(own && 'get' in own, 'process.stdin is an accessor');
  const create = (): unknown => own.get?.call(process);
  let reads = 0;
  Object.defineProperty(process, 'stdin', {
    configurable: true,
    enumerable: true,
    get() {
      reads++;
      return create();
    },
  });
  try {
    const io = processIo(() => {});
    assert.equal(reads, 0);
    assert.equal(io.stdin, create());
    assert.equal(reads, 1);
  } finally {
    Object.defineProperty(process, 'stdin', own);
  }
});
