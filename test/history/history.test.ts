import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
  appendFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import {
  HISTORY_FILE,
  HISTORY_OLD_FILE,
  ROTATE_AT,
  appendHistory,
  readHistory,
  resultOfExitCode,
  validateEntry,
  type HistoryEntry,
} from '../../src/history/history.js';
import { historyEntry } from '../../src/history/summary.js';
import { runCli } from '../helpers/cli.js';
import { minimalStore, tempDir } from '../helpers/tmp.js';

const logOf = (root: string) => path.join(root, 'var', 'backups', HISTORY_FILE);

function entry(over: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    time: new Date('2026-11-30T10:00:00Z').toISOString(),
    origin: 'cli',
    command: 'snapshot:create',
    result: 'ok',
    exitCode: 0,
    message: 'Backup 1764496800: code, media, db (1 MiB)',
    id: '1764496800',
    ...over,
  };
}

void test('appended entries read back in order; the log is 0600 in a 0700 var/backups', async () => {
  const root = minimalStore();
  await appendHistory(root, entry());
  await appendHistory(
    root,
    entry({ origin: 'web', command: 'snapshot:restore', result: 'failed', exitCode: 1 }),
  );
  const { entries, skipped } = await readHistory(root);
  assert.equal(skipped, 0);
  assert.deepEqual(
    entries.map((e) => [e.origin, e.command, e.result]),
    [
      ['cli', 'snapshot:create', 'ok'],
      ['web', 'snapshot:restore', 'failed'],
    ],
  );
  assert.equal(statSync(logOf(root)).mode & 0o777, 0o600);
  assert.equal(statSync(path.join(root, 'var', 'backups')).mode & 0o777, 0o700);
});

void test('a store without var/backups has an empty history, and reading creates nothing', async () => {
  const root = minimalStore();
  assert.deepEqual(await readHistory(root), { entries: [], skipped: 0 });
  assert.equal(existsSync(path.join(root, 'var', 'backups')), false);
});

void test('hostile lines are skipped and counted; messages are one bounded line', async () => {
  const root = minimalStore();
  await appendHistory(root, entry({ message: 'two\nlines\u001b[31m and ' + 'x'.repeat(5000) }));
  appendFileSync(
    logOf(root),
    [
      'not json',
      '[]',
      JSON.stringify({ ...entry(), origin: 'evil' }),
      JSON.stringify({ ...entry(), command: 'rm -rf /' }),
      JSON.stringify({ ...entry(), id: '../../etc' }),
      JSON.stringify({ ...entry(), time: 'yesterday' }),
      '{"time":',
    ].join('\n') + '\n',
  );
  await appendHistory(root, entry({ command: 'backups:prune', id: undefined }));
  const { entries, skipped } = await readHistory(root);
  assert.equal(skipped, 7);
  assert.equal(entries.length, 2);
  assert.doesNotMatch(entries[0]!.message, /[\n\u001b]/);
  assert.ok(entries[0]!.message.length <= 2000);
  assert.equal(entries[1]!.command, 'backups:prune');
  assert.equal(validateEntry({ ...entry(), exitCode: 1.5 }), null);
});

void test('a link planted in place of the log is never followed, for writing or reading', async () => {
  const root = minimalStore();
  const dir = path.join(root, 'var', 'backups');
  mkdirSync(dir, { mode: 0o700, recursive: true });
  const target = path.join(tempDir('mbk-hist-target-'), 'victim');
  writeFileSync(target, 'precious\n');
  symlinkSync(target, logOf(root));
  await assert.rejects(appendHistory(root, entry()), /symlink/);
  await assert.rejects(readHistory(root), /symlink/);
  assert.equal(readFileSync(target, 'utf8'), 'precious\n');
  assert.ok(lstatSync(logOf(root)).isSymbolicLink());
});

void test('a FIFO in place of the log is refused without blocking', async () => {
  const root = minimalStore();
  mkdirSync(path.join(root, 'var', 'backups'), { mode: 0o700, recursive: true });
  execFileSync('mkfifo', [logOf(root)]);
  await assert.rejects(readHistory(root), /not a history log/);
});

void test('the log is bounded: past the threshold it becomes the old log, and both are read', async () => {
  const root = minimalStore();
  await appendHistory(root, entry({ message: 'first' }));
  // a big but valid log: rotation happens on the next append
  const line = JSON.stringify(entry({ message: 'filler' })) + '\n';
  appendFileSync(logOf(root), line.repeat(Math.ceil(ROTATE_AT / line.length)));
  await appendHistory(root, entry({ message: 'rotating' }));
  assert.ok(existsSync(path.join(root, 'var', 'backups', HISTORY_OLD_FILE)));
  assert.equal(existsSync(logOf(root)), false);
  await appendHistory(root, entry({ message: 'after' }));
  const { entries } = await readHistory(root);
  assert.equal(entries[0]!.message, 'first');
  assert.equal(entries.at(-1)!.message, 'after');
  assert.equal(entries.at(-2)!.message, 'rotating');
});

void test('exit codes map to results; an entry from an error keeps the message', () => {
  assert.deepEqual([0, 1, 3, 11, 12, 129, 130].map(resultOfExitCode), [
    'ok',
    'failed',
    'warnings',
    'locked',
    'failed',
    'interrupted',
    'interrupted',
  ]);
  const e = historyEntry({ origin: 'web', command: 'backups:prune', exitCode: 11, error: 'held by pid 1' });
  assert.equal(e.result, 'locked');
  assert.equal(e.message, 'held by pid 1');
});

void test('CLI: actions are recorded with origin cli; backups:history shows them newest first, --json too', async () => {
  const root = minimalStore();
  assert.equal((await runCli(['maintenance:enable', '--root', root])).code, 0);
  assert.equal((await runCli(['maintenance:status', '--root', root])).code, 0);
  assert.equal((await runCli(['backups:prune', '--dry-run', '--root', root])).code, 0);
  assert.equal((await runCli(['maintenance:disable', '--root', root])).code, 0);
  // a run refused by a live lock is recorded as locked
  const holder = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command: 'x' };
  writeFileSync(path.join(root, 'var', 'backups', '.lock'), JSON.stringify(holder));
  assert.equal((await runCli(['backups:prune', '--root', root])).code, 11);
  // a usage error is not an action
  assert.equal((await runCli(['backups:prune', '--keep-last', 'x', '--root', root])).code, 2);

  const text = await runCli(['backups:history', '--root', root]);
  assert.equal(text.code, 0, text.stderr);
  const rows = text.stdout.split('\n').filter((l) => /^\| \d{4}-/.test(l));
  assert.equal(rows.length, 3);
  assert.match(rows[0]!, /\| cli +\| backups:prune +\| locked +\| Another magebackup run holds the lock/);
  assert.match(rows[2]!, /maintenance:enable +\| ok +\| Enabled maintenance mode/);

  const json = await runCli(['backups:history', '--json', '--limit', '2', '--root', root]);
  assert.equal(json.code, 0, json.stderr);
  const data = JSON.parse(json.stdout) as { entries: HistoryEntry[]; total: number; skipped: number };
  assert.equal(data.total, 3);
  assert.deepEqual(
    data.entries.map((e) => [e.origin, e.command, e.exitCode]),
    [
      ['cli', 'backups:prune', 11],
      ['cli', 'maintenance:disable', 0],
    ],
  );

  const bad = await runCli(['backups:history', '--limit', '-1', '--root', root]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--limit/);
  const none = await runCli(['backups:history', '--root', '/nonexistent/store']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /does not exist/);
  assert.equal(existsSync('/nonexistent/store'), false);
});
