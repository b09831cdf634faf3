import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { list as tarList } from 'tar';
import { activeArchiveWorkers, createArchive, type CreateArchiveOptions } from '../../src/archive/create.js';
import { CODE_EXCLUDES, compileExcludes } from '../../src/archive/excludes.js';
import { CliError, InterruptedError } from '../../src/errors.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'mbk-create-'));
chmodSync(base, 0o755);
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
function fresh(name: string): string {
  const d = path.join(base, `${name}-${n++}`);
  mkdirSync(d, { mode: 0o755 });
  return d;
}

type Warning = Parameters<NonNullable<CreateArchiveOptions['onWarning']>>[0];

async function archive(
  sourceDir: string,
  opts: Partial<CreateArchiveOptions> = {},
): Promise<{ out: string; result: Awaited<ReturnType<typeof createArchive>>; warnings: Warning[] }> {
  const out = path.join(fresh('out'), 'a.tgz');
  writeFileSync(out, '', { mode: 0o600 });
  const warnings: Warning[] = [];
  const result = await createArchive({
    sourceDir,
    outFile: out,
    onWarning: (w) => warnings.push(w),
    ...opts,
  });
  return { out, result, warnings };
}

function gnuList(tgz: string): string[] {
  return execFileSync('tar', ['-tzf', tgz], { maxBuffer: 1 << 26 })
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '');
}

function gnuExtract(tgz: string): string {
  const d = fresh('x');
  execFileSync('tar', ['-xzf', tgz, '-C', d]);
  return d;
}

interface Snap {
  type: string;
  mode?: number;
  mtime?: number;
  uid?: number;
  gid?: number;
  sha?: string;
  size?: number;
  target?: string;
}

/** Everything that must survive a round trip, keyed by relative path. */
function snapshot(root: string, keep: (rel: string) => boolean = () => true): Map<string, Snap> {
  const out = new Map<string, Snap>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      if (!keep(r)) continue;
      const abs = path.join(root, r);
      const st = lstatSync(abs);
      const common = { uid: st.uid, gid: st.gid };
      if (st.isSymbolicLink()) out.set(r, { type: 'symlink', target: readlinkSync(abs), ...common });
      else if (st.isDirectory()) {
        out.set(r, { type: 'dir', mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000), ...common });
        walk(r);
      } else if (st.isFile()) {
        out.set(r, {
          type: 'file',
          mode: st.mode & 0o7777,
          mtime: Math.floor(st.mtimeMs / 1000),
          size: st.size,
          sha: createHash('sha256').update(readFileSync(abs)).digest('hex'),
          ...common,
        });
      }
    }
  };
  walk('');
  return out;
}

function put(root: string, rel: string, content: string | Buffer, mode = 0o644): void {
  const p = path.join(root, rel);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, content);
  chmodSync(p, mode);
}

const LONG_DIR = 'd'.repeat(90) + '/' + 'e'.repeat(60);
const LONG_FILE = `${LONG_DIR}/${'f'.repeat(120)}.php`; // > 256 bytes: needs a pax path
const SPLIT_FILE = `${'p'.repeat(80)}/${'q'.repeat(60)}.php`; // 141 bytes: fits ustar's prefix + name
const UNICODE_FILE = 'ünïcödé/日本語 ファイル.txt';
const LONG_TARGET = `../${'t'.repeat(150)}/target`;

