import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { StreamingHash } from '../../src/fs/streaming-hash.js';

void test('StreamingHash equals a one-shot SHA-256, for empty, small, odd and multi-MiB chunks, and the caller may reuse its buffer', async () => {
  const chunks = [
    Buffer.alloc(0),
    randomBytes(1),
    randomBytes(4097),
    randomBytes((3 << 20) + 5),
    randomBytes(1 << 20),
  ];
  const h = new StreamingHash();
  const reused = Buffer.alloc(70000);
  const all: Buffer[] = [];
  for (const c of chunks) {
    h.update(c);
    all.push(c);
    // a buffer overwritten right after update() must not change the result
    randomBytes(reused.length).copy(reused);
    all.push(Buffer.from(reused));
    h.update(reused);
    reused.fill(0);
  }
  const want = createHash('sha256').update(Buffer.concat(all)).digest('hex');
  const got = await h.digest();
  assert.equal(got.sha256, want);
  assert.equal(got.size, Buffer.concat(all).length);
  assert.equal(await h.digest(), got, 'digest() is idempotent');
});

void test('an empty StreamingHash is the SHA-256 of nothing; abandon() ends the worker without a result', async () => {
  const h = new StreamingHash();
  assert.deepEqual(await h.digest(), { sha256: createHash('sha256').digest('hex'), size: 0 });
  const a = new StreamingHash();
  a.update(randomBytes(1000));
  await a.abandon();
  await assert.rejects(a.digest(), /abandoned/);
});
