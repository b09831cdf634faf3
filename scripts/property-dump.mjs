#!/usr/bin/env node
// Property-style dump check with any seed and size (the test suite runs two fixed seeds at a small size):
// random hostile names and random values of every column type, dumped by magebackup, loaded by the stock
// `mariadb` client and by our restore, compared exactly. Starts its own throwaway MariaDB. Run after
// `npm run build`:
//
//   node scripts/property-dump.mjs [--seed N] [--size N] [--runs N] [--plain-names]
//
// --seed defaults to a random one (printed, so a failure can be replayed); --size is the number of tables
// (rows per table up to 10 × size); --runs repeats with seed, seed+1, ...; --plain-names uses letters, digits and
// non-ASCII letters only in names (hostile names by default).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startMariaDB } from '../dist/fixtures/mariadb.js';
import { createRandomDatabase } from '../dist/fixtures/db-random.js';
import { describeDatabase, diffDatabases } from '../dist/fixtures/db-compare.js';
import { qi, rootConfig, stockLoad as clientLoad } from '../dist/fixtures/db-clients.js';
import { dumpDatabase } from '../dist/src/db/dump.js';
import { restoreDatabase } from '../dist/src/db/restore.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    size: { type: 'string', default: '8' },
    runs: { type: 'string', default: '1' },
    'plain-names': { type: 'boolean', default: false },
  },
});
const seed0 = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const size = Number(values.size);
const runs = Number(values.runs);

const server = await startMariaDB();
const dir = mkdtempSync(path.join(os.tmpdir(), 'mbk-property-'));
const config = (database) => rootConfig(server, database);
async function stockLoad(file, db) {
  const { code, stderr } = await clientLoad(server, file, db);
  if (code !== 0) throw new Error(`stock client exited ${code}: ${stderr}`);
}

let failed = 0;
const conn = await server.connect();
try {
  for (let i = 0; i < runs; i++) {
    const seed = seed0 + i;
    const db = `p${seed}\n'"\`*/é`;
    await conn.query(`CREATE DATABASE ${qi(db)} CHARACTER SET utf8mb4`);
    const c = await server.connect(db);
    const t0 = Date.now();
    try {
      await createRandomDatabase(c, {
        seed,
        tables: size,
        columns: 16,
        rows: 10 * size,
        names: values['plain-names'] ? 'plain' : 'hostile',
      });
    } finally {
      await c.end();
    }
    const snap = await describeDatabase(conn, db);
    const file = path.join(dir, `${seed}.sql`);
    const warnings = [];
    await dumpDatabase({
      config: config(db),
      outFile: file,
      compress: false,
      onEvent: (e) => e.type === 'warning' && warnings.push(e.message),
    });
    const stock = `stock_${seed}`;
    const ours = `ours_${seed}`;
    const diffs = [...warnings.map((w) => `warning: ${w}`)];
    try {
      await conn.query(`CREATE DATABASE ${qi(stock)}`);
      await stockLoad(file, stock);
      diffs.push(
        ...diffDatabases(snap, await describeDatabase(conn, stock)).map((d) => `stock client: ${d}`),
      );
      await conn.query(`CREATE DATABASE ${qi(ours)}`);
      await restoreDatabase({ config: config(ours), file });
      diffs.push(...diffDatabases(snap, await describeDatabase(conn, ours)).map((d) => `our restore: ${d}`));
    } catch (err) {
      diffs.push(String(err instanceof Error ? err.message : err));
    }
    const rows = Object.values(snap.tables).reduce((n, t) => n + t.rows, 0);
    if (diffs.length === 0) {
      process.stdout.write(
        `seed ${seed}: ok (${Object.keys(snap.tables).length} tables, ${rows} rows, ${Date.now() - t0} ms)\n`,
      );
      for (const d of [db, stock, ours]) await conn.query(`DROP DATABASE IF EXISTS ${qi(d)}`);
    } else {
      failed++;
      process.stdout.write(
        `seed ${seed}: FAILED (dump kept: ${file})\n${diffs.map((d) => `  ${d}`).join('\n')}\n`,
      );
    }
  }
} finally {
  await conn.end();
  await server.stop();
  if (failed === 0) rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${runs - failed} passed, ${failed} failed (first seed ${seed0}, size ${size})\n`);
process.exitCode = failed === 0 ? 0 : 1;
