/**
 * Objects the zoo does not hold: MERGE and other engines without rows of their own, Oracle-mode packages, SET
 * columns with an empty-string member. Each is dumped, loaded with the stock client and compared.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { describeDatabase, diffDatabases } from '../../fixtures/db-compare.js';
import { dumpTo, qi, stockLoad } from './dump-helpers.js';

let server: TestServer;
let conn: Connection;
let dir: string;

before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mbk-edge-'));
});

after(async () => {
  await conn?.end();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Dump `db`, load it into a new database with the stock client, return the new database's name. */
async function roundTrip(db: string): Promise<{ target: string; text: string }> {
  const { file } = await dumpTo(server, dir, db);
  const target = await server.createDatabase('edge_load');
  const r = await stockLoad(server, file, target);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  return { target, text: await fsp.readFile(file, 'utf8') };
}

async function count(db: string, table: string): Promise<number> {
  const [r] = await conn.query(`SELECT COUNT(*) AS n FROM ${qi(db)}.${qi(table)}`);
  return Number((r as { n: number }[])[0]!.n);
}

void test('a MERGE table: structure only, the base rows do not double', async () => {
  const db = await server.createDatabase('edge_merge');
  const c = await server.connect(db);
  try {
    await c.query('CREATE TABLE m1 (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=MyISAM');
    await c.query('CREATE TABLE m2 (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=MyISAM');
    await c.query("INSERT INTO m1 VALUES (1, 'a'), (2, 'b')");
    await c.query("INSERT INTO m2 VALUES (3, 'c')");
    await c.query(
      'CREATE TABLE mm (id INT NOT NULL, v VARCHAR(10), KEY (id)) ENGINE=MERGE UNION=(m1, m2) INSERT_METHOD=LAST',
    );
  } finally {
    await c.end();
  }
  const before = await describeDatabase(conn, db);
  const { target, text } = await roundTrip(db);
  assert.ok(!text.includes('INSERT INTO `mm`'), 'no rows written for the MERGE table');
  assert.equal(await count(target, 'm1'), 2);
  assert.equal(await count(target, 'm2'), 1);
  assert.equal(await count(target, 'mm'), 3);
  assert.deepEqual(diffDatabases(before, await describeDatabase(conn, target)), []);
});

void test('Oracle-mode packages and package bodies are dumped with their sql_mode', async () => {
  const db = await server.createDatabase('edge_pkg');
  const c = await server.connect(db);
  try {
    await c.query("SET SESSION sql_mode = 'ORACLE'");
    await c.query(`CREATE PACKAGE pkg AS
      FUNCTION f1 RETURN INT;
      PROCEDURE p1;
    END`);
    await c.query(`CREATE PACKAGE BODY pkg AS
      -- a comment in the body
      FUNCTION f1 RETURN INT AS BEGIN RETURN 42; END;
      PROCEDURE p1 AS BEGIN NULL; END;
    END`);
    await c.query('CREATE PACKAGE pkg2 AS FUNCTION g RETURN VARCHAR2; END');
    await c.query(`CREATE PACKAGE BODY pkg2 AS FUNCTION g RETURN VARCHAR2 AS BEGIN RETURN 'x'';y'; END; END`);
  } finally {
    await c.end();
  }
  const before = await describeDatabase(conn, db);
  assert.equal(Object.keys(before.routines).length, 4);
  const { target } = await roundTrip(db);
  assert.deepEqual(diffDatabases(before, await describeDatabase(conn, target)), []);
  const t = await server.connect(target);
  try {
    await t.query("SET SESSION sql_mode = 'ORACLE'");
    const [r] = await t.query({ sql: 'SELECT pkg.f1(), pkg2.g()', rowsAsArray: true });
    assert.deepEqual(r, [[42, "x';y"]]);
  } finally {
    await t.end();
  }
});

