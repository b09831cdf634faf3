// The code-backup exclude rules have one source (CODE_EXCLUDES); the backup's matcher, extraction's prefix matcher
// and the fixtures' idea of "in a code backup" must decide every path the same way, or a rollback would delete or
// keep what the backup did not mean to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CODE_EXCLUDES, compileExcludes, INTERNAL_EXCLUDES } from '../../src/archive/excludes.js';
import { codeExcludedPrefix } from '../../src/archive/extract-filter.js';
import { isCodeBackupPath } from '../../fixtures/store.js';

const NAMES = [
  'var',
  'pub',
  'static',
  'media',
  'update',
  'app',
  'node_modules',
  'node_modules_x',
  '.git',
  '.gitignore',
  '.github',
  '.idea',
  '.svn',
  '.grunt',
  'x.magebackup-y',
  '.magebackup-staging-1',
  'vendor',
  'a b',
];

/** Every path of one to three components over NAMES, plus the root-anchored rules themselves at depth. */
function paths(): string[] {
  const out: string[] = [];
  for (const a of NAMES) {
    out.push(a);
    for (const b of NAMES) {
      out.push(`${a}/${b}`);
      for (const c of ['app', 'static', 'media', 'var', '.git', 'f.php']) out.push(`${a}/${b}/${c}`);
    }
  }
  return out;
}

void test('backup, extraction and fixtures agree on every code exclude', () => {
  const backup = compileExcludes([...CODE_EXCLUDES, ...INTERNAL_EXCLUDES]);
  const all = paths();
  let excluded = 0;
  for (const p of all) {
    const byBackup = backup(p, false);
    const byExtraction = codeExcludedPrefix(p) !== undefined;
    assert.equal(byExtraction, byBackup, `extraction and backup disagree on ${p}`);
    assert.equal(backup(p, true), byBackup, `backup decides ${p} differently as a directory`);
    if (!p.split('/').some((c) => c.startsWith('.magebackup-'))) {
      assert.equal(isCodeBackupPath(p), !byBackup, `fixtures and backup disagree on ${p}`);
    }
    if (byBackup) excluded++;
  }
  // the rules did something on both sides: root-anchored ones only at the root, the others anywhere
  assert.ok(excluded > 100 && excluded < all.length - 100, `${excluded} of ${all.length} excluded`);
  assert.equal(codeExcludedPrefix('pub/static/x'), 'pub/static');
  assert.equal(codeExcludedPrefix('app/var/x'), undefined);
  assert.equal(codeExcludedPrefix('app/.git/x'), 'app/.git');
  assert.equal(codeExcludedPrefix('.gitignore'), undefined);
});
