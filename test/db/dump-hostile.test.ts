/**
 * Names that try to leave their comment or literal: a newline followed by a client command (`\! touch`), quotes,
 * backticks, `*​/`, `-- `, `#`, `;` and non-ASCII, in every kind of object and in the database name. The dump
 * must load with the stock client without running anything, and give back the same objects.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { describeDatabase, diffDatabases } from '../../fixtures/db-compare.js';
import { dumpedDatabaseFromHeader, readDumpHead } from '../../src/db/verify-dump.js';
import { dumpTo, qi, stockLoad } from './dump-helpers.js';

let server: TestServer;
let conn: Connection;
let dir: string;
const canary = path.join(os.tmpdir(), `mbkc${process.pid}`);

/** A name for object `kind` that runs `touch canary` if any part of it leaves its quotes or comment. */
const H = (kind: string): string => `${kind}\n\\! touch ${canary}\n# '"\`*/ -- ü€;\r\\`;

before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mbk-hostile-'));
  rmSync(canary, { force: true });
});

after(async () => {
  await conn?.end();
  if (dir) rmSync(dir, { recursive: true, force: true });
  rmSync(canary, { force: true });
});

void test('hostile names in every object kind and in the database name: loaded by the stock client, nothing run', async () => {
  const db = H(`d${process.pid % 1000}`);
  const target = H(`l${process.pid % 1000}`);
  for (const d of [db, target]) {
    await conn.query(`DROP DATABASE IF EXISTS ${qi(d)}`);
    await conn.query(`CREATE DATABASE ${qi(d)} CHARACTER SET utf8mb4`);
  }
  const c = await server.connect(db);
  try {
    const [t, col, idx, chk] = [H('t'), H('c'), H('i'), H('k')];
    await c.query(
      `CREATE TABLE ${qi(t)} (id INT PRIMARY KEY, ${qi(col)} VARCHAR(100) COMMENT ${c.escape(H('comment'))},
       KEY ${qi(idx)} (${qi(col)}), CONSTRAINT ${qi(chk)} CHECK (id >= 0)) COMMENT ${c.escape(H('tc'))}`,
    );
    await c.query(`INSERT INTO ${qi(t)} VALUES (1, ?), (2, NULL)`, [H('value')]);
    await c.query(`CREATE VIEW ${qi(H('v'))} AS SELECT ${qi(col)} AS ${qi(H('va'))} FROM ${qi(t)}`);
    await c.query(
      `CREATE TRIGGER ${qi(H('tr'))} BEFORE INSERT ON ${qi(t)} FOR EACH ROW SET NEW.${qi(col)} = CONCAT(${c.escape(H('s'))}, NEW.${qi(col)})`,
    );
    await c.query(
      `CREATE PROCEDURE ${qi(H('p'))}(${qi(H('a'))} INT) SELECT ${qi(H('a'))}, ${c.escape(H('x'))}`,
    );
    await c.query(`CREATE FUNCTION ${qi(H('f'))}() RETURNS TEXT DETERMINISTIC RETURN ${c.escape(H('y'))}`);
    await c.query(
      `CREATE EVENT ${qi(H('e'))} ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM ${qi(t)} WHERE id < 0`,
    );
    await c.query(`CREATE SEQUENCE ${qi(H('sq'))} START WITH 5`);
  } finally {
    await c.end();
  }
  const before = await describeDatabase(conn, db);

  const { file, events } = await dumpTo(server, dir, db);
  assert.deepEqual(
    events.filter((e) => e.type === 'warning'),
    [],
  );

  const r = await stockLoad(server, file, target);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, '');
  assert.equal(existsSync(canary), false, 'the stock client ran a command hidden in a name');
  assert.deepEqual(diffDatabases(before, await describeDatabase(conn, target)), []);
  // every comment line stays one line: the name shows as a JSON string there
  const text = await fsp.readFile(file, 'utf8');
  assert.ok(text.includes(`-- Table structure for table ${JSON.stringify(H('t'))}\n`));
  assert.equal(dumpedDatabaseFromHeader(await readDumpHead(file)), db);

  for (const d of [db, target]) await conn.query(`DROP DATABASE ${qi(d)}`);
});
