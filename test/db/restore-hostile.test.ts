/**
 * A dump is hostile input: nothing in it may touch a live table before the swap. Every statement kind the
 * loader could pass through is tried here against a live database that must come out exactly as it was,
 * with one line naming what was refused, and no table of the restore left behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { describeDatabase, diffDatabases } from '../../fixtures/db-compare.js';
import { dumpDatabase } from '../../src/db/dump.js';
import { restoreDatabase, RestoreError } from '../../src/db/restore.js';
import { classifyStatement, definitionTarget, triggerTable } from '../../src/db/restore-parse.js';
import { DEFAULT_LEXING, statementHead } from '../../src/db/sql-tokens.js';
import { shadowName } from '../../src/db/restore-journal.js';
import type { MagebackupEvent } from '../../src/events.js';
import { configFor, queryRows } from './restore-helpers.js';

let server: TestServer;
let conn: Connection;
let dir: string;
let other: string;

const qi = (n: string): string => '`' + n.replace(/`/g, '``') + '`';

before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mbk-rhostile-'));
  other = await server.createDatabase('rh_other');
  await conn.query(`CREATE TABLE ${qi(other)}.b (id INT PRIMARY KEY)`);
  await conn.query(`INSERT INTO ${qi(other)}.b VALUES (7)`);
});

after(async () => {
  await conn?.end();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

/** A live store database: table live_t (rows 1, 2), a function that deletes them, a partitioned table. */
async function newLive(): Promise<string> {
  const db = await server.createDatabase('rh_live');
  const c = await server.connect(db);
  try {
    await c.query('CREATE TABLE live_t (id INT PRIMARY KEY, v VARCHAR(10))');
    await c.query("INSERT INTO live_t VALUES (1, 'old'), (2, 'old')");
    await c.query('CREATE TABLE live_p (id INT PRIMARY KEY) PARTITION BY HASH (id) PARTITIONS 2');
    await c.query('INSERT INTO live_p VALUES (1), (2)');
    await c.query(
      'CREATE FUNCTION wipe() RETURNS INT MODIFIES SQL DATA BEGIN DELETE FROM live_t; RETURN 1; END',
    );
  } finally {
    await c.end();
  }
  return db;
}

let n = 0;
async function dumpFile(body: string): Promise<string> {
  const f = path.join(dir, `d${++n}.sql`);
  await fsp.writeFile(
    f,
    `/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET FOREIGN_KEY_CHECKS=0 */;\n${body}\n-- Dump completed on 2026-12-01  0:00:00\n`,
  );
  return f;
}

async function ownTables(db: string): Promise<string[]> {
  const r = await queryRows(
    conn,
    "SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE '\\_\\_mbk\\_%'",
    [db],
  );
  return r.map((x) => String(x.n));
}

