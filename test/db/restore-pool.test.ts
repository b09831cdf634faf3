// The loader's connections: one table's plain INSERTs shared by two connections, and the order that must stay
// (the table's DDL before them, its other statements after them), against the real server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, startMariaDB, type TestServer } from '../../fixtures/mariadb.js';
import { openLoaderConnection, queryRaw } from '../../src/db/restore-connect.js';
import { LoaderPool } from '../../src/db/restore-pool.js';
import { restoreDatabase } from '../../src/db/restore.js';
import { configFor, queryRows } from './restore-helpers.js';

let server: TestServer;
let conn: Connection;
let dir: string;

void before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mbk-pool-'));
});

void after(async () => {
  await conn?.end();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

const item = (sql: string, o: { ddl?: boolean | 'build' | 'own'; reorderable?: boolean } = {}) => ({
  raw: Buffer.from(sql, 'latin1'),
  line: 1,
  table: 't',
  ...o,
});

void test("a table's reorderable INSERTs run on two connections, after its DDL and before its next statement", async () => {
  const db = await server.createDatabase('pool');
  const conns = await Promise.all([0, 1, 2].map(() => openLoaderConnection(configFor(server, db), db)));
  await conn.query(`CREATE TABLE \`${db}\`.marker (n INT)`);
  const pool = new LoaderPool(conns);
  try {
    pool.dispatchTable(
      item('CREATE TABLE t (id INT PRIMARY KEY, conn BIGINT, seen INT) ENGINE=InnoDB', { ddl: true }),
    );
    for (let i = 1; i <= 60; i++) {
      // CONNECTION_ID(): which connection ran it; seen: whether the table's next statement had run before it
      pool.dispatchTable(
        item(`INSERT INTO t VALUES (${i}, CONNECTION_ID(), (SELECT COUNT(*) FROM marker))`, {
          reorderable: true,
        }),
      );
    }
    // the table's next statement (routed as one of t's): it must see all 60 rows
    pool.dispatchTable(item('INSERT INTO marker SELECT COUNT(*) FROM t'));
    pool.dispatchTable(item('ALTER TABLE t ADD COLUMN late INT', { ddl: true }));
    pool.dispatchTable(item('INSERT INTO t VALUES (2000, CONNECTION_ID(), 0, 1)', { reorderable: true }));
    await pool.drain();
  } finally {
    await pool.close();
    for (const c of conns) await c.end();
  }
  const rows = await queryRows(conn, `SELECT id, conn, seen FROM \`${db}\`.t ORDER BY id`);
  assert.equal(rows.length, 61);
  const inserts = rows.filter((r) => Number(r.id) <= 60);
  assert.equal(new Set(inserts.map((r) => String(r.conn))).size, 2, 'the INSERTs went to two connections');
  assert.ok(
    inserts.every((r) => Number(r.seen) === 0),
    'no INSERT ran after the statement that follows them',
  );
  const marker = await queryRows(conn, `SELECT n FROM \`${db}\`.marker`);
  assert.deepEqual(
    marker.map((r) => Number(r.n)),
    [60],
  );
  await conn.query(`DROP DATABASE \`${db}\``);
});

void test('a table that comes while both connections still load the one before it shares its INSERTs too', async () => {
  // the dump's last table behind its biggest: neither connection is idle when its rows come, and on one
  // connection it ran alone at the end while the other one waited (titles after salaries, the narrow bench)
  const db = await server.createDatabase('poolnext');
  const conns = await Promise.all([0, 1].map(() => openLoaderConnection(configFor(server, db), db)));
  await conn.query(`CREATE TABLE \`${db}\`.marker (n INT)`);
  const pool = new LoaderPool(conns);
  try {
    for (const t of ['a', 'b']) {
      const on = { table: t };
      pool.dispatchTable({
        ...item(`CREATE TABLE ${t} (id INT PRIMARY KEY, conn BIGINT, seen INT) ENGINE=InnoDB`, {
          ddl: 'own',
        }),
        ...on,
      });
      for (let i = 1; i <= 40; i++) {
        pool.dispatchTable({
          ...item(`INSERT INTO ${t} VALUES (${i}, CONNECTION_ID(), (SELECT COUNT(*) FROM marker))`, {
            reorderable: true,
          }),
          ...on,
        });
      }
    }
    // b's next statement: after all of b's rows
    pool.dispatchTable({ ...item('INSERT INTO marker SELECT COUNT(*) FROM b'), table: 'b' });
    await pool.drain();
  } finally {
    await pool.close();
    for (const c of conns) await c.end();
  }
  for (const t of ['a', 'b']) {
    const rows = await queryRows(conn, `SELECT id, conn, seen FROM \`${db}\`.${t} ORDER BY id`);
    assert.equal(rows.length, 40);
    assert.equal(new Set(rows.map((r) => String(r.conn))).size, 2, `${t}'s INSERTs went to two connections`);
    assert.ok(
      rows.every((r) => Number(r.seen) === 0),
      'no INSERT ran after the statement that follows them',
    );
  }
  const marker = await queryRows(conn, `SELECT n FROM \`${db}\`.marker`);
  assert.deepEqual(
    marker.map((r) => Number(r.n)),
    [40],
  );
  await conn.query(`DROP DATABASE \`${db}\``);
});

void test("a table's key build runs beside the next table's own DDL; DDL that may reach it waits for it", async () => {
  const db = await server.createDatabase('poolbuild');
  const conns = await Promise.all([0, 1].map(() => openLoaderConnection(configFor(server, db), db)));
  const pool = new LoaderPool(conns);
  const order: string[] = [];
  let ownRan!: () => void;
  const own = new Promise<void>((r) => (ownRan = r));
  const timeout = (what: string) =>
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${what} waited for ever`)), 20_000).unref(),
    );
  try {
    pool.dispatchTable(item('CREATE TABLE a (id INT PRIMARY KEY) ENGINE=InnoDB', { ddl: true }));
    // the build of a's keys ends only once b's CREATE TABLE ran: it would never end if that waited for it
    pool.dispatchTable({
      ...item('(build of a)', { ddl: true }),
      table: 'a',
      ddl: 'build',
      run: async () => {
        await Promise.race([own, timeout("b's CREATE TABLE")]);
        order.push('build a');
      },
    });
    pool.dispatchTable({
      ...item('CREATE TABLE b (id INT PRIMARY KEY, a INT, FOREIGN KEY (a) REFERENCES a (id)) ENGINE=InnoDB'),
      table: 'b',
      ddl: 'own',
      run: async (c) => {
        await c.query(
          'CREATE TABLE b (id INT PRIMARY KEY, a INT, FOREIGN KEY (a) REFERENCES a (id)) ENGINE=InnoDB',
        );
        order.push('create b');
        ownRan();
      },
    });
    pool.dispatchTable({
      ...item('ALTER TABLE b ADD COLUMN c INT'),
      table: 'b',
      ddl: true,
      run: async (c) => {
        await c.query('ALTER TABLE b ADD COLUMN c INT');
        order.push('alter b');
      },
    });
    await Promise.race([pool.drain(), timeout('the pool')]);
  } finally {
    await pool.close();
    for (const c of conns) await c.end();
  }
  assert.deepEqual(order, ['create b', 'build a', 'alter b']);
  await conn.query(`DROP DATABASE \`${db}\``);
});

void test('a failed INSERT on the second connection stops the pool; nothing waits for ever', async () => {
  const db = await server.createDatabase('poolfail');
  const conns = await Promise.all([0, 1].map(() => openLoaderConnection(configFor(server, db), db)));
  const pool = new LoaderPool(conns);
  try {
    pool.dispatchTable(item('CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB', { ddl: true }));
    for (let i = 1; i <= 20; i++)
      pool.dispatchTable(item(`INSERT INTO t VALUES (${i === 7 ? 3 : i})`, { reorderable: true }));
    pool.dispatchTable(item('ALTER TABLE t ADD COLUMN late INT', { ddl: true }));
    await assert.rejects(pool.drain(), (err: Error) => {
      assert.match(String((err as { cause?: { message?: string } }).cause?.message), /Duplicate entry '3'/);
      return true;
    });
  } finally {
    await pool.close();
    for (const c of conns) c.destroy();
  }
  await conn.query(`DROP DATABASE \`${db}\``);
});

void test('the server killed while both connections run a statement: the pool stops at once', async () => {
  // One connection sees the loss first; the loader then destroys every connection, and a statement in flight on
  // a destroyed one never settles (mysql2 drops its callback once the connection is closing). close() waited
  // for it for ever: a rollback whose server died mid-load ended in "stopped making progress", leaving its lock
  // and the maintenance flag (found by hand).
  const own = await startMariaDB();
  try {
    const db = await own.createDatabase('poolgone');
    const conns = await Promise.all([0, 1].map(() => openLoaderConnection(configFor(own, db), db)));
    for (const c of conns) c.on('error', () => {});
    const pool = new LoaderPool(conns);
    pool.dispatchTable({ ...item('SELECT SLEEP(60)'), table: 'a' });
    pool.dispatchTable({ ...item('SELECT SLEEP(60)'), table: 'b' });
    const serverPid = Number(readFileSync(path.join(path.dirname(own.socketPath), 'mysqld.pid'), 'utf8'));
    const drained = pool.drain();
    await new Promise((r) => setTimeout(r, 500));
    process.kill(serverPid, 'SIGKILL');
    await assert.rejects(drained, /statement failed/);
    for (const c of conns) c.destroy();
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      pool.close().then(() => 'closed'),
      new Promise<string>((r) => (timer = setTimeout(() => r('still waiting after 30 s'), 30_000))),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, 'closed');
  } finally {
    await own.stop();
  }
});

