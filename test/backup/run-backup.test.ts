import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, writeFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { runBackup, pickTimestamp } from '../../src/backup/run-backup.js';
import type { MagebackupEvent } from '../../src/events.js';
import { minimalStore } from '../helpers/tmp.js';

const flag = (root: string) => path.join(root, 'var', '.maintenance.flag');
const backups = (root: string) => path.join(root, 'var', 'backups');

function leftovers(root: string): string[] {
  return readdirSync(backups(root)).filter((n) => n.endsWith('.partial') || n === '.lock');
}

for (const wasOn of [false, true]) {
  for (const fails of [false, true]) {
    void test(`maintenance restored: was ${wasOn ? 'on' : 'off'}, run ${fails ? 'fails' : 'succeeds'}`, async () => {
      const root = minimalStore();
      if (wasOn) writeFileSync(flag(root), '');
      const events: MagebackupEvent[] = [];
      let flagDuringRun = false;
      const run = runBackup({
        root,
        parts: { code: true, media: true, db: false },
        now: () => 1_700_000_000_000,
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'part-start') {
            flagDuringRun = existsSync(flag(root));
            if (fails && e.part === 'media') throw new Error('injected failure');
          }
        },
      });
      if (fails) await assert.rejects(run, /injected failure/);
      else await run;
      assert.equal(flagDuringRun, true, 'maintenance is on during the run');
      assert.equal(existsSync(flag(root)), wasOn, 'flag as before the run');
      assert.deepEqual(leftovers(root), [], 'no partial file, no lock');
      const states = events.flatMap((e) => (e.type === 'maintenance' ? [e.state] : []));
      assert.deepEqual(states, wasOn ? ['already-enabled', 'left-enabled'] : ['enabled', 'disabled']);
      const names = readdirSync(backups(root)).sort();
      // A failed run is invisible: the code part it had finished is taken back too.
      assert.deepEqual(
        names,
        fails
          ? []
          : ['1700000000_filesystem.tgz', '1700000000_filesystem_media.tgz', '1700000000_manifest.json'],
      );
    });
  }
}

void test('--no-maintenance leaves the flag alone', async () => {
  const root = minimalStore();
  await runBackup({ root, parts: { code: true, media: false, db: false }, maintenance: false });
  assert.equal(existsSync(flag(root)), false);
});

void test('files are 0600 in a 0700 var/backups, one timestamp per run, a second run in the same second is bumped', async () => {
  const root = minimalStore();
  const now = () => 1_700_000_000_500;
  const a = await runBackup({ root, parts: { code: true, media: true, db: false }, now });
  const b = await runBackup({ root, parts: { code: true, media: true, db: false }, now });
  assert.equal(a.timestamp, 1_700_000_000);
  assert.equal(b.timestamp, 1_700_000_001);
  assert.equal(statSync(backups(root)).mode & 0o777, 0o700);
  for (const n of readdirSync(backups(root))) {
    assert.equal(statSync(path.join(backups(root), n)).mode & 0o777, 0o600, n);
  }
  assert.equal(await pickTimestamp(backups(root), 1_700_000_000_000), 1_700_000_002);
});

void test('code archive: excludes by whole component, GNU tar lists exactly the rest', async () => {
  const root = minimalStore({
    '.gitignore': 'x',
    '.github/workflows/ci.yml': 'on: push',
    '.git/HEAD': 'ref',
    'vendor/a/b/.git/config': 'x',
    'vendor/a/b/src/A.php': '<?php',
    'node_modules/x/index.js': '',
    'app/var/keep.txt': 'kept: var only excluded at the root',
    'pub/static/frontend/x.css': '',
    'app/pub/static/keep.txt': 'kept',
    'update/x': '',
    'generated/code/X.php': '',
    '.magebackup-staging-1/junk': '',
  });
  mkdirSync(path.join(root, 'app/empty-dir'));
  symlinkSync('../index.php', path.join(root, 'pub/link.php'));
  symlinkSync('does-not-exist', path.join(root, 'broken-link'));
  const r = await runBackup({
    root,
    parts: { code: true, media: false, db: false },
    excludes: ['generated/'],
  });
  const archive = r.parts[0]!.path;
  const listed = execFileSync('tar', ['-tzf', archive], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((s) => s.replace(/\/$/, ''))
    .sort();
  const expected = [
    '.github',
    '.github/workflows',
    '.github/workflows/ci.yml',
    '.gitignore',
    'app',
    'app/empty-dir',
    'app/etc',
    'app/etc/config.php',
    'app/etc/env.php',
    'app/pub',
    'app/pub/static',
    'app/pub/static/keep.txt',
    'app/var',
    'app/var/keep.txt',
    'broken-link',
    'index.php',
    'pub',
    'pub/index.php',
    'pub/link.php',
    'vendor',
    'vendor/a',
    'vendor/a/b',
    'vendor/a/b/src',
    'vendor/a/b/src/A.php',
  ].sort();
  assert.deepEqual(listed, expected);
});

void test('a root that is not Magento is refused before anything is written', async () => {
  const root = minimalStore();
  await assert.rejects(
    runBackup({ root: path.join(root, 'app'), parts: { code: true, media: false, db: false } }),
    /not a Magento root/,
  );
});
