/**
 * A full disk, for real: var/backups is a small tmpfs. Mounting needs root (CI runs as root): without it these
 * tests fail with that instruction, never pass by skipping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { minimalStore } from '../helpers/tmp.js';
import { isHistoryFile } from '../../src/history/history.js';

/** Mounts a tmpfs of `size` on <root>/var/backups; returns the unmount function. */
function smallDisk(root: string, size: string): () => void {
  const dir = path.join(root, 'var', 'backups');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch (err) {
    throw new Error(
      `cannot mount a ${size} tmpfs on ${dir} to simulate a full disk: run the tests as root (as .ci/run does)`,
      { cause: err },
    );
  }
  return () => execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
}

function storeWithRandomCode(mb: number): string {
  const root = minimalStore();
  for (let i = 0; i < mb; i++) writeFileSync(path.join(root, `blob${i}.bin`), randomBytes(1 << 20));
  return root;
}

async function checkFails(size: string, codeMb: number, message: RegExp): Promise<void> {
  const root = storeWithRandomCode(codeMb);
  const unmount = smallDisk(root, size);
  try {
    const flag = path.join(root, 'var', '.maintenance.flag');
    const r = await runCli(['setup:backup', '--code', '--root', root]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.deepEqual(
      readdirSync(path.join(root, 'var', 'backups')).filter((n) => !isHistoryFile(n)),
      [],
      'no partial file, lock or marker left',
    );
    assert.equal(existsSync(flag), false, 'maintenance mode is off again, as it was before');
  } finally {
    unmount();
  }
}

void test('a backup that cannot fit is refused before writing, naming the directory and the sizes (exit 1)', async () => {
  await checkFails(
    '1m',
    4,
    /^Error: Not enough free disk space in .*var\/backups for the code backup \d+_filesystem\.tgz: about .+ needed, .+ free$/m,
  );
});

void test('a disk that fills up half-way fails with one line naming the file and leaves nothing (exit 1)', async () => {
  // random data does not compress: the estimate (half the bytes) passes the check, the archive does not fit
  await checkFails('10m', 14, /^Error: Disk full while writing .*var\/backups\/\d+_filesystem\.tgz$/m);
});
