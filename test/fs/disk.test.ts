import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ensureFreeSpace, freeBytes, mapWriteError } from '../../src/fs/disk.js';
import { CliError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';

void test('ensureFreeSpace passes when the space is there and fails naming the directory, need and free space', async () => {
  const dir = tempDir();
  const free = await freeBytes(dir);
  assert.ok(free > 0, 'statfs reports free space');
  await ensureFreeSpace(dir, 1024, 'code backup 1_filesystem.tgz');
  await assert.rejects(
    ensureFreeSpace(dir, free * 2 + 1e15, 'code backup 1_filesystem.tgz'),
    (err: unknown) => {
      assert.ok(err instanceof CliError);
      assert.match(
        err.message,
        /^Not enough free disk space in .+ for the code backup 1_filesystem\.tgz: about .+ needed, .+ free$/,
      );
      assert.ok(err.message.includes(dir));
      return true;
    },
  );
});

void test('a disk-full or quota error while writing becomes one line naming the file; others pass through', () => {
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const m = mapWriteError(enospc, '/s/var/backups/1_db.sql');
  assert.ok(m instanceof CliError);
  assert.equal(m.message, 'Disk full while writing /s/var/backups/1_db.sql');
  const q = mapWriteError(Object.assign(new Error('quota'), { code: 'EDQUOT' }), '/f');
  assert.ok(q instanceof CliError && /quota/i.test(q.message));
  const other = new Error('EIO');
  assert.equal(mapWriteError(other, '/f'), other);
});
