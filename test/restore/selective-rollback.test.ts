// A rollback that costs what changed: equal files are staged as hard links to the live ones
// (src/archive/extract-compare.ts); the result must be exactly what a full extraction gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RollbackOperation } from '../../src/restore/operation.js';
import { recoverOperations } from '../../src/restore/operation-recover.js';
import { STAGING_PREFIX } from '../../src/restore/tree-swap.js';
import { storePaths } from '../../src/store/paths.js';
import { CliError } from '../../src/errors.js';
import { noEvents } from '../../src/events.js';
import { tempDir } from '../helpers/tmp.js';
import { keptRels } from '../../src/archive/extract-sparse.js';
import { webUser } from '../helpers/users.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'tree-swap-child.js');
const T0 = 1_600_000_000;
const BIG = 12 << 20; // past the 8 MiB a comparison keeps in memory: the prefix is copied and hashed instead

interface Exact {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  nlink: number;
  size: number;
  body?: string;
  target?: string;
}

/** Everything a full extraction decides, exactly: type, mode, owner, mtime to the nanosecond, bytes, target. */
function exact(dir: string, skip: (rel: string) => boolean = () => false): Record<string, Exact> {
  const out: Record<string, Exact> = {};
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const abs = path.join(dir, r);
      const st = fs.lstatSync(abs, { bigint: true });
      const e: Exact = {
        type: st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : 'file',
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtimeNs: st.isSymbolicLink() ? '' : String(st.mtimeNs),
        nlink: st.isDirectory() ? 0 : Number(st.nlink),
        size: st.isDirectory() ? 0 : Number(st.size),
      };
      if (st.isSymbolicLink()) e.target = fs.readlinkSync(abs);
      else if (st.isFile()) e.body = createHash('sha256').update(fs.readFileSync(abs)).digest('hex');
      out[r] = e;
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

function put(root: string, rel: string, body: string | Buffer, mode = 0o644, mtime = T0): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, body);
  fs.chmodSync(p, mode);
  fs.utimesSync(p, mtime, mtime);
}

const notState = (rel: string): boolean => rel === 'var' || rel.startsWith('var/');
const ino = (p: string): number => fs.lstatSync(p).ino;

/**
 * A code tree, its backup, then a change of every kind. Returns what the rollback must give back exactly.
 */
function storeWithEveryChange(): {
  root: string;
  archive: string;
  expected: Record<string, Exact>;
  unchanged: string[];
  changes: { added: string[]; removed: string[]; modified: string[] };
} {
  const base = tempDir('mbk-sel-');
  const root = path.join(base, 'store');
  const big = randomBytes(BIG);
  put(root, 'index.php', '<?php // v1');
  put(root, 'app/etc/env.php', "<?php return ['v' => 1];", 0o600);
  put(root, 'app/code/Same.php', 'same size, same mtime, other bytes');
  put(root, 'app/code/Mode.php', 'mode changes', 0o644);
  put(root, 'app/code/Gone.php', 'deleted later');
  put(root, 'app/code/Dir.php', 'becomes a directory');
  put(root, 'lib/big-same.bin', big);
  put(root, 'lib/big-edited.bin', big);
  for (let i = 0; i < 20; i++) put(root, `lib/u${i}.php`, `unchanged ${i} `.repeat(i + 1));
  put(root, 'lib/empty.txt', '');
  fs.symlinkSync('index.php', path.join(root, 'link'));
  fs.mkdirSync(path.join(root, 'var/backups'), { recursive: true, mode: 0o700 });
  for (const d of ['app/code', 'app/etc', 'app', 'lib', '']) fs.utimesSync(path.join(root, d), T0, T0);
  const expected = exact(root, notState);
  const archive = path.join(base, '1700000000_filesystem.tgz');
  execFileSync('tar', ['-czf', archive, '--exclude=./var', '-C', root, '.']);

  // the changes, each of its own kind
  put(root, 'app/code/Same.php', 'SAME SIZE, SAME MTIME, OTHER BYTES'); // same size and mtime
  const edited = Buffer.from(big);
  edited[BIG - 1] = edited[BIG - 1]! ^ 0xff; // differs only in its last byte, same size and mtime
  put(root, 'lib/big-edited.bin', edited);
  fs.chmodSync(path.join(root, 'app/code/Mode.php'), 0o755);
  fs.rmSync(path.join(root, 'app/code/Gone.php'));
  fs.rmSync(path.join(root, 'app/code/Dir.php'));
  put(root, 'app/code/Dir.php/inside.php', 'a file inside what was a file');
  fs.rmSync(path.join(root, 'link'));
  fs.symlinkSync('app/etc/env.php', path.join(root, 'link'));
  put(root, 'app/code/Added.php', 'added after the backup');
  const unchanged = [...Array.from({ length: 20 }, (_, i) => `lib/u${i}.php`), 'lib/big-same.bin'];
  return {
    root,
    archive,
    expected,
    unchanged: [...unchanged, 'index.php', 'app/etc/env.php', 'lib/empty.txt'],
    changes: {
      added: ['app/code/Added.php', 'app/code/Dir.php/inside.php'],
      removed: ['app/code/Gone.php'],
      modified: ['app/code/Dir.php', 'app/code/Mode.php', 'app/code/Same.php', 'lib/big-edited.bin', 'link'],
    },
  };
}

