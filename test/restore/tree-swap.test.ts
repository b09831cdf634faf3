import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { STAGING_PREFIX, stageTree, type StagedTree } from '../../src/restore/tree-swap.js';
import { RollbackOperation } from '../../src/restore/operation.js';
import { recoverOperations } from '../../src/restore/operation-recover.js';
import { storePaths } from '../../src/store/paths.js';
import { CliError } from '../../src/errors.js';
import { noEvents } from '../../src/events.js';
import { tempDir } from '../helpers/tmp.js';
import { describe } from '../archive/extract-crafted.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'tree-swap-child.js');

/** Paths a code rollback keeps (relative to the root), as the tar excludes below. */
const KEPT = (rel: string): boolean =>
  /^(var|update|pub\/media|pub\/static)(\/|$)/.test(rel) || /(^|\/)(node_modules|\.git)(\/|$)/.test(rel);
const TAR_EXCLUDES = [
  '--exclude=./var',
  '--exclude=./update',
  '--exclude=./pub/media',
  '--exclude=./pub/static',
  '--exclude=node_modules',
  '--exclude=.git',
];

function write(root: string, rel: string, body: string, mode = 0o644): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, body);
  fs.chmodSync(p, mode);
}

/** A store, its code backup, and the store changed afterwards (what the rollback must undo). */
function storeWithCodeBackup(): { root: string; archive: string; expected: ReturnType<typeof describe> } {
  const base = tempDir('mbk-swap-');
  const root = path.join(base, 'store');
  write(root, 'index.php', '<?php // v1');
  write(root, 'app/etc/env.php', "<?php return ['v' => 1];", 0o600);
  write(root, 'app/code/V/M/Model.php', '<?php // model v1');
  write(root, 'app/code/V/M/node_modules/dep.js', 'dep v1');
  write(root, 'app/code/V/M/.gitignore', 'kept as code');
  write(root, 'bin/magento', '#!/usr/bin/env php', 0o755);
  write(root, 'pub/index.php', '<?php // pub v1');
  write(root, 'pub/media/catalog/a.jpg', 'jpg v1');
  write(root, 'pub/static/x.css', 'css v1');
  write(root, 'var/log/system.log', 'log v1');
  write(root, 'update/u.txt', 'update v1');
  write(root, '.git/HEAD', 'ref v1');
  fs.mkdirSync(path.join(root, 'generated/empty'), { recursive: true });
  fs.mkdirSync(path.join(root, 'var/backups'), { mode: 0o700 });
  fs.symlinkSync('app/etc/env.php', path.join(root, 'env-link'));
  for (const rel of ['index.php', 'app', 'app/code', 'pub', 'generated/empty', 'generated']) {
    fs.utimesSync(path.join(root, rel), 1_600_000_000, 1_600_000_000);
  }
  const expected = describe(root, KEPT);
  const archive = path.join(base, '1700000000_filesystem.tgz');
  execFileSync('tar', ['-czf', archive, ...TAR_EXCLUDES, '-C', root, '.']);
  // later changes: edits, new files, deletions, mode changes, a file that became a dir and vice versa
  write(root, 'index.php', '<?php // v2');
  write(root, 'app/etc/env.php', "<?php return ['v' => 2];", 0o644);
  write(root, 'app/code/V/M/Model.php', '<?php // model v2');
  write(root, 'app/code/V/New/Added.php', 'added later');
  write(root, 'extra.php', 'not in the backup');
  fs.rmSync(path.join(root, 'bin'), { recursive: true });
  write(root, 'bin', 'now a file');
  fs.rmSync(path.join(root, 'generated'), { recursive: true });
  write(root, 'generated/code/X.php', 'generated');
  fs.rmSync(path.join(root, 'env-link'));
  // and the kept paths change too: they must stay as they are now
  write(root, 'var/log/system.log', 'log v2');
  write(root, 'pub/media/catalog/b.jpg', 'jpg v2');
  write(root, 'app/code/V/M/node_modules/dep.js', 'dep v2');
  write(root, '.git/HEAD', 'ref v2');
  return { root, archive, expected };
}

/** One tree's rollback as an operation: staged, then committed (and the old content removed unless 'later'). */
async function swapIn(
  root: string,
  target: 'code' | 'media',
  archive: string,
  o: {
    later?: boolean;
    onWarning?: (w: { code: string }) => void;
    afterStage?: (s: StagedTree) => void;
  } = {},
): Promise<{ s: StagedTree; cleanup: () => Promise<void> }> {
  const op = await RollbackOperation.begin(storePaths(root));
  const s = await op.stage({ root, target, archive, ...(o.onWarning ? { onWarning: o.onWarning } : {}) });
  o.afterStage?.(s);
  const r = await op.commit();
  if (!o.later) await r.cleanup();
  return { s, cleanup: r.cleanup };
}