/** A dump whose table `big` has many plain INSERTs, then statements whose effect depends on running after them. */
function bigDump(o: { autocommit: boolean }): string {
  const lines = [
    '-- a hand-made dump',
    '/*!40101 SET NAMES utf8mb4 */;',
    ...(o.autocommit ? [] : ['SET autocommit=0;']),
    'CREATE TABLE `big` (`id` int NOT NULL, `v` varchar(20) DEFAULT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;',
    '/*!40000 ALTER TABLE `big` DISABLE KEYS */;',
  ];
  for (let s = 0; s < 80; s++) {
    const rows = [];
    for (let r = 1; r <= 25; r++) rows.push(`(${s * 25 + r},'v${s * 25 + r}')`);
    lines.push(`INSERT INTO \`big\` VALUES ${rows.join(',')};`);
  }
  lines.push(
    "REPLACE INTO `big` VALUES (1,'replaced');",
    "INSERT IGNORE INTO `big` VALUES (2,'ignored'),(5000,'new');",
    "INSERT INTO `big` (`id`, `v`) VALUES (5001,'columns');",
    '/*!40000 ALTER TABLE `big` ENABLE KEYS */;',
    'CREATE TABLE `other` (`id` int NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;',
    'INSERT INTO `other` VALUES (1),(2),(3);',
    ...(o.autocommit ? [] : ['COMMIT;']),
    'DELIMITER ;;',
    'CREATE TRIGGER `big_ai` AFTER INSERT ON `big` FOR EACH ROW INSERT INTO `other` VALUES (NEW.id + 100000) ;;',
    'DELIMITER ;',
    '-- Dump completed on 2026-12-02  5:00:00',
    '',
  );
  return lines.join('\n');
}

