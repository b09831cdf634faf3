import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { LiveComparer } from '../../src/archive/extract-compare.js';
import { listLiveFiles, startLiveWalk } from '../../src/archive/live-walk.js';

/** A code tree with a symlink to a directory, excluded paths, magebackup's own names, nested additions. */
function hostileTree(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'live-walk-'));
  const file = (rel: string): void => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), rel);
  };
  file('app/etc/env.php');
  file('app/new/deep/added.php');
  file('vendor/a/b.php');
  file('var/planted/x.php'); // excluded (root var/)
  file('pub/media/planted.php'); // excluded (pub/media)
  file('vendor/a/node_modules/m/x.js'); // excluded anywhere
  file('.magebackup-staging-1/y.php'); // ours, never listed
  file('outside/secret.txt');
  fs.symlinkSync(path.join(root, 'outside'), path.join(root, 'app/link-to-dir')); // listed, never entered
  fs.symlinkSync('nowhere', path.join(root, 'app/dangling'));
  fs.mkdirSync(path.join(root, 'app/empty-dir'));
  return root;
}

function added(root: string, walked?: string): string[] {
  const cmp = new LiveComparer({ liveDir: root, link: false, filter: 'code' });
  // the archive has app/etc/env.php and vendor/a/b.php, and app/empty-dir as a directory
  const inArchive = new Map<string, 'f' | 'd'>([
    ['app', 'd'],
    ['app/etc', 'd'],
    ['app/etc/env.php', 'f'],
    ['vendor', 'd'],
    ['vendor/a', 'd'],
    ['vendor/a/b.php', 'f'],
    ['app/empty-dir', 'd'],
  ]);
  cmp.walkAdded((rel) => inArchive.get(rel), undefined, walked);
  return [...cmp.changes.added].sort();
}

void test('the walk on its own thread finds exactly what the walk at the end finds, never entering a symlink', async () => {
  const root = hostileTree();
  try {
    const expected = ['app/dangling', 'app/link-to-dir', 'app/new/deep/added.php', 'outside/secret.txt'];
    assert.deepEqual(added(root), expected);
    const w = startLiveWalk(root, true);
    const walked = await w.result;
    assert.equal(typeof walked, 'string');
    assert.deepEqual(added(root, walked), expected);
    assert.equal(walked, listLiveFiles(root, true));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

void test('a live walk of a directory that cannot be read lists nothing (and a sparse plan cannot use one)', () => {
  assert.equal(listLiveFiles('/nonexistent/live-walk', true), '');
  const cmp = new LiveComparer({ liveDir: '/nonexistent', link: false, filter: 'code' });
  const sparse = { added: () => {}, keptName: () => {}, names: () => {} };
  assert.throws(() => cmp.walkAdded(() => undefined, sparse, ''), /sparse plan/);
});
