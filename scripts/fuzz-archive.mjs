#!/usr/bin/env node
// Fuzzes the archive reader for longer than `npm test` does, with a random seed (printed, so a failure replays):
//
//   npm run build && node scripts/fuzz-archive.mjs [--seconds 60] [--seed N] [--batch 500] [--extract-every 1]
//
// Each round reads a batch of mutated archives in a worker thread (a batch that does not end in time is a hang)
// and extracts `--extract-every` of them for real into a sandbox whose canary directory must stay unchanged.
// What must hold is described in test/archive/fuzz-archive.ts. On a failure: prints the seed and the case, writes
// the input to ./fuzz-failure-<seed>-<case>.tgz, exits 1. Replay one case with --seed N --from CASE --batch 1.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const lib = path.join(root, 'dist', 'test', 'archive', 'fuzz-archive.js');
if (!existsSync(lib)) {
  process.stderr.write('fuzz-archive: dist/ is missing: run `npm run build` first\n');
  process.exit(2);
}
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    from: { type: 'string', default: '0' },
    batch: { type: 'string', default: '500' },
    'extract-every': { type: 'string', default: '1' },
  },
});
const seconds = Number(values.seconds);
const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const batch = Math.max(1, Number(values.batch));
const extracts = Math.max(0, Number(values['extract-every']));
const { readerBatchInWorker, extractCase, makeCase, makeSandbox, seedTars, caseRng } = await import(
  pathToFileURL(lib).href
);

const base = mkdtempSync(path.join(os.tmpdir(), 'mbk-fuzz-'));
const box = makeSandbox(base);
const seeds = seedTars(box.canary);
process.stderr.write(`fuzz-archive: seed ${seed}, ${seconds} s, sandbox ${base}\n`);

const fail = (what, i, err, input) => {
  process.stderr.write(
    `fuzz-archive: FAILED (${what}) at case ${i} of seed ${seed}:\n${err?.stack ?? err}\n`,
  );
  if (input) {
    const out = path.resolve(`fuzz-failure-${seed}-${i}.tgz`);
    writeFileSync(out, input);
    process.stderr.write(`fuzz-archive: the input is in ${out}\n`);
  }
  process.stderr.write(`fuzz-archive: replay with --seed ${seed} --from ${i} --batch 1\n`);
  process.exit(1);
};

const end = Date.now() + seconds * 1000;
const totals = { reader: 0, readerOk: 0, extracted: 0, extractOk: 0 };
let next = Number(values.from);
do {
  try {
    const r = await readerBatchInWorker(seed, next, batch, box.canary, 120_000);
    totals.reader += r.cases;
    totals.readerOk += r.ok;
  } catch (err) {
    const m = /case (\d+)/.exec(err.message);
    fail('reader', m ? Number(m[1]) : next, err, err.input);
  }
  for (let k = 0; k < extracts; k++) {
    const i = next + Math.floor((k * batch) / extracts);
    const r = caseRng(seed, i);
    const gz = makeCase(r, box.canary, seeds);
    try {
      totals.extractOk += (await extractCase(r, gz, box, 60_000)) === 'ok' ? 1 : 0;
      totals.extracted++;
    } catch (err) {
      fail('extract', i, err, gz);
    }
  }
  next += batch;
} while (Date.now() < end);
rmSync(base, { recursive: true, force: true });
process.stdout.write(
  `fuzz-archive: seed ${seed}: ${totals.reader} archives read (${totals.readerOk} accepted), ` +
    `${totals.extracted} extracted (${totals.extractOk} accepted): no crash, no hang, nothing written outside\n`,
);
