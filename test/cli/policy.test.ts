// The retention options are parsed on the CLI side; the domain (backup/prune.ts) takes numbers of seconds and counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { DEFAULT_POLICY } from '../../src/backup/prune.js';
import { parseCount, parseDuration, policyOf } from '../../src/cli/options.js';

const DAY = 86400;

void test('--keep-within takes durations, --keep-* counts; anything else is an InvalidArgumentError', () => {
  assert.equal(parseDuration('14d'), 14 * DAY);
  assert.equal(parseDuration('1d12h'), 36 * 3600);
  assert.equal(parseDuration('2w'), 14 * DAY);
  assert.equal(parseDuration('90m'), 5400);
  assert.throws(() => parseDuration('14 days'), InvalidArgumentError);
  assert.throws(() => parseDuration('-1d'), InvalidArgumentError);
  assert.equal(parseCount('3'), 3);
  assert.throws(() => parseCount('-1'), InvalidArgumentError);
  assert.throws(() => parseCount('1.5'), InvalidArgumentError);
});

void test('no --keep-* is the default policy; --keep-* that keep nothing are a usage error naming the options', () => {
  assert.deepEqual(policyOf({}), DEFAULT_POLICY);
  assert.deepEqual(policyOf({ keepLast: 2, keepWithin: 3600 }), { keepWithin: 3600, keepLast: 2 });
  assert.throws(
    () => policyOf({ keepLast: 0, keepDaily: 0 }),
    (err: Error & { exitCode?: number }) =>
      err.exitCode === 2 && /^Empty retention policy: .*--keep-within, --keep-last/.test(err.message),
  );
});
