// backups:diff and the selective rollback through the CLI: what changed since a backup (each kind of change,
// excluded paths left out), the same summary printed by the rollback before it changes anything, the replaced
// files deleted in the background and that deletion finished by the next run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const T0 = 1_600_000_000;

function put(root: string, rel: string, body: string, mode = 0o644): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, body);
  fs.chmodSync(p, mode);
  fs.utimesSync(p, T0, T0);
}

interface DiffJson {
  id: string;
  parts: Array<{
    part: string;
    counts: { added: number; removed: number; modified: number; total: number };
    added: string[];
    removed: string[];
    modified: string[];
  }>;
}

function store(): string {
  const root = path.join(tempDir('mbk-diff-'), 'store');
  put(root, 'app/etc/env.php', "<?php return ['db' => []];", 0o600);
  put(root, 'bin/magento', '#!/usr/bin/env php', 0o755);
  put(root, 'app/code/Same.php', 'same size and mtime');
  put(root, 'app/code/Mode.php', 'mode');
  put(root, 'app/code/Gone.php', 'gone');
  put(root, 'app/code/Dir.php', 'becomes a directory');
  for (let i = 0; i < 30; i++) put(root, `lib/u${i}.php`, `unchanged ${i}`);
  fs.symlinkSync('lib/u1.php', path.join(root, 'link'));
  put(root, 'pub/media/catalog/a.jpg', 'jpeg a');
  put(root, 'pub/media/catalog/b.jpg', 'jpeg b');
  put(root, 'var/log/system.log', 'log');
  return root;
}

function changeEverything(root: string): void {
  put(root, 'app/code/Same.php', 'SAME SIZE AND MTIME');
  fs.chmodSync(path.join(root, 'app/code/Mode.php'), 0o640);
  fs.rmSync(path.join(root, 'app/code/Gone.php'));
  fs.rmSync(path.join(root, 'app/code/Dir.php'));
  put(root, 'app/code/Dir.php/inner.php', 'inside');
  fs.rmSync(path.join(root, 'link'));
  fs.symlinkSync('lib/u2.php', path.join(root, 'link'));
  put(root, 'app/code/Added.php', 'added');
  put(root, 'pub/media/catalog/c.jpg', 'jpeg c');
  fs.rmSync(path.join(root, 'pub/media/catalog/a.jpg'));
  // excluded from code backups: never listed
  put(root, 'var/log/new.log', 'more log');
  put(root, '.git/HEAD', 'ref');
  put(root, 'app/code/node_modules/x.js', 'x');
}

const EXPECTED_CODE = {
  added: ['app/code/Added.php', 'app/code/Dir.php/inner.php'],
  removed: ['app/code/Gone.php'],
  modified: ['app/code/Dir.php', 'app/code/Mode.php', 'app/code/Same.php', 'link'],
};