for (const autocommit of [true, false]) {
  void test(`a rollback with one table's INSERTs shared loads exactly what the dump says (autocommit ${autocommit ? 'on' : 'off'})`, async () => {
    const live = await server.createDatabase('poolload');
    const file = path.join(dir, `big-${autocommit}.sql`);
    await fsp.writeFile(file, bigDump({ autocommit }));
    await restoreDatabase({ config: configFor(server, live), file, concurrency: 4 });
    const rows = await queryRows(conn, `SELECT id, v FROM \`${live}\`.big ORDER BY id`);
    assert.equal(rows.length, 2002);
    assert.deepEqual(rows[0], { id: 1, v: 'replaced' });
    assert.deepEqual(rows[1], { id: 2, v: 'v2' });
    assert.deepEqual(rows.slice(-2), [
      { id: 5000, v: 'new' },
      { id: 5001, v: 'columns' },
    ]);
    // the trigger is created after the rows: it fired for none of them
    const other = await queryRows(conn, `SELECT id FROM \`${live}\`.other ORDER BY id`);
    assert.deepEqual(
      other.map((r) => Number(r.id)),
      [1, 2, 3],
    );
    const trg = await queryRows(
      conn,
      'SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?',
      [live],
    );
    assert.deepEqual(
      trg.map((r) => String(r.n)),
      ['big_ai'],
    );
    await conn.query(`DROP DATABASE \`${live}\``);
  });
}

void test('a loader connection sends a statement as its bytes, also across the 16 MiB packet boundary', async () => {
  const db = await server.createDatabase('rawq');
  const c = await openLoaderConnection(configFor(server, db), db);
  try {
    const head = Buffer.from("SELECT MD5(_binary'", 'latin1');
    const tail = Buffer.from("') AS m", 'latin1');
    // payload = COM_QUERY byte + statement: one short of, exactly, and one over 16 MiB - 1; then 2 packets + 1
    for (const payload of [0xfffffe, 0xffffff, 0x1000000, 0xffffff * 2 + 5]) {
      const fill = Buffer.alloc(payload - 1 - head.length - tail.length);
      for (let i = 0; i < fill.length; i++) fill[i] = 0x41 + ((i * 7) % 26);
      fill[0] = 0xe9; // a non-ASCII byte: sent as it is (the dump's bytes, never re-encoded)
      const want = createHash('md5').update(fill).digest('hex');
      // as one buffer, and as parts cut at odd places (a redirected statement's pieces)
      for (const raw of [
        Buffer.concat([head, fill, tail]),
        [head, fill.subarray(0, 3), fill.subarray(3), tail],
      ]) {
        const [rows] = (await queryRaw(c, raw)) as [{ m: string }[]];
        assert.equal(rows[0]?.m, want, `payload ${payload}`);
      }
    }
    // the connection is in step afterwards: a failing statement reports its error, the next one runs
    await assert.rejects(queryRaw(c, Buffer.from('SELECT * FROM no_such_table')), /no_such_table/);
    const [rows] = (await queryRaw(c, Buffer.from('SELECT 1 AS one'))) as [{ one: number }[]];
    assert.equal(rows[0]?.one, 1);
  } finally {
    await c.end();
    await conn.query(`DROP DATABASE \`${db}\``);
  }
});
