// State planted where the web server user can write, or copied/forged into our state directory, is never
// trusted; an archive whose `pub` is a symlink never moves anything in or out. Root runs magebackup; `nobody`
// owns var/ and pub/media (as www-data does); a canary directory outside the store must not change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RollbackOperation } from '../../src/restore/operation.js';
import { recoverOperations } from '../../src/restore/operation-recover.js';
import { openStateDir, writeSigned } from '../../src/store/state-dir.js';
import { storePaths } from '../../src/store/paths.js';
import { CliError } from '../../src/errors.js';
import { noEvents } from '../../src/events.js';
import { runCli } from '../helpers/cli.js';
import { minimalStore, tempDir } from '../helpers/tmp.js';
import { asWebUser, canary, handToWebUser } from '../helpers/users.js';

/** What the old recovery trusted: a staging directory with a journal naming any liveDir. */
function plantOldJournal(dir: string, name: string, liveDir: string): void {
  const staging = path.join(dir, name);
  // in the root (not the web user's): as if left there by someone else, then handed to the web user
  if (fs.statSync(dir).uid === 0) {
    fs.mkdirSync(staging, { mode: 0o755 });
    execFileSync('chown', ['nobody', staging]);
  }
  asWebUser('mkdir', ['-p', path.join(staging, 'new', 'secret'), path.join(staging, 'old')]);
  const journal = JSON.stringify({
    version: 1,
    target: 'media',
    stagingDir: staging,
    liveDir,
    units: [{ rel: '', hasNew: true }],
    fixes: [{ rel: '', mode: 0o777, uid: 65534, gid: 65534, mtime: 0 }],
  });
  const tmp = path.join(tempDir(), 'journal.json');
  fs.writeFileSync(tmp, journal);
  fs.chmodSync(path.dirname(tmp), 0o755);
  fs.chmodSync(tmp, 0o644);
  asWebUser('cp', [tmp, path.join(staging, 'journal.json')]);
}

function mediaBackup(root: string): string {
  const name = '1700000000_filesystem_media.tgz';
  const dir = path.join(root, 'var/backups');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chownSync(dir, 0, 0);
  fs.chmodSync(dir, 0o700);
  const src = tempDir();
  fs.mkdirSync(path.join(src, 'catalog'));
  fs.writeFileSync(path.join(src, 'catalog', 'restored.jpg'), 'R');
  execFileSync('tar', ['-czf', path.join(dir, name), '-C', src, '.']);
  return name;
}

void test('staging journals planted in pub/media and pub are ignored by every command: nothing outside changes', async () => {
  const root = minimalStore();
  handToWebUser(root, ['var', 'pub/media', 'pub']);
  const c = canary();
  const before = c.snapshot();
  plantOldJournal(path.join(root, 'pub/media'), '.magebackup-staging-1-media', c.dir);
  plantOldJournal(path.join(root, 'pub'), '.magebackup-staging-2-media', c.dir);
  plantOldJournal(root, '.magebackup-staging-3-code', path.join(c.dir, 'sub'));
  const media = mediaBackup(root);
  for (const args of [
    ['setup:backup', '--code'],
    ['backups:prune', '--dry-run'],
    ['setup:rollback', '-m', media, '--yes'],
  ]) {
    const r = await runCli([...args, '--root', root]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /Recovered/, args.join(' '));
    assert.equal(c.snapshot(), before, args.join(' '));
  }
  assert.equal(fs.readFileSync(path.join(root, 'pub/media/catalog/restored.jpg'), 'utf8'), 'R');
  // the planted directories outside the swapped tree are left to their owner, untouched
  assert.ok(fs.existsSync(path.join(root, 'pub/.magebackup-staging-2-media/journal.json')));
});

