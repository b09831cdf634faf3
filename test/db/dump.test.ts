import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fsp, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import {
  createZoo,
  ZOO_EVENTS,
  ZOO_ROUTINES,
  ZOO_SEQUENCES,
  ZOO_TABLES,
  ZOO_TRIGGERS,
  ZOO_VIEWS,
} from '../../fixtures/db-zoo.js';
import { describeDatabase, diffDatabases, type DbSnapshot } from '../../fixtures/db-compare.js';
import { dumpDatabase, type DumpOptions, type DumpResult } from '../../src/db/dump.js';
import { stripDefiner } from '../../src/db/dump-sql.js';
import type { DbConnectionConfig } from '../../src/db/types.js';
import { CliError, InterruptedError } from '../../src/errors.js';
import type { MagebackupEvent } from '../../src/events.js';
import { writeAtomic } from '../../src/fs/atomic.js';
import { rootConfig, stockLoad } from '../../fixtures/db-clients.js';

let server: TestServer;
let conn: Connection;
let dir: string;
let zooDb: string;
let zooSnap: DbSnapshot;

before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mbk-dump-'));
  zooDb = await server.createDatabase('dumpzoo');
  await conn.query(`USE \`${zooDb}\``);
  await createZoo(conn);
  zooSnap = await describeDatabase(conn, zooDb, { history: true });
});