function sorted(c: { added: string[]; removed: string[]; modified: string[] }): typeof c {
  return { added: [...c.added].sort(), removed: [...c.removed].sort(), modified: [...c.modified].sort() };
}

function noStaging(root: string): void {
  assert.deepEqual(
    fs.readdirSync(root).filter((n) => n.startsWith(STAGING_PREFIX)),
    [],
  );
}

void test('selective rollback after a change of every kind: exactly the backup, equal files left in place', async () => {
  const { root, archive, expected, unchanged, changes } = storeWithEveryChange();
  const inodes = new Map(unchanged.map((rel) => [rel, ino(path.join(root, rel))]));
  const before = exact(root, notState);
  const op = await RollbackOperation.begin(storePaths(root));
  const s = await op.stage({ root, target: 'code', archive });
  assert.deepEqual(sorted(s.stats.changes!), changes);
  // the store root is ours: a sparse staging, equal files kept where they are, nothing of them staged
  const kept = keptRels(await s.stats.kept!.fetch());
  for (const rel of unchanged) assert.ok(kept.includes(rel), `${rel} is kept in place`);
  for (const rel of [...changes.modified, ...changes.added]) assert.ok(!kept.includes(rel), rel);
  assert.deepEqual(s.stats.linked ?? [], []);
  for (const rel of unchanged) {
    assert.equal(fs.existsSync(path.join(s.stagingDir, 'new', rel)), false, `${rel} is not staged`);
  }
  // nothing live changed by staging
  assert.deepEqual(
    exact(root, (rel) => notState(rel) || rel.startsWith(STAGING_PREFIX)),
    before,
  );
  const r = await op.commit();
  await r.cleanup();
  assert.deepEqual(exact(root, notState), expected);
  for (const [rel, i] of inodes) assert.equal(ino(path.join(root, rel)), i, `${rel} stayed, not copied`);
  noStaging(root);
});

void test('--full (full: true) writes every file anew and gives the same tree', async () => {
  const { root, archive, expected, unchanged } = storeWithEveryChange();
  const before = ino(path.join(root, unchanged[0]!));
  const op = await RollbackOperation.begin(storePaths(root));
  const s = await op.stage({ root, target: 'code', archive, full: true });
  assert.equal(s.stats.linked, undefined);
  await (await op.commit()).cleanup();
  assert.deepEqual(exact(root, notState), expected);
  assert.notEqual(ino(path.join(root, unchanged[0]!)), before);
});

