import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, startMariaDB, type TestServer } from '../../fixtures/mariadb.js';
import { createZoo } from '../../fixtures/db-zoo.js';
import { CliError } from '../../src/errors.js';
import { compareLiveDatabase, type LiveComparison } from '../../src/db/delta.js';
import { normaliseCreate, parseContentHashes, type DbContentHashes } from '../../src/db/table-hash.js';
import { dumpConfig, dumpTo } from './dump-helpers.js';

let server: TestServer;
let dir: string;

before(async () => {
  server = await getTestServer();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mbk-table-hash-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function zooDb(prefix: string): Promise<{ db: string; conn: Connection }> {
  const db = await server.createDatabase(prefix);
  const conn = await server.connect(db);
  await createZoo(conn, { bigRows: 3000, bigBlobBytes: 200_000 });
  return { db, conn };
}

async function hashesOf(db: string, maxStatementBytes?: number): Promise<DbContentHashes> {
  const { result } = await dumpTo(server, dir, db, maxStatementBytes ? { maxStatementBytes } : {});
  assert.ok(result.content, 'the dump reports its content hashes');
  return result.content;
}

function states(c: LiveComparison): Record<string, string> {
  return Object.fromEntries(c.tables.map((t) => [t.name, t.state]));
}

function changed(c: LiveComparison): string[] {
  return c.tables.filter((t) => t.state !== 'equal' && t.state !== 'unhashed').map((t) => t.name);
}

void test('unit: AUTO_INCREMENT is taken out of the table options only', () => {
  const create = Buffer.from(
    "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=42 DEFAULT CHARSET=latin1 COMMENT='x AUTO_INCREMENT=7'",
  );
  const n = normaliseCreate(create);
  assert.equal(n.autoIncrement, '42');
  assert.equal(
    n.schema.toString(),
    "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=latin1 COMMENT='x AUTO_INCREMENT=7'",
  );
  const none = Buffer.from("CREATE TABLE `t` (\n  `a` int\n) ENGINE=InnoDB COMMENT=' AUTO_INCREMENT=5'");
  assert.equal(normaliseCreate(none).autoIncrement, undefined);
  assert.equal(normaliseCreate(none).schema.toString(), none.toString());
});

void test('unit: content hashes that are absent, of another version or malformed are not used', () => {
  assert.equal(parseContentHashes(undefined), null);
  assert.equal(parseContentHashes({ version: 99, statementBytes: 1, tables: [], definitions: [] }), null);
  assert.equal(
    parseContentHashes({
      version: 1,
      statementBytes: 1,
      tables: [{ name: 't', schema: 'zz', count: 1 }],
      definitions: [],
    }),
    null,
  );
  const ok = { version: 1, statementBytes: 100, tables: [], definitions: [] };
  assert.deepEqual(parseContentHashes(ok), ok);
});

void test('every table of the zoo hashes live exactly as dumped; keyless and row-less tables are left unhashed', async () => {
  const { db, conn } = await zooDb('th_equal');
  try {
    for (const stmt of [undefined, 700]) {
      const backup = await hashesOf(db, stmt);
      const cmp = await compareLiveDatabase({ config: dumpConfig(server, db), backup, counts: true });
      assert.deepEqual(changed(cmp), [], `statement bytes ${String(stmt)}`);
      assert.deepEqual(cmp.extraTables, []);
      assert.deepEqual(cmp.definitions, []);
      const s = states(cmp);
      assert.equal(s.zoo_nopk, 'unhashed');
      assert.equal(s.zoo_basic, 'equal');
      assert.equal(s.zoo_big, 'equal');
      for (const t of cmp.tables) assert.equal(t.liveRows, t.backupRows, t.name);
    }
  } finally {
    await conn.end();
  }
});

void test('a change of rows without a change of row count, a column, a trigger, a dropped and an extra table are told apart', async () => {
  const { db, conn } = await zooDb('th_changes');
  try {
    const backup = await hashesOf(db);
    await conn.query("UPDATE zoo_big SET payload = CONCAT(payload, 'x') WHERE id = 7");
    await conn.query('ALTER TABLE zoo_orders ADD COLUMN extra INT NULL');
    await conn.query('DROP TRIGGER zoo_basic_bu');
    await conn.query(
      'CREATE TRIGGER zoo_basic_bu BEFORE UPDATE ON zoo_basic FOR EACH ROW SET NEW.note = NEW.note',
    );
    await conn.query('DROP TABLE zoo_empty');
    await conn.query('CREATE TABLE zoo_new (id INT PRIMARY KEY)');
    await conn.query('CREATE VIEW v_new AS SELECT 1 AS one');
    await conn.query('DROP PROCEDURE zoo_proc_noargs');
    // the counter moves, the rows do not: the table is equal and its AUTO_INCREMENT is given back
    await conn.query('INSERT INTO zoo_autoinc VALUES ()');
    await conn.query('DELETE FROM zoo_autoinc ORDER BY id DESC LIMIT 1');
    const cmp = await compareLiveDatabase({ config: dumpConfig(server, db), backup, counts: true });
    const s = states(cmp);
    assert.equal(s.zoo_big, 'rows');
    const big = cmp.tables.find((t) => t.name === 'zoo_big')!;
    assert.equal(big.liveRows, big.backupRows);
    assert.equal(s.zoo_orders, 'schema');
    assert.equal(s.zoo_empty, 'missing');
    assert.deepEqual(changed(cmp).sort(), ['zoo_big', 'zoo_empty', 'zoo_orders']);
    assert.deepEqual(cmp.extraTables, ['zoo_new']);
    const ai = cmp.tables.find((t) => t.name === 'zoo_autoinc')!;
    assert.equal(ai.state, 'equal');
    assert.ok(
      ai.autoIncrement !== undefined,
      'the backup AUTO_INCREMENT is reported when the live one moved',
    );
    assert.deepEqual(cmp.definitions.map((d) => `${d.change} ${d.object} ${d.name}`).sort(), [
      'changed trigger zoo_basic_bu',
      'extra view v_new',
      'missing procedure zoo_proc_noargs',
    ]);
  } finally {
    await conn.end();
  }
});

void test('a comparison waiting on a locked table ends at once when aborted (a destroyed connection never answers)', async () => {
  const db = await server.createDatabase('th_abort');
  const conn = await server.connect(db);
  const locker = await server.connect(db);
  try {
    await conn.query('CREATE TABLE t (id INT PRIMARY KEY, v INT)');
    await conn.query('INSERT INTO t SELECT seq, seq FROM seq_1_to_100');
    const backup = await hashesOf(db);
    await locker.query('LOCK TABLES t WRITE');
    const ac = new AbortController();
    const comparing = compareLiveDatabase({
      config: dumpConfig(server, db),
      backup,
      signal: ac.signal,
      onTable: () => setTimeout(() => ac.abort('SIGINT'), 1000),
    });
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      comparing.then(
        () => 'resolved',
        (err: Error) => `${err.constructor.name}: ${err.message}`,
      ),
      new Promise<string>((r) => (timer = setTimeout(() => r('still waiting after 30 s'), 30_000))),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, 'InterruptedError: Interrupted by SIGINT');
  } finally {
    await locker.query('UNLOCK TABLES');
    await locker.end();
    await conn.query(`DROP DATABASE \`${db}\``);
    await conn.end();
  }
});

void test('the server killed mid-comparison: one line naming the database and the server', async () => {
  const own = await startMariaDB();
  try {
    const db = await own.createDatabase('th_gone');
    const conn = await own.connect(db);
    await conn.query('CREATE TABLE t (id INT PRIMARY KEY, v INT)');
    await conn.query('INSERT INTO t SELECT seq, seq FROM seq_1_to_100');
    await conn.end();
    const { result } = await dumpTo(own, dir, db);
    const serverPid = Number(readFileSync(path.join(path.dirname(own.socketPath), 'mysqld.pid'), 'utf8'));
    await assert.rejects(
      compareLiveDatabase({
        config: dumpConfig(own, db),
        backup: result.content!,
        onTable: () => process.kill(serverPid, 'SIGKILL'),
      }),
      (err: Error) => {
        assert.ok(err instanceof CliError, `${err.constructor.name}: ${err.message}`);
        assert.match(
          err.message,
          /^Comparing database `th_gone\w*` on 127\.0\.0\.1:\d+ with the backup failed: the connection to the server was lost/,
        );
        return true;
      },
    );
  } finally {
    await own.stop();
  }
});