void test('backups:diff lists each kind of change; the rollback prints the same summary, then diff shows none', async () => {
  const root = store();
  const made = await runCli(['setup:backup', '--code', '--media', '--root', root, '--json']);
  assert.equal(made.code, 0, made.stderr);
  const none = JSON.parse((await runCli(['backups:diff', '--root', root, '--json'])).stdout) as DiffJson;
  assert.deepEqual(
    none.parts.map((p) => [p.part, p.counts.total]),
    [
      ['code', 0],
      ['media', 0],
    ],
  );

  changeEverything(root);
  const before = fs.readdirSync(path.join(root, 'var/backups')).sort();
  const r = await runCli(['backups:diff', none.id, '--root', root, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as DiffJson;
  const code = d.parts.find((p) => p.part === 'code')!;
  assert.deepEqual({ added: code.added, removed: code.removed, modified: code.modified }, EXPECTED_CODE);
  assert.deepEqual(code.counts, { added: 2, removed: 1, modified: 4, total: 7 });
  const media = d.parts.find((p) => p.part === 'media')!;
  assert.deepEqual([media.added, media.removed, media.modified], [['catalog/c.jpg'], ['catalog/a.jpg'], []]);
  // read-only: nothing written anywhere
  assert.deepEqual(fs.readdirSync(path.join(root, 'var/backups')).sort(), before);

  const plain = await runCli(['backups:diff', '--root', root]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /^code since \d+_filesystem\.tgz: 2 added, 1 removed, 4 modified \(7 files/m);
  assert.match(plain.stdout, /^ {2}\+ app\/code\/Added\.php$/m);
  assert.match(plain.stdout, /^ {2}- app\/code\/Gone\.php$/m);
  assert.match(plain.stdout, /^ {2}M link$/m);
  assert.doesNotMatch(plain.stdout, /var\/log|\.git|node_modules/);

  const inode = fs.statSync(path.join(root, 'lib/u5.php')).ino;
  const rb = await runCli(['snapshot:restore', d.id, '--yes', '--root', root, '--json']);
  assert.equal(rb.code, 0, rb.stderr);
  assert.match(
    rb.stderr,
    /Rolling back code from var\/backups\/\d+_filesystem\.tgz: 7 files will be restored/,
  );
  assert.match(rb.stderr, /Rolling back media from .*: 2 files will be restored/);
  const result = JSON.parse(rb.stdout) as {
    parts: Array<{ part: string; linked?: number; kept?: number }>;
    deleterPid?: number;
  };
  // 30 lib files, env.php, bin/magento: equal, left in place (the store root is ours: a sparse rollback)
  assert.equal(result.parts.find((p) => p.part === 'code')!.kept, 32);
  assert.equal(typeof result.deleterPid, 'number');
  assert.equal(fs.statSync(path.join(root, 'lib/u5.php')).ino, inode, 'an equal file is kept (hard link)');

  const after = JSON.parse((await runCli(['backups:diff', '--root', root, '--json'])).stdout) as DiffJson;
  assert.deepEqual(
    after.parts.map((p) => [p.part, p.counts.total]),
    [
      ['code', 0],
      ['media', 0],
    ],
  );
  // excluded paths were kept by the rollback
  assert.equal(fs.readFileSync(path.join(root, 'var/log/new.log'), 'utf8'), 'more log');

  // the next run that takes the lock finishes the background deletion: nothing of the rollback is left
  const next = await runCli(['backups:prune', '--dry-run', '--root', root]);
  assert.equal(next.code, 0, next.stderr);
  assert.deepEqual(
    fs.readdirSync(root).filter((n) => n.startsWith('.magebackup-')),
    [],
  );
  assert.equal(fs.existsSync(path.join(root, 'var/backups/.magebackup-state')), false);
});

void test('setup:rollback --full writes every file anew; backups:diff refuses a bad id', async () => {
  const root = store();
  const made = await runCli(['setup:backup', '--code', '--root', root, '--json']);
  assert.equal(made.code, 0, made.stderr);
  const file = (JSON.parse(made.stdout) as { parts: Array<{ file: string }> }).parts[0]!.file;
  changeEverything(root);
  const inode = fs.statSync(path.join(root, 'lib/u5.php')).ino;
  const rb = await runCli(['setup:rollback', '-c', file, '--full', '--yes', '--root', root, '--json']);
  assert.equal(rb.code, 0, rb.stderr);
  const result = JSON.parse(rb.stdout) as { parts: Array<{ part: string; linked?: number }> };
  assert.equal(result.parts[0]!.linked, undefined);
  assert.notEqual(fs.statSync(path.join(root, 'lib/u5.php')).ino, inode);
  const d = JSON.parse((await runCli(['backups:diff', '--root', root, '--json'])).stdout) as DiffJson;
  assert.equal(d.parts[0]!.counts.total, 0);
  assert.equal((await runCli(['backups:diff', 'x1', '--root', root])).code, 2);
  const missing = await runCli(['backups:diff', '42', '--root', root]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /No snapshot 42/);
  await runCli(['backups:prune', '--dry-run', '--root', root]);
});

void test('backups:diff: a directory turned into a link to an identical copy, or made group-writable, is not equal', async () => {
  const root = store();
  const made = await runCli(['setup:backup', '--code', '--root', root, '--json']);
  assert.equal(made.code, 0, made.stderr);
  // lib/ becomes a symlink to a copy with the same names, bytes, modes and mtimes: every file under it is read
  // through the link, so none of them is the file at its name
  fs.cpSync(path.join(root, 'lib'), path.join(root, 'lib-copy'), {
    recursive: true,
    preserveTimestamps: true,
  });
  fs.renameSync(path.join(root, 'lib'), path.join(root, 'lib-old'));
  fs.symlinkSync('lib-copy', path.join(root, 'lib'));
  // a group-writable directory (not trusted: each file checked by its descriptor): its unchanged files are equal
  fs.chmodSync(path.join(root, 'app/code'), 0o775);
  const r = await runCli(['backups:diff', '--root', root, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const code = (JSON.parse(r.stdout) as DiffJson).parts.find((p) => p.part === 'code')!;
  const lib = Array.from({ length: 30 }, (_, i) => `lib/u${i}.php`);
  assert.deepEqual(code.modified, ['lib', ...lib].sort());
  assert.ok(!code.modified.includes('app/code/Same.php'));
  assert.deepEqual(code.removed, []);
});

void test('backups:diff warns while a killed rollback is not put back yet, or another run rolls the store back', async () => {
  const root = store();
  assert.equal((await runCli(['setup:backup', '--code', '--root', root])).code, 0);
  const lockFile = path.join(root, 'var/backups/.lock');
  const lock = (pid: number, command: string): void =>
    fs.writeFileSync(
      lockFile,
      JSON.stringify({ pid, host: os.hostname(), started: '2026-01-01T00:00:00Z', command }),
      { mode: 0o600 },
    );
  const warnings = (stderr: string): string[] =>
    stderr
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; code?: string })
      .filter((e) => e.type === 'warning')
      .map((e) => e.code ?? '');
  const dead = Number(
    execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString(),
  );
  lock(dead, 'setup:rollback');
  let r = await runCli(['backups:diff', '--root', root, '--json']);
  assert.equal(r.code, 3, r.stderr);
  assert.deepEqual(warnings(r.stderr), ['DEAD_RUN']); // (--json: events on stderr, the result on stdout)
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    lock(sleeper.pid!, 'setup:rollback');
    r = await runCli(['backups:diff', '--root', root]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`pid ${sleeper.pid}, setup:rollback.*is rolling this store back`));
    lock(sleeper.pid!, 'setup:backup'); // a backup changes nothing the diff compares
    r = await runCli(['backups:diff', '--root', root, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(warnings(r.stderr), []);
  } finally {
    sleeper.kill();
  }
  fs.rmSync(lockFile);
});
