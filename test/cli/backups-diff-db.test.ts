// backups:diff, the database side, through the CLI: tables whose rows or schema differ (with row counts), missing
// and extra tables, views/triggers/routines/events missing, extra or changed; the rollback's summary counts the
// tables; after the rollback the diff shows nothing left but the tables that are always restored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { getTestServer } from '../../fixtures/mariadb.js';
import { createZoo } from '../../fixtures/db-zoo.js';
import { generateStore } from '../../fixtures/store.js';
import type { DbDiff } from '../../src/restore/db-diff.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { magentoUser, type MagentoUser } from '../helpers/db-users.js';

void test('backups:diff lists the database changes of each kind, and none after the rollback', async () => {
  const server = await getTestServer();
  const db = await server.createDatabase('diffdb');
  const conn = await server.connect(db);
  try {
    await createZoo(conn, { bigRows: 500, bigBlobBytes: 5000 });
    const root = path.join(tempDir('mbk-diffdb-'), 'store');
    await generateStore({
      dir: root,
      size: 'tiny',
      db: { host: server.host, port: server.port, user: server.user, password: server.password, dbname: db },
    });
    const made = await runCli(['setup:backup', '--db', '--root', root, '--json']);
    assert.equal(made.code, 0, made.stderr);

    const diff = async (): Promise<DbDiff> => {
      const r = await runCli(['backups:diff', '--root', root, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { db?: DbDiff };
      assert.ok(out.db, 'a db part');
      return out.db;
    };
    const always = (await diff()).tables;
    assert.ok(
      always.every((t) => t.change === 'unhashed'),
      JSON.stringify(always),
    );
    assert.ok(always.some((t) => t.name === 'zoo_nopk'));

    await conn.query('UPDATE zoo_big SET payload = REVERSE(payload) WHERE id = 9');
    await conn.query('ALTER TABLE zoo_orders ADD COLUMN later INT NULL');
    await conn.query('DELETE FROM zoo_json WHERE id = 1');
    await conn.query('DROP TABLE zoo_empty');
    await conn.query('CREATE TABLE zoo_later (id INT PRIMARY KEY)');
    await conn.query('DROP TRIGGER zoo_basic_bu');
    await conn.query('CREATE TRIGGER zoo_basic_bu BEFORE UPDATE ON zoo_basic FOR EACH ROW SET NEW.note = 1');
    await conn.query('CREATE VIEW v_later AS SELECT 1 AS one');
    await conn.query('DROP FUNCTION zoo_func');

    const d = await diff();
    const by = Object.fromEntries(d.tables.map((t) => [t.name, t]));
    assert.equal(by.zoo_big?.change, 'rows');
    assert.equal(by.zoo_big?.liveRows, by.zoo_big?.backupRows, 'same row count, other rows');
    assert.equal(by.zoo_orders?.change, 'schema');
    assert.equal(by.zoo_json?.change, 'rows');
    assert.equal((by.zoo_json?.backupRows ?? 0) - 1, by.zoo_json?.liveRows);
    assert.equal(by.zoo_empty?.change, 'missing');
    assert.deepEqual(d.extraTables, ['zoo_later']);
    assert.deepEqual(d.definitions.map((x) => `${x.change} ${x.object} ${x.name}`).sort(), [
      'changed trigger zoo_basic_bu',
      'extra view v_later',
      'missing function zoo_func',
    ]);
    assert.equal(d.tables.length, always.length + 4);

    const plain = await runCli(['backups:diff', '--root', root]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(
      plain.stdout,
      /^db since \d+_db\.sql: 2 with other rows, 1 with another schema, 1 missing, 1 extra, /m,
    );
    assert.match(plain.stdout, /^ {2}M table zoo_big: rows differ \(backup \d+ rows, live \d+\)$/m);
    assert.match(plain.stdout, /^ {2}S table zoo_orders: schema differs/m);
    assert.match(plain.stdout, /^ {2}- table zoo_empty: missing live/m);
    assert.match(plain.stdout, /^ {2}\+ table zoo_later: not in the backup/m);
    assert.match(plain.stdout, /^ {2}M trigger zoo_basic_bu: changed$/m);
    assert.match(plain.stdout, /^ {2}- function zoo_func: missing$/m);

    const file = JSON.parse(made.stdout.trim().split('\n').pop()!) as { parts: Array<{ file: string }> };
    const rb = await runCli([
      'setup:rollback',
      '-d',
      file.parts[0]!.file,
      '--yes',
      '--drop-extra-tables',
      '--root',
      root,
    ]);
    assert.equal(rb.code, 0, rb.stderr);
    assert.match(
      rb.stderr,
      new RegExp(`Rolling back db from .*: ${always.length + 4} of \\d+ tables will be restored`),
    );
    const after = await diff();
    assert.deepEqual(after.tables, always);
    assert.deepEqual(after.extraTables, []);
    assert.deepEqual(after.definitions, []);
  } finally {
    await conn.end();
  }
});

void test('backups:diff as the Magento user (ALL ON <db>.* only): a routine whose body it may not see is listed as hidden, not as changed', async () => {
  const server = await getTestServer();
  const db = await server.createDatabase('diffhid');
  const conn = await server.connect(db);
  let mage: MagentoUser | undefined;
  try {
    await conn.query('CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))');
    await conn.query("INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    // defined by root: its body is root's to read
    await conn.query('CREATE FUNCTION f_root() RETURNS INT DETERMINISTIC RETURN 42');
    mage = await magentoUser(conn, db);
    const root = path.join(tempDir('mbk-diffhid-'), 'store');
    await generateStore({
      dir: root,
      size: 'tiny',
      db: { host: server.host, port: server.port, user: server.user, password: server.password, dbname: db },
    });
    // the backup as root (the Magento user could not dump a body it can not read)
    const made = await runCli(['setup:backup', '--db', '--root', root, '--json']);
    assert.equal(made.code, 0, made.stderr);
    await conn.query("UPDATE t SET v = 'c' WHERE id = 2");

    const asUser = ['--root', root, '--db-user', mage.user];
    const env = { MAGEBACKUP_DB_PASSWORD: mage.password };
    const json = await runCli(['backups:diff', ...asUser, '--json'], { env: { ...process.env, ...env } });
    assert.equal(json.code, 0, json.stderr);
    const d = (JSON.parse(json.stdout) as { db: DbDiff }).db;
    assert.deepEqual(
      d.tables.map((t) => `${t.change} ${t.name}`),
      ['rows t'],
    );
    assert.deepEqual(
      d.definitions.map((x) => `${x.change} ${x.object} ${x.name}`),
      ['unreadable function f_root'],
    );
    const plain = await runCli(['backups:diff', ...asUser], { env: { ...process.env, ...env } });
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(
      plain.stdout,
      /^ {2}\? function f_root: body hidden from this database user \(not its definer\)/m,
    );
    assert.doesNotMatch(plain.stdout, /f_root: changed/);
  } finally {
    await mage?.drop();
    await conn.end();
  }
});
