/**
 * Property-style round trip: random hostile identifiers and random values of every column type (fixtures/
 * db-random.ts), dumped by us, loaded by the stock client and by our restore, compared exactly (CREATE texts,
 * CHECKSUM TABLE, views). Fixed seed and a small size here; `node scripts/property-dump.mjs --seed N --size M`
 * runs any seed and size.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { describeDatabase, diffDatabases } from '../../fixtures/db-compare.js';
import { createRandomDatabase } from '../../fixtures/db-random.js';
import { restoreDatabase } from '../../src/db/restore.js';
import { dumpConfig, dumpTo, qi, stockLoad } from './dump-helpers.js';

let server: TestServer;
let conn: Connection;
let dir: string;
const canary = path.join(os.tmpdir(), `mbkp${process.pid}`);

before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mbk-prop-'));
});

after(async () => {
  await conn?.end();
  if (dir) rmSync(dir, { recursive: true, force: true });
  rmSync(canary, { force: true });
});

/** Hostile and plain names, each through the stock client and our restore. */
const CASES = [
  { seed: 20261201, names: 'hostile', restore: true },
  { seed: 7, names: 'hostile', restore: true },
  { seed: 20261201, names: 'plain', restore: true },
  { seed: 11, names: 'plain', restore: true },
] as const;

for (const { seed, names, restore } of CASES) {
  void test(`random ${names} names, types and values round-trip exactly (seed ${seed})`, async () => {
    const db = names === 'hostile' ? `p${seed}\n\\! touch ${canary}\n'"\`*/é` : `p${seed}_plain_é`;
    await conn.query(`DROP DATABASE IF EXISTS ${qi(db)}`);
    await conn.query(`CREATE DATABASE ${qi(db)} CHARACTER SET utf8mb4`);
    const c = await server.connect(db);
    try {
      await createRandomDatabase(c, { seed, tables: 4, columns: 10, rows: 20, names });
    } finally {
      await c.end();
    }
    const snap = await describeDatabase(conn, db);

    const { file, events } = await dumpTo(server, dir, db);
    assert.deepEqual(
      events.filter((e) => e.type === 'warning'),
      [],
    );
    const stock = await server.createDatabase('prop_stock');
    const r = await stockLoad(server, file, stock);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(existsSync(canary), false);
    assert.deepEqual(diffDatabases(snap, await describeDatabase(conn, stock)), [], 'stock client');

    if (restore) {
      const ours = await server.createDatabase('prop_restore');
      await restoreDatabase({ config: dumpConfig(server, ours), file });
      assert.deepEqual(diffDatabases(snap, await describeDatabase(conn, ours)), [], 'our restore');
    }
    await conn.query(`DROP DATABASE ${qi(db)}`);
  });
}
