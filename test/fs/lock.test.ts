import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquireLock } from '../../src/fs/lock.js';
import { LockedError, ExitCode } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';

void test('a second lock is refused with exit 11, naming the holder; release frees it', async () => {
  const dir = tempDir();
  const lock = await acquireLock(dir, { command: 'setup:backup' });
  const info = JSON.parse(readFileSync(path.join(dir, '.lock'), 'utf8')) as { pid: number; host: string };
  assert.equal(info.pid, process.pid);
  assert.equal(info.host, os.hostname());
  await assert.rejects(acquireLock(dir, { command: 'setup:rollback' }), (err: unknown) => {
    assert.ok(err instanceof LockedError);
    assert.equal(err.exitCode, ExitCode.LOCKED);
    assert.match(err.message, new RegExp(`pid ${process.pid}`));
    assert.match(err.message, /setup:backup/);
    return true;
  });
  await lock.release();
  assert.equal(existsSync(path.join(dir, '.lock')), false);
  const again = await acquireLock(dir, { command: 'x' });
  await again.release();
});

void test('a stale lock of a dead pid on this host is taken over', async () => {
  const dir = tempDir();
  // A pid that certainly is dead: a child that has exited.
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  const deadPid = Number(child.stdout.toString());
  writeFileSync(
    path.join(dir, '.lock'),
    JSON.stringify({
      pid: deadPid,
      host: os.hostname(),
      started: '2020-01-01T00:00:00Z',
      command: 'setup:backup',
    }),
  );
  const stale: number[] = [];
  const lock = await acquireLock(dir, { command: 'x', onStale: (i) => stale.push(i.pid) });
  assert.deepEqual(stale, [deadPid]);
  await lock.release();
});

void test('a lock held by a live process on another host is never taken over', async () => {
  const dir = tempDir();
  writeFileSync(
    path.join(dir, '.lock'),
    JSON.stringify({ pid: 1, host: 'other-host', started: '2020-01-01T00:00:00Z', command: 'setup:backup' }),
  );
  await assert.rejects(acquireLock(dir, { command: 'x' }), /other-host/);
});
