import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, writeFileSync, mkdirSync, lstatSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { minimalStore } from '../helpers/tmp.js';
import { bigCodeStore, faultMidWrite, spawnCli } from './fault-helpers.js';
import { isHistoryFile } from '../../src/history/history.js';

const flag = (root: string) => path.join(root, 'var', '.maintenance.flag');
const backupsDir = (root: string) => path.join(root, 'var', 'backups');

void test('usage errors exit 2: no command, unknown option, no part', async () => {
  assert.equal((await runCli([])).code, 2);
  const unknown = await runCli(['setup:backup', '--bogus']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--bogus/);
  const root = minimalStore();
  const none = await runCli(['setup:backup', '--root', root]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--code, --media and\/or --db/);
  assert.equal(existsSync(backupsDir(root)), false, 'nothing written');
});

void test('--help lists the exit codes; --version prints the version', async () => {
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Exit codes:/);
  assert.match(help.stdout, /11 +another magebackup run holds the lock/);
  const version = await runCli(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^\d+\.\d+\.\d+/);
});

void test('setup:backup --code --media: Magento wording, results on stdout, progress on stderr', async () => {
  const root = minimalStore();
  const r = await runCli(['setup:backup', '--code', '--media', '--root', root]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^Enabling maintenance mode$/m);
  assert.match(r.stderr, /^Code backup is starting\.\.\.$/m);
  assert.match(r.stderr, /^Disabling maintenance mode$/m);
  assert.match(r.stdout, /^Code backup filename: \d+_filesystem\.tgz$/m);
  assert.match(r.stdout, /^Media backup path: .*_filesystem_media\.tgz$/m);
  assert.match(r.stdout, /^\[SUCCESS\]: Media backup completed successfully\.$/m);
  assert.doesNotMatch(r.stdout, /maintenance/i);
  assert.doesNotMatch(r.stdout + r.stderr, /\x1b\[/, 'no ANSI codes when not on a TTY');
});

void test('--json: NDJSON events on stderr, one JSON result on stdout; errors as JSON lines', async () => {
  const root = minimalStore();
  const r = await runCli(['setup:backup', '--code', '--root', root, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as {
    type: string;
    timestamp: number;
    parts: Array<{ part: string; file: string }>;
  };
  assert.equal(result.type, 'result');
  assert.equal(result.parts[0]?.file, `${result.timestamp}_filesystem.tgz`);
  const events = r.stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string });
  assert.ok(events.some((e) => e.type === 'part-done'));
  const bad = await runCli(['setup:backup', '--code', '--root', path.join(root, 'nope'), '--json']);
  assert.equal(bad.code, 1);
  const err = JSON.parse(bad.stderr.trim()) as { type: string; code: number; message: string };
  assert.deepEqual([err.type, err.code], ['error', 1]);
  assert.match(err.message, /nope/);
  const usage = await runCli(['setup:backup', '--bogus', '--json']);
  assert.equal(usage.code, 2);
  assert.equal((JSON.parse(usage.stderr.trim()) as { code: number }).code, 2);
});

void test('a live lock makes a second run exit 11 naming the holder, and changes nothing', async () => {
  const root = minimalStore();
  mkdirSync(backupsDir(root), { recursive: true, mode: 0o700 });
  const holder = {
    pid: process.pid,
    host: (await import('node:os')).hostname(),
    started: new Date().toISOString(),
    command: 'setup:backup',
  };
  writeFileSync(path.join(backupsDir(root), '.lock'), JSON.stringify(holder));
  const r = await runCli(['setup:backup', '--code', '--root', root]);
  assert.equal(r.code, 11);
  assert.match(r.stderr, new RegExp(`pid ${process.pid}`));
  assert.equal(existsSync(flag(root)), false, 'maintenance untouched');
  assert.deepEqual(
    readdirSync(backupsDir(root)).filter((n) => !isHistoryFile(n)),
    ['.lock'],
  );
});

void test('info:backups:list: none, then a table newest first, and --json', async () => {
  const root = minimalStore();
  const empty = await runCli(['info:backups:list', '--root', root]);
  assert.equal(empty.code, 0);
  assert.match(empty.stdout, /No backup files found\./);
  mkdirSync(backupsDir(root), { recursive: true });
  for (const n of [
    '1500000000_filesystem_code.tgz',
    '1600000000_db.sql',
    '1600000000_filesystem_media.tgz',
    'README',
    '.lock',
  ]) {
    writeFileSync(path.join(backupsDir(root), n), 'x');
  }
  const r = await runCli(['info:backups:list', '--root', root]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Backup Filename +\| Backup Type/);
  const rows = r.stdout.split('\n').filter((l) => /^\| \d/.test(l));
  assert.deepEqual(
    rows.map((l) => l.split('|')[1]!.trim()),
    ['1600000000_filesystem_media.tgz', '1600000000_db.sql', '1500000000_filesystem_code.tgz'],
  );
  const j = await runCli(['info:backups:list', '--root', root, '--json']);
  const data = JSON.parse(j.stdout) as { backups: Array<{ name: string; kind: string; size: number }> };
  assert.deepEqual(
    data.backups.map((b) => b.kind),
    ['media', 'db', 'code'],
  );
});

void test('maintenance:enable|status|disable', async () => {
  const root = minimalStore();
  assert.match((await runCli(['maintenance:status', '--root', root])).stdout, /not active/);
  assert.equal((await runCli(['maintenance:enable', '--root', root])).code, 0);
  assert.equal(existsSync(flag(root)), true);
  assert.match((await runCli(['maintenance:status', '--root', root])).stdout, /is active/);
  assert.equal((await runCli(['maintenance:disable', '--root', root])).code, 0);
  assert.equal(existsSync(flag(root)), false);
});

void test('unreadable paths are warnings naming each one, the rest is archived, exit 3', async () => {
  const root = minimalStore({ 'app/code/secret.php': 'x', 'app/locked/inner.php': 'y' });
  execFileSync('chown', ['-R', '65534:65534', root]);
  chmodSync(path.join(root, 'app/code/secret.php'), 0o000);
  chmodSync(path.join(root, 'app/locked'), 0o000);
  // Run as "nobody": root reads everything, so unreadable paths need an unprivileged user.
  const r = await runCli(['setup:backup', '--code', '--root', root], { uid: 65534, gid: 65534 });
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /Warning: .*app\/code\/secret\.php/);
  assert.match(r.stderr, /Warning: .*app\/locked/);
  const archive = path.join(
    backupsDir(root),
    readdirSync(backupsDir(root)).find((n) => n.endsWith('.tgz'))!,
  );
  const listed = execFileSync('tar', ['-tzf', archive], { encoding: 'utf8' });
  assert.match(listed, /^index\.php$/m);
  assert.doesNotMatch(listed, /secret\.php/);
});

for (const wasOn of [false, true]) {
  void test(`SIGINT mid-archive: exit 130, no .partial, no lock, maintenance ${wasOn ? 'still on' : 'off again'}`, async () => {
    // No timer: the run is frozen once its .partial has data (provably mid-archive), SIGINT is sent while it cannot
    // move, and it is thawed; a run that finished first fails the test instead of passing by luck.
    const root = bigCodeStore(32);
    if (wasOn) writeFileSync(flag(root), '');
    const run = spawnCli(['setup:backup', '--code', '--root', root]);
    await faultMidWrite(
      root,
      () => run.child.pid,
      () => void run.child.kill('SIGINT'),
    );
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /^Error: Interrupted by SIGINT: nothing was changed; nothing was left behind$/m);
    assert.deepEqual(
      readdirSync(backupsDir(root)).filter((n) => !isHistoryFile(n)),
      [],
      'no partial, no lock, no archive',
    );
    assert.equal(existsSync(flag(root)), wasOn);
    assert.ok(lstatSync(root).isDirectory());
  });
}
