import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { verifyDump, dumpFlavour, dumpedDatabaseFromHeader } from '../../src/db/verify-dump.js';
import { CliError } from '../../src/errors.js';

let dir: string;
const body = [
  '/*M!999999\\- enable the sandbox mode */ ',
  '-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB',
  '--',
  '-- Host: localhost    Database: shop',
  '/*!40101 SET NAMES utf8mb4 */;',
  'CREATE TABLE `t` (`a` text);',
  "INSERT INTO `t` VALUES ('x;y'),('it\\'s');",
  '',
].join('\n');
const complete = body + '-- Dump completed on 2024-01-02  3:04:05\n';

void before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mbk-verify-'));
});
void after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function file(name: string, data: string | Buffer): Promise<string> {
  const f = path.join(dir, name);
  await fsp.writeFile(f, data);
  return f;
}

function rejectsNaming(f: string, re: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof CliError, String(err));
    assert.ok(err.message.includes(f), err.message);
    assert.match(err.message, re);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  };
}

void test('a complete dump verifies, plain or gzip, with its statement count and flavour', async () => {
  const plain = await file('a.sql', complete);
  const gz = await file('a.sql.gz', gzipSync(complete));
  const progress: number[] = [];
  const r1 = await verifyDump(plain, { onProgress: (b) => progress.push(b) });
  assert.deepEqual(r1, { bytes: Buffer.byteLength(complete), statements: 3, footer: 'mysqldump' });
  assert.equal(progress.at(-1), r1.bytes);
  const r2 = await verifyDump(gz);
  assert.equal(r2.statements, 3);
  assert.equal(r2.bytes, (await fsp.stat(gz)).size);
});

void test("Magento's footer without a final newline is accepted", async () => {
  const f = await file(
    'm.sql',
    '-- Magento DB backup\n--\n' + body + '-- Dump completed on 2024-05-06 07:08:09 GMT',
  );
  assert.equal((await verifyDump(f)).footer, 'magento');
});

void test('a dump cut anywhere is refused', async () => {
  const buf = Buffer.from(complete);
  const footerAt = buf.indexOf('-- Dump completed');
  for (const cut of [10, 60, buf.indexOf("'x;y") + 2, footerAt - 1, footerAt + 8]) {
    const f = await file(`cut${cut}.sql`, buf.subarray(0, cut));
    await assert.rejects(verifyDump(f), rejectsNaming(f, /truncated|incomplete/));
  }
  // footer present but the last statement never ended
  const open = await file(
    'open.sql',
    body.replace("('it\\'s');", "('it\\'s')") + '-- Dump completed on 2024\n',
  );
  await assert.rejects(verifyDump(open), rejectsNaming(open, /truncated/));
});

void test('a truncated or corrupt .sql.gz is refused', async () => {
  const gz = gzipSync(complete + 'x'.repeat(100000));
  const cut = await file('cut.sql.gz', gz.subarray(0, gz.length - 10));
  await assert.rejects(verifyDump(cut), rejectsNaming(cut, /truncated|corrupt/));
  const bad = Buffer.from(gzipSync(complete));
  bad[bad.length - 6] = bad[bad.length - 6]! ^ 0xff; // CRC
  const corrupt = await file('crc.sql.gz', bad);
  await assert.rejects(verifyDump(corrupt), rejectsNaming(corrupt, /corrupt|truncated/));
});

void test('missing, empty and directory paths are refused with one line', async () => {
  const missing = path.join(dir, 'nope.sql');
  await assert.rejects(verifyDump(missing), rejectsNaming(missing, /does not exist/));
  const empty = await file('empty.sql', '');
  await assert.rejects(verifyDump(empty), rejectsNaming(empty, /empty/));
  await assert.rejects(verifyDump(dir), rejectsNaming(dir, /directory/));
});

void test('an aborted verification throws InterruptedError', async () => {
  const f = await file('big.sql', complete);
  const ac = new AbortController();
  ac.abort('SIGINT');
  await assert.rejects(verifyDump(f, { signal: ac.signal }), { name: 'InterruptedError' });
});

void test('header helpers', () => {
  assert.equal(dumpFlavour('-- Magento DB backup\n--\n'), 'magento');
  assert.equal(dumpFlavour('-- magebackup 0.1.0 dump\n'), 'magebackup');
  assert.equal(dumpFlavour(body), 'mysqldump');
  assert.equal(dumpedDatabaseFromHeader(body), 'shop');
  assert.equal(dumpedDatabaseFromHeader('-- nothing'), undefined);
});

void test('a directory or a FIFO given as a dump: one line naming it, and what it is', async () => {
  const d = path.join(dir, 'a-dir.sql');
  await fsp.mkdir(d);
  await assert.rejects(verifyDump(d), rejectsNaming(d, /is a directory$/));
  const fifo = path.join(dir, 'a-fifo.sql');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(verifyDump(fifo), rejectsNaming(fifo, /is not a regular file$/));
});
