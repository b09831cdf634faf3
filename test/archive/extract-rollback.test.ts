// Hostile archives through the real binary (issue 11): setup:rollback refuses or neutralises them, the live store
// and a canary directory outside it are unchanged, and backups:verify does not call them OK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { minimalStore, tempDir } from '../helpers/tmp.js';
import { craftTgz, describe, type CraftEntry } from './extract-crafted.js';
import { isHistoryFile } from '../../src/history/history.js';

const isRoot = process.getuid?.() === 0;

const CODE: CraftEntry[] = [
  { path: 'app/etc/', type: 'Directory' },
  { path: 'app/etc/config.php', body: "<?php return ['modules' => []];\n" },
  { path: 'index.php', body: '<?php // restored\n' },
  { path: 'pub/', type: 'Directory' },
  { path: 'pub/index.php', body: '<?php // restored pub\n' },
];

function store(): { root: string; backups: string; canary: string } {
  const root = minimalStore({ 'pub/.htaccess': 'Options -Indexes\n', 'pub/health_check.php': '<?php' });
  const backups = path.join(root, 'var', 'backups');
  fs.mkdirSync(backups, { recursive: true, mode: 0o700 });
  const canary = tempDir('mbk-canary-');
  fs.writeFileSync(path.join(canary, 'secret'), 'canary');
  fs.mkdirSync(path.join(canary, 'dir'));
  return { root, backups, canary };
}

function put(backups: string, name: string, entries: CraftEntry[]): void {
  fs.writeFileSync(path.join(backups, name), craftTgz(entries), { mode: 0o600 });
}

const skipVar = (rel: string) => rel === 'var' || rel.startsWith('var/');

void test('setup:rollback refuses app/etc/env.php -> /etc/shadow (one line, store unchanged); --allow-outside-links restores it with a warning', async () => {
  const { root, backups } = store();
  const name = '1700000000_filesystem.tgz';
  put(backups, name, [...CODE, { path: 'app/etc/env.php', type: 'SymbolicLink', linkpath: '/etc/shadow' }]);
  const before = describe(root, skipVar);
  const r = await runCli(['setup:rollback', '-c', name, '--yes', '--root', root]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /^Error: Archive .*1700000000_filesystem\.tgz is refused: entry "app\/etc\/env\.php" is a symlink to "\/etc\/shadow", which leaves the tree it is restored into \(--allow-outside-links restores such links\)$/m,
  );
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.deepEqual(describe(root, skipVar), before);
  assert.deepEqual(
    fs.readdirSync(backups).filter((n) => !isHistoryFile(n)),
    [name],
    'no other file in var/backups but the history log',
  );

  const ok = await runCli([
    'setup:rollback',
    '-c',
    name,
    '--yes',
    '--allow-outside-links',
    '--root',
    root,
    '--json',
  ]);
  assert.equal(ok.code, 3, ok.stderr);
  const warnings = ok.stderr
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; code?: string; path?: string })
    .filter((e) => e.type === 'warning');
  assert.ok(warnings.some((w) => w.code === 'OUTSIDE_LINK' && w.path === 'app/etc/env.php'));
  assert.equal(fs.readlinkSync(path.join(root, 'app/etc/env.php')), '/etc/shadow');
});

void test('setup:rollback of a code archive whose pub is a symlink to an outside directory: refused, pub/ and the canary unchanged', async () => {
  const { root, backups, canary } = store();
  const name = '1700000001_filesystem.tgz';
  put(backups, name, [
    ...CODE.filter((e) => !e.path.startsWith('pub')),
    { path: 'pub', type: 'SymbolicLink', linkpath: canary },
  ]);
  const before = describe(root, skipVar);
  const canaryBefore = describe(canary);
  for (const extra of [[], ['--allow-outside-links']]) {
    const r = await runCli(['setup:rollback', '-c', name, '--yes', '--root', root, ...extra]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^Error: Archive .* is refused: entry "pub" is not a directory, but a code rollback keeps/m,
    );
    assert.deepEqual(describe(root, skipVar), before);
    assert.deepEqual(describe(canary), canaryBefore);
  }
});