void test('directory mtimes at the archive precision: a sub-second part is kept, another second is restored', async () => {
  // every directory on a real filesystem has a sub-second mtime; a ustar archive (ours, GNU tar's) holds whole
  // seconds: a directory in the same second is equal (as a kept file is), not one of ~58k fixes per rollback
  const base = tempDir('mbk-sel-dirtime-');
  const root = path.join(base, 'store');
  put(root, 'index.php', '<?php');
  put(root, 'lib/same/a.php', 'a');
  put(root, 'lib/moved/b.php', 'b');
  put(root, 'lib/edited/c.php', 'c');
  fs.mkdirSync(path.join(root, 'var/backups'), { recursive: true, mode: 0o700 });
  const sub = (rel: string, frac: number): void => fs.utimesSync(path.join(root, rel), T0 + frac, T0 + frac);
  sub('lib/same', 0.25);
  sub('lib/moved', 0.75);
  sub('lib/edited', 0.5);
  const archive = path.join(base, '1700000000_filesystem.tgz');
  execFileSync('tar', ['-czf', archive, '--exclude=./var', '-C', root, '.']);
  fs.utimesSync(path.join(root, 'lib/moved'), T0 + 50.5, T0 + 50.5); // another second
  put(root, 'lib/edited/c.php', 'C'); // renamed in by the swap: its directory gets the archive's time
  sub('lib/edited', 0.5);
  const op = await RollbackOperation.begin(storePaths(root));
  const s = await op.stage({ root, target: 'code', archive });
  assert.deepEqual(sorted(s.stats.changes!), { added: [], removed: [], modified: ['lib/edited/c.php'] });
  await (await op.commit()).cleanup();
  const ns = (rel: string): bigint => fs.lstatSync(path.join(root, rel), { bigint: true }).mtimeNs;
  const s0 = BigInt(T0) * 1_000_000_000n;
  assert.equal(ns('lib/same'), s0 + 250_000_000n);
  assert.equal(ns('lib/moved'), s0);
  assert.equal(ns('lib/edited'), s0);
  assert.equal(fs.readFileSync(path.join(root, 'lib/edited/c.php'), 'utf8'), 'c');
  noStaging(root);
});

for (const [what, touch] of [
  ['written with the same bytes', (p: string) => fs.writeFileSync(p, fs.readFileSync(p))],
  ['chmod-ed and back', (p: string) => (fs.chmodSync(p, 0o600), fs.chmodSync(p, 0o644))],
  ['edited, its mtime put back', (p: string) => (fs.appendFileSync(p, 'x'), fs.utimesSync(p, T0, T0))],
] as const) {
  void test(`a kept live file ${what} between staging and swap is caught: nothing changes`, async () => {
    const { root, archive } = storeWithEveryChange();
    const op = await RollbackOperation.begin(storePaths(root));
    await op.stage({ root, target: 'code', archive });
    touch(path.join(root, 'lib/u3.php'));
    // (while staged, the linked files have a second name: their link count is 2 until the staging is gone)
    const before = exact(root, (rel) => notState(rel) || rel.startsWith(STAGING_PREFIX));
    for (const e of Object.values(before)) if (e.nlink === 2) e.nlink = 1;
    await assert.rejects(
      op.commit(),
      (err: Error) =>
        err instanceof CliError &&
        /lib\/u3\.php was changed while the rollback was being prepared .*nothing was changed/.test(
          err.message,
        ),
    );
    assert.equal(op.phase, 'staging');
    await op.discard();
    assert.deepEqual(exact(root, notState), before);
    noStaging(root);
  });
}

