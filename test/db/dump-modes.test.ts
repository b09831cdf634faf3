/**
 * Stored programs created under NO_BACKSLASH_ESCAPES / ANSI_QUOTES with backslashes in their bodies: our dump
 * loads with the stock client and with our restore, and our reader splits mariadb-dump's file of them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { describeDatabase, diffDatabases, type DbSnapshot } from '../../fixtures/db-compare.js';
import { restoreDatabase } from '../../src/db/restore.js';
import { verifyDump } from '../../src/db/verify-dump.js';
import { readStatements, openDumpStream } from '../../src/db/sql-reader.js';
import { dumpConfig, dumpTo, stockLoad } from './dump-helpers.js';
import { stockDump } from './restore-helpers.js';

let server: TestServer;
let conn: Connection;
let dir: string;
let db: string;
let snap: DbSnapshot;

before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mbk-modes-'));
  db = await server.createDatabase('dumpmodes');
  const c = await server.connect(db);
  try {
    await c.query('CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(50))');
    await c.query('CREATE TABLE t2 (`b\\` INT)');
    await c.query(String.raw`INSERT INTO t VALUES (1, 'a\\b'), (2, 'C:\\')`);
    await c.query("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'");
    await c.query(String.raw`CREATE PROCEDURE p_nbe() SELECT 'C:\', 'a\b', 'it''s', "dq\" -- done`);
    // the body ends in a backslash: mariadb-dump writes it raw, after setting the mode
    await c.query(String.raw`CREATE FUNCTION f_nbe() RETURNS TEXT DETERMINISTIC RETURN 'C:\'`);
    await c.query(
      String.raw`CREATE TRIGGER tr_nbe BEFORE INSERT ON t FOR EACH ROW SET NEW.s = CONCAT(NEW.s, '\n\', '\r')`,
    );
    await c.query(
      String.raw`CREATE EVENT e_nbe ON SCHEDULE EVERY 1 DAY DISABLE DO UPDATE t SET s = 'x\' WHERE id = 0`,
    );
    await c.query(String.raw`CREATE VIEW v_nbe AS SELECT 'C:\' AS p, s FROM t`);
    await c.query("SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'");
    await c.query(String.raw`CREATE PROCEDURE p_ansi() SELECT "s" FROM "t" WHERE "s" <> 'q\' # c`);
    await c.query("SET SESSION sql_mode = 'ANSI_QUOTES'");
    await c.query(String.raw`CREATE FUNCTION f_ansi() RETURNS TEXT DETERMINISTIC RETURN 'a\\b\'c'`);
    // an identifier ending in a backslash: in ANSI_QUOTES, "b\" is complete
    await c.query(String.raw`CREATE PROCEDURE p_ansi_ident() SELECT "b\" FROM "t2"`);
    await c.query("SET SESSION sql_mode = ''");
    // written on Windows: CR LF line ends (the stock client drops a CR before an LF outside an escaped literal)
    await c.query('CREATE PROCEDURE p_crlf()\r\nBEGIN\r\n  SELECT 1;\r\n  SELECT 2;\r\nEND');
    // a line break and a carriage return inside a body's string, under NO_BACKSLASH_ESCAPES
    await c.query("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'");
    await c.query("CREATE PROCEDURE p_nbe_lines() SELECT 'line1\nline2\r\nline3\\'");
  } finally {
    await c.end();
  }
  snap = await describeDatabase(conn, db);
});

after(async () => {
  await conn?.end();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

void test('NO_BACKSLASH_ESCAPES and ANSI_QUOTES bodies: the stock client loads our dump exactly', async () => {
  const { file } = await dumpTo(server, dir, db);
  const target = await server.createDatabase('dumpmodes_load');
  const r = await stockLoad(server, file, target);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.deepEqual(diffDatabases(snap, await describeDatabase(conn, target)), []);
});

void test('NO_BACKSLASH_ESCAPES and ANSI_QUOTES bodies: our restore loads our dump exactly', async () => {
  const { file } = await dumpTo(server, dir, db);
  const target = await server.createDatabase('dumpmodes_rb');
  await restoreDatabase({ config: dumpConfig(server, target), file });
  assert.deepEqual(diffDatabases(snap, await describeDatabase(conn, target)), []);
});

void test("our reader splits mariadb-dump's file of them (a body ending in 'C:\\' is not truncation)", async () => {
  const file = path.join(dir, 'stock.sql');
  await stockDump(server, db, file);
  const v = await verifyDump(file);
  const statements: string[] = [];
  for await (const s of readStatements(openDumpStream(file))) statements.push(s.sql);
  assert.equal(v.statements, statements.length);
  const fn = statements.find((s) => s.includes('FUNCTION `f_nbe`'));
  assert.ok(fn?.trimEnd().endsWith("RETURN 'C:\\'"), fn);
  // and the restore loads it
  const target = await server.createDatabase('dumpmodes_stock');
  await restoreDatabase({ config: dumpConfig(server, target), file });
  assert.deepEqual(diffDatabases(snap, await describeDatabase(conn, target)), []);
});
