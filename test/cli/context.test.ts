/**
 * RunContext in process: the exit code a run ends with, the line it prints, signals turned into an abort (a fake
 * signal source), the third signal, a stalled run, and that every listener is removed afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RunContext, STOP_SIGNALS, describeOutcome, type CommandRun } from '../../src/cli/context.js';
import {
  CliError,
  ExitCode,
  InterruptedError,
  LockedError,
  UsageError,
  withOutcome,
} from '../../src/errors.js';
import { fakeIo, type FakeIo } from '../helpers/fake-io.js';
import { minimalStore } from '../helpers/tmp.js';

function setup(global: { json?: boolean; quiet?: boolean } = {}) {
  const io = fakeIo();
  const ctx = new RunContext(io);
  const root = minimalStore();
  // a command may be synchronous here: the run awaits what it returns
  const go = (fn: (run: CommandRun) => number | void | Promise<number | void>) =>
    ctx.run({ root, ...global }, async (run) => await fn(run));
  return { io, ctx, root, go };
}

/** A command that waits until its signal fires, then throws what the domain throws when aborted. */
const untilAborted = (run: CommandRun, onStart: () => void) =>
  new Promise<never>((_, reject) => {
    run.signal.addEventListener('abort', () => reject(new InterruptedError()));
    onStart();
  });

function listeners(io: FakeIo): number {
  return [...Object.keys(STOP_SIGNALS), 'beforeExit'].reduce((n, s) => n + io.signals.listenerCount(s), 0);
}

void test('a run returns its code; warnings without a code make it 3; listeners are removed', async () => {
  const a = setup();
  await a.go((run) => {
    assert.equal(run.root.length > 0, true);
    assert.equal(listeners(a.io), 4, 'SIGINT, SIGTERM, SIGHUP and beforeExit are listened to during the run');
  });
  assert.equal(a.ctx.exitCode, ExitCode.OK);
  assert.equal(listeners(a.io), 0);

  const b = setup();
  await b.go((run) => run.reporter.onEvent({ type: 'warning', code: 'UNREADABLE', message: 'x', path: 'a' }));
  assert.equal(b.ctx.exitCode, ExitCode.WARNINGS);
  assert.equal(b.io.stderr.text, 'Warning: a: x\n');

  const c = setup();
  await c.go(() => 0);
  assert.equal(c.ctx.exitCode, 0);
});

void test('a CliError is its exit code and one line; a bug is exit 1 with "Internal error" and the stack', async () => {
  for (const [err, code] of [
    [new UsageError('bad --thing'), 2],
    [new LockedError('held by pid 1'), 11],
    [new CliError('no such file x.tgz'), 1],
  ] as const) {
    const s = setup();
    await s.go(() => {
      throw err;
    });
    assert.equal(s.ctx.exitCode, code);
    assert.deepEqual(s.io.stderr.lines(), [`Error: ${err.message}`]);
  }
  const s = setup();
  await s.go(() => {
    throw new TypeError('boom');
  });
  assert.equal(s.ctx.exitCode, 1);
  const lines = s.io.stderr.lines();
  assert.equal(lines[0], 'Error: Internal error (a bug in magebackup, please report it): boom');
  assert.match(lines[1]!, /^TypeError: boom$/);
  assert.match(lines[2]!, /^ +at /, 'the stack follows');
});

void test('--json: a failure is one JSON error line with its code', async () => {
  const s = setup({ json: true });
  await s.go(() => {
    throw new LockedError('held by pid 1');
  });
  assert.equal(s.ctx.exitCode, 11);
  assert.deepEqual(
    s.io.stderr.lines().map((l) => JSON.parse(l) as unknown),
    [{ type: 'error', code: 11, message: 'held by pid 1' }],
  );
});

void test('an error with a store outcome says what state the store is in', async () => {
  const s = setup();
  await s.go(() => {
    throw withOutcome(new CliError('Disk full while writing x.partial'), {
      live: 'mixed',
      maintenance: 'left-on',
      leftovers: ['var/backups/x.partial'],
      finish: 'Run magebackup setup:rollback again.',
    });
  });
  assert.equal(s.ctx.exitCode, 1);
  assert.deepEqual(s.io.stderr.lines(), [
    'Error: Disk full while writing x.partial: the live store is neither the old nor the new state; maintenance mode is ON; left behind: var/backups/x.partial. Run magebackup setup:rollback again.',
  ]);
  assert.equal(
    describeOutcome({ live: 'unchanged', maintenance: 'as-before', leftovers: [] }),
    'nothing was changed; nothing was left behind',
  );
});

for (const [name, code] of Object.entries(STOP_SIGNALS)) {
  void test(`${name} aborts the run: exit ${code}, "Interrupted by ${name}", listeners removed`, async () => {
    const s = setup();
    await s.go((run) => untilAborted(run, () => s.io.signals.emit(name)));
    assert.equal(s.ctx.exitCode, code);
    assert.deepEqual(s.io.stderr.lines(), [`Error: Interrupted by ${name}`]);
    assert.equal(listeners(s.io), 0);
    assert.deepEqual(s.io.exits, [], 'one signal never ends the process');
  });
}

void test('a signal the run could not act on: the run completes, its code stands, and it says so', async () => {
  const s = setup();
  await s.go(() => {
    s.io.signals.emit('SIGTERM');
    return 0;
  });
  assert.equal(s.ctx.exitCode, 0);
  assert.deepEqual(s.io.stderr.lines(), [
    'SIGTERM received when the run could no longer be stopped: it completed',
  ]);
});

void test("the third signal exits at once with the signal's code (io.exit), saying nothing is cleaned up", async () => {
  const s = setup();
  await s.go((run) =>
    untilAborted(run, () => {
      s.io.signals.emit('SIGHUP');
      s.io.signals.emit('SIGHUP');
      assert.deepEqual(s.io.exits, [], 'not on the second');
      s.io.signals.emit('SIGHUP');
    }),
  );
  assert.deepEqual(s.io.exits, [ExitCode.HANGUP]);
  assert.match(s.io.stderr.text, /SIGHUP received three times: exiting without cleaning up/);
});

void test('a stalled run (the event loop empties) is aborted, then reported as a bug with exit 1', async () => {
  const s = setup();
  let reason: unknown;
  await s.go(
    (run) =>
      new Promise<never>(() => {
        run.signal.addEventListener('abort', () => {
          reason = run.signal.reason;
          s.io.signals.emit('beforeExit'); // the cleanup did not move either
        });
        s.io.signals.emit('beforeExit');
      }),
  );
  assert.equal(reason, 'STALLED');
  assert.equal(s.ctx.exitCode, 1);
  assert.match(
    s.io.stderr.lines()[0]!,
    /^Error: Internal error \(a bug in magebackup, please report it\): the run stopped making progress and could not clean up: check var\/backups/,
  );
  assert.equal(listeners(s.io), 0);
});

void test('--quiet: only warnings, results and errors', async () => {
  const s = setup({ quiet: true });
  await s.go((run) => {
    run.reporter.onEvent({ type: 'maintenance', state: 'enabled' });
    run.reporter.onEvent({ type: 'info', message: 'Recovered something' });
    run.reporter.onEvent({ type: 'part-start', part: 'code', operation: 'backup', file: 'f', path: '/p/f' });
    run.reporter.onEvent({ type: 'warning', code: 'VANISHED', message: 'gone' });
    run.reporter.result('the result', {});
    throw new CliError('failed');
  });
  assert.deepEqual(s.io.stderr.lines(), ['Warning: gone', 'Error: failed']);
  assert.deepEqual(s.io.stdout.lines(), ['the result']);
});
