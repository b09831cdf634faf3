// The archive reader against random and mutated tar/gzip streams, with fixed seeds so that a failure replays
// (scripts/fuzz-archive.mjs runs the same for longer with a random seed). See fuzz-archive.ts for what must hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../helpers/tmp.js';
import {
  caseRng,
  extractCase,
  makeCase,
  makeSandbox,
  readerBatchInWorker,
  seedTars,
} from './fuzz-archive.js';

const SEED = 20261201;

void test('fuzz: the reader on 2000 mutated archives ends with its own clean errors only, never hangs', async () => {
  const res = await readerBatchInWorker(SEED, 0, 2000, tempDir('mbk-fuzz-canary-'), 60_000);
  assert.equal(res.cases, 2000);
  // the mutations reach both outcomes: a fuzzer whose inputs are all refused at the first byte tests little
  assert.ok(res.ok > 100, `ok ${res.ok}`);
  assert.ok(res.refused > 100, `refused ${res.refused}`);
});

void test('fuzz: extracting 24 mutated archives writes nothing outside the staging directory', async () => {
  const box = makeSandbox(tempDir('mbk-fuzz-'));
  const seeds = seedTars(box.canary);
  const outcomes = { ok: 0, refused: 0 };
  for (let i = 0; i < 24; i++) {
    const r = caseRng(SEED + 1, i);
    const gz = makeCase(r, box.canary, seeds);
    try {
      outcomes[await extractCase(r, gz, box, 20_000)]++;
    } catch (err) {
      assert.fail(`case ${i} of seed ${SEED + 1}: ${(err as Error).stack ?? String(err)}`);
    }
  }
  assert.ok(outcomes.ok >= 2 && outcomes.refused >= 2, JSON.stringify(outcomes));
});
