import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { extractArchive } from '../../src/archive/extract.js';
import { CliError, InterruptedError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';
import { craftTar, craftTgz, describe, magentoTar, type CraftEntry } from './extract-crafted.js';

const LONG_DIR = 'deep/' + 'd'.repeat(60) + '/' + 'e'.repeat(60) + '/' + 'f'.repeat(90);

/** A source tree with everything a restore must keep: modes, mtimes, symlinks, empty dirs, hard links, long names. */
function makeSource(): string {
  const src = path.join(tempDir('mbk-x-src-'), 'src');
  const w = (rel: string, body: string, mode = 0o644): void => {
    const p = path.join(src, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, body);
    fs.chmodSync(p, mode);
  };
  w('index.php', '<?php echo 1;\n');
  w('app/etc/env.php', "<?php return ['secret' => 'x'];\n", 0o600);
  w('bin/magento', '#!/usr/bin/env php\n', 0o755);
  w('readonly.txt', 'ro', 0o444);
  w('big.bin', 'x'.repeat(3 * 1024 * 1024 + 17));
  w('empty.txt', '');
  w('ünïcode/名前.txt', 'utf8');
  w(`${LONG_DIR}/${'g'.repeat(120)}.php`, 'long');
  fs.mkdirSync(path.join(src, 'empty/dir'), { recursive: true });
  fs.mkdirSync(path.join(src, 'private'), { mode: 0o700 });
  fs.chmodSync(path.join(src, 'private'), 0o700);
  fs.symlinkSync('../index.php', path.join(src, 'app/link-rel'));
  fs.symlinkSync('/etc/hostname', path.join(src, 'link-abs'));
  fs.symlinkSync('does/not/exist', path.join(src, 'link-dangling'));
  fs.linkSync(path.join(src, 'index.php'), path.join(src, 'hard.php'));
  // distinct past mtimes, dirs last (children change their dir's mtime)
  const walk = (rel: string, depth: number): void => {
    const abs = path.join(src, rel);
    const st = fs.lstatSync(abs);
    if (st.isDirectory()) for (const n of fs.readdirSync(abs)) walk(path.join(rel, n), depth + 1);
    const t = 1_500_000_000 + depth * 1000 + rel.length;
    fs.lutimesSync(abs, t, t);
  };
  for (const n of fs.readdirSync(src)) walk(n, 0);
  return src;
}

async function extractTo(
  file: string,
  opts: Partial<Parameters<typeof extractArchive>[0]> = {},
): Promise<string> {
  const dest = path.join(tempDir('mbk-x-dest-'), 'dest');
  fs.mkdirSync(dest);
  await extractArchive({ file, destDir: dest, ...opts });
  return dest;
}

for (const format of ['gnu', 'pax', 'node-tar'] as const) {
  void test(`extracts a ${format} archive exactly (modes, mtimes, symlinks, empty dirs, hard links, long names)`, async () => {
    const src = makeSource();
    const file = path.join(tempDir(), 'a.tgz');
    if (format === 'node-tar') {
      await tar.c({ gzip: true, file, cwd: src, portable: false }, fs.readdirSync(src));
    } else {
      execFileSync('tar', [`--format=${format}`, '-czf', file, '-C', src, '.']);
    }
    // link-abs points outside the tree: allowed here, this test is about exactness
    const dest = await extractTo(file, { allowOutsideLinks: true });
    assert.deepEqual(describe(dest), describe(src));
    assert.equal(fs.statSync(path.join(dest, 'hard.php')).ino, fs.statSync(path.join(dest, 'index.php')).ino);
  });
}

void test('reads concatenated gzip members (parallel compressors write several)', async () => {
  const tarBuf = craftTar([
    { path: 'a/', type: 'Directory' },
    { path: 'a/one.txt', body: 'one' },
    { path: 'a/two.txt', body: 'two'.repeat(1000) },
  ]);
  const cut = 1024; // header+body of the first two entries, on a block boundary
  const file = path.join(tempDir(), 'multi.tgz');
  fs.writeFileSync(file, Buffer.concat([gzipSync(tarBuf.subarray(0, cut)), gzipSync(tarBuf.subarray(cut))]));
  const dest = await extractTo(file);
  assert.equal(fs.readFileSync(path.join(dest, 'a/two.txt'), 'utf8'), 'two'.repeat(1000));
});

void test('accepts ./ prefixes, GNU L long names and pax paths; files before their directories', async () => {
  const long = 'x/' + 'y'.repeat(150) + '/z.txt';
  const file = path.join(tempDir(), 'g.tgz');
  fs.writeFileSync(
    file,
    craftTgz([
      { path: './', type: 'Directory' },
      { path: './no/dir/entry.txt', body: 'a' },
      { path: long, body: 'gnu', gnuLong: true },
      { path: 'p/' + 'q'.repeat(200), body: 'pax', pax: true },
    ]),
  );
  const dest = await extractTo(file);
  assert.equal(fs.readFileSync(path.join(dest, 'no/dir/entry.txt'), 'utf8'), 'a');
  assert.equal(fs.readFileSync(path.join(dest, long), 'utf8'), 'gnu');
  assert.equal(fs.readFileSync(path.join(dest, 'p/' + 'q'.repeat(200)), 'utf8'), 'pax');
});

void test("reads Magento's own archives (GNU magic, blank uid fields, 'L' long names, symlink sizes without a body)", async () => {
  const longName = 'app/code/' + 'Vendor'.repeat(20) + '/registration.php';
  const file = path.join(tempDir(), '1700000000_filesystem.tgz');
  fs.writeFileSync(
    file,
    gzipSync(
      magentoTar([
        { name: 'app/', type: 'dir' },
        { name: 'app/etc/', type: 'dir', mode: 0o750 },
        { name: 'app/etc/env.php', type: 'file', body: '<?php return [];', mode: 0o640 },
        { name: 'app/etc/link.php', type: 'symlink', target: 'env.php', symlinkSize: 16 },
        { name: 'app/dirlink', type: 'symlink', target: 'etc', symlinkSize: 4096 },
        { name: longName, type: 'file', body: '<?php // long' },
        { name: 'index.php', type: 'file', body: '<?php // index', mtime: 1_500_000_000 },
      ]),
    ),
  );
  const dest = await extractTo(file);
  const d = describe(dest);
  assert.equal(d['app/etc']?.mode, 0o750);
  assert.equal(d['app/etc/env.php']?.mode, 0o640);
  assert.equal(d['app/etc/link.php']?.target, 'env.php');
  assert.equal(d['app/dirlink']?.target, 'etc');
  assert.equal(fs.readFileSync(path.join(dest, longName), 'utf8'), '<?php // long');
  assert.equal(d['index.php']?.mtime, 1_500_000_000);
  assert.equal(fs.readFileSync(path.join(dest, 'index.php'), 'utf8'), '<?php // index');
});

void test('a later duplicate entry replaces the earlier one without writing through it', async () => {
  const file = path.join(tempDir(), 'dup.tgz');
  const outside = path.join(tempDir(), 'outside.txt');
  fs.writeFileSync(outside, 'untouched');
  fs.writeFileSync(
    file,
    craftTgz([
      { path: 'f', type: 'SymbolicLink', linkpath: outside },
      { path: 'f', body: 'replaced' },
      { path: 'g', body: 'first' },
      { path: 'g', body: 'second' },
    ]),
  );
  const dest = await extractTo(file);
  assert.equal(fs.readFileSync(outside, 'utf8'), 'untouched');
  assert.equal(fs.readFileSync(path.join(dest, 'f'), 'utf8'), 'replaced');
  assert.equal(fs.readFileSync(path.join(dest, 'g'), 'utf8'), 'second');
});

// ---- crafted hostile archives: each must be refused, write nothing outside, and leave no destination behind

interface Hostile {
  name: string;
  entries: (outside: string) => CraftEntry[];
  expect: RegExp;
}

const HOSTILE: Hostile[] = [
  { name: 'path traversal with ..', entries: () => [{ path: '../escape.txt', body: 'x' }], expect: /'\.\.'/ },
  {
    name: 'traversal in the middle',
    entries: () => [{ path: 'a/../../escape.txt', body: 'x' }],
    expect: /'\.\.'/,
  },
  {
    name: 'absolute path',
    entries: (o) => [{ path: path.join(o, 'escape.txt'), body: 'x' }],
    expect: /absolute/,
  },
  {
    name: 'file written through a symlink extracted earlier (absolute target)',
    entries: (o) => [
      { path: 'link', type: 'SymbolicLink', linkpath: o },
      { path: 'link/escape.txt', body: 'x' },
    ],
    expect: /through the symlink "link"/,
  },
  {
    name: 'file written through a symlink extracted earlier (relative ../ target)',
    entries: () => [
      { path: 'a/', type: 'Directory' },
      { path: 'a/up', type: 'SymbolicLink', linkpath: '../..' },
      { path: 'a/up/escape.txt', body: 'x' },
    ],
    expect: /through the symlink "a\/up"/,
  },
  {
    name: 'directory created through a symlink',
    entries: (o) => [
      { path: 'link', type: 'SymbolicLink', linkpath: o },
      { path: 'link/sub/', type: 'Directory' },
    ],
    expect: /through the symlink/,
  },
  {
    name: 'symlink replacing a directory (then writing through it)',
    entries: (o) => [
      { path: 'd/', type: 'Directory' },
      { path: 'd', type: 'SymbolicLink', linkpath: o },
      { path: 'd/escape.txt', body: 'x' },
    ],
    expect: /replace a directory/,
  },
  {
    name: 'hard link to a path outside (..)',
    entries: () => [{ path: 'h', type: 'Link', linkpath: '../outside.txt' }],
    expect: /hard link/,
  },
  {
    name: 'hard link to an absolute path',
    entries: (o) => [{ path: 'h', type: 'Link', linkpath: path.join(o, 'outside.txt') }],
    expect: /hard link/,
  },
  {
    name: 'hard link through a symlink',
    entries: (o) => [
      { path: 'link', type: 'SymbolicLink', linkpath: o },
      { path: 'h', type: 'Link', linkpath: 'link/outside.txt' },
    ],
    expect: /not an earlier entry/,
  },
  {
    name: 'hard link to a file not in the archive',
    entries: () => [{ path: 'h', type: 'Link', linkpath: 'etc/passwd' }],
    expect: /not an earlier entry/,
  },
  { name: 'character device', entries: () => [{ path: 'null', type: 'CharacterDevice' }], expect: /device/ },
  { name: 'block device', entries: () => [{ path: 'sda', type: 'BlockDevice' }], expect: /device/ },
  {
    name: 'absurd depth',
    entries: () => [{ path: Array.from({ length: 300 }, () => 'd').join('/') + '/f', body: 'x', pax: true }],
    expect: /deeper/,
  },
  {
    name: 'absurd name length',
    entries: () => [{ path: 'a'.repeat(300), body: 'x', pax: true }],
    expect: /longer than 255|long/,
  },
  {
    name: 'absurd total length',
    entries: () => [
      { path: Array.from({ length: 60 }, () => 'n'.repeat(100)).join('/'), body: 'x', pax: true },
    ],
    expect: /long|deeper/,
  },
];

for (const h of HOSTILE) {
  void test(`refuses a crafted archive: ${h.name}`, async () => {
    const outsideDir = tempDir('mbk-x-outside-');
    fs.writeFileSync(path.join(outsideDir, 'outside.txt'), 'untouched');
    const base = tempDir('mbk-x-base-');
    const file = path.join(base, 'evil.tgz');
    fs.writeFileSync(file, craftTgz([{ path: 'ok.txt', body: 'ok' }, ...h.entries(outsideDir)]));
    const dest = path.join(base, 'stage', 'dest');
    fs.mkdirSync(dest, { recursive: true });
    await assert.rejects(extractArchive({ file, destDir: dest }), (err: unknown) => {
      assert.ok(err instanceof CliError, String(err));
      assert.match(err.message, /evil\.tgz/);
      assert.match(err.message, h.expect);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
    assert.equal(fs.existsSync(dest), false, 'the destination is removed');
    assert.deepEqual(fs.readdirSync(outsideDir), ['outside.txt']);
    assert.equal(fs.readFileSync(path.join(outsideDir, 'outside.txt'), 'utf8'), 'untouched');
    assert.deepEqual(fs.readdirSync(path.join(base, 'stage')), []);
    assert.equal(fs.existsSync(path.join(base, 'escape.txt')), false);
  });
}

void test('a FIFO is skipped with a SPECIAL_FILE warning', async () => {
  const file = path.join(tempDir(), 'fifo.tgz');
  fs.writeFileSync(
    file,
    craftTgz([
      { path: 'pipe', type: 'FIFO' },
      { path: 'ok', body: '1' },
    ]),
  );
  const warnings: string[] = [];
  const dest = await extractTo(file, { onWarning: (w) => warnings.push(`${w.code} ${w.path}`) });
  assert.deepEqual(warnings, ['SPECIAL_FILE pipe']);
  assert.deepEqual(fs.readdirSync(dest), ['ok']);
});

void test('code filter leaves out var/, pub/media, node_modules, .git (and reports them once)', async () => {
  const file = path.join(tempDir(), 'code.tgz');
  fs.writeFileSync(
    file,
    craftTgz([
      { path: 'index.php', body: '1' },
      { path: 'var/log/a.log', body: 'x' },
      { path: 'var/log/b.log', body: 'x' },
      { path: 'pub/index.php', body: '1' },
      { path: 'pub/media/a.jpg', body: 'x' },
      { path: 'app/code/V/M/node_modules/x.js', body: 'x' },
      { path: 'app/code/V/M/.gitignore', body: 'keep me' },
    ]),
  );
  const warnings: string[] = [];
  const dest = await extractTo(file, { filter: 'code', onWarning: (w) => warnings.push(w.path) });
  assert.deepEqual(warnings.sort(), ['app/code/V/M/node_modules', 'pub/media', 'var']);
  assert.deepEqual(Object.keys(describe(dest)).sort(), [
    'app',
    'app/code',
    'app/code/V',
    'app/code/V/M',
    'app/code/V/M/.gitignore',
    'index.php',
    'pub',
    'pub/index.php',
  ]);
});

void test('media filter accepts archives rooted at the store (pub/media/...) and relative ones', async () => {
  const rooted = path.join(tempDir(), 'm1.tgz');
  fs.writeFileSync(
    rooted,
    craftTgz([
      { path: 'pub/', type: 'Directory' },
      { path: 'pub/media/', type: 'Directory', mode: 0o775 },
      { path: 'pub/media/catalog/a.jpg', body: 'jpg' },
    ]),
  );
  const d1 = await extractTo(rooted, { filter: 'media' });
  assert.deepEqual(fs.readdirSync(d1), ['catalog']);
  assert.equal(fs.readFileSync(path.join(d1, 'catalog/a.jpg'), 'utf8'), 'jpg');
  const rel = path.join(tempDir(), 'm2.tgz');
  fs.writeFileSync(rel, craftTgz([{ path: 'catalog/a.jpg', body: 'jpg' }]));
  const d2 = await extractTo(rel, { filter: 'media' });
  assert.equal(fs.readFileSync(path.join(d2, 'catalog/a.jpg'), 'utf8'), 'jpg');
});

void test('abort: InterruptedError, the destination is removed', async () => {
  const src = path.join(tempDir(), 'src');
  for (let i = 0; i < 200; i++) {
    fs.mkdirSync(path.join(src, `d${i}`), { recursive: true });
    for (let j = 0; j < 50; j++) fs.writeFileSync(path.join(src, `d${i}`, `f${j}`), `${i}-${j}`.repeat(50));
  }
  const file = path.join(tempDir(), 'big.tgz');
  execFileSync('tar', ['-czf', file, '-C', src, '.']);
  const dest = path.join(tempDir(), 'dest');
  fs.mkdirSync(dest);
  const ac = new AbortController();
  const p = extractArchive({
    file,
    destDir: dest,
    signal: ac.signal,
    onProgress: () => ac.abort('SIGINT'),
  });
  ac.abort('SIGINT');
  await assert.rejects(p, InterruptedError);
  assert.equal(fs.existsSync(dest), false);
});

void test('a missing archive is one clear line naming it', async () => {
  const dest = path.join(tempDir(), 'dest');
  fs.mkdirSync(dest);
  await assert.rejects(
    extractArchive({ file: '/nonexistent/x_filesystem.tgz', destDir: dest }),
    (err: unknown) => {
      assert.ok(err instanceof CliError);
      assert.match(err.message, /Cannot read archive \/nonexistent\/x_filesystem\.tgz/);
      return true;
    },
  );
});