/** A store-like tree with every kind of entry the archiver must handle. */
function buildTree(): string {
  const root = fresh('src');
  put(root, '.gitignore', '/var\n');
  put(root, '.github/workflows/ci.yml', 'on: push\n');
  put(root, 'app/etc/env.php', "<?php return ['db' => 'secret'];\n", 0o600);
  put(root, 'app/var/keep.php', '<?php // app/var is not var\n');
  put(root, 'app/pub/static/keep.css', 'a{}\n');
  put(root, 'var/log/system.log', 'log\n');
  put(root, 'pub/static/frontend/x.css', 'x\n');
  put(root, 'pub/media/catalog/a.jpg', randomBytes(1000));
  put(root, 'pub/index.php', '<?php\n');
  put(root, 'update/x', 'u\n');
  put(root, 'vendor/foo/.git/HEAD', 'ref\n');
  put(root, 'vendor/foo/a.php', '#!/usr/bin/env php\n', 0o755);
  put(root, 'vendor/foo/.gitkeep', '');
  put(root, 'node_modules/x/y.js', '1\n');
  put(root, 'lib/.idea/w.xml', '<x/>\n');
  // Deep enough for the walk to be split into tasks shared by two threads (directories at depth 3).
  for (const m of ['module-a', 'module-b', 'module-c']) {
    put(root, `vendor/magento/${m}/etc/di.xml`, `<config ${m}/>\n`);
    put(root, `vendor/magento/${m}/Model/Thing.php`, `<?php // ${m}\n`);
  }
  put(root, 'vendor/magento/module-b/node_modules/z.js', 'excluded\n');
  put(root, 'deep/1/2/3/4/5/f.txt', 'deep\n');
  mkdirSync(path.join(root, 'deep/1/2/empty'), { recursive: true });
  put(root, 'owned.txt', 'owned by someone else\n', 0o640);
  chownSync(path.join(root, 'owned.txt'), 1234, 4321);
  put(root, LONG_FILE, 'long path\n');
  put(root, SPLIT_FILE, 'split path\n');
  put(root, UNICODE_FILE, 'ü\n');
  // A big file spanning several 1 MiB batches, with a size that is not a multiple of 512.
  put(root, 'big/blob.bin', Buffer.concat([randomBytes(2_500_001), Buffer.alloc(1_200_000, 'a')]));
  mkdirSync(path.join(root, 'emptydir'), { mode: 0o700 });
  chmodSync(path.join(root, 'emptydir'), 0o700);
  mkdirSync(path.join(root, 'links'));
  symlinkSync('../app/etc/env.php', path.join(root, 'links/rel'));
  symlinkSync('/etc/hostname', path.join(root, 'links/abs'));
  symlinkSync('nowhere/at/all', path.join(root, 'links/broken'));
  symlinkSync('../app', path.join(root, 'links/dirlink'));
  symlinkSync(LONG_TARGET, path.join(root, 'links/longtarget'));
  execFileSync('mkfifo', [path.join(root, 'links/fifo')]);
  chmodSync(path.join(root, 'app'), 0o750);
  // mtimes last (writing children changes the parent's), old and distinct so a reset would show
  const t = new Date('2001-02-03T04:05:06Z');
  utimesSync(path.join(root, 'app/etc/env.php'), t, t);
  utimesSync(path.join(root, 'emptydir'), t, new Date('2002-03-04T05:06:07Z'));
  utimesSync(path.join(root, 'app/etc'), t, new Date('2003-04-05T06:07:08Z'));
  return root;
}

const CODE_DROPPED = (rel: string): boolean =>
  /^(var|pub\/static|pub\/media|update)(\/|$)/.test(rel) ||
  /(^|\/)(node_modules|\.git|\.idea|\.svn|\.grunt)(\/|$)/.test(rel);

void test('code archive: excludes, symlinks, empty dirs, modes, mtimes, owners, long and non-ASCII names', async () => {
  const src = buildTree();
  const { out, result, warnings } = await archive(src, { exclude: compileExcludes(CODE_EXCLUDES) });

  const expected = snapshot(src, (rel) => !CODE_DROPPED(rel) && rel !== 'links/fifo');
  // The listing is exactly the tree, pre-order and sorted, directories with a trailing '/'.
  const expectedNames = [...expected].map(([rel, s]) => (s.type === 'dir' ? rel + '/' : rel));
  const listed = gnuList(out);
  assert.deepEqual(listed, expectedNames);
  for (const must of [
    '.gitignore',
    '.github/',
    'app/var/keep.php',
    'app/pub/static/keep.css',
    'vendor/foo/.gitkeep',
  ]) {
    assert.ok(listed.includes(must), `${must} kept`);
  }
  for (const gone of [
    'var/',
    'pub/static/',
    'pub/media/',
    'update/',
    'vendor/foo/.git/',
    'node_modules/',
    'lib/.idea/',
  ]) {
    assert.ok(!listed.includes(gone), `${gone} excluded`);
  }

  // GNU tar restores exactly the same tree.
  const restored = snapshot(gnuExtract(out));
  assert.deepEqual(restored, expected);
  assert.equal(restored.get('links/broken')?.target, 'nowhere/at/all');
  assert.equal(restored.get('links/longtarget')?.target, LONG_TARGET);
  assert.equal(restored.get('links/dirlink')?.type, 'symlink');
  assert.equal(restored.get('emptydir')?.mode, 0o700);
  assert.equal(restored.get('app/etc/env.php')?.mtime, Date.parse('2001-02-03T04:05:06Z') / 1000);
  assert.equal(restored.get('owned.txt')?.uid, 1234);
  assert.equal(restored.get(UNICODE_FILE)?.type, 'file');

  // node-tar (what the rest of the project reads with) sees the same names.
  const nodeNames: string[] = [];
  await tarList({ file: out, onReadEntry: (e) => nodeNames.push(e.path) });
  assert.deepEqual(nodeNames, expectedNames);

  assert.deepEqual(
    warnings.map((w) => [w.code, w.path]),
    [['SPECIAL_FILE', path.join(src, 'links/fifo')]],
  );
  const files = [...expected.values()].filter((s) => s.type === 'file');
  assert.equal(result.files, files.length);
  assert.equal(result.dirs, [...expected.values()].filter((s) => s.type === 'dir').length);
  assert.equal(result.symlinks, 5);
  assert.equal(
    result.bytes,
    files.reduce((a, s) => a + (s.size ?? 0), 0),
  );
  assert.equal(result.size, lstatSync(out).size);
  assert.equal(result.warnings, 1);
});