void test('a journal copied from another store, or naming paths outside the store, is refused and never replayed', async () => {
  const c = canary();
  const before = c.snapshot();
  const a = minimalStore();
  const b = minimalStore();
  const archiveDir = tempDir();
  const src = path.join(archiveDir, 'src');
  fs.mkdirSync(path.join(src, 'catalog'), { recursive: true });
  fs.writeFileSync(path.join(src, 'catalog', 'x.jpg'), 'X');
  const archive = path.join(archiveDir, '1_filesystem_media.tgz');
  execFileSync('tar', ['-czf', archive, '-C', src, '.']);
  // a real, unfinished journal of store A
  const opA = await RollbackOperation.begin(storePaths(a));
  await opA.stage({ root: a, target: 'media', archive });
  const stateA = path.join(a, 'var/backups/.magebackup-state');
  const journalName = fs.readdirSync(stateA).find((n) => n.startsWith('op-'))!;
  // store B has its own key: A's journal does not verify there
  const stateB = await openStateDir(storePaths(b));
  fs.copyFileSync(path.join(stateA, journalName), path.join(stateB.dir, journalName));
  await assert.rejects(
    recoverOperations({ paths: storePaths(b), onEvent: noEvents }),
    (e: unknown) => e instanceof CliError && /Untrusted journal .*nothing was done with it/.test(e.message),
  );
  fs.rmSync(path.join(stateB.dir, journalName));
  // signed with B's key, but naming the canary: refused for its paths
  // (a signed file is `{"hmac":"…","body":<the journal>}`)
  const forged = (JSON.parse(fs.readFileSync(path.join(stateA, journalName), 'utf8')) as { body: unknown })
    .body as {
    root: string;
    trees: Array<{ liveDir: string; stagingDir: string }>;
    phase: string;
    rootDev: number;
    rootIno: number;
  };
  const stB = fs.statSync(b);
  forged.root = b;
  forged.rootDev = stB.dev;
  forged.rootIno = stB.ino;
  forged.phase = 'committing';
  forged.trees[0]!.liveDir = c.dir;
  await writeSigned(stateB, 'op-1-forged.json', forged);
  await assert.rejects(
    recoverOperations({ paths: storePaths(b), onEvent: noEvents }),
    (e: unknown) => e instanceof CliError && /names a path outside this store/.test(e.message),
  );
  const r = await runCli(['setup:backup', '--code', '--root', b]);
  assert.equal(r.code, 1);
  assert.match(r.stderr.trim(), /^Error: Journal .*op-1-forged\.json names a path outside this store/);
  assert.equal(c.snapshot(), before);
  await opA.discard();
});

void test('a code archive whose pub is a symlink to an outside directory is refused; pub and the outside are untouched', async () => {
  const root = minimalStore({ 'pub/.htaccess': 'deny', 'pub/health_check.php': '<?php' });
  handToWebUser(root);
  const c = canary();
  const before = c.snapshot();
  const src = path.join(tempDir(), 'src');
  fs.mkdirSync(path.join(src, 'app/etc'), { recursive: true });
  fs.writeFileSync(path.join(src, 'app/etc/env.php'), '<?php return [];');
  fs.writeFileSync(path.join(src, 'index.php'), '<?php // from the archive');
  fs.symlinkSync(c.dir, path.join(src, 'pub'));
  const dir = path.join(root, 'var/backups');
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.chownSync(dir, 0, 0);
  execFileSync('tar', ['-czf', path.join(dir, '1700000000_filesystem.tgz'), '-C', src, '.']);
  const pubBefore = fs.readdirSync(path.join(root, 'pub')).sort();
  const r = await runCli(['setup:rollback', '-c', '1700000000_filesystem.tgz', '--yes', '--root', root]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /pub as a symlink.*refusing this archive|pub.*(outside|leaves)/);
  assert.equal(c.snapshot(), before);
  assert.deepEqual(fs.readdirSync(path.join(root, 'pub')).sort(), pubBefore);
  assert.equal(fs.readFileSync(path.join(root, 'index.php'), 'utf8'), '<?php // index\n');
  assert.equal(fs.existsSync(path.join(root, 'var/.maintenance.flag')), false);
  assert.deepEqual(
    fs.readdirSync(root).filter((n) => n.startsWith('.magebackup-')),
    [],
  );
});
