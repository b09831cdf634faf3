import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeAtomic } from '../../src/fs/atomic.js';
import { tempDir } from '../helpers/tmp.js';

/** FileHandle.prototype.datasync, replaced for one test (the class is not exported: take it from a handle). */
async function withDatasync(
  dir: string,
  replacement: (orig: () => Promise<void>) => () => Promise<void>,
  body: () => Promise<void>,
): Promise<void> {
  const fh = await fsp.open(path.join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(fh) as { datasync: () => Promise<void> };
  await fh.close();
  await fsp.rm(path.join(dir, 'probe'));
  const orig = proto.datasync;
  proto.datasync = replacement(orig);
  try {
    await body();
  } finally {
    proto.datasync = orig;
  }
}

void test('writeAtomic with flushEveryMs starts the write-back while the file is written, and the file is whole', async () => {
  const dir = tempDir();
  const file = path.join(dir, '1_db.sql');
  let flushes = 0;
  await withDatasync(
    dir,
    (orig) =>
      function (this: unknown) {
        flushes++;
        return orig.call(this);
      },
    async () => {
      const r = await writeAtomic(
        file,
        async (partial) => {
          const out = await fsp.open(partial, 'w');
          for (let i = 0; i < 6; i++) {
            await out.write(Buffer.alloc(64 * 1024, 48 + i));
            // the writer keeps going past several flush intervals (how long does not matter, only that it does)
            await sleep(30);
          }
          await out.close();
          return 'done';
        },
        { flushEveryMs: 10 },
      );
      assert.equal(r, 'done');
    },
  );
  assert.ok(flushes > 0, 'an fdatasync ran while the file was written');
  const data = readFileSync(file);
  assert.equal(data.length, 6 * 64 * 1024);
  for (let i = 0; i < 6; i++) assert.equal(data[i * 64 * 1024], 48 + i);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir), ['1_db.sql']);
});

void test('writeAtomic: a failed early flush fails the write and leaves nothing (its error would be lost otherwise)', async () => {
  const dir = tempDir();
  const file = path.join(dir, '1_db.sql');
  const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
  await withDatasync(
    dir,
    () => () => Promise.reject(eio),
    async () => {
      await assert.rejects(
        writeAtomic(
          file,
          async (partial) => {
            await fsp.writeFile(partial, 'x'.repeat(1000));
            await sleep(60);
          },
          { flushEveryMs: 5 },
        ),
        (err: unknown) => err === eio,
      );
    },
  );
  assert.deepEqual(readdirSync(dir), [], 'neither the file nor its .partial is left');
});

void test("writeAtomic: the writer's own error wins over a flush's, and nothing is left", async () => {
  const dir = tempDir();
  const file = path.join(dir, '1_db.sql');
  const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
  const mine = new Error('the dump failed');
  await withDatasync(
    dir,
    () => () => Promise.reject(eio),
    async () => {
      await assert.rejects(
        writeAtomic(
          file,
          async () => {
            await sleep(40);
            throw mine;
          },
          { flushEveryMs: 5 },
        ),
        (err: unknown) => err === mine,
      );
    },
  );
  assert.deepEqual(readdirSync(dir), []);
});
