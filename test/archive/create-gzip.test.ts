import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, closeSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { gunzipSync, inflateRawSync } from 'node:zlib';
import { ParallelGzipWriter } from '../../src/archive/gzip-parallel.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mbk-gzip-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function textish(n: number): Buffer {
  const words = ['public', 'function', 'return', '$this->', 'array', '{', '}', ';', '\n', 'Magento', '=>'];
  let s = '';
  let i = 0;
  while (s.length < n) s += (words[(i++ * 7919) % words.length] as string) + ' ';
  return Buffer.from(s.slice(0, n));
}

void test('many small and odd-sized writes round-trip through concatenated members (fd target)', async () => {
  const file = path.join(dir, 'a.gz');
  const fd = openSync(file, 'w');
  const gz = new ParallelGzipWriter(fd, { chunkSize: 64 * 1024, concurrency: 3 });
  const parts: Buffer[] = [];
  let seed = 1;
  for (let i = 0; i < 300; i++) {
    seed = (seed * 48271) % 2147483647;
    const b = i % 3 === 0 ? randomBytes(seed % 5000) : textish(seed % 70000);
    parts.push(b);
    await gz.write(b);
  }
  const r = await gz.end();
  closeSync(fd);
  const input = Buffer.concat(parts);
  assert.equal(r.bytesIn, input.length);
  const onDisk = readFileSync(file);
  assert.equal(r.bytesOut, onDisk.length);
  assert.ok(gunzipSync(onDisk).equals(input));
  // GNU gzip reads the multi-member stream too.
  assert.ok(execFileSync('gzip', ['-dc', file], { maxBuffer: 1 << 26 }).equals(input));
});

void test('FileHandle target, whole-chunk writes, incompressible members stored', async () => {
  const file = path.join(dir, 'b.gz');
  const fh = await open(file, 'w');
  const gz = new ParallelGzipWriter(fh, { level: 6, chunkSize: 256 * 1024, storeIncompressible: true });
  const random = randomBytes(1024 * 1024);
  const text = textish(1024 * 1024);
  await gz.write(random);
  await gz.write(text);
  const r = await gz.end();
  await fh.close();
  const onDisk = readFileSync(file);
  assert.ok(gunzipSync(onDisk).equals(Buffer.concat([random, text])));
  // random data is stored (a little larger than the input), the text compresses a lot
  assert.ok(r.bytesOut < random.length + text.length / 4, `size ${r.bytesOut}`);
  assert.ok(r.bytesOut > random.length);
});

void test('empty input still gives a valid gzip file', async () => {
  const file = path.join(dir, 'c.gz');
  const fd = openSync(file, 'w');
  const gz = new ParallelGzipWriter(fd);
  await gz.end();
  closeSync(fd);
  assert.equal(gunzipSync(readFileSync(file)).length, 0);
});

void test('level 0 gives a valid gzip file; bad levels are refused', async () => {
  const file = path.join(dir, 'd.gz');
  const fd = openSync(file, 'w');
  const gz = new ParallelGzipWriter(fd, { level: 0 });
  const data = textish(3 * 1024 * 1024 + 17);
  await gz.write(data);
  await gz.end();
  closeSync(fd);
  assert.ok(gunzipSync(readFileSync(file)).equals(data));
  assert.throws(() => new ParallelGzipWriter(1, { level: 10 }), RangeError);
});

void test('writeMember: one member per buffer, handed back in file order once written', async () => {
  const file = path.join(dir, 'f.gz');
  const fd = openSync(file, 'w');
  const events: string[] = [];
  let written = 0;
  const gz = new ParallelGzipWriter(fd, {
    chunkSize: 64 * 1024,
    concurrency: 3,
    onWritten: () => events.push(`written ${written++}`),
  });
  const inputs: Buffer[] = [];
  // sizes over and under the member size: writeMember never splits or joins them
  const sizes = [100_000, 5, 64 * 1024, 200_000, 1, 70_000, 30_000, 65_537];
  await gz.write(textish(1000)); // staged by write(): it must come first, as a member of its own
  for (const [i, n] of sizes.entries()) {
    const b = i % 2 === 0 ? textish(n) : randomBytes(n);
    inputs.push(b);
    await gz.writeMember(b, (input) => {
      assert.equal(input, b);
      events.push(`back ${i}`);
    });
  }
  const r = await gz.end();
  closeSync(fd);
  const all = Buffer.concat([textish(1000), ...inputs]);
  assert.equal(r.bytesIn, all.length);
  const onDisk = readFileSync(file);
  assert.ok(execFileSync('gzip', ['-dc', file], { maxBuffer: 1 << 26 }).equals(all));
  // each buffer is one member: the members, decompressed one by one, are the staged write and the buffers
  const members: number[] = [];
  for (let off = 0; off < onDisk.length;) {
    // Node writes a 10-byte header (no name) and an 8-byte trailer around each member's deflate stream
    const r = inflateRawSync(onDisk.subarray(off + 10), { info: true }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    members.push(r.buffer.length);
    off += 10 + r.engine.bytesWritten + 8;
  }
  assert.deepEqual(members, [1000, ...sizes]);
  // afterWrite comes after the member's onWritten, in file order
  assert.deepEqual(events, [['written 0'], ...sizes.map((_, i) => [`written ${i + 1}`, `back ${i}`])].flat());
});

void test('destroy() stops: later writes reject, drain() settles', async () => {
  const file = path.join(dir, 'e.gz');
  const fd = openSync(file, 'w');
  const gz = new ParallelGzipWriter(fd, { chunkSize: 4096 });
  await gz.write(textish(100_000));
  gz.destroy();
  await assert.rejects(gz.write(Buffer.from('x')));
  await gz.drain();
  closeSync(fd);
});
