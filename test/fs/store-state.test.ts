// var/ and pub/media belong to the web server user (here: nobody), magebackup runs as root: everything the web
// user can plant under var/ is refused or neutralised, and nothing outside the store changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquireLock } from '../../src/fs/lock.js';
import { ensureDir, mapCreateError } from '../../src/fs/atomic.js';
import { CliError, LockedError } from '../../src/errors.js';
import { BIN, runCli } from '../helpers/cli.js';
import { minimalStore, tempDir } from '../helpers/tmp.js';
import { asWebUser, canary, handToWebUser, webUser } from '../helpers/users.js';

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${stderr}`);
  assert.doesNotMatch(stderr, /Internal error|at .*\.js:\d+/);
  return lines[0]!;
}

void test('var/backups as a symlink (to a root directory) is refused; the target keeps its mode and content', async () => {
  const root = minimalStore();
  handToWebUser(root);
  const c = canary();
  const before = c.snapshot();
  asWebUser('ln', ['-s', c.dir, path.join(root, 'var', 'backups')]);
  const r = await runCli(['setup:backup', '--code', '--root', root]);
  assert.equal(r.code, 1);
  assert.match(oneLine(r.stderr), /var\/backups is a symlink.*replace the link by a directory/);
  assert.equal(c.snapshot(), before);
  assert.equal(fs.existsSync(path.join(root, 'var', '.maintenance.flag')), false);
});

void test('var/backups owned by the web user is refused naming the fix, and left as it is', async () => {
  const root = minimalStore();
  handToWebUser(root);
  const dir = path.join(root, 'var', 'backups');
  asWebUser('mkdir', ['-m', '755', dir]);
  const r = await runCli(['setup:backup', '--code', '--root', root]);
  assert.equal(r.code, 1);
  assert.match(oneLine(r.stderr), new RegExp(`belongs to uid ${webUser().uid}.*chown 0 .*chmod 700`));
  const st = fs.statSync(dir);
  assert.equal(st.mode & 0o777, 0o755);
  assert.deepEqual(fs.readdirSync(dir), []);
  // and the read-only commands never create or chmod anything either
  const list = await runCli(['info:backups:list', '--root', root]);
  assert.equal(list.code, 0);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o755);
});

void test('a group- or world-writable var/backups is refused; ours but readable by others is tightened to 0700', async () => {
  const root = minimalStore();
  const dir = path.join(root, 'var', 'backups');
  fs.mkdirSync(dir);
  fs.chmodSync(dir, 0o775);
  const r = await runCli(['setup:backup', '--code', '--root', root]);
  assert.equal(r.code, 1);
  assert.match(oneLine(r.stderr), /writable by its group \(mode 775\).*chmod 700/);
  fs.chmodSync(dir, 0o755);
  const ok = await runCli(['setup:backup', '--code', '--root', root]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
});

void test('var/backups missing under a web-user-owned var/: created 0700 by root, never through a link', async () => {
  const root = minimalStore();
  handToWebUser(root);
  const ok = await runCli(['setup:backup', '--code', '--root', root]);
  assert.equal(ok.code, 0, ok.stderr);
  const st = fs.lstatSync(path.join(root, 'var', 'backups'));
  assert.ok(st.isDirectory());
  assert.equal(st.uid, 0);
  assert.equal(st.mode & 0o777, 0o700);
});

void test('var/backups a regular file, immutable, or not writable: one line naming it, exit 1', async () => {
  const root = minimalStore();
  const dir = path.join(root, 'var', 'backups');
  fs.writeFileSync(dir, 'not a dir');
  let r = await runCli(['setup:backup', '--code', '--root', root]);
  assert.equal(r.code, 1);
  assert.match(oneLine(r.stderr), /var\/backups is not a directory/);
  fs.rmSync(dir);
  fs.mkdirSync(dir, { mode: 0o700 });
  execFileSync('chattr', ['+i', dir]);
  try {
    r = await runCli(['setup:backup', '--code', '--root', root]);
    assert.equal(r.code, 1);
    assert.match(oneLine(r.stderr), /var\/backups is immutable \(lsattr -d .*chattr -i/);
    for (const cmd of [['backups:prune'], ['setup:rollback', '-c', '1_filesystem.tgz']]) {
      const p = await runCli([...cmd, '--root', root, '--yes']);
      assert.equal(p.code, 1, cmd.join(' '));
      oneLine(p.stderr);
    }
  } finally {
    execFileSync('chattr', ['-i', dir]);
  }
  // not writable by the user running it (root owns it; the web user runs the command)
  handToWebUser(root, ['var/log']);
  const asNobody = spawnAs(['setup:backup', '--code', '--root', root]);
  const res = await asNobody;
  assert.equal(res.code, 1);
  assert.match(
    oneLine(res.stderr),
    /var\/backups is not (writable|accessible) by the user running magebackup/,
  );
});

function spawnAs(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('runuser', ['-u', webUser().name, '--', process.execPath, BIN, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

void test('ensureDir refuses what it cannot trust, as CliErrors', async () => {
  const base = tempDir();
  const link = path.join(base, 'l');
  fs.symlinkSync(base, link);
  await assert.rejects(
    ensureDir(link, 0o700),
    (e: unknown) => e instanceof CliError && /symlink/.test(e.message),
  );
  const mine = path.join(base, 'mine');
  assert.ok((await ensureDir(mine, 0o700)).ino > 0);
  assert.equal(fs.statSync(mine).mode & 0o777, 0o700);
});

void test('planted lock temp links and a .lock link never write through: the target is untouched', async () => {
  const dir = tempDir();
  const c = canary();
  const before = c.snapshot();
  // the old names were predictable: .lock.<pid>.<n>.tmp; plant them all for this pid, and a dangling one
  for (let n = 0; n < 5; n++) fs.symlinkSync(c.file, path.join(dir, `.lock.${process.pid}.${n}.tmp`));
  const lock = await acquireLock(dir, { command: 'x' });
  assert.equal(fs.lstatSync(path.join(dir, '.lock')).isFile(), true);
  await lock.release();
  // a planted .lock link: not a lock of ours; a fresh one is not taken over, an old one is moved aside (the link
  // itself, never its target)
  fs.symlinkSync(path.join(c.dir, 'new-file'), path.join(dir, '.lock'));
  await assert.rejects(acquireLock(dir, { command: 'x' }), (e: unknown) => e instanceof LockedError);
  execFileSync('touch', ['-h', '-d', '2020-01-01', path.join(dir, '.lock')]);
  const again = await acquireLock(dir, { command: 'x' });
  await again.release();
  assert.equal(c.snapshot(), before);
  assert.equal(fs.existsSync(path.join(c.dir, 'new-file')), false);
});

void test('a dangling var/.maintenance.flag link planted by the web user: its target is never created', async () => {
  const root = minimalStore();
  handToWebUser(root);
  const c = canary();
  const target = path.join(c.dir, 'created-by-root');
  asWebUser('ln', ['-s', target, path.join(root, 'var', '.maintenance.flag')]);
  const before = c.snapshot();
  for (const args of [['setup:backup', '--code'], ['maintenance:status'], ['maintenance:enable']]) {
    const r = await runCli([...args, '--root', root]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(fs.existsSync(target), false, args.join(' '));
  }
  assert.equal(c.snapshot(), before);
  const off = await runCli(['maintenance:disable', '--root', root]);
  assert.equal(off.code, 0);
  assert.equal(fs.existsSync(path.join(root, 'var', '.maintenance.flag')), false);
});

/** A store whose code backup takes a moment (incompressible bytes), to kill the run while it writes. */
function slowStore(): string {
  const root = minimalStore();
  const big = Buffer.alloc(48 << 20);
  for (let i = 0; i < big.length; i += 65536) big.set(crypto.getRandomValues(new Uint8Array(65536)), i);
  fs.writeFileSync(path.join(root, 'big.bin'), big);
  return root;
}

function killWhenMaintenanceOn(root: string, extra: string[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'setup:backup', '--code', '--root', root, ...extra], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (/Code backup is starting/.test(err)) child.kill('SIGKILL');
    });
    child.on('close', (_code, signal) =>
      signal === 'SIGKILL' ? resolve() : reject(new Error(`not killed: ${err}`)),
    );
  });
}

void test('kill -9 mid-backup: the lookers warn, the next run turns maintenance off again and says so', async () => {
  const root = slowStore();
  const flag = path.join(root, 'var', '.maintenance.flag');
  await killWhenMaintenanceOn(root);
  assert.equal(fs.existsSync(flag), true, 'the killed run left maintenance on');
  const lock = JSON.parse(fs.readFileSync(path.join(root, 'var', 'backups', '.lock'), 'utf8')) as {
    maintenance?: unknown;
  };
  assert.deepEqual(lock.maintenance, { found: false, changed: true });
  for (const cmd of ['maintenance:status', 'info:backups:list', 'snapshot:list']) {
    const r = await runCli([cmd, '--root', root]);
    assert.equal(r.code, 0, cmd);
    assert.match(r.stderr, /was killed after turning maintenance mode on.*maintenance:disable/, cmd);
  }
  const next = await runCli(['backups:prune', '--dry-run', '--root', root]);
  assert.equal(next.code, 0, next.stderr);
  assert.match(next.stderr, /had turned maintenance mode on: turned it off again/);
  assert.equal(fs.existsSync(flag), false);
  assert.equal(fs.existsSync(path.join(root, 'var', 'backups', '.lock')), false);
  const status = await runCli(['maintenance:status', '--root', root]);
  assert.doesNotMatch(status.stderr, /killed/);
  assert.match(status.stdout, /not active/);
});

void test('kill -9 mid-backup when maintenance was on before: the next run leaves it on', async () => {
  const root = slowStore();
  const flag = path.join(root, 'var', '.maintenance.flag');
  fs.writeFileSync(flag, '');
  await killWhenMaintenanceOn(root);
  const next = await runCli(['setup:backup', '--code', '--root', root]);
  assert.equal(next.code, 0, next.stderr);
  assert.doesNotMatch(next.stderr, /turned it off/);
  assert.equal(fs.existsSync(flag), true);
  // nothing of the killed run is left: no partial, no run marker beside the finished backup
  const names = fs.readdirSync(path.join(root, 'var', 'backups'));
  assert.equal(names.filter((n) => n.endsWith('.partial')).length, 0, names.join(' '));
  assert.equal(os.hostname().length > 0, true);
});

void test('a killed run left maintenance on and recovery cannot finish: it stays on, and the run after the fix turns it off', async () => {
  const root = minimalStore();
  const dir = path.join(root, 'var', 'backups');
  const state = path.join(dir, '.magebackup-state');
  fs.mkdirSync(state, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  fs.writeFileSync(path.join(state, 'op-1-garbage.json'), '{"body":"{}","hmac":"00"}', { mode: 0o600 });
  const dead = spawnSyncPid();
  fs.writeFileSync(
    path.join(dir, '.lock'),
    JSON.stringify({
      pid: dead,
      host: os.hostname(),
      started: '2020-01-01T00:00:00Z',
      command: 'setup:rollback',
      maintenance: { found: false, changed: true },
    }),
  );
  const flag = path.join(root, 'var', '.maintenance.flag');
  fs.writeFileSync(flag, '');
  const r = await runCli(['backups:prune', '--dry-run', '--root', root]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Untrusted journal .*op-1-garbage\.json/);
  assert.equal(fs.existsSync(flag), true, 'maintenance stays on while the store cannot be made whole');
  assert.equal(fs.existsSync(path.join(dir, '.lock')), true, 'the record is kept for the next run');
  fs.rmSync(path.join(state, 'op-1-garbage.json'));
  const ok = await runCli(['backups:prune', '--dry-run', '--root', root]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /turned it off again/);
  assert.equal(fs.existsSync(flag), false);
  assert.equal(fs.existsSync(path.join(dir, '.lock')), false);
});

/** A pid that certainly is dead: a child that has exited. */
function spawnSyncPid(): number {
  return Number(
    execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString(),
  );
}

void test('creating a file in var/backups: full, quota, read-only, immutable each become one line naming the file', () => {
  const file = '/store/var/backups/.lock';
  const err = (code: string) => Object.assign(new Error(code), { code });
  const cases: Array<[string, RegExp]> = [
    ['ENOSPC', /^Disk full: cannot write \/store\/var\/backups\/\.lock$/],
    ['EDQUOT', /^Disk quota exceeded: cannot write/],
    ['EROFS', /var\/backups is on a read-only filesystem/],
    ['EPERM', /immutable or read-only\? lsattr -d \/store\/var\/backups/],
    ['ELOOP', /refusing to write through it/],
  ];
  for (const [code, re] of cases) {
    const mapped = mapCreateError(err(code), file);
    assert.ok(mapped instanceof CliError, code);
    assert.match(mapped.message, re, code);
  }
  const other = err('EIO');
  assert.equal(mapCreateError(other, file), other);
});
