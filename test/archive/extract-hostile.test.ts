// Archives made by someone who wants in (issue 11): internal state, symlinks leaving the tree, set-id and
// world-writable modes, foreign owners, data hidden after the end marker. Each is refused or neutralised, and
// nothing outside the destination changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { extractArchive, type ArchiveWarning } from '../../src/archive/extract.js';
import { verifyArchive } from '../../src/archive/verify.js';
import { CliError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';
import { craftTar, craftTgz, describe, type CraftEntry } from './extract-crafted.js';

const isRoot = process.getuid?.() === 0;

function archive(entries: CraftEntry[] | Buffer, name = 'a.tgz'): string {
  const file = path.join(tempDir('mbk-h-'), name);
  fs.writeFileSync(file, Buffer.isBuffer(entries) ? entries : craftTgz(entries));
  return file;
}

async function extract(
  file: string,
  opts: Partial<Parameters<typeof extractArchive>[0]> = {},
): Promise<{ dest: string; warnings: ArchiveWarning[] }> {
  const dest = path.join(tempDir('mbk-h-dest-'), 'dest');
  fs.mkdirSync(dest);
  const warnings: ArchiveWarning[] = [];
  await extractArchive({ file, destDir: dest, onWarning: (w) => warnings.push(w), ...opts });
  return { dest, warnings };
}

/** Refused with one line naming the archive; the destination is gone. */
async function refused(
  file: string,
  why: RegExp,
  opts: Partial<Parameters<typeof extractArchive>[0]> = {},
): Promise<void> {
  const base = tempDir('mbk-h-dest-');
  const dest = path.join(base, 'dest');
  fs.mkdirSync(dest);
  await assert.rejects(extractArchive({ file, destDir: dest, ...opts }), (err: unknown) => {
    assert.ok(err instanceof CliError, String(err));
    assert.ok(err.message.includes(file), err.message);
    assert.match(err.message, why);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
  assert.deepEqual(fs.readdirSync(base), [], 'the destination is removed');
}

async function verifyRefused(
  file: string,
  why: RegExp,
  opts: Parameters<typeof verifyArchive>[1] = {},
): Promise<void> {
  await assert.rejects(verifyArchive(file, opts), (err: unknown) => {
    assert.ok(err instanceof CliError, String(err));
    assert.ok(err.message.includes(file), err.message);
    assert.match(err.message, why);
    return true;
  });
}

// ---- 1. magebackup's own state is never restored

const PLANTED_JOURNAL = JSON.stringify({ version: 1, liveDir: '/etc', units: [] });

void test('.magebackup-* entries are skipped (INTERNAL_PATH) at the top level and at any depth', async () => {
  const file = archive([
    { path: 'index.php', body: '1' },
    { path: '.magebackup-staging-1-code/journal.json', body: PLANTED_JOURNAL },
    { path: '.magebackup-staging-1-code/new/x', body: 'x' },
    { path: 'pub/.magebackup-staging-2-media/journal.json', body: PLANTED_JOURNAL },
    { path: '.magebackup-lock', body: 'x' },
  ]);
  for (const filter of ['none', 'code'] as const) {
    const { dest, warnings } = await extract(file, { filter });
    assert.deepEqual(Object.keys(describe(dest)).sort(), ['index.php']);
    assert.deepEqual(warnings.map((w) => `${w.code} ${w.path}`).sort(), [
      'INTERNAL_PATH .magebackup-lock',
      'INTERNAL_PATH .magebackup-staging-1-code',
      'INTERNAL_PATH pub/.magebackup-staging-2-media',
    ]);
  }
});

void test('a media archive carrying a planted staging journal (rooted at pub/media or not): skipped', async () => {
  for (const prefix of ['pub/media/', '']) {
    const file = archive([
      ...(prefix ? [{ path: 'pub/', type: 'Directory' as const }] : []),
      { path: `${prefix}catalog/a.jpg`, body: 'jpg' },
      { path: `${prefix}.magebackup-staging-1-media/journal.json`, body: PLANTED_JOURNAL },
      { path: `${prefix}catalog/.magebackup-x/y`, body: 'y' },
    ]);
    const { dest, warnings } = await extract(file, { filter: 'media' });
    assert.deepEqual(Object.keys(describe(dest)).sort(), ['catalog', 'catalog/a.jpg']);
    assert.equal(warnings.filter((w) => w.code === 'INTERNAL_PATH').length, 2);
  }
});

void test('verify fails an archive that carries .magebackup-* entries (code, media, any depth)', async () => {
  for (const p of [
    '.magebackup-staging-1-code/journal.json',
    'pub/media/.magebackup-staging-1-media/journal.json',
    'a/b/.magebackup-verify-x/f',
  ]) {
    const file = archive([
      { path: 'ok.txt', body: 'ok' },
      { path: p, body: PLANTED_JOURNAL },
    ]);
    for (const filter of ['code', 'media', 'none'] as const) {
      await assert.rejects(verifyArchive(file, { filter }), (err: unknown) => {
        assert.ok(err instanceof CliError);
        assert.match(err.message, /internal state \(\.magebackup-\*\)/);
        return true;
      });
    }
  }
});

// ---- 2. symlinks: never written through, never leading out of the tree

void test('code archive: `pub` as a symlink to an outside directory is refused, and nothing is written there', async () => {
  const outside = tempDir('mbk-h-outside-');
  fs.writeFileSync(path.join(outside, 'victim.txt'), 'untouched');
  for (const entries of [
    [
      { path: 'pub', type: 'SymbolicLink' as const, linkpath: outside },
      { path: 'pub/x.php', body: 'evil' },
    ],
    [{ path: 'pub', type: 'SymbolicLink' as const, linkpath: outside }],
    [{ path: 'pub', type: 'SymbolicLink' as const, linkpath: 'web' }],
    [{ path: 'pub', body: 'a file' }],
  ]) {
    const file = archive([{ path: 'index.php', body: '1' }, ...entries]);
    await refused(
      file,
      /entry "pub" is not a directory, but a code rollback keeps pub\/static and pub\/media/,
      {
        filter: 'code',
        allowOutsideLinks: true,
      },
    );
    await verifyRefused(file, /entry "pub" is not a directory/, { filter: 'code' });
  }
  // without the code filter, writing through it is refused all the same
  const file = archive([
    { path: 'pub', type: 'SymbolicLink', linkpath: outside },
    { path: 'pub/x.php', body: 'evil' },
  ]);
  await refused(file, /through the symlink "pub"/, { allowOutsideLinks: true });
  assert.deepEqual(fs.readdirSync(outside), ['victim.txt']);
  assert.equal(fs.readFileSync(path.join(outside, 'victim.txt'), 'utf8'), 'untouched');
});

const OUTSIDE_LINKS: Array<{ name: string; entries: CraftEntry[]; bad: string }> = [
  {
    name: 'app/etc/env.php -> /etc/shadow',
    entries: [
      { path: 'app/etc/', type: 'Directory' },
      { path: 'app/etc/env.php', type: 'SymbolicLink', linkpath: '/etc/shadow' },
    ],
    bad: 'app/etc/env.php',
  },
  {
    name: 'a relative link climbing above the root',
    entries: [{ path: 'app/etc/env.php', type: 'SymbolicLink', linkpath: '../../../shared/env.php' }],
    bad: 'app/etc/env.php',
  },
  {
    name: 'a link whose .. is harmless only on paper (a -> ., b -> a/..)',
    entries: [
      { path: 'a', type: 'SymbolicLink', linkpath: '.' },
      { path: 'b', type: 'SymbolicLink', linkpath: 'a/..' },
    ],
    bad: 'b',
  },
  {
    name: 'a chain through another link (x/l -> .., y -> x/l/..)',
    entries: [
      { path: 'x/', type: 'Directory' },
      { path: 'x/l', type: 'SymbolicLink', linkpath: '..' },
      { path: 'y', type: 'SymbolicLink', linkpath: 'x/l/..' },
    ],
    bad: 'y',
  },
  {
    name: 'a hard link moving a deep relative symlink up (link(2) does not follow it)',
    entries: [
      { path: 'a/b/', type: 'Directory' },
      { path: 'a/b/l', type: 'SymbolicLink', linkpath: '../../x' },
      { path: 'top', type: 'Link', linkpath: 'a/b/l' },
    ],
    bad: 'top',
  },
];

for (const c of OUTSIDE_LINKS) {
  void test(`a symlink leaving the tree is refused unless allowed: ${c.name}`, async () => {
    const file = archive([{ path: 'ok.txt', body: 'ok' }, ...c.entries]);
    await refused(
      file,
      new RegExp(`entry "${c.bad}" is a symlink to ".*", which leaves the tree .*--allow-outside-links`),
    );
    const { dest, warnings } = await extract(file, { allowOutsideLinks: true });
    assert.ok(fs.lstatSync(path.join(dest, c.bad)).isSymbolicLink());
    assert.ok(warnings.some((w) => w.code === 'OUTSIDE_LINK' && w.path === c.bad));
    // verify reports it, and does not fail: the rollback can restore it with the option
    const vw: ArchiveWarning[] = [];
    await verifyArchive(file, { onWarning: (w) => vw.push(w) });
    assert.ok(
      vw.some(
        (w) => w.code === 'OUTSIDE_LINK' && w.path === c.bad && /--allow-outside-links/.test(w.message),
      ),
    );
  });
}

void test('symlinks that stay inside the tree are restored without a word (a later entry may replace one)', async () => {
  const file = archive([
    { path: 'app/etc/', type: 'Directory' },
    { path: 'app/etc/env.php', body: '<?php' },
    { path: 'app/link', type: 'SymbolicLink', linkpath: '../index.php' },
    { path: 'pub/up', type: 'SymbolicLink', linkpath: '../app/./etc/../etc/env.php' },
    { path: 'dangling', type: 'SymbolicLink', linkpath: 'no/such/file' },
    { path: 'loop1', type: 'SymbolicLink', linkpath: 'loop2' },
    { path: 'loop2', type: 'SymbolicLink', linkpath: 'loop1' },
    { path: 'replaced', type: 'SymbolicLink', linkpath: '/etc/passwd' },
    { path: 'replaced', body: 'now a file' },
  ]);
  const { dest, warnings } = await extract(file);
  assert.deepEqual(warnings, []);
  assert.equal(fs.readlinkSync(path.join(dest, 'pub/up')), '../app/./etc/../etc/env.php');
  assert.equal(fs.readFileSync(path.join(dest, 'replaced'), 'utf8'), 'now a file');
});

// ---- 3. modes

void test('set-id bits and sticky files are dropped, world-writable modes removed, each reported by name', async () => {
  const file = archive([
    { path: './', type: 'Directory', mode: 0o777 },
    { path: 'bin/', type: 'Directory', mode: 0o2775 },
    { path: 'bin/suid', body: '#!/bin/sh', mode: 0o4755 },
    { path: 'bin/sgid', body: '#!/bin/sh', mode: 0o2711 },
    { path: 'sticky-file', body: 'x', mode: 0o1644 },
    { path: 'tmp/', type: 'Directory', mode: 0o1777 },
    { path: 'media/', type: 'Directory', mode: 0o777 },
    { path: 'media/a.jpg', body: 'x', mode: 0o666 },
    { path: 'plain.txt', body: 'x', mode: 0o644 },
  ]);
  const { dest, warnings } = await extract(file, { filter: 'media' });
  const d = describe(dest);
  assert.equal(d['bin']!.mode, 0o775);
  assert.equal(d['bin/suid']!.mode, 0o755);
  assert.equal(d['bin/sgid']!.mode, 0o711);
  assert.equal(d['sticky-file']!.mode, 0o644);
  assert.equal(d['tmp']!.mode, 0o1775, 'sticky stays on a directory; o+w goes');
  assert.equal(d['media']!.mode, 0o775);
  assert.equal(d['media/a.jpg']!.mode, 0o664);
  assert.equal(d['plain.txt']!.mode, 0o644);
  assert.deepEqual(warnings.map((w) => `${w.code} ${w.path}`).sort(), [
    'SPECIAL_MODE bin',
    'SPECIAL_MODE bin/sgid',
    'SPECIAL_MODE bin/suid',
    'SPECIAL_MODE sticky-file',
    'WORLD_WRITABLE .',
    'WORLD_WRITABLE media',
    'WORLD_WRITABLE media/a.jpg',
    'WORLD_WRITABLE tmp',
  ]);
  assert.match(warnings.find((w) => w.path === 'bin/suid')!.message, /setuid .*mode 4755.*--keep-modes/);
  // the archive root (the media directory a media rollback replaces): reported, and handed back sanitized
  const r = await extractArchive({
    file,
    destDir: fs.mkdtempSync(path.join(tempDir(), 'x')),
    filter: 'media',
  });
  assert.equal(r.rootAttrs!.mode, 0o775);
});

void test('--keep-modes keeps them as archived, and still reports them', async () => {
  const file = archive([
    { path: 'suid', body: 'x', mode: 0o4755 },
    { path: 'ww/', type: 'Directory', mode: 0o777 },
  ]);
  const { dest, warnings } = await extract(file, { keepModes: true });
  assert.equal(fs.statSync(path.join(dest, 'suid')).mode & 0o7777, 0o4755);
  assert.equal(fs.statSync(path.join(dest, 'ww')).mode & 0o7777, 0o777);
  assert.deepEqual(warnings.map((w) => w.code).sort(), ['SPECIAL_MODE', 'WORLD_WRITABLE']);
  assert.ok(warnings.every((w) => /kept \(--keep-modes\)/.test(w.message)));
});

void test('thousands of world-writable files: the first 20 named, the rest counted in one line', async () => {
  const entries: CraftEntry[] = [];
  for (let i = 0; i < 500; i++) entries.push({ path: `m/f${i}`, body: 'x', mode: 0o666 });
  const { dest, warnings } = await extract(archive(entries));
  assert.equal(warnings.length, 21);
  assert.match(warnings.at(-1)!.message, /^480 more entries have the same WORLD_WRITABLE warning/);
  assert.equal(fs.statSync(path.join(dest, 'm/f499')).mode & 0o777, 0o664);
});

// ---- 4. ownership

void test("owners: the given owner (the live tree's), never the ids an archive names", async () => {
  // chown to another user needs root: fail with the instruction, never skip (CI runs as root)
  if (!isRoot)
    assert.fail('this test needs root to give files another owner: run the suite as root, as CI does');
  const file = archive([
    { path: './', type: 'Directory', uid: 0, gid: 0 },
    { path: 'd/', type: 'Directory', uid: 31337, gid: 31337 },
    { path: 'd/f', body: 'x', uid: 31337, gid: 31337 },
    { path: 'l', type: 'SymbolicLink', linkpath: 'd/f', uid: 31337, gid: 31337 },
    { path: 'implicit/parent/f', body: 'x', uid: 31337, gid: 31337 },
    { path: 'rootfile', body: 'x', uid: 0, gid: 0 },
  ]);
  const owner = { uid: 4242, gid: 4343 };
  const dest = path.join(tempDir(), 'dest');
  fs.mkdirSync(dest);
  const r = await extractArchive({ file, destDir: dest, owner });
  for (const rel of ['d', 'd/f', 'l', 'implicit', 'implicit/parent', 'implicit/parent/f', 'rootfile']) {
    const st = fs.lstatSync(path.join(dest, rel));
    assert.deepEqual([st.uid, st.gid], [4242, 4343], rel);
  }
  assert.deepEqual([r.rootAttrs!.uid, r.rootAttrs!.gid], [4242, 4343]);
  // no owner given: the running user (root), not 31337
  const { dest: d2 } = await extract(file);
  const st = fs.statSync(path.join(d2, 'd/f'));
  assert.deepEqual([st.uid, st.gid], [0, 0]);
});

// ---- 5. data after the end

void test('data after the end-of-archive marker is refused by extract and verify; zero padding is not', async () => {
  const good = craftTar([{ path: 'a.txt', body: 'aaa' }]);
  const second = craftTar([{ path: 'hidden.php', body: '<?php evil();' }]);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['tar-appended', gzipSync(Buffer.concat([good, second])), /data after the end-of-archive marker/],
    [
      'second-member',
      Buffer.concat([gzipSync(good), gzipSync(second)]),
      /data after the end-of-archive marker/,
    ],
    [
      'garbage-after-zero',
      Buffer.concat([gzipSync(good), Buffer.from('\0hidden bytes')]),
      /after the end of the gzip data/,
    ],
    [
      'junk-in-padding',
      gzipSync(Buffer.concat([good, Buffer.alloc(4096), Buffer.from('x')])),
      /after the end-of-archive/,
    ],
  ];
  for (const [name, data, why] of cases) {
    const file = archive(data, `${name}.tgz`);
    await refused(file, why);
    await verifyRefused(file, why);
  }
  for (const ok of [
    gzipSync(Buffer.concat([good, Buffer.alloc(20 * 512)])),
    Buffer.concat([gzipSync(good), Buffer.alloc(4096)]),
    Buffer.concat([gzipSync(good), gzipSync(Buffer.alloc(10240))]),
  ]) {
    const file = archive(ok);
    await verifyArchive(file);
    const { dest } = await extract(file);
    assert.deepEqual(fs.readdirSync(dest), ['a.txt']);
  }
});
