/**
 * The rollback prompt: yes, no, no terminal (refused without -y: exit 2), and -y/-n skipping it. The confirmer
 * alone, then through main() on a real code backup in process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { confirmer } from '../../src/cli/confirm.js';
import type { CommandRun } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { PassThrough } from 'node:stream';
import { InterruptedError, UsageError } from '../../src/errors.js';
import { argv, fakeIo } from '../helpers/fake-io.js';
import { minimalStore } from '../helpers/tmp.js';

function runWith(global: CommandRun['global'], answer?: string) {
  const io = fakeIo(answer === undefined ? {} : { answer });
  return { io, run: { global, io } };
}

void test('the prompt: y and yes confirm; n, anything else and an empty line refuse; the plan is shown', async () => {
  for (const [answer, expected] of [
    ['y\n', true],
    ['YES\n', true],
    [' yes \n', true],
    ['n\n', false],
    ['no\n', false],
    ['sure\n', false],
    ['\n', false],
  ] as const) {
    const { io, run } = runWith({}, answer);
    const confirm = confirmer(run);
    assert.ok(confirm, 'a question on a terminal');
    assert.equal(await confirm(['code from var/backups/1_filesystem.tgz']), expected, JSON.stringify(answer));
    assert.match(
      io.stderr.text,
      /^About to roll back \(the current state is replaced; no backup is deleted\):\n  - code from var\/backups\/1_filesystem\.tgz\n/,
    );
    assert.match(io.stderr.text, /Are you sure you want to continue\? \[y\/N\] /);
  }
});

void test('no terminal and no --yes: refused with a usage error naming --yes; -y and -n skip the question', () => {
  const { run } = runWith({});
  assert.throws(
    () => confirmer(run),
    (e) =>
      e instanceof UsageError &&
      e.exitCode === 2 &&
      /stdin is not a terminal \(pass --yes or -n\)/.test(e.message),
  );
  assert.equal(confirmer(runWith({ yes: true }).run), undefined);
  assert.equal(confirmer(runWith({ interaction: false }).run), undefined);
  assert.equal(
    confirmer(runWith({ yes: true }, 'n\n').run),
    undefined,
    '--yes on a terminal: no question either',
  );
});

async function codeBackup(root: string): Promise<string> {
  const io = fakeIo();
  assert.equal(await main(argv('setup:backup', '--code', '--root', root), io), 0, io.stderr.text);
  const file = readdirSync(path.join(root, 'var', 'backups')).find((n) => n.endsWith('_filesystem.tgz'));
  assert.ok(file);
  return file;
}

void test('setup:rollback: no, no terminal, then yes — only yes changes the store', async () => {
  const root = minimalStore();
  const file = await codeBackup(root);
  const index = path.join(root, 'index.php');
  writeFileSync(index, 'changed after the backup');

  const no = fakeIo({ answer: 'n\n' });
  assert.equal(await main(argv('setup:rollback', '-c', file, '--root', root), no), 1);
  // (the answer's echo ends the prompt's line on a terminal; the fake one does not echo)
  assert.match(no.stderr.text, /\[y\/N\] Error: Rollback cancelled: nothing was changed\n$/);
  assert.equal(readFileSync(index, 'utf8'), 'changed after the backup');

  const piped = fakeIo();
  assert.equal(await main(argv('setup:rollback', '-c', file, '--root', root), piped), 2);
  assert.deepEqual(piped.stderr.lines(), [
    'Error: Refusing to roll back without confirmation: stdin is not a terminal (pass --yes or -n)',
  ]);
  assert.equal(readFileSync(index, 'utf8'), 'changed after the backup');

  const yes = fakeIo({ answer: 'y\n' });
  assert.equal(await main(argv('setup:rollback', '-c', file, '--root', root), yes), 0, yes.stderr.text);
  assert.match(yes.stdout.text, /^\[SUCCESS\]: Code rollback completed successfully\.$/m);
  assert.equal(readFileSync(index, 'utf8'), '<?php // index\n');
  assert.deepEqual(
    readdirSync(path.join(root, 'var', 'backups')).filter((n) => n.endsWith('.tgz')),
    [file],
    'the backup is kept',
  );
});

void test('snapshot:restore without a terminal and without -y is refused the same way, after the id is checked', async () => {
  const root = minimalStore();
  const bad = fakeIo();
  assert.equal(await main(argv('snapshot:restore', 'nope', '--root', root), bad), 2);
  assert.doesNotMatch(bad.stderr.text, /terminal/, 'a bad id is named first');
  const io = fakeIo();
  assert.equal(await main(argv('snapshot:restore', '1700000000', '--root', root), io), 2);
  assert.match(io.stderr.text, /^Error: Refusing to roll back without confirmation/);
});

void test('the input ending with no answer (Ctrl-D, a closed terminal) is a no, not a hang', async () => {
  const { run } = runWith({}, '');
  const confirm = confirmer(run);
  assert.ok(confirm);
  assert.equal(await confirm(['code from var/backups/1_filesystem.tgz']), false);
});

void test('a stop signal while the question waits ends it: InterruptedError naming the signal', async () => {
  for (const reason of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    const io = fakeIo({ answer: '' });
    // a terminal that stays open: the answer never comes
    const stdin = new PassThrough() as PassThrough & { isTTY?: boolean };
    stdin.isTTY = true;
    const ac = new AbortController();
    const confirm = confirmer({ global: {}, io: { ...io, stdin }, signal: ac.signal });
    assert.ok(confirm);
    const pending = confirm(['db from var/backups/1_db.sql']);
    setTimeout(() => ac.abort(reason), 50);
    await assert.rejects(
      pending,
      (e: unknown) => e instanceof InterruptedError && e.message === `Interrupted by ${reason}`,
      reason,
    );
    stdin.end();
  }
});