void test('hostile live media: a symlinked directory is never followed, a file with a second name is copied', async () => {
  const base = tempDir('mbk-sel-media-');
  const root = path.join(base, 'store');
  const media = path.join(root, 'pub/media');
  const body = randomBytes(4096);
  put(media, 'catalog/a.jpg', body);
  put(media, 'catalog/b.jpg', 'bbbb');
  put(media, 'wysiwyg/c.jpg', 'cccc');
  fs.utimesSync(path.join(media, 'catalog'), T0, T0);
  fs.utimesSync(path.join(media, 'wysiwyg'), T0, T0);
  fs.mkdirSync(path.join(root, 'var/backups'), { recursive: true, mode: 0o700 });
  const expected = exact(media);
  const archive = path.join(base, '1700000000_filesystem_media.tgz');
  execFileSync('tar', ['-czf', archive, '-C', media, '.']);
  // the web user moves catalog/ out of the tree and leaves a symlink to it; c.jpg gets a second name outside
  const outside = path.join(base, 'outside');
  fs.mkdirSync(outside);
  fs.renameSync(path.join(media, 'catalog'), path.join(outside, 'catalog'));
  fs.symlinkSync(path.join(outside, 'catalog'), path.join(media, 'catalog'));
  fs.linkSync(path.join(media, 'wysiwyg/c.jpg'), path.join(outside, 'c-second-name.jpg'));
  const outsideA = ino(path.join(outside, 'catalog/a.jpg'));
  const op = await RollbackOperation.begin(storePaths(root));
  const s = await op.stage({ root, target: 'media', archive });
  assert.deepEqual(s.stats.linked ?? [], []);
  assert.deepEqual(sorted(s.stats.changes!), {
    added: ['catalog'],
    removed: [],
    modified: ['catalog', 'catalog/a.jpg', 'catalog/b.jpg', 'wysiwyg/c.jpg'],
  });
  await (await op.commit()).cleanup();
  assert.deepEqual(exact(media), expected);
  assert.notEqual(ino(path.join(media, 'catalog/a.jpg')), outsideA);
  assert.equal(fs.lstatSync(path.join(outside, 'catalog/a.jpg')).nlink, 1);
  assert.equal(fs.lstatSync(path.join(outside, 'c-second-name.jpg')).nlink, 1);
});

void test('media owned by the web user: the linked files have the owner and mode a full extraction gives', async () => {
  const u = webUser();
  const base = tempDir('mbk-sel-owner-');
  const root = path.join(base, 'store');
  const media = path.join(root, 'pub/media');
  for (let i = 0; i < 5; i++) put(media, `m/f${i}.jpg`, `media ${i}`);
  fs.mkdirSync(path.join(root, 'var/backups'), { recursive: true, mode: 0o700 });
  execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, media]);
  const archive = path.join(base, '1700000000_filesystem_media.tgz');
  execFileSync('tar', ['-czf', archive, '-C', media, '.']);
  // f0: owned by root now (not what a restore gives: copied); f1: other mode (copied); the rest linked
  fs.chownSync(path.join(media, 'm/f0.jpg'), 0, 0);
  fs.chmodSync(path.join(media, 'm/f1.jpg'), 0o600);
  const op = await RollbackOperation.begin(storePaths(root));
  const s = await op.stage({ root, target: 'media', archive });
  assert.deepEqual((s.stats.linked ?? []).map((l) => l.rel).sort(), ['m/f2.jpg', 'm/f3.jpg', 'm/f4.jpg']);
  await (await op.commit()).cleanup();
  for (let i = 0; i < 5; i++) {
    const st = fs.lstatSync(path.join(media, `m/f${i}.jpg`));
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [u.uid, u.gid, 0o644], `f${i}`);
  }
});

void test('SIGKILL at every step of a selective rollback: the next run leaves the tree exactly old or new', async () => {
  const probe = storeWithEveryChange();
  const r = spawnSync(process.execPath, [CHILD, probe.root, 'code', probe.archive, 'never'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const total = (JSON.parse(r.stdout) as { renames: number }).renames;
  assert.ok(total >= 5, `renames: ${total}`);
  for (const at of ['stage', ...Array.from({ length: total }, (_, i) => String(i + 1))]) {
    const { root, archive, expected } = storeWithEveryChange();
    const old = exact(root, notState);
    const k = spawnSync(process.execPath, [CHILD, root, 'code', archive, at], { encoding: 'utf8' });
    assert.equal(k.signal, 'SIGKILL', `killed at ${at}: ${k.stderr}`);
    const done = await recoverOperations({ paths: storePaths(root), onEvent: noEvents });
    assert.equal(done.length, 1);
    const now = exact(root, notState);
    assert.deepEqual(now, at === 'stage' ? old : expected, `after a kill at ${at}`);
    noStaging(root);
  }
});
