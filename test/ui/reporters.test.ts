/**
 * Each reporter on fake streams: plain (Magento's wording, no ANSI, progress at most every 5 s), json (NDJSON
 * that parses), ora on a fake terminal (spinner drawn, progress shown, line cleared before other output and at
 * the end), and the factory's choice (TTY, --json, CI, TERM=dumb, NO_COLOR).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MagebackupEvent } from '../../src/events.js';
import { createReporter, pickMode } from '../../src/cli/reporter.js';
import { JsonReporter } from '../../src/ui/json-reporter.js';
import { OraReporter } from '../../src/ui/ora-reporter.js';
import { PlainReporter } from '../../src/ui/plain-reporter.js';
import { ANSI, FakeStream, fakeIo } from '../helpers/fake-io.js';

const start: MagebackupEvent = {
  type: 'part-start',
  part: 'code',
  operation: 'backup',
  file: '1700000000_filesystem.tgz',
  path: '/m/var/backups/1700000000_filesystem.tgz',
};
const progress = (files: number): MagebackupEvent => ({
  type: 'progress',
  part: 'code',
  operation: 'backup',
  bytes: files * 1024,
  files,
  totalFiles: 100,
});
const done: MagebackupEvent = {
  type: 'part-done',
  part: 'code',
  operation: 'backup',
  file: '1700000000_filesystem.tgz',
  path: '/m/var/backups/1700000000_filesystem.tgz',
  size: 2048,
  files: 100,
};
const warning: MagebackupEvent = {
  type: 'warning',
  code: 'UNREADABLE',
  message: 'permission denied',
  path: 'app/x',
};

/** A clock the test moves. */
function clock(t = 1_000_000) {
  const now = () => t;
  now.advance = (ms: number) => void (t += ms);
  return now;
}

function streams(tty = false) {
  return { stdout: new FakeStream({ tty }), stderr: new FakeStream({ tty }) };
}

void test('plain: Magento wording, progress on stderr and results on stdout, no ANSI', () => {
  const s = streams();
  const now = clock();
  const r = new PlainReporter({ quiet: false, color: false, ...s }, now);
  r.onEvent({ type: 'maintenance', state: 'enabled' });
  r.onEvent(start);
  r.onEvent(progress(10)); // within 5 s of the start: dropped
  now.advance(5000);
  r.onEvent(progress(50));
  now.advance(1000);
  r.onEvent(progress(60)); // within 5 s of the last line: dropped
  r.onEvent(warning);
  r.onEvent(done);
  r.onEvent({ type: 'maintenance', state: 'disabled' });
  r.result('', {});
  r.error('it failed', 1);
  r.close();
  assert.deepEqual(s.stderr.lines(), [
    'Enabling maintenance mode',
    'Code backup is starting...',
    'Code backup: 50 / 100 files, 50.0 KB',
    'Warning: app/x: permission denied',
    'Disabling maintenance mode',
    'Error: it failed',
  ]);
  assert.deepEqual(s.stdout.lines(), [
    'Code backup filename: 1700000000_filesystem.tgz',
    'Code backup path: /m/var/backups/1700000000_filesystem.tgz',
    '[SUCCESS]: Code backup completed successfully.',
  ]);
  assert.equal(r.warnings, 1);
  assert.doesNotMatch(s.stderr.text + s.stdout.text, ANSI);
});

void test('plain --quiet: warnings, results (file names) and errors only', () => {
  const s = streams();
  const r = new PlainReporter({ quiet: true, color: false, ...s }, clock());
  for (const e of [{ type: 'maintenance', state: 'enabled' } as const, start, progress(1), warning, done])
    r.onEvent(e);
  r.onEvent({ type: 'info', message: 'Took over the lock' });
  r.result('Snapshot 1 created', {});
  r.error('bad', 2);
  assert.deepEqual(s.stderr.lines(), ['Warning: app/x: permission denied', 'Error: bad']);
  assert.deepEqual(s.stdout.lines(), [
    'Code backup filename: 1700000000_filesystem.tgz',
    'Code backup path: /m/var/backups/1700000000_filesystem.tgz',
    '[SUCCESS]: Code backup completed successfully.',
    'Snapshot 1 created',
  ]);
});

void test('json: every stderr line is a JSON event with a type; the result is one JSON line on stdout', () => {
  const s = streams();
  const now = clock();
  const r = new JsonReporter({ quiet: false, color: false, ...s }, now);
  r.onEvent(start);
  r.onEvent(progress(1));
  r.onEvent(progress(2)); // within 1 s: dropped
  now.advance(1000);
  r.onEvent(progress(3));
  r.onEvent(warning);
  r.onEvent(done);
  r.result('text is ignored', { type: 'result', command: 'setup:backup', ok: true });
  r.error('it failed', 12);
  const events = s.stderr.lines().map((l) => JSON.parse(l) as { type: string; files?: number });
  assert.deepEqual(
    events.map((e) => e.type),
    ['part-start', 'progress', 'progress', 'warning', 'part-done', 'error'],
  );
  assert.deepEqual(
    events.filter((e) => e.type === 'progress').map((e) => e.files),
    [1, 3],
  );
  assert.deepEqual(events[5], { type: 'error', code: 12, message: 'it failed' });
  assert.deepEqual(
    s.stdout.lines().map((l) => JSON.parse(l) as unknown),
    [{ type: 'result', command: 'setup:backup', ok: true }],
  );
  assert.equal(r.warnings, 1);
});