void test('media rollback: a 0777 media root and world-writable/setuid entries are neutralised and named; owners follow the live media directory', async () => {
  const { root, backups } = store();
  const media = path.join(root, 'pub', 'media');
  if (isRoot) fs.chownSync(media, 4242, 4343);
  const name = '1700000002_filesystem_media.tgz';
  put(backups, name, [
    { path: 'pub/', type: 'Directory' },
    { path: 'pub/media/', type: 'Directory', mode: 0o777, uid: 0, gid: 0 },
    { path: 'pub/media/catalog/', type: 'Directory', mode: 0o777, uid: 0, gid: 0 },
    { path: 'pub/media/catalog/b.jpg', body: 'B', mode: 0o666, uid: 0, gid: 0 },
    { path: 'pub/media/shell', body: '#!/bin/sh', mode: 0o4755, uid: 0, gid: 0 },
    { path: 'pub/media/.magebackup-staging-1-media/journal.json', body: '{"liveDir":"/etc"}' },
  ]);
  const r = await runCli(['setup:rollback', '-m', name, '--yes', '--root', root, '--json']);
  assert.equal(r.code, 3, r.stderr);
  const warnings = r.stderr
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; code?: string; path?: string })
    .filter((e) => e.type === 'warning')
    .map((w) => `${w.code} ${w.path}`)
    .sort();
  assert.deepEqual(warnings, [
    'INTERNAL_PATH pub/media/.magebackup-staging-1-media',
    'SPECIAL_MODE shell',
    'WORLD_WRITABLE .',
    'WORLD_WRITABLE catalog',
    'WORLD_WRITABLE catalog/b.jpg',
  ]);
  const d = describe(media);
  assert.deepEqual(Object.keys(d).sort(), ['catalog', 'catalog/b.jpg', 'shell']);
  assert.equal(fs.statSync(media).mode & 0o7777, 0o775);
  assert.equal(d['catalog']!.mode, 0o775);
  assert.equal(d['catalog/b.jpg']!.mode, 0o664);
  assert.equal(d['shell']!.mode, 0o755);
  if (isRoot) {
    for (const p of [
      media,
      path.join(media, 'catalog'),
      path.join(media, 'catalog/b.jpg'),
      path.join(media, 'shell'),
    ]) {
      const st = fs.statSync(p);
      assert.deepEqual([st.uid, st.gid], [4242, 4343], p);
    }
  }
});

void test('backups:verify does not call an archive carrying .magebackup-* state OK', async () => {
  const { root, backups } = store();
  put(backups, '1700000003_filesystem_media.tgz', [
    { path: 'catalog/a.jpg', body: 'a' },
    { path: '.magebackup-staging-1-media/journal.json', body: '{"liveDir":"/etc"}' },
  ]);
  for (const deep of [[], ['--deep']]) {
    const r = await runCli(['backups:verify', '--root', root, ...deep]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /1700000003: FAILED/);
    assert.match(
      r.stderr,
      /1700000003_filesystem_media\.tgz is refused: entry ".magebackup-staging-1-media\/journal\.json" is magebackup's internal state/,
    );
  }
});

void test('code rollback: a symlink entry where the live tree keeps something (node_modules inside) is never entered by the swap', async () => {
  const { root, backups, canary } = store();
  fs.mkdirSync(path.join(root, 'app/code/V/M/node_modules'), { recursive: true });
  fs.writeFileSync(path.join(root, 'app/code/V/M/node_modules/pkg.js'), 'kept');
  fs.writeFileSync(path.join(root, 'app/code/V/M/registration.php'), '<?php // live');
  const name = '1700000004_filesystem.tgz';
  put(backups, name, [
    ...CODE,
    { path: 'app/etc/env.php', body: '<?php' },
    { path: 'app/code/V/', type: 'Directory' },
    // allowed, so that only the swap stands between the link and the canary
    { path: 'app/code/V/M', type: 'SymbolicLink', linkpath: canary },
  ]);
  const canaryBefore = describe(canary);
  const r = await runCli(['setup:rollback', '-c', name, '--yes', '--allow-outside-links', '--root', root]);
  assert.deepEqual(describe(canary), canaryBefore, r.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'app/code/V/M/node_modules/pkg.js'), 'utf8'), 'kept');
  assert.equal(r.code, 3, r.stderr);
  assert.match(
    r.stderr,
    /app\/code\/V\/M is not a directory in the backup, but holds paths a code rollback keeps/,
  );
  assert.deepEqual(fs.readdirSync(path.join(root, 'app/code/V/M')), ['node_modules']);
});

void test('a media backup leaves out .magebackup-* names planted in pub/media, so it verifies', async () => {
  const { root } = store();
  const media = path.join(root, 'pub', 'media');
  fs.mkdirSync(path.join(media, '.magebackup-planted'));
  fs.writeFileSync(path.join(media, '.magebackup-planted', 'journal.json'), '{"liveDir":"/etc"}');
  fs.mkdirSync(path.join(media, 'catalog', '.magebackup-x'));
  fs.writeFileSync(path.join(media, 'catalog', '.magebackup-x', 'f'), 'x');
  const b = await runCli(['setup:backup', '--media', '--root', root]);
  assert.equal(b.code, 0, b.stderr);
  const v = await runCli(['backups:verify', '--root', root]);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /: OK/);
});