void test('onScan sees the totals before the first byte is written; progress ends at the totals', async () => {
  const src = buildTree();
  let scanned: { files: number; bytes: number } | undefined;
  let lastProgress: { files: number; bytes: number } | undefined;
  const outDir = fresh('out');
  const out = path.join(outDir, 'a.tgz');
  writeFileSync(out, '');
  const r = await createArchive({
    sourceDir: src,
    outFile: out,
    onScan: (t) => {
      assert.equal(lstatSync(out).size, 0);
      scanned = t;
    },
    onProgress: (p) => (lastProgress = p),
  });
  assert.ok(scanned);
  assert.equal(scanned.files, r.files);
  assert.equal(scanned.bytes, r.bytes);
  assert.deepEqual(lastProgress, { files: r.files, bytes: r.bytes });
});

void test('an archive of the whole tree (no excludes) lists every entry, FIFO aside', async () => {
  const src = buildTree();
  const { out } = await archive(src);
  const expected = snapshot(src, (rel) => rel !== 'links/fifo');
  assert.deepEqual(snapshot(gnuExtract(out)), expected);
});

void test('an exclude callback that is not from compileExcludes works too (walk on the main thread)', async () => {
  const src = buildTree();
  const { out } = await archive(src, { exclude: (rel) => rel === 'big' || rel.endsWith('.php') });
  const listed = gnuList(out);
  assert.ok(!listed.some((l) => l.startsWith('big') || l.endsWith('.php')));
  assert.ok(listed.includes('owned.txt'));
});

void test('followRoot: a symlinked pub/media is archived through the link, only the root is followed', async () => {
  const real = fresh('media-real');
  put(real, 'catalog/product/a.jpg', randomBytes(70_000));
  symlinkSync('/etc/hostname', path.join(real, 'catalog/inner-link'));
  const store = fresh('store');
  mkdirSync(path.join(store, 'pub'));
  const link = path.join(store, 'pub/media');
  symlinkSync(real, link);

  const { out, result } = await archive(link, { followRoot: true, level: 1 });
  assert.deepEqual(gnuList(out), [
    'catalog/',
    'catalog/inner-link',
    'catalog/product/',
    'catalog/product/a.jpg',
  ]);
  assert.equal(result.files, 1);
  assert.deepEqual(snapshot(gnuExtract(out)), snapshot(real));

  await assert.rejects(
    archive(link),
    (err: unknown) => err instanceof CliError && err.message.includes(link),
  );
  await assert.rejects(
    archive(path.join(store, 'missing')),
    (err: unknown) => err instanceof CliError && err.message.includes('missing'),
  );
});