void test('json --quiet: only warnings and errors on stderr; the result still on stdout', () => {
  const s = streams();
  const r = new JsonReporter({ quiet: true, color: false, ...s }, clock());
  for (const e of [start, progress(1), warning, done]) r.onEvent(e);
  r.result('', { type: 'result' });
  r.error('x', 1);
  assert.deepEqual(
    s.stderr.lines().map((l) => (JSON.parse(l) as { type: string }).type),
    ['warning', 'error'],
  );
  assert.equal(s.stdout.lines().length, 1);
});

void test('ora on a terminal: draws the spinner, shows progress, clears its line for other output and at the end', () => {
  const s = streams(true);
  const now = clock();
  const r = new OraReporter({ quiet: false, color: false, ...s }, now);
  r.onEvent(start);
  assert.match(s.stderr.text, /Code backup/, 'the spinner is drawn at once');
  const drawn = s.stderr.text.length;
  now.advance(200);
  r.onEvent(progress(42));
  assert.match(s.stderr.text.slice(drawn), /Code backup: 42 \/ 100 files, 42\.0 KB/, 'progress is drawn');
  const beforeWarning = s.stderr.text.length;
  r.onEvent(warning);
  const aroundWarning = s.stderr.text.slice(beforeWarning);
  const clearAt = aroundWarning.indexOf('\x1b[2K');
  const warnAt = aroundWarning.indexOf('Warning: app/x: permission denied\n');
  assert.ok(clearAt >= 0 && warnAt > clearAt, 'the spinner line is cleared before the warning is printed');
  const beforeDone = s.stderr.text.length;
  r.onEvent(done);
  const end = s.stderr.text.slice(beforeDone);
  assert.ok(end.indexOf('\x1b[2K') >= 0, 'the spinner line is cleared');
  assert.match(end, /Code backup completed: 1700000000_filesystem\.tgz \(100 files, 2\.0 KB\)\n$/);
  assert.deepEqual(s.stdout.lines(), [
    'Code backup filename: 1700000000_filesystem.tgz',
    'Code backup path: /m/var/backups/1700000000_filesystem.tgz',
    '[SUCCESS]: Code backup completed successfully.',
  ]);
  const after = s.stderr.text.length;
  r.close();
  r.error('late', 1);
  assert.equal(s.stderr.text.slice(after), 'Error: late\n', 'after the end nothing is redrawn');
});

void test('ora: an error stops the spinner with a failure mark; close() stops it too', () => {
  const s = streams(true);
  const r = new OraReporter({ quiet: false, color: false, ...s }, clock());
  r.onEvent(start);
  const before = s.stderr.text.length;
  r.error('Interrupted by SIGINT', 130);
  const out = s.stderr.text.slice(before);
  assert.match(out, /\x1b\[2K/);
  assert.match(out, /Code backup\n.*Error: Interrupted by SIGINT\n$/s);
  const r2 = new OraReporter({ quiet: false, color: false, ...streams(true) }, clock());
  r2.onEvent(start);
  r2.close(); // without it, ora's timer would keep this test file running
});

void test('ora --quiet: no spinner; warnings and results still shown', () => {
  const s = streams(true);
  const r = new OraReporter({ quiet: true, color: false, ...s }, clock());
  r.onEvent(start);
  r.onEvent(progress(5));
  r.onEvent(warning);
  r.onEvent(done);
  r.close();
  assert.equal(s.stderr.text, 'Warning: app/x: permission denied\n');
  assert.equal(s.stdout.lines().length, 3);
});

void test('the factory: --json, a sized terminal, and everything else plain; NO_COLOR', async () => {
  const tty = (env: NodeJS.ProcessEnv = {}, columns = 80) => fakeIo({ tty: true, columns, env });
  assert.equal(pickMode(tty(), { json: true }), 'json');
  assert.equal(pickMode(tty(), {}), 'tty');
  assert.equal(pickMode(tty({}, 0), {}), 'plain', 'a terminal without a size');
  assert.equal(pickMode(tty({ CI: 'true' }), {}), 'plain');
  assert.equal(pickMode(tty({ TERM: 'dumb' }), {}), 'plain');
  assert.equal(pickMode(fakeIo(), {}), 'plain', 'a pipe');

  const colored = tty();
  const r = await createReporter(colored, {});
  assert.ok(r instanceof OraReporter);
  r.error('x', 1);
  assert.match(colored.stderr.text, /\x1b\[31mError:/);
  const plainTty = tty({ NO_COLOR: '' });
  const n = await createReporter(plainTty, {});
  n.error('x', 1);
  assert.equal(plainTty.stderr.text, 'Error: x\n');
  assert.ok((await createReporter(fakeIo(), {})) instanceof PlainReporter);
  assert.ok((await createReporter(fakeIo(), { json: true })) instanceof JsonReporter);
});
