/**
 * Definitions created over a latin1 connection with non-ASCII text (routines, triggers, views, events) are
 * dumped in their own character_set_client, byte for byte, and load back exactly: with the stock client and
 * with our restore.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { describeDatabase, diffDatabases, type DbSnapshot } from '../../fixtures/db-compare.js';
import { restoreDatabase } from '../../src/db/restore.js';
import { dumpConfig, dumpTo, qi, stockLoad } from './dump-helpers.js';

let server: TestServer;
let conn: Connection;
let dir: string;
let db: string;
let snap: DbSnapshot;
let exact: Record<string, string>;

/** Every definition's bytes as SHOW CREATE gives them (no conversion), with its character_set_client. */
async function definitionBytes(database: string): Promise<Record<string, string>> {
  const c = await server.connect(database);
  try {
    await c.query('SET SESSION character_set_results = binary');
    const out: Record<string, string> = {};
    const hex = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('hex') : String(v));
    const one = async (label: string, sql: string, col: number, csCol: number): Promise<void> => {
      const [rows] = await c.query({ sql, rowsAsArray: true });
      const r = (rows as unknown[][])[0]!;
      out[label] = `${hex(r[col]).replace(/(6465)?46494e45523d[0-9a-f]*?20/, '')} ${hex(r[csCol])}`;
    };
    await one('procedure', 'SHOW CREATE PROCEDURE p_l1', 2, 3);
    await one('function', 'SHOW CREATE FUNCTION f_l1', 2, 3);
    await one('trigger', 'SHOW CREATE TRIGGER tr_l1', 2, 3);
    await one('event', 'SHOW CREATE EVENT e_l1', 3, 4);
    await one('view', 'SHOW CREATE VIEW v_l1', 1, 2);
    return out;
  } finally {
    await c.end();
  }
}

before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mbk-charset-'));
  db = await server.createDatabase('dumplatin1');
  // created with the stock client over a latin1 connection: the file is latin1 bytes (0x80 is € in MySQL's latin1)
  const sql =
    'CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(20) CHARACTER SET utf8mb4);\n' +
    "CREATE PROCEDURE p_l1() SELECT 'été \x80 ü' AS `ça`;\n" +
    "CREATE FUNCTION f_l1() RETURNS VARCHAR(20) CHARACTER SET utf8mb4 DETERMINISTIC RETURN 'naïve \x80';\n" +
    "CREATE TRIGGER tr_l1 BEFORE INSERT ON t FOR EACH ROW SET NEW.a = CONCAT(NEW.a, ' ß');\n" +
    "CREATE EVENT e_l1 ON SCHEDULE EVERY 1 DAY DISABLE DO INSERT INTO t VALUES (0, 'ñ');\n" +
    "CREATE VIEW v_l1 AS SELECT 'Ångström' AS `größe`, a FROM t;\n" +
    "INSERT INTO t VALUES (1, 'ö');\n";
  const file = path.join(dir, 'latin1.sql');
  writeFileSync(file, Buffer.from(sql, 'latin1'));
  const r = await stockLoad(server, file, db, ['--default-character-set=latin1']);
  assert.equal(r.code, 0, r.stderr);
  snap = await describeDatabase(conn, db);
  exact = await definitionBytes(db);
  // the fixture is what it claims: latin1 objects with non-ASCII bytes
  assert.match(exact['procedure']!, / 6c6174696e31$/);
  assert.match(exact['procedure']!, /e974e9/);
});

after(async () => {
  await conn?.end();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

void test('latin1 definitions: the stock client loads our dump with every byte and charset as before', async () => {
  const { file } = await dumpTo(server, dir, db);
  const target = await server.createDatabase('dumplatin1_load');
  const r = await stockLoad(server, file, target);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.deepEqual(diffDatabases(snap, await describeDatabase(conn, target)), []);
  assert.deepEqual(await definitionBytes(target), exact);
  const [rows] = await conn.query(`SELECT a FROM ${qi(target)}.t ORDER BY id`);
  assert.deepEqual(rows, [{ a: 'ö ß' }], 'the value written by the trigger at creation, not fired again');
});

void test('latin1 definitions: our restore loads our dump exactly', async () => {
  const { file } = await dumpTo(server, dir, db);
  const target = await server.createDatabase('dumplatin1_rb');
  await restoreDatabase({ config: dumpConfig(server, target), file });
  assert.deepEqual(diffDatabases(snap, await describeDatabase(conn, target)), []);
  assert.deepEqual(await definitionBytes(target), exact);
});