after(async () => {
  await conn?.end();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function cfg(database: string, extra: Partial<DbConnectionConfig> = {}): DbConnectionConfig {
  return rootConfig(server, database, extra);
}

let fileCounter = 0;
async function dump(
  database: string,
  o: Partial<DumpOptions> = {},
): Promise<{ file: string; result: DumpResult; events: MagebackupEvent[] }> {
  const file = path.join(dir, `dump-${++fileCounter}.sql${o.compress ? '.gz' : ''}`);
  const events: MagebackupEvent[] = [];
  const result = await writeAtomic(file, (outFile) =>
    dumpDatabase({ config: cfg(database), outFile, compress: false, onEvent: (e) => events.push(e), ...o }),
  );
  return { file, result, events };
}

/** `mariadb db < file` with the stock client; resolves to its stderr, rejects on a non-zero exit. */
async function loadStock(
  file: string,
  db: string,
  o: { gz?: boolean; user?: string; password?: string } = {},
): Promise<string> {
  const { code, stderr } = await stockLoad(server, file, db, [], o);
  if (code !== 0) throw new Error(`mariadb exited with ${code}: ${stderr}`);
  return stderr;
}

async function roundTrip(
  file: string,
  o: { gz?: boolean } = {},
): Promise<{ db: string; diffs: string[]; snap: DbSnapshot }> {
  const db = await server.createDatabase('dumpload');
  const stderr = await loadStock(file, db, o);
  assert.equal(stderr, '', 'the stock client loads the dump without a message');
  const snap = await describeDatabase(conn, db, { history: true });
  return { db, diffs: diffDatabases(zooSnap, snap), snap };
}

void test('zoo round trip: dump, load with the stock mariadb client, every object identical', async () => {
  const { file, result, events } = await dump(zooDb);
  const { diffs } = await roundTrip(file);
  assert.deepEqual(diffs, []);

  assert.equal(result.tables, ZOO_TABLES.length);
  assert.equal(result.views, ZOO_VIEWS.length);
  assert.equal(result.routines, ZOO_ROUTINES.length);
  assert.equal(result.triggers, ZOO_TRIGGERS.length);
  assert.equal(result.events, ZOO_EVENTS.length);
  assert.equal(result.sequences, ZOO_SEQUENCES.length);
  assert.deepEqual(result.strippedTables, []);
  // system-versioned tables: every row version is dumped
  const expectedRows = Object.values(zooSnap.tables).reduce(
    (n, t) => n + (t.history !== undefined ? Number(t.history.split(':')[0]) : t.rows),
    0,
  );
  assert.equal(result.rows, expectedRows);
  assert.match(result.serverVersion, /^\d+\.\d+/);

  const st = await fsp.stat(file);
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(result.bytes, st.size);
  const text = await fsp.readFile(file, 'utf8');
  assert.match(text.slice(-80), /\n-- Dump completed on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n$/);
  assert.ok(!text.includes(server.password), 'the password is not in the dump');
  assert.ok(!/DEFINER=/.test(text), 'definers are stripped by default');
  // triggers come after their table's data
  assert.ok(text.indexOf('INSERT INTO `zoo_orders`') < text.indexOf('zoo_orders_bi'));

  // progress: one or more events per table, part db, rows of the last one per table add up
  const last = new Map<string, number>();
  for (const e of events) {
    if (e.type === 'progress') {
      assert.equal(e.part, 'db');
      assert.equal(e.operation, 'backup');
      if (e.table !== undefined) last.set(e.table, e.rows ?? 0);
    }
  }
  assert.equal(
    [...last.values()].reduce((a, b) => a + b, 0),
    result.rows,
  );
});

void test('compressed dump: a valid gzip file that loads identically', async () => {
  const { file, result } = await dump(zooDb, { compress: true });
  const head = Buffer.alloc(2);
  const fh = await fsp.open(file, 'r');
  await fh.read(head, 0, 2, 0);
  await fh.close();
  assert.deepEqual([...head], [0x1f, 0x8b]);
  assert.ok(result.bytes > (await fsp.stat(file)).size, 'bytes counts the uncompressed SQL');
  const { diffs } = await roundTrip(file, { gz: true });
  assert.deepEqual(diffs, []);
});

void test('INSERT statements stay bounded; a row bigger than the bound gets a statement of its own', async () => {
  const bound = 64 * 1024;
  const { file } = await dump(zooDb, { maxStatementBytes: bound });
  // bytes, not UTF-8: binary values are written as raw bytes in _binary literals
  const text = await fsp.readFile(file, 'latin1');
  const bigInserts = text.split('\n').filter((l) => l.startsWith('INSERT INTO `zoo_big`'));
  assert.ok(bigInserts.length > 10, `zoo_big is split into many statements (${bigInserts.length})`);
  // the bound is checked on an estimate that does not count escape characters: allow a little
  for (const l of bigInserts) assert.ok(l.length <= bound * 1.02, `statement of ${l.length} bytes`);
  const blobInserts = text.split('\n').filter((l) => l.startsWith('INSERT INTO `zoo_blobs`'));
  assert.equal(blobInserts.length, 2, 'the 3 MB row and the small one are separate statements');
  const { diffs } = await roundTrip(file);
  assert.deepEqual(diffs, []);
});

void test('the slow row path (mysql2 row arrays) writes the same bytes as the fast one', async () => {
  const fast = await dump(zooDb);
  const slow = await dump(zooDb, { rowParser: 'mysql2' });
  const strip = (s: string): string => s.replace(/-- Dump completed on .*\n$/, '');
  assert.equal(strip(await fsp.readFile(slow.file, 'utf8')), strip(await fsp.readFile(fast.file, 'utf8')));
});

void test('strip: structure kept, data left out, groups and names; others untouched', async () => {
  const { file, result } = await dump(zooDb, { strip: ['@stripped', '@sales', 'zoo_big'] });
  assert.deepEqual(result.strippedTables, [
    'catalog_product_entity_cl',
    'log_url',
    'sales_order',
    'session',
    'zoo_big',
  ]);
  const { diffs, snap } = await roundTrip(file);
  for (const t of result.strippedTables) {
    assert.equal(snap.tables[t]?.rows, 0, t);
    assert.equal(
      snap.tables[t]?.create.replace(/ AUTO_INCREMENT=\d+/, ''),
      zooSnap.tables[t]?.create.replace(/ AUTO_INCREMENT=\d+/, ''),
    );
  }
  const unexpected = diffs.filter((d) => !result.strippedTables.some((t) => d.startsWith(`table ${t}:`)));
  assert.deepEqual(unexpected, []);
});

void test('strip with a table prefix: groups match prefixed names', async () => {
  const db = await server.createDatabase('dumpprefix');
  const c = await server.connect(db);
  try {
    await c.query('CREATE TABLE mg_session (id INT PRIMARY KEY)');
    await c.query('CREATE TABLE mg_sales_order (id INT PRIMARY KEY)');
    await c.query('CREATE TABLE mg_catalog_product_entity (id INT PRIMARY KEY)');
    for (const t of ['mg_session', 'mg_sales_order', 'mg_catalog_product_entity'])
      await c.query(`INSERT INTO ${t} VALUES (1), (2)`);
  } finally {
    await c.end();
  }
  const file = path.join(dir, 'prefix.sql');
  const result = await writeAtomic(file, (outFile) =>
    dumpDatabase({
      config: cfg(db, { tablePrefix: 'mg_' }),
      outFile,
      compress: false,
      strip: ['@sessions', '@sales'],
    }),
  );
  assert.deepEqual(result.strippedTables, ['mg_sales_order', 'mg_session']);
  assert.equal(result.rows, 2);
});

void test('without stripped definers the dump keeps them; with them a user without SUPER loads it', async () => {
  const kept = await dump(zooDb, { stripDefiners: false });
  assert.match(await fsp.readFile(kept.file, 'utf8'), /DEFINER=`root`@/);

  const { file } = await dump(zooDb);
  const db = await server.createDatabase('dumpnosuper');
  const user = `loader_${process.pid}`;
  const password = 'loaderPw1';
  await conn.query(`CREATE USER IF NOT EXISTS '${user}'@'%' IDENTIFIED BY '${password}'`);
  await conn.query(`GRANT ALL PRIVILEGES ON \`${db}\`.* TO '${user}'@'%'`);
  try {
    assert.equal(await loadStock(file, db, { user, password }), '');
    const snap = await describeDatabase(conn, db, { history: true });
    assert.deepEqual(diffDatabases(zooSnap, snap), []);
  } finally {
    await conn.query(`DROP USER IF EXISTS '${user}'@'%'`);
  }
});

void test('stripDefiner handles the quoting forms', () => {
  assert.equal(
    stripDefiner('CREATE ALGORITHM=UNDEFINED DEFINER=`ro``ot`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1'),
    'CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1',
  );
  assert.equal(
    stripDefiner("CREATE DEFINER='u'@'localhost' PROCEDURE p() SELECT 'DEFINER=x'"),
    "CREATE PROCEDURE p() SELECT 'DEFINER=x'",
  );
  assert.equal(
    stripDefiner('CREATE DEFINER=`u`@`h` TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a=1'),
    'CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a=1',
  );
  assert.equal(stripDefiner('CREATE PROCEDURE p() SELECT 1'), 'CREATE PROCEDURE p() SELECT 1');
});

void test("consistency: a commit between the dump's first and its later tables is not in the dump", async () => {
  const db = await server.createDatabase('dumpconsistent');
  const setup = await server.connect(db);
  const BATCH = 20;
  const batchSql = (k: number): string[] => [
    'START TRANSACTION',
    `INSERT INTO c_log (batch, v) SELECT ${k}, seq FROM seq_1_to_${BATCH}`,
    `UPDATE d_counter SET last_batch = ${k} WHERE id = 1`,
    'COMMIT',
  ];
  try {
    await setup.query('CREATE TABLE a_first (id INT PRIMARY KEY) ENGINE=InnoDB');
    await setup.query('INSERT INTO a_first VALUES (1), (2), (3)');
    await setup.query(
      'CREATE TABLE c_log (id INT AUTO_INCREMENT PRIMARY KEY, batch INT NOT NULL, v INT NOT NULL) ENGINE=InnoDB',
    );
    await setup.query('CREATE TABLE d_counter (id INT PRIMARY KEY, last_batch INT NOT NULL) ENGINE=InnoDB');
    await setup.query('INSERT INTO d_counter VALUES (1, 0)');
    for (const k of [1, 2, 3]) for (const sql of batchSql(k)) await setup.query(sql);
  } finally {
    await setup.end();
  }

  // Batch 4 is committed by another client once the dump has read its first table and before it reads c_log
  // and d_counter: the dump is held right there (the client runs synchronously inside the progress event), so
  // a dump that is not one consistent snapshot from its start reads batch 4 in both later tables.
  const { args, env } = server.clientArgs();
  const order: string[] = [];
  const { file } = await dump(db, {
    onEvent: (e) => {
      if (e.type !== 'progress' || e.rows !== 0 || !e.table) return;
      order.push(e.table);
      if (e.table !== 'c_log') return;
      const r = spawnSync('mariadb', [...args, db, '-e', batchSql(4).join(';\n')], {
        env,
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      order.push('commit 4');
    },
  });
  assert.deepEqual(order, ['a_first', 'c_log', 'commit 4', 'd_counter'], 'batch 4 committed mid-dump');

  const live = await server.connect(db);
  try {
    const [ctr] = await live.query('SELECT last_batch FROM d_counter');
    assert.equal(Number((ctr as { last_batch: number }[])[0]!.last_batch), 4, 'batch 4 is committed');
  } finally {
    await live.end();
  }
  const loaded = await server.createDatabase('dumpconsistent_load');
  await loadStock(file, loaded);
  const check = await server.connect(loaded);
  try {
    const [batches] = await check.query(
      'SELECT batch, COUNT(*) AS n FROM c_log GROUP BY batch ORDER BY batch',
    );
    assert.deepEqual(
      (batches as { batch: number; n: number }[]).map((r) => [Number(r.batch), Number(r.n)]),
      [
        [1, BATCH],
        [2, BATCH],
        [3, BATCH],
      ],
      'the batches committed before the dump, complete; not the one committed during it',
    );
    const [ctr] = await check.query('SELECT last_batch FROM d_counter');
    assert.equal(
      Number((ctr as { last_batch: number }[])[0]!.last_batch),
      3,
      'both tables from the same moment',
    );
  } finally {
    await check.end();
  }
});

void test('abort: InterruptedError, and a signal already fired stops before connecting', async () => {
  // Aborted at two known points of the dump of zoo_big: before its rows are read (between tables), and once the
  // first of its several INSERT statements is written (its rows streaming). Either way: no file, no partial.
  const points: Array<[string, (e: MagebackupEvent) => boolean, (buf: Buffer) => boolean]> = [
    ['before the rows', (e) => e.type === 'progress' && e.table === 'zoo_big' && e.rows === 0, () => false],
    ['while the rows stream', () => false, (buf) => buf.includes('INSERT INTO `zoo_big`')],
  ];
  for (const [when, onEvent, onWritten] of points) {
    const ac = new AbortController();
    const file = path.join(dir, 'aborted.sql');
    await assert.rejects(
      writeAtomic(file, (outFile) =>
        dumpDatabase({
          config: cfg(zooDb),
          outFile,
          compress: false,
          signal: ac.signal,
          onEvent: (e) => {
            if (onEvent(e)) ac.abort('SIGINT');
          },
          onWritten: (buf) => {
            if (onWritten(buf)) ac.abort('SIGINT');
          },
        }),
      ),
      (e: unknown) => e instanceof InterruptedError,
      when,
    );
    assert.ok(ac.signal.aborted, `${when}: the abort point was reached`);
    await assert.rejects(fsp.stat(file), `${when}: no dump file`);
    await assert.rejects(fsp.stat(file + '.partial'), `${when}: no partial file`);
  }

  const fired = new AbortController();
  fired.abort('SIGTERM');
  await assert.rejects(
    dumpDatabase({
      config: cfg(zooDb),
      outFile: path.join(dir, 'never.sql'),
      compress: false,
      signal: fired.signal,
    }),
    (e: unknown) => e instanceof InterruptedError,
  );
});

void test('an unknown database is one clear line', async () => {
  await assert.rejects(
    dumpDatabase({ config: cfg('no_such_database_here'), outFile: path.join(dir, 'x.sql'), compress: false }),
    (e: unknown) => e instanceof CliError && /Unknown database 'no_such_database_here'/.test(e.message),
  );
});

void test('a view over a dropped table: a warning, the dump still loads', async () => {
  const db = await server.createDatabase('dumpinvalidview');
  const c = await server.connect(db);
  try {
    await c.query('CREATE TABLE t (a INT)');
    await c.query('CREATE TABLE gone (b INT)');
    await c.query('CREATE VIEW v_ok AS SELECT a FROM t');
    await c.query('CREATE VIEW v_bad AS SELECT b FROM gone');
    await c.query('DROP TABLE gone');
  } finally {
    await c.end();
  }
  const { file, events } = await dump(db);
  const warnings = events.filter((e) => e.type === 'warning');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.type === 'warning' ? warnings[0]!.message : '', /v_bad/);
  const loaded = await server.createDatabase('dumpinvalidview_load');
  assert.equal(await loadStock(file, loaded), '');
  const snap = await describeDatabase(conn, loaded);
  assert.deepEqual(Object.keys(snap.views), ['v_ok']);
});