function recoverInterruptedSwaps(root: string): Promise<string[]> {
  return recoverOperations({ paths: storePaths(root), onEvent: noEvents });
}

function noStaging(dir: string): void {
  assert.deepEqual(
    fs.readdirSync(dir).filter((n) => n.startsWith(STAGING_PREFIX)),
    [],
    `no staging directory left in ${dir}`,
  );
}

void test('code rollback: the tree equals the backup, kept paths untouched, no staging left', async () => {
  const { root, archive, expected } = storeWithCodeBackup();
  const keptBefore = describe(
    root,
    (rel) =>
      (!KEPT(rel) && !/^(pub|app|app\/code|app\/code\/V|app\/code\/V\/M)$/.test(rel)) ||
      rel.startsWith('var/backups'),
  );
  const warnings: string[] = [];
  await swapIn(root, 'code', archive, {
    onWarning: (w) => warnings.push(w.code),
    afterStage: (s) => {
      assert.ok(s.stagingDir.startsWith(root + path.sep + STAGING_PREFIX));
      assert.equal(fs.statSync(s.stagingDir).mode & 0o777, 0o700);
      // nothing live changed by staging
      assert.equal(fs.readFileSync(path.join(root, 'index.php'), 'utf8'), '<?php // v2');
    },
  });
  assert.deepEqual(describe(root, KEPT), expected);
  const keptAfter = describe(
    root,
    (rel) =>
      (!KEPT(rel) && !/^(pub|app|app\/code|app\/code\/V|app\/code\/V\/M)$/.test(rel)) ||
      rel.startsWith('var/backups'),
  );
  for (const [rel, d] of Object.entries(keptBefore)) {
    if (KEPT(rel)) assert.deepEqual(keptAfter[rel], d, rel);
  }
  assert.equal(fs.readFileSync(path.join(root, 'var/log/system.log'), 'utf8'), 'log v2');
  assert.equal(fs.readFileSync(path.join(root, 'pub/media/catalog/b.jpg'), 'utf8'), 'jpg v2');
  assert.equal(fs.readFileSync(path.join(root, 'app/code/V/M/node_modules/dep.js'), 'utf8'), 'dep v2');
  assert.equal(fs.readFileSync(path.join(root, '.git/HEAD'), 'utf8'), 'ref v2');
  noStaging(root);
  assert.deepEqual(await recoverInterruptedSwaps(root), []);
});

void test('a damaged archive: staging removed, the live tree untouched', async () => {
  const { root, archive } = storeWithCodeBackup();
  const before = describe(root);
  const data = fs.readFileSync(archive);
  const bad = path.join(path.dirname(archive), '1700000001_filesystem.tgz');
  fs.writeFileSync(bad, data.subarray(0, data.length - 100));
  await assert.rejects(stageTree({ root, target: 'code', archive: bad }), (err: unknown) => {
    assert.ok(err instanceof CliError);
    assert.match(err.message, /1700000001_filesystem\.tgz/);
    return true;
  });
  assert.deepEqual(describe(root), before);
  noStaging(root);
});

void test('discard before commit removes the staging directory and the journal, and changes nothing', async () => {
  const { root, archive } = storeWithCodeBackup();
  const before = describe(root, (rel) => rel.startsWith('var/backups'));
  const op = await RollbackOperation.begin(storePaths(root));
  await op.stage({ root, target: 'code', archive });
  await op.discard();
  assert.deepEqual(
    describe(root, (rel) => rel.startsWith('var/backups')),
    before,
  );
  // no journal left, and so no key and no state directory either
  assert.equal(fs.existsSync(path.join(root, 'var/backups/.magebackup-state')), false);
  noStaging(root);
});

function mediaArchive(base: string, rooted: boolean): string {
  const src = path.join(base, 'media-src');
  write(src, 'catalog/product/a.jpg', 'A');
  write(src, 'wysiwyg/b.png', 'B');
  fs.mkdirSync(path.join(src, 'empty'));
  const archive = path.join(base, '1700000000_filesystem_media.tgz');
  if (rooted) {
    fs.mkdirSync(path.join(base, 'rooted/pub'), { recursive: true });
    fs.renameSync(src, path.join(base, 'rooted/pub/media'));
    execFileSync('tar', ['-czf', archive, '-C', path.join(base, 'rooted'), 'pub/media']);
    fs.renameSync(path.join(base, 'rooted/pub/media'), src);
  } else {
    execFileSync('tar', ['-czf', archive, '-C', src, '.']);
  }
  return archive;
}

