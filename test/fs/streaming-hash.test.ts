import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { HashStreams, StreamingHash } from '../../src/fs/streaming-hash.js';

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

void test('HashStreams: interleaved streams on one worker each equal their one-shot SHA-256 (empty, small, multi-MiB); abandon() fails what was not answered', async () => {
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const hs = new HashStreams();
  const a = hs.open();
  const b = hs.open();
  const empty = hs.open();
  const partsA = [randomBytes(10), randomBytes((2 << 20) + 3), randomBytes(1)];
  const partsB = [randomBytes(1 << 20), randomBytes(7)];
  const reused = Buffer.alloc(5000);
  const keptB: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    a.update(partsA[i]!);
    if (partsB[i]) {
      b.update(partsB[i]!);
      keptB.push(partsB[i]!);
    }
    randomBytes(reused.length).copy(reused);
    keptB.push(Buffer.from(reused));
    b.update(reused);
    reused.fill(0); // the caller may reuse its buffer at once
  }
  assert.ok(hs.backlog > 0, 'what the worker has not handed back is counted');
  await hs.below(0);
  assert.equal(hs.backlog, 0);
  hs.close();
  const c = hs.open.bind(hs);
  assert.throws(c, /closed/);
  const [da, db, de] = await Promise.all([a.digest(), b.digest(), empty.digest()]);
  assert.equal(da, sha(Buffer.concat(partsA)));
  assert.equal(db, sha(Buffer.concat(keptB)));
  assert.equal(de, sha(Buffer.alloc(0)));
  assert.equal(await a.digest(), da, 'digest() is idempotent');

  const x = new HashStreams();
  const s = x.open();
  s.update(randomBytes(100));
  await x.abandon();
  await assert.rejects(s.digest());
});
