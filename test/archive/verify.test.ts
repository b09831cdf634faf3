import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { verifyArchive } from '../../src/archive/verify.js';
import { CliError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';
import { craftTar, craftTgz } from './extract-crafted.js';

function sourceArchive(): { file: string; dir: string } {
  const dir = tempDir('mbk-v-');
  const src = path.join(dir, 'src');
  for (let i = 0; i < 30; i++) {
    fs.mkdirSync(path.join(src, `d${i}`), { recursive: true });
    for (let j = 0; j < 20; j++)
      fs.writeFileSync(path.join(src, `d${i}`, `f${j}.txt`), `file ${i} ${j} `.repeat(200 + j));
  }
  fs.symlinkSync('d0/f0.txt', path.join(src, 'link'));
  const file = path.join(dir, '1700000000_filesystem.tgz');
  execFileSync('tar', ['-czf', file, '-C', src, '.']);
  return { file, dir };
}

function expectDamaged(p: Promise<unknown>, file: string, why: RegExp): Promise<void> {
  return assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CliError, String(err));
    assert.ok(err.message.includes(file), err.message);
    assert.match(err.message, why);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
}

void test('a good archive verifies and is counted', async () => {
  const { file } = sourceArchive();
  const progress: number[] = [];
  const r = await verifyArchive(file, { onProgress: (p) => progress.push(p.entries) });
  assert.equal(r.files, 600);
  assert.equal(r.dirs, 31); // './' and 30 dirs
  assert.equal(r.symlinks, 1);
  assert.equal(r.entries, 632);
  assert.ok(r.bytes > 0 && r.tarBytes > r.bytes);
  assert.equal(progress.at(-1), 632);
});

void test('verify writes nothing', async () => {
  const { file, dir } = sourceArchive();
  const before = fs.readdirSync(dir).sort();
  await verifyArchive(file);
  assert.deepEqual(fs.readdirSync(dir).sort(), before);
});

void test('a truncated archive is refused, naming the file', async () => {
  const { file, dir } = sourceArchive();
  const data = fs.readFileSync(file);
  for (const keep of [data.length - 1, data.length - 9, Math.floor(data.length / 2), 20]) {
    const cut = path.join(dir, `cut-${keep}.tgz`);
    fs.writeFileSync(cut, data.subarray(0, keep));
    await expectDamaged(verifyArchive(cut), cut, /truncated|damaged/);
  }
});

void test('a flipped byte is caught (gzip CRC or data error)', async () => {
  const { file, dir } = sourceArchive();
  const data = Buffer.from(fs.readFileSync(file));
  const i = Math.floor(data.length * 0.6);
  data[i] = data[i]! ^ 0x55;
  const bad = path.join(dir, 'flipped.tgz');
  fs.writeFileSync(bad, data);
  await expectDamaged(verifyArchive(bad), bad, /damaged/);
});

void test('a corrupted CRC trailer is caught', async () => {
  const { file, dir } = sourceArchive();
  const data = Buffer.from(fs.readFileSync(file));
  data[data.length - 6] = data[data.length - 6]! ^ 0xff; // inside the CRC32 of the last member
  const bad = path.join(dir, 'crc.tgz');
  fs.writeFileSync(bad, data);
  await expectDamaged(verifyArchive(bad), bad, /damaged/);
});

void test('a tar stream cut before its end-of-archive marker is refused (even with intact gzip)', async () => {
  const dir = tempDir();
  const tarBuf = craftTar(
    [
      { path: 'a.txt', body: 'aaa' },
      { path: 'b.txt', body: 'bbb' },
    ],
    { noEnd: true },
  );
  const noEnd = path.join(dir, 'noend.tgz');
  fs.writeFileSync(noEnd, gzipSync(tarBuf));
  await expectDamaged(verifyArchive(noEnd), noEnd, /end-of-archive marker is missing/);
  const midBody = path.join(dir, 'midbody.tgz');
  fs.writeFileSync(midBody, gzipSync(tarBuf.subarray(0, 600)));
  await expectDamaged(verifyArchive(midBody), midBody, /unexpected end of archive/);
});

void test('a bad header checksum is refused', async () => {
  const dir = tempDir();
  const tarBuf = Buffer.from(craftTar([{ path: 'a.txt', body: 'aaa' }]));
  tarBuf[10] = 0x41; // inside the name, checksum not updated
  const bad = path.join(dir, 'cksum.tgz');
  fs.writeFileSync(bad, gzipSync(tarBuf));
  await expectDamaged(verifyArchive(bad), bad, /checksum/);
});

void test('not a gzip file / an empty file are refused', async () => {
  const dir = tempDir();
  const text = path.join(dir, 'text.tgz');
  fs.writeFileSync(text, 'hello, this is not gzip\n'.repeat(10));
  await expectDamaged(verifyArchive(text), text, /not a gzip file/);
  const empty = path.join(dir, 'empty.tgz');
  fs.writeFileSync(empty, '');
  await expectDamaged(verifyArchive(empty), empty, /damaged|truncated/);
});

void test('unsafe entries fail verification too', async () => {
  const dir = tempDir();
  const evil = path.join(dir, 'evil.tgz');
  fs.writeFileSync(evil, craftTgz([{ path: '../../etc/cron.d/x', body: 'x' }]));
  await expectDamaged(verifyArchive(evil), evil, /refused/);
});

void test('a missing file is one clear line', async () => {
  await expectDamaged(
    verifyArchive('/nonexistent/1_filesystem.tgz'),
    '/nonexistent/1_filesystem.tgz',
    /Cannot read/,
  );
});