void test("SET columns with '' as a member keep it", async () => {
  const db = await server.createDatabase('edge_set');
  const c = await server.connect(db);
  try {
    await c.query("CREATE TABLE s (id INT PRIMARY KEY, v SET('', 'a', 'b c'), w SET('x','y'))");
    await c.query(
      "INSERT INTO s VALUES (1, 0, 'x'), (2, 1, ''), (3, 2, 'x,y'), (4, 3, NULL), (5, 7, 'y'), (6, NULL, '')",
    );
  } finally {
    await c.end();
  }
  const bitmask = async (d: string): Promise<unknown> =>
    (await conn.query({ sql: `SELECT id, v + 0, w + 0 FROM ${qi(d)}.s ORDER BY id`, rowsAsArray: true }))[0];
  const expected = await bitmask(db);
  assert.deepEqual(expected, [
    [1, 0, 1],
    [2, 1, 0],
    [3, 2, 3],
    [4, 3, null],
    [5, 7, 2],
    [6, null, 0],
  ]);
  const { target } = await roundTrip(db);
  assert.deepEqual(await bitmask(target), expected);
});

void test('working tables of an interrupted rollback (__mbk_…) are left out, with a warning naming them', async () => {
  const db = await server.createDatabase('edge_work');
  const c = await server.connect(db);
  try {
    await c.query('CREATE TABLE keep (id INT PRIMARY KEY)');
    await c.query('INSERT INTO keep VALUES (1)');
    // what a killed rollback leaves: its journal, a shadow copy of a table (with a trigger), a shadow sequence
    await c.query('CREATE TABLE __mbk_k3x9_journal (id INT PRIMARY KEY, state TEXT)');
    await c.query("INSERT INTO __mbk_k3x9_journal VALUES (1, 'loading')");
    await c.query('CREATE TABLE __mbk_k3x9_n0a1b2c3 (id INT PRIMARY KEY)');
    await c.query('INSERT INTO __mbk_k3x9_n0a1b2c3 VALUES (7)');
    await c.query(
      'CREATE TRIGGER __mbk_trg BEFORE INSERT ON __mbk_k3x9_n0a1b2c3 FOR EACH ROW SET NEW.id = 8',
    );
    await c.query('CREATE SEQUENCE __mbk_k3x9_nseq');
    // matched by LIKE '__mbk_%' (`_` is any character) but not ours: kept
    await c.query('CREATE TABLE xxmbkxkept (id INT PRIMARY KEY)');
    await c.query('INSERT INTO xxmbkxkept VALUES (2)');
  } finally {
    await c.end();
  }
  const { file, result, events } = await dumpTo(server, dir, db);
  assert.deepEqual(result.skippedTables, ['__mbk_k3x9_journal', '__mbk_k3x9_n0a1b2c3', '__mbk_k3x9_nseq']);
  const warnings = events.filter((e) => e.type === 'warning');
  assert.equal(warnings.length, 1);
  const w = warnings[0]!;
  assert.ok(w.type === 'warning' && w.code === 'DB_WORK_TABLES');
  for (const t of result.skippedTables) assert.ok(w.message.includes(t), `${w.message} names ${t}`);
  const text = await fsp.readFile(file, 'utf8');
  assert.ok(!text.includes('__mbk_'), 'no working table, trigger or sequence in the dump');
  const target = await server.createDatabase('edge_work_load');
  const r = await stockLoad(server, file, target);
  assert.equal(r.code, 0, r.stderr);
  const [tables] = await conn.query({
    sql: 'SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME',
    values: [target],
    rowsAsArray: true,
  });
  assert.deepEqual(tables, [['keep'], ['xxmbkxkept']]);
  assert.equal(await count(target, 'xxmbkxkept'), 1);

  // no working table: no warning
  const clean = await dumpTo(server, dir, target);
  assert.deepEqual(clean.result.skippedTables, []);
  assert.deepEqual(
    clean.events.filter((e) => e.type === 'warning'),
    [],
  );
});