/** Sessions other than ours still connected to `db` with a statement running (a restore's that it left behind). */
async function running(db: string): Promise<string[]> {
  const r = await queryRows(
    conn,
    "SELECT INFO AS i FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID() AND COMMAND NOT IN ('Sleep', 'Quit') AND INFO IS NOT NULL",
    [db],
  );
  return r.map((x) => String(x.i));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until session `id` is in a state matching `state`. */
async function waitState(id: number, state: RegExp): Promise<void> {
  for (;;) {
    const [r] = await queryRows(conn, 'SELECT STATE AS s FROM information_schema.PROCESSLIST WHERE ID = ?', [
      id,
    ]);
    if (state.test(String(r?.s ?? ''))) return;
    await sleep(20);
  }
}

const HOSTILE: { name: string; body: string; names?: RegExp }[] = [
  {
    name: 'CREATE TABLE wrapped in EXECUTE IMMEDIATE',
    body: "EXECUTE IMMEDIATE 'CREATE TABLE `fresh` (id INT)';\nEXECUTE IMMEDIATE 'DROP TABLE `live_t`';",
    names: /table fresh\b/,
  },
  {
    name: 'CREATE TABLE wrapped in EXECUTE IMMEDIATE as hex',
    body: `EXECUTE IMMEDIATE _utf8mb4 0x${Buffer.from('CREATE TABLE `fresh` (id INT)').toString('hex')};`,
    names: /table fresh\b/,
  },
  { name: 'DROP TABLE wrapped in EXECUTE IMMEDIATE', body: "EXECUTE IMMEDIATE 'DROP TABLE `live_t`';" },
  { name: 'DELETE wrapped in EXECUTE IMMEDIATE', body: "EXECUTE IMMEDIATE 'DELETE FROM live_t';" },
  { name: 'PREPARE/EXECUTE', body: "PREPARE s FROM 'DELETE FROM live_t';\nEXECUTE s;" },
  {
    name: 'CREATE TABLE … SELECT calling a function',
    body: 'CREATE TABLE `n` SELECT wipe() AS x;',
  },
  { name: 'CREATE TABLE … AS SELECT', body: 'CREATE TABLE `n` AS SELECT * FROM live_t;' },
  {
    name: 'ALTER TABLE … RENAME TO a live name',
    body: 'CREATE TABLE `n` (id INT);\nALTER TABLE `n` RENAME TO `fresh`;',
  },
  {
    name: 'ALTER TABLE … EXCHANGE PARTITION with a live table',
    body: 'CREATE TABLE `n` (id INT PRIMARY KEY);\nALTER TABLE `live_p` EXCHANGE PARTITION p0 WITH TABLE `n`;',
  },
  {
    name: 'DROP TABLE naming a table of another database',
    body: 'DROP TABLE IF EXISTS `a`, `OTHER`.`b`;',
    names: /\.b\b/,
  },
  {
    name: 'a table name the server reads outside a comment it skips',
    body: 'INSERT /*!999999 INTO `x` */ INTO `live_t` VALUES (3, 1);',
    names: /live_t/,
  },
  { name: 'SET STATEMENT … FOR', body: 'SET STATEMENT max_statement_time=0 FOR DELETE FROM live_t;' },
  { name: 'SET with a stored function', body: 'SET @a = wipe();' },
  { name: 'SET with a subquery', body: 'SET @a = (SELECT COUNT(*) FROM live_t);' },
  { name: 'SET GLOBAL', body: 'SET GLOBAL max_connections = 2;' },
  { name: 'SET sql_mode to an expression', body: "SET sql_mode = CONCAT('NO_BACKSLASH', '_ESCAPES');" },
  {
    name: 'CREATE TABLE … SELECT hidden in a string under NO_BACKSLASH_ESCAPES',
    body: "SET sql_mode = 'NO_BACKSLASH_ESCAPES';\nCREATE TABLE `n` (a VARCHAR(5) DEFAULT '\\', b INT) SELECT wipe() AS x -- '\n;",
  },
  {
    name: 'a live table named as an identifier under ANSI_QUOTES',
    body: 'SET sql_mode = \'ANSI_QUOTES\';\nINSERT INTO "live_t" VALUES (3, 1);',
  },
  {
    name: 'INSERT calling a stored function in its values',
    body: 'INSERT INTO `keep` VALUES (1), (wipe());',
    names: /line 5\b.*table keep\b.*wipe/,
  },
  {
    name: 'INSERT with a subquery in its values',
    body: 'INSERT INTO `keep` VALUES ((SELECT COUNT(*) FROM live_t));',
    names: /table keep\b.*SELECT/,
  },
  {
    name: 'INSERT … ON DUPLICATE KEY UPDATE calling a function',
    body: 'INSERT INTO `keep` VALUES (1) ON DUPLICATE KEY UPDATE id = VALUES(id) + wipe();',
    names: /table keep\b.*wipe/,
  },
  {
    name: 'INSERT calling a backquoted function through comments',
    body: "INSERT INTO `keep` VALUES ('wipe()' /* ( */, `wipe` /**/ ());",
    names: /table keep\b.*wipe/,
  },
  {
    name: 'INSERT calling a function inside an executable comment',
    body: 'INSERT INTO `keep` VALUES (/*!50000 wipe() */);',
    names: /table keep\b.*wipe/,
  },
  {
    name: 'INSERT calling a function after a string that ends early under NO_BACKSLASH_ESCAPES',
    body: "SET sql_mode = 'NO_BACKSLASH_ESCAPES';\nINSERT INTO `keep` VALUES ('\\', wipe()) -- '\n;",
    names: /table keep\b.*wipe/,
  },
  { name: 'INSERT … SELECT', body: 'INSERT INTO `keep` SELECT wipe();', names: /table keep\b/ },
  {
    name: 'INSERT … SET calling a function',
    body: 'INSERT INTO `keep` SET id = wipe();',
    names: /table keep\b/,
  },
  { name: 'SELECT calling a function', body: 'SELECT wipe();' },
  { name: 'DO calling a function', body: 'DO wipe();' },
];

for (const h of HOSTILE) {
  void test(`a dump with ${h.name} is refused before the live database is touched`, async () => {
    const live = await newLive();
    const before = await describeDatabase(conn, live);
    const otherBefore = await describeDatabase(conn, other);
    const body = h.body.replace(/OTHER/g, other.replace(/`/g, '``'));
    const file = await dumpFile(`CREATE TABLE \`keep\` (id INT);\nINSERT INTO \`keep\` VALUES (1);\n${body}`);
    const err = await restoreDatabase({ config: configFor(server, live), file }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof RestoreError, `refused: ${String(err)}`);
    assert.equal(err.live, 'unchanged');
    assert.ok(!err.message.includes('\n'), err.message);
    assert.match(err.message, /line \d+/);
    if (h.names) assert.match(err.message, h.names);
    assert.deepEqual(diffDatabases(before, await describeDatabase(conn, live)), []);
    assert.deepEqual(diffDatabases(otherBefore, await describeDatabase(conn, other)), []);
    // nothing of the restore still runs on the server: a statement it left there could create a table later
    assert.deepEqual(await running(live), []);
    assert.deepEqual(await ownTables(live), []);
    assert.deepEqual(err.leftovers, []);
    const [g] = await queryRows(conn, 'SELECT @@GLOBAL.max_connections AS m');
    assert.notEqual(Number(g?.m), 2);
  });
}

void test("a statement that fails while another connection's CREATE TABLE waits on the server leaves no shadow table behind", async () => {
  // The loader's CREATE TABLE of `slow` is held on the server (a RENAME to its shadow name holds that name's
  // metadata lock while it waits for a table locked here), and its INSERT into `b` (a shadow table made here,
  // locked too) is killed: the load fails while the CREATE is in flight. Under a loaded machine the same happens
  // when one connection's statement fails (restore-hostile's ANSI_QUOTES case: a table the server does not
  // know) before another's CREATE TABLE, already sent, has run: a clean-up that does not wait for it is followed
  // by a shadow table that nobody drops, and an error that says nothing was left.
  const live = await newLive();
  const block = await server.createDatabase('rh_zblock'); // sorts after rh_live: its lock is taken second
  await conn.query(`CREATE TABLE ${qi(block)}.x (id INT)`);
  const file = await dumpFile('CREATE TABLE `slow` (id INT);\nINSERT INTO `b` VALUES (1);');
  const holdX = await server.connect();
  const holdB = await server.connect();
  const renamer = await server.connect();
  let renamed: Promise<unknown> | undefined;
  let killed: Promise<void> | undefined;
  try {
    const onStep = async (step: string): Promise<void> => {
      if (step !== 'journal-created') return;
      const [j] = await queryRows(
        conn,
        "SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE '\\_\\_mbk\\_%\\_journal'",
        [live],
      );
      const id = /^__mbk_(.*)_journal$/.exec(String(j?.n))![1]!;
      await holdX.query(`LOCK TABLES ${qi(block)}.x WRITE`);
      renamed = renamer
        .query(`RENAME TABLE ${qi(block)}.x TO ${qi(live)}.${qi(shadowName(id, 'slow'))}`)
        .catch(() => {});
      await waitState(renamer.threadId, /metadata lock/);
      await holdB.query(`CREATE TABLE ${qi(live)}.${qi(shadowName(id, 'b'))} (id INT)`);
      await holdB.query(`LOCK TABLES ${qi(live)}.${qi(shadowName(id, 'b'))} WRITE`);
      killed = (async () => {
        // both loader statements wait on the server: the INSERT is made to fail, the CREATE stays in flight
        let ids: Record<string, number> = {};
        for (let i = 0; Object.keys(ids).length < 2; i++) {
          if (i > 3000) throw new Error('the loader statements were never seen waiting');
          await sleep(20);
          const r = await queryRows(
            conn,
            "SELECT ID AS id, INFO AS i FROM information_schema.PROCESSLIST WHERE DB = ? AND STATE LIKE '%metadata lock%'",
            [live],
          );
          ids = {};
          for (const x of r) ids[/^CREATE/.test(String(x.i)) ? 'create' : 'insert'] = Number(x.id);
        }
        await conn.query(`KILL QUERY ${ids.insert}`);
        await holdB.query('UNLOCK TABLES');
      })();
    };
    const err = await restoreDatabase({ config: configFor(server, live), file, onStep }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await killed;
    assert.ok(err instanceof RestoreError, `failed: ${String(err)}`);
    assert.equal(err.live, 'unchanged');
    assert.match(err.message, /line 4\b.*interrupted/);
    assert.deepEqual(await running(live), []);
    // the name's lock is given up: a CREATE TABLE still waiting for it would run now
    await conn.query(`KILL QUERY ${renamer.threadId}`);
    await renamed;
    await holdX.query('UNLOCK TABLES');
    for (let i = 0; i < 500 && (await running(live)).length > 0; i++) await sleep(20);
    assert.deepEqual(await ownTables(live), []);
    assert.deepEqual(err.leftovers, []);
  } finally {
    await conn.query(`KILL QUERY ${renamer.threadId}`).catch(() => {});
    for (const c of [holdX, holdB, renamer]) await c.end().catch(() => c.destroy());
  }
});

void test('rows a dump holds for a MERGE table are skipped (never written through it), and CREATE … LIKE copies the dump', async () => {
  const live = await newLive();
  await conn.query(`CREATE TABLE ${qi(live)}.m1 (id INT) ENGINE=MyISAM`);
  await conn.query(`INSERT INTO ${qi(live)}.m1 VALUES (100)`);
  const file = await dumpFile(
    [
      'CREATE TABLE `m1` (id INT) ENGINE=MyISAM;',
      'INSERT INTO `m1` VALUES (5);',
      'CREATE TABLE `mm` (id INT) ENGINE=MRG_MyISAM UNION=(`m1`) INSERT_METHOD=LAST;',
      'INSERT INTO `mm` VALUES (5);',
      'CREATE TABLE `proto` (id INT, note VARCHAR(3));',
      'CREATE TABLE IF NOT EXISTS `copy` LIKE `proto`;',
    ].join('\n'),
  );
  const events: MagebackupEvent[] = [];
  await restoreDatabase({ config: configFor(server, live), file, onEvent: (e) => events.push(e) });
  assert.equal(events.filter((e) => e.type === 'warning' && e.code === 'SKIPPED_ROWS').length, 1);
  for (const t of ['m1', 'mm']) {
    assert.deepEqual(
      (await queryRows(conn, `SELECT id FROM ${qi(live)}.${t}`)).map((r) => Number(r.id)),
      [5],
      t,
    );
  }
  const cols = await queryRows(
    conn,
    'SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
    [live, 'copy'],
  );
  assert.deepEqual(
    cols.map((r) => String(r.c)),
    ['id', 'note'],
  );
  assert.deepEqual(await ownTables(live), []);
});

void test('tables named __mbk_… in a dump are skipped with a warning, with their triggers', async () => {
  const live = await newLive();
  const file = await dumpFile(
    [
      'CREATE TABLE `__mbk_0abc_journal` (seq INT, kind VARCHAR(16), line INT, body LONGBLOB);',
      "INSERT INTO `__mbk_0abc_journal` VALUES (0, 'state', 0, '{}');",
      'CREATE TABLE `__MBK_0abc_o1` (id INT);',
      'CREATE TRIGGER `tr_old` BEFORE INSERT ON `__MBK_0abc_o1` FOR EACH ROW SET @x = 1;',
      'CREATE TABLE `t` (id INT);',
      'INSERT INTO `t` VALUES (1);',
    ].join('\n'),
  );
  const events: MagebackupEvent[] = [];
  const r = await restoreDatabase({
    config: configFor(server, live),
    file,
    onEvent: (e) => events.push(e),
  });
  assert.equal(r.tables, 1);
  const warnings = events.filter((e) => e.type === 'warning' && e.code === 'RESERVED_TABLE');
  assert.equal(warnings.length, 3, JSON.stringify(warnings));
  assert.ok(warnings.some((w) => w.type === 'warning' && w.message.includes('__mbk_0abc_journal')));
  assert.deepEqual(await ownTables(live), []);
  const trig = await queryRows(
    conn,
    'SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?',
    [live],
  );
  assert.deepEqual(trig, []);
});

void test('tables and views whose names hold tab, newline, backslash, backtick and quotes roll back over themselves', async () => {
  const live = await server.createDatabase('rh_names');
  const t = 'a/*\t\t\n;$\\_`\'"0';
  const v = 'v\n\\\t\'`"';
  const c = await server.connect(live);
  try {
    await c.query(`CREATE TABLE ${qi(t)} (${qi('c\t\n`')} INT)`);
    await c.query(`INSERT INTO ${qi(t)} VALUES (1), (2)`);
    await c.query(`CREATE VIEW ${qi(v)} AS SELECT ${qi('c\t\n`')} FROM ${qi(t)}`);
    await c.query(`CREATE TRIGGER ${qi('tr\n`')} BEFORE INSERT ON ${qi(t)} FOR EACH ROW SET @x = 1`);
  } finally {
    await c.end();
  }
  const snap = await describeDatabase(conn, live);
  const file = path.join(dir, 'names.sql');
  await dumpDatabase({ config: configFor(server, live), outFile: file, compress: false });
  await conn.query(`INSERT INTO ${qi(live)}.${qi(t)} VALUES (3)`);
  // the live view and trigger exist: the restore must find them by their exact names
  await restoreDatabase({ config: configFor(server, live), file });
  assert.deepEqual(diffDatabases(snap, await describeDatabase(conn, live)), []);
  assert.deepEqual(await ownTables(live), []);
});

void test('INSERTs of literals only load: strings, introducers, hex, comments, VALUES() in ON DUPLICATE KEY UPDATE', async () => {
  const live = await newLive();
  const file = await dumpFile(
    [
      'CREATE TABLE `t` (id INT PRIMARY KEY, s VARCHAR(40), b VARBINARY(8));',
      "INSERT INTO `t` (id, s, b) VALUES (1, 'wipe() \\' (SELECT', _binary'a(b'), (2, \"x\", X'00ff'),",
      "  (3, _utf8mb4 'y' COLLATE utf8mb4_bin, 0x41) /* wipe() */, (-4e0, NULL, DEFAULT) -- wipe()",
      '  ON DUPLICATE KEY UPDATE s = VALUES(s);',
      "REPLACE INTO `t` VALUES (5, 'z', NULL);",
    ].join('\n'),
  );
  await restoreDatabase({ config: configFor(server, live), file });
  const r = await queryRows(conn, `SELECT id, s, HEX(b) AS b FROM ${qi(live)}.t ORDER BY id`);
  assert.deepEqual(
    r.map((x): unknown[] => [Number(x.id), x.s, x.b]),
    [
      [-4, null, null],
      [1, "wipe() ' (SELECT", '612862'],
      [2, 'x', '00FF'],
      [3, 'y', '41'],
      [5, 'z', null],
    ],
  );
});

void test('definition names in EXECUTE IMMEDIATE literals under NO_BACKSLASH_ESCAPES keep their backslashes', async () => {
  const live = await server.createDatabase('rh_nbe');
  const c = await server.connect(live);
  try {
    await c.query("SET sql_mode = 'NO_BACKSLASH_ESCAPES'");
    await c.query("CREATE PROCEDURE `p\\x\\n`() SELECT 'a\\b'");
  } finally {
    await c.end();
  }
  const snap = await describeDatabase(conn, live);
  const file = path.join(dir, 'nbe.sql');
  await dumpDatabase({ config: configFor(server, live), outFile: file, compress: false });
  assert.match(await fsp.readFile(file, 'utf8'), /EXECUTE IMMEDIATE 'CREATE[^\n]*PROCEDURE `p\\x\\n`/);
  const r = await restoreDatabase({ config: configFor(server, live), file });
  assert.deepEqual(r.extraObjects, []);
  assert.deepEqual(diffDatabases(snap, await describeDatabase(conn, live)), []);
  const lex = { ...DEFAULT_LEXING, noBackslashEscapes: true };
  const head = statementHead(
    Buffer.from("EXECUTE IMMEDIATE 'CREATE VIEW `a\\nb''` AS SELECT 1'"),
    undefined,
    lex,
  );
  assert.deepEqual(definitionTarget(head, lex), { object: 'view', name: "a\\nb'", drop: false });
  assert.deepEqual(classifyStatement(head, lex), { kind: 'definition', object: 'view' });
});

void test('definition names are read exactly from EXECUTE IMMEDIATE literals', () => {
  const head = (sql: string) => statementHead(Buffer.from(sql));
  assert.deepEqual(definitionTarget(head("EXECUTE IMMEDIATE 'CREATE VIEW `a\\nb\\t\\\\_\\'` AS SELECT 1'")), {
    object: 'view',
    name: "a\nb\t\\_'",
    drop: false,
  });
  assert.equal(
    triggerTable(
      head('CREATE DEFINER=`u`@`%` TRIGGER `x` AFTER INSERT ON `db`.`t\n1` FOR EACH ROW SET @a=1'),
    ),
    't\n1',
  );
  assert.equal(
    statementHead(Buffer.from('CREATE  TABLE\n`a\t\tb` (x int)')),
    'CREATE TABLE `a\t\tb` (x int)',
  );
});