void test('files that vanish or shrink after the scan: VANISHED warnings, the archive stays valid', async () => {
  const src = fresh('src');
  put(src, 'a.txt', 'A'.repeat(5000));
  put(src, 'gone.txt', 'bye\n');
  put(src, 'shrinks.bin', Buffer.alloc(3000, 'x'));
  put(src, 'z.txt', 'last\n');
  const { out, warnings, result } = await archive(src, {
    onScan: () => {
      unlinkSync(path.join(src, 'gone.txt'));
      truncateSync(path.join(src, 'shrinks.bin'), 1000);
    },
  });
  assert.deepEqual(warnings.map((w) => [w.code, path.basename(w.path)]).sort(), [
    ['VANISHED', 'gone.txt'],
    ['VANISHED', 'shrinks.bin'],
  ]);
  assert.equal(result.warnings, 2);
  assert.deepEqual(gnuList(out), ['a.txt', 'shrinks.bin', 'z.txt']);
  const x = gnuExtract(out);
  // The shrunk file keeps its scanned size, zero-padded, so the entries after it are intact.
  assert.ok(
    readFileSync(path.join(x, 'shrinks.bin')).equals(
      Buffer.concat([Buffer.alloc(1000, 'x'), Buffer.alloc(2000)]),
    ),
  );
  assert.equal(readFileSync(path.join(x, 'z.txt'), 'utf8'), 'last\n');
});

void test('unreadable file and directory (as an unprivileged user): UNREADABLE warnings, the rest archived', () => {
  // We run as root, who reads everything: the archiver runs in a child process that drops to nobody.
  const src = fresh('src');
  put(src, 'ok/readable.txt', 'yes\n');
  put(src, 'secret.txt', 'no\n', 0o000);
  put(src, 'closed/inside.txt', 'hidden\n');
  put(src, 'zz-after.txt', 'after\n');
  chmodSync(path.join(src, 'closed'), 0o000);
  const outDir = fresh('out');
  chmodSync(outDir, 0o777);
  const out = path.join(outDir, 'a.tgz');
  writeFileSync(out, '');
  chownSync(out, 65534, 65534);
  const createJs = fileURLToPath(new URL('../../src/archive/create.js', import.meta.url));
  const script = `
    const { createArchive } = await import(${JSON.stringify(createJs)});
    const warnings = [];
    const result = await createArchive({ sourceDir: process.env.MBK_SRC, outFile: process.env.MBK_OUT, onWarning: (w) => warnings.push(w) });
    process.stdout.write(JSON.stringify({ result, warnings, uid: process.getuid() }));`;
  const child = path.join(outDir, 'child.mjs');
  writeFileSync(child, script);
  chmodSync(child, 0o644);
  const r = spawnSync(process.execPath, [child], {
    env: { PATH: process.env.PATH, MBK_SRC: src, MBK_OUT: out },
    uid: 65534,
    gid: 65534,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as {
    result: { files: number; warnings: number };
    warnings: Warning[];
    uid: number;
  };
  assert.equal(got.uid, 65534);
  assert.deepEqual(got.warnings.map((w) => [w.code, w.path]).sort(), [
    ['UNREADABLE', path.join(src, 'closed')],
    ['UNREADABLE', path.join(src, 'secret.txt')],
  ]);
  for (const w of got.warnings) assert.match(w.message, /EACCES/);
  // The unreadable directory itself is kept (empty), the unreadable file is left out, the rest is there.
  assert.deepEqual(gnuList(out), ['closed/', 'ok/', 'ok/readable.txt', 'zz-after.txt']);
  assert.equal(got.result.warnings, 2);
});

void test('abort mid-archive rejects with InterruptedError and leaves no worker running', async () => {
  const src = fresh('src');
  for (let i = 0; i < 40; i++) put(src, `d${i % 4}/f${i}.bin`, randomBytes(512 * 1024));
  const ac = new AbortController();
  let progressCalls = 0;
  await assert.rejects(
    archive(src, {
      signal: ac.signal,
      onProgress: () => {
        progressCalls++;
        ac.abort('SIGINT');
      },
    }),
    (err: unknown) => err instanceof InterruptedError && /SIGINT/.test(err.message),
  );
  assert.ok(progressCalls >= 1);
  assert.equal(activeArchiveWorkers(), 0);
});

void test('an already aborted signal, or onScan throwing, stops before writing', async () => {
  const src = buildTree();
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(archive(src, { signal: ac.signal }), InterruptedError);
  const { out } = await archive(fresh('empty'));
  assert.deepEqual(gnuList(out), []);
  const outFile = path.join(fresh('out'), 'a.tgz');
  writeFileSync(outFile, '');
  await assert.rejects(
    createArchive({
      sourceDir: src,
      outFile,
      onScan: () => {
        throw new CliError('Not enough free space');
      },
    }),
    /Not enough free space/,
  );
  assert.equal(lstatSync(outFile).size, 0);
  assert.equal(activeArchiveWorkers(), 0);
});
