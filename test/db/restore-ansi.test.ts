/**
 * Definitions created under ANSI_QUOTES are dumped with "double-quoted" names (SHOW CREATE gives them back as
 * they were written). The restore must read those names as identifiers: otherwise the live routine or trigger
 * of the same name looks like one the backup does not have (a false EXTRA_OBJECTS warning, exit 3, and with
 * --drop-extra-tables a drop of an object the backup has).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { describeDatabase, diffDatabases } from '../../fixtures/db-compare.js';
import { restoreDatabase } from '../../src/db/restore.js';
import { definitionTarget, triggerTable } from '../../src/db/restore-parse.js';
import { DEFAULT_LEXING, statementHead } from '../../src/db/sql-tokens.js';
import type { MagebackupEvent } from '../../src/events.js';
import { dumpTo } from './dump-helpers.js';
import { configFor, queryRows } from './restore-helpers.js';

let server: TestServer;
let conn: Connection;
let dir: string;

before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mbk-ansi-'));
});

after(async () => {
  await conn?.end();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

void test('definitionTarget reads a "double-quoted" name as an identifier only under ANSI_QUOTES', () => {
  const ansi = { ...DEFAULT_LEXING, ansiQuotes: true };
  const head = (sql: string) => statementHead(Buffer.from(sql), undefined, ansi);
  assert.deepEqual(definitionTarget(head('CREATE FUNCTION "f ""x"""(s INT) RETURNS INT RETURN s'), ansi), {
    object: 'function',
    name: 'f "x"',
    drop: false,
  });
  const tr = head('CREATE DEFINER="root"@"%" TRIGGER "tr" BEFORE INSERT ON "t x" FOR EACH ROW SET @a = 1');
  assert.deepEqual(definitionTarget(tr, ansi), { object: 'trigger', name: 'tr', drop: false });
  assert.equal(triggerTable(tr, ansi), 't x');
  // without ANSI_QUOTES "f" is a string: no name can be read from it
  const plain = statementHead(Buffer.from('CREATE FUNCTION "f"(s INT) RETURNS INT RETURN s'));
  assert.equal(definitionTarget(plain), undefined);
});

for (const drop of [false, true]) {
  void test(`a routine and a trigger created under ANSI_QUOTES are restored as the backup's own, no extra objects${drop ? ' (--drop-extra-tables)' : ''}`, async () => {
    const db = await server.createDatabase('ransi');
    const c = await server.connect(db);
    try {
      await c.query('CREATE TABLE "t" (id INT PRIMARY KEY, v VARCHAR(40))'.replace(/"/g, '`'));
      await c.query("INSERT INTO t VALUES (1, 'a')");
      await c.query("SET SESSION sql_mode = 'ANSI_QUOTES'");
      await c.query(
        'CREATE FUNCTION "f_ansi"(s VARCHAR(20)) RETURNS VARCHAR(40) DETERMINISTIC RETURN CONCAT(\'old:\', "s")',
      );
      await c.query(
        'CREATE TRIGGER "tr_ansi" BEFORE INSERT ON "t" FOR EACH ROW SET NEW."v" = CONCAT(\'old:\', NEW."v")',
      );
      await c.query('SET SESSION sql_mode = DEFAULT');
    } finally {
      await c.end();
    }
    const backup = await describeDatabase(conn, db);
    const { file } = await dumpTo(server, dir, db);

    // after the backup: both changed (same names), in the same mode
    const c2 = await server.connect(db);
    try {
      await c2.query("SET SESSION sql_mode = 'ANSI_QUOTES'");
      await c2.query('DROP FUNCTION "f_ansi"');
      await c2.query(
        'CREATE FUNCTION "f_ansi"(s VARCHAR(20)) RETURNS VARCHAR(40) DETERMINISTIC RETURN CONCAT(\'new:\', "s")',
      );
      await c2.query('DROP TRIGGER "tr_ansi"');
      await c2.query(
        'CREATE TRIGGER "tr_ansi" BEFORE INSERT ON "t" FOR EACH ROW SET NEW."v" = CONCAT(\'new:\', NEW."v")',
      );
    } finally {
      await c2.end();
    }

    const events: MagebackupEvent[] = [];
    const r = await restoreDatabase({
      config: configFor(server, db),
      file,
      dropExtraTables: drop,
      onEvent: (e) => events.push(e),
    });
    assert.deepEqual(r.extraObjects, []);
    assert.equal(
      events.find((e) => e.type === 'warning' && e.code === 'EXTRA_OBJECTS'),
      undefined,
      'no EXTRA_OBJECTS warning',
    );
    assert.deepEqual(diffDatabases(backup, await describeDatabase(conn, db)), []);
    const [row] = await queryRows(conn, `SELECT \`${db}\`.f_ansi('x') AS v`);
    assert.equal(row?.v, 'old:x');
  });
}
