import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { CODE_EXCLUDES, compileExcludes, excludePatternsOf } from '../../src/archive/excludes.js';

void test('code excludes match whole path components, like Magento minus its substring bugs', () => {
  const ex = compileExcludes(CODE_EXCLUDES);
  const dropped: Array<[string, boolean]> = [
    ['var', true],
    ['pub/static', true],
    ['pub/media', true],
    ['update', true],
    ['.git', true],
    ['vendor/foo/.git', true],
    ['vendor/foo/.git/HEAD', false],
    ['node_modules', true],
    ['app/design/frontend/x/node_modules', true],
    ['lib/web/.idea', true],
    ['a/.svn', true],
    ['b/c/.grunt', true],
    ['var/log/system.log', false],
    ['pub/media/catalog/a.jpg', false],
  ];
  for (const [p, isDir] of dropped) assert.equal(ex(p, isDir), true, `${p} should be excluded`);
  const kept: Array<[string, boolean]> = [
    ['.gitignore', false],
    ['.github', true],
    ['.github/workflows/ci.yml', false],
    ['app/var', true],
    ['app/var/x.php', false],
    ['app/pub/static', true],
    ['pub', true],
    ['pub/index.php', false],
    ['pub/static.php', false],
    ['pub/mediafoo', true],
    ['app/update', true],
    ['variable', true],
    ['app/etc/env.php', false],
    ['vendor', true],
    ['vendor/foo/.gitkeep', false],
    ['my.git', true],
    ['node_modules_old', true],
  ];
  for (const [p, isDir] of kept) assert.equal(ex(p, isDir), false, `${p} should be kept`);
});

void test('gitignore-style patterns: anchoring, dir-only, wildcards, classes, escapes', () => {
  const ex = compileExcludes([
    '*.log',
    '/generated/',
    'app/etc/env.php',
    '**/cache',
    'docs/**',
    'file?.txt',
    'img[0-9].png',
    'x[!a].css',
    'lit\\*eral',
    'a/**/z',
  ]);
  const yes: Array<[string, boolean]> = [
    ['system.log', false],
    ['deep/dir/debug.log', false],
    ['generated', true],
    ['generated/code/A.php', false],
    ['app/etc/env.php', false],
    ['cache', true],
    ['x/y/cache', true],
    ['docs/readme.md', false],
    ['docs/a/b', true],
    ['sub/file1.txt', false],
    ['img7.png', false],
    ['xb.css', false],
    ['lit*eral', false],
    ['a/z', true],
    ['a/b/c/z', false],
  ];
  for (const [p, d] of yes) assert.equal(ex(p, d), true, `${p} should match`);
  const no: Array<[string, boolean]> = [
    ['log', false],
    ['generated', false], // dir-only pattern, a file named so is kept
    ['app/generated', true], // anchored to the root
    ['x/app/etc/env.php', false],
    ['docs', true], // 'docs/**' matches what is inside, not the dir itself
    ['file10.txt', false],
    ['imgx.png', false],
    ['xa.css', false],
    ['litXeral', false],
    ['b/a/z', true],
    ['ab/z', true],
  ];
  for (const [p, d] of no) assert.equal(ex(p, d), false, `${p} should not match`);
});

void test('relative paths are tolerated with ./ or trailing slashes', () => {
  const ex = compileExcludes(['/var']);
  assert.equal(ex('./var', true), true);
  assert.equal(ex('var/', true), true);
  assert.equal(ex('', true), false);
});

void test('an empty list excludes nothing and keeps its patterns for the worker', () => {
  const ex = compileExcludes([]);
  assert.equal(ex('anything', true), false);
  assert.deepEqual(excludePatternsOf(ex), []);
  assert.deepEqual(excludePatternsOf(compileExcludes(CODE_EXCLUDES)), [...CODE_EXCLUDES]);
  assert.equal(
    excludePatternsOf(() => false),
    undefined,
  );
});

void test('malformed patterns throw a UsageError naming the pattern', () => {
  for (const bad of ['', '!keep.php', 'img[0-9.png', 'trailing\\', '/', 'a//b']) {
    assert.throws(
      () => compileExcludes(['ok', bad]),
      (err: unknown) => err instanceof UsageError && err.message.includes(JSON.stringify(bad)),
      `pattern ${JSON.stringify(bad)}`,
    );
  }
});