void test('media rollback into a symlinked pub/media restores into its target and keeps the link', async () => {
  const base = tempDir('mbk-media-');
  const root = path.join(base, 'store');
  const shared = path.join(base, 'shared', 'media');
  write(shared, 'catalog/product/a.jpg', 'A changed');
  write(shared, 'catalog/product/new.jpg', 'new');
  fs.mkdirSync(path.join(root, 'pub'), { recursive: true });
  fs.symlinkSync(shared, path.join(root, 'pub/media'));
  write(root, 'index.php', 'code');
  const archive = mediaArchive(base, false);
  await swapIn(root, 'media', archive);
  assert.equal(fs.readlinkSync(path.join(root, 'pub/media')), shared);
  assert.deepEqual(describe(shared), describe(path.join(base, 'media-src')));
  noStaging(root);
  noStaging(path.dirname(shared));
  assert.equal(fs.readFileSync(path.join(root, 'index.php'), 'utf8'), 'code');
});

void test('media rollback of a root-relative archive (Magento) into a store without pub/media', async () => {
  const base = tempDir('mbk-media2-');
  const root = path.join(base, 'store');
  write(root, 'index.php', 'code');
  const archive = mediaArchive(base, true);
  await swapIn(root, 'media', archive);
  assert.deepEqual(describe(path.join(root, 'pub/media')), describe(path.join(base, 'media-src')));
  noStaging(root);
});

function runChild(
  root: string,
  target: string,
  archive: string,
  killAt: string,
): { killed: boolean; renames: number } {
  const r = spawnSync(process.execPath, [CHILD, root, target, archive, killAt], { encoding: 'utf8' });
  if (r.signal === 'SIGKILL') return { killed: true, renames: -1 };
  assert.equal(r.status, 0, r.stderr);
  return { killed: false, renames: (JSON.parse(r.stdout) as { renames: number }).renames };
}

void test('SIGKILL while staging: the store is fully old, the next run removes the staging directory', async () => {
  const { root, archive } = storeWithCodeBackup();
  const before = describe(root, (rel) => rel.startsWith('var/backups'));
  assert.equal(runChild(root, 'code', archive, 'stage').killed, true);
  assert.equal(fs.readdirSync(root).filter((n) => n.startsWith(STAGING_PREFIX)).length, 1);
  const notState = (rel: string) => rel.startsWith('var/backups');
  assert.deepEqual(
    describe(root, (rel) => rel.startsWith(STAGING_PREFIX) || notState(rel)),
    before,
  );
  const done = await recoverInterruptedSwaps(root);
  assert.equal(done.length, 1);
  assert.match(done[0]!, /undid the interrupted rollback of code: all of it is as it was before/);
  assert.deepEqual(describe(root, notState), before);
});

void test('SIGKILL after any rename of the swap: the next run finishes it (roll forward)', async () => {
  const probe = storeWithCodeBackup();
  const total = runChild(probe.root, 'code', probe.archive, 'never').renames;
  assert.ok(total >= 10, `renames: ${total}`);
  for (let n = 1; n <= total; n++) {
    const { root, archive, expected } = storeWithCodeBackup();
    const keptBefore = describe(root, (rel) => !KEPT(rel) || rel.startsWith('var/backups'));
    assert.equal(runChild(root, 'code', archive, String(n)).killed, true, `killed at rename ${n}`);
    const done = await recoverInterruptedSwaps(root);
    assert.equal(done.length, 1);
    assert.match(done[0]!, /finished/);
    assert.deepEqual(describe(root, KEPT), expected, `after a kill at rename ${n}`);
    const keptAfter = describe(root, (rel) => !KEPT(rel) || rel.startsWith('var/backups'));
    for (const [rel, d] of Object.entries(keptBefore))
      if (KEPT(rel)) assert.deepEqual(keptAfter[rel], d, rel);
    noStaging(root);
  }
});

void test('SIGKILL during a media swap (symlinked pub/media): finished by the next run', async () => {
  for (const n of ['1', '2']) {
    const base = tempDir('mbk-media-kill-');
    const root = path.join(base, 'store');
    const shared = path.join(base, 'shared', 'media');
    write(shared, 'old.jpg', 'old');
    fs.mkdirSync(path.join(root, 'pub'), { recursive: true });
    fs.symlinkSync(shared, path.join(root, 'pub/media'));
    const archive = mediaArchive(base, false);
    assert.equal(runChild(root, 'media', archive, n).killed, true);
    const done = await recoverInterruptedSwaps(root);
    assert.equal(done.length, 1);
    assert.deepEqual(describe(shared), describe(path.join(base, 'media-src')));
    noStaging(root);
  }
});

void test('commit leaves the old content until cleanup(); a kill before it: the next run removes it', async () => {
  const { root, archive, expected } = storeWithCodeBackup();
  const { s, cleanup } = await swapIn(root, 'code', archive, { later: true });
  assert.deepEqual(
    describe(root, (rel) => KEPT(rel) || rel.startsWith(STAGING_PREFIX)),
    expected,
  );
  assert.equal(fs.existsSync(s.stagingDir), true);
  assert.match(
    (await recoverInterruptedSwaps(root))[0]!,
    /removed the content replaced by a finished rollback/,
  );
  noStaging(root);
  await cleanup();
  assert.deepEqual(describe(root, KEPT), expected);
});
