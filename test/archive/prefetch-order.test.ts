// The page-cache warmer of a code rollback's comparison (src/archive/prefetch-worker.ts) reads the live files in
// the order the comparison meets them: the order of the archive a code backup of the same tree writes. It never
// yields what the comparison never reads (excluded paths, magebackup's own names, symlinks), and never enters a
// directory somebody else could change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createArchive } from '../../src/archive/create.js';
import { CODE_EXCLUDES, INTERNAL_EXCLUDES, compileExcludes } from '../../src/archive/excludes.js';
import { liveFiles } from '../../src/archive/prefetch-worker.js';
import { tempDir } from '../helpers/tmp.js';

function put(root: string, rel: string, body = rel): void {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  fs.writeFileSync(path.join(root, rel), body);
}

void test('liveFiles: the code archive order, without excluded paths, links or untrusted directories', async () => {
  const root = tempDir('mbk-prefetch-');
  // names whose order is that of names per directory, not of whole paths ('a-b.php' < 'a/x.php' as paths)
  for (const rel of [
    'a-b.php',
    'a/x.php',
    'a/B.php',
    'a/b/c.php',
    'a.b/z.php',
    'Z.php',
    'index.php',
    'app/etc/env.php',
    'vendor/m/n/o.php',
    'pub/index.php',
    'pub/media/cat.jpg',
    'pub/static/s.css',
    'var/log/x.log',
    'node_modules/p/q.js',
    'app/code/.git/HEAD',
    'app/.magebackup-staging-1-code/new/f',
  ])
    put(root, rel);
  fs.symlinkSync('index.php', path.join(root, 'link.php'));
  // group-writable: the comparison keeps nothing in place there, and the warmer does not enter it
  put(root, 'shared/w.php');
  fs.chmodSync(path.join(root, 'shared'), 0o775);

  const out = path.join(tempDir('mbk-prefetch-out-'), 'a.tgz');
  fs.writeFileSync(out, '', { mode: 0o600 });
  await createArchive({
    sourceDir: root,
    outFile: out,
    exclude: compileExcludes([...CODE_EXCLUDES, ...INTERNAL_EXCLUDES]),
  });
  const archived = execFileSync('tar', ['-tvzf', out])
    .toString('utf8')
    .split('\n')
    .filter((l) => l.startsWith('-'))
    .map((l) => l.split(/\s+/).slice(5).join(' ').replace(/^\.\//, ''));

  const warmed = [...liveFiles(root)].map((p) => path.relative(root, p));
  assert.deepEqual(
    warmed,
    archived.filter((r) => !r.startsWith('shared/')),
  );
  assert.ok(archived.includes('shared/w.php'), 'the archive has it: only the warmer leaves it out');
  // by name per directory ('a' < 'a-b.php'), not by whole path ('a-b.php' < 'a/x.php')
  assert.ok(warmed.indexOf('a/x.php') < warmed.indexOf('a-b.php'));
});
