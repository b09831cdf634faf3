import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { createZoo } from '../../fixtures/db-zoo.js';
import { describeDatabase, diffDatabases, type DbSnapshot } from '../../fixtures/db-compare.js';
import {
  restoreDatabase,
  recoverInterruptedRestores,
  RestoreError,
  type RestoreStep,
} from '../../src/db/restore.js';
import { InterruptedError } from '../../src/errors.js';
import type { MagebackupEvent } from '../../src/events.js';
import { configFor, databasesLike, queryRows, stockDump } from './restore-helpers.js';
import { magentoUser } from '../helpers/db-users.js';

let server: TestServer;
let conn: Connection;
let dir: string;
let src: string;
let srcSnap: DbSnapshot;
let zooDump: string;

/**
 * mariadb-dump itself loses these (not the restore): FLOAT printed with 6 digits, and an invalid ENUM value
 * (stored as index 0, '') dumped as '' which loads as the ENUM member ''. The stock client loads the same values.
 */
const MARIADB_DUMP_LOSSES = [/^table zoo_floats: checksum differs/, /^table zoo_enum_set: checksum differs/];

function unexpected(diffs: string[]): string[] {
  return diffs.filter((d) => !MARIADB_DUMP_LOSSES.some((re) => re.test(d)));
}

async function snapshot(db: string, dropTables: string[] = []): Promise<DbSnapshot> {
  const s = await describeDatabase(conn, db);
  for (const t of dropTables) delete s.tables[t];
  return s;
}

async function newLive(prefix: string, zoo: { bigRows: number } | null = { bigRows: 30 }): Promise<string> {
  const db = await server.createDatabase(prefix);
  if (zoo) {
    const c = await server.connect(db);
    try {
      await createZoo(c, { bigRows: zoo.bigRows, bigBlobBytes: 1000 });
      await c.query("UPDATE zoo_basic SET note = 'old live data'");
    } finally {
      await c.end();
    }
  }
  return db;
}

/** What a restore may leave: databases named after the live one, tables with the reserved prefix. */
async function leftovers(live: string): Promise<string[]> {
  const tables = await queryRows(
    conn,
    "SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE '\\_\\_mbk\\_%' ORDER BY 1",
    [live],
  );
  return [...(await databasesLike(conn, `${live}__mbk_`)), ...tables.map((t) => String(t.n))];
}

async function write(name: string, text: string): Promise<string> {
  const f = path.join(dir, name);
  await fsp.writeFile(f, text);
  return f;
}

void before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mbk-restore-'));
  src = await server.createDatabase('rsrc');
  const c = await server.connect(src);
  try {
    await createZoo(c, { bigRows: 3000 });
  } finally {
    await c.end();
  }
  srcSnap = await snapshot(src);
  zooDump = path.join(dir, 'zoo.sql');
  await stockDump(server, src, zooDump);
});

void after(async () => {
  await conn?.end();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

void test('a mariadb-dump --routines --triggers --events dump of the zoo restores identically over a live zoo', async () => {
  const live = await newLive('rlive');
  await conn.query(`CREATE TABLE \`${live}\`.extra_keep (id INT PRIMARY KEY)`);
  const events: MagebackupEvent[] = [];
  const r = await restoreDatabase({
    config: configFor(server, live),
    file: zooDump,
    onEvent: (e) => events.push(e),
  });
  assert.equal(r.mode, 'shadow');
  const [n] = await queryRows(
    conn,
    "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW'",
    [src],
  );
  assert.equal(r.tables, Number(n?.n));
  assert.deepEqual(r.extraTables, ['extra_keep']);
  assert.deepEqual(r.droppedTables, []);
  const warn = events.find((e) => e.type === 'warning' && e.code === 'EXTRA_TABLES');
  assert.ok(
    warn && warn.type === 'warning' && warn.message.includes('extra_keep'),
    'EXTRA_TABLES warning names the table',
  );
  assert.deepEqual(unexpected(diffDatabases(srcSnap, await snapshot(live, ['extra_keep']))), []);
  assert.deepEqual(await leftovers(live), []);
});

void test('a magebackup dump (plain and .sql.gz) of the zoo restores exactly', async () => {
  const { dumpDatabase } = await import('../../src/db/dump.js');
  for (const compress of [false, true]) {
    const file = path.join(dir, compress ? 'ours.sql.gz' : 'ours.sql');
    await dumpDatabase({ config: configFor(server, src), outFile: file, compress });
    const live = await newLive(compress ? 'rourgz' : 'rours');
    const r = await restoreDatabase({ config: configFor(server, live), file });
    assert.equal(r.mode, 'shadow');
    assert.deepEqual(diffDatabases(srcSnap, await snapshot(live)), [], compress ? '.sql.gz' : '.sql');
    assert.deepEqual(await leftovers(live), []);
  }
});

void test('a user with ALL ON <db>.* only (no CREATE DATABASE) gets the same atomic restore', async () => {
  const { dumpDatabase } = await import('../../src/db/dump.js');
  const file = path.join(dir, 'ours-limited.sql');
  await dumpDatabase({ config: configFor(server, src), outFile: file, compress: false });
  const live = await newLive('rlimit');
  const mage = await magentoUser(conn, live, { name: `mbk_lim_${process.pid}`, password: 'limited-Pw-1' });
  const { user, password } = mage;
  try {
    const events: MagebackupEvent[] = [];
    const config = { ...configFor(server, live), user, password };
    const r = await restoreDatabase({ config, file, onEvent: (e) => events.push(e) });
    assert.equal(r.mode, 'shadow');
    assert.deepEqual(diffDatabases(srcSnap, await snapshot(live)), []);
    assert.deepEqual(await leftovers(live), []);
  } finally {
    await mage.drop();
  }
});

void test('dropExtraTables drops the live tables that are not in the dump', async () => {
  const live = await newLive('rdrop');
  await conn.query(`CREATE TABLE \`${live}\`.extra_a (id INT PRIMARY KEY)`);
  await conn.query(`CREATE TABLE \`${live}\`.extra_b (id INT PRIMARY KEY)`);
  const r = await restoreDatabase({ config: configFor(server, live), file: zooDump, dropExtraTables: true });
  assert.deepEqual(r.extraTables, ['extra_a', 'extra_b']);
  assert.deepEqual(r.droppedTables, ['extra_a', 'extra_b']);
  assert.deepEqual(unexpected(diffDatabases(srcSnap, await snapshot(live))), []);
  assert.deepEqual(await leftovers(live), []);
});

void test('a .sql.gz dump restores into an empty database', async () => {
  const { gzipSync } = await import('node:zlib');
  const gz = path.join(dir, 'zoo.sql.gz');
  await fsp.writeFile(gz, gzipSync(await fsp.readFile(zooDump)));
  const live = await newLive('rinpl', null);
  const r = await restoreDatabase({ config: configFor(server, live), file: gz });
  assert.equal(r.mode, 'shadow');
  assert.deepEqual(unexpected(diffDatabases(srcSnap, await snapshot(live))), []);
});

const MAGENTO_DUMP = [
  '-- Magento DB backup',
  '--',
  '-- Host: localhost    Database: magento',
  '-- ------------------------------------------------------',
  '-- Server version: 10.11.0-MariaDB',
  '',
  '/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;',
  '/*!40101 SET NAMES utf8 */;',
  '/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;',
  '/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;',
  "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;",
  '/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;',
  '',
  '--',
  '-- Table structure for table `store`',
  '--',
  '',
  'DROP TABLE IF EXISTS `store`;',
  'CREATE TABLE `store` (\n  `store_id` smallint(5) unsigned NOT NULL,\n  `code` varchar(32) DEFAULT NULL,\n  PRIMARY KEY (`store_id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8;',
  '',
  '--',
  '-- Dumping data for table `store`',
  '--',
  '',
  'LOCK TABLES `store` WRITE;',
  '/*!40000 ALTER TABLE `store` DISABLE KEYS */;',
  "INSERT INTO `store` VALUES (0,'admin'),(1,'default;view');",
  '/*!40000 ALTER TABLE `store` ENABLE KEYS */;',
  'UNLOCK TABLES;',
  '',
  '--',
  '-- Table structure for table `cms_page`',
  '--',
  '',
  'DROP TABLE IF EXISTS `cms_page`;',
  'CREATE TABLE `cms_page` (\n  `page_id` int(11) NOT NULL,\n  `store_id` smallint(5) unsigned NOT NULL,\n  `content` text,\n  `updated` int NOT NULL DEFAULT 0,\n  PRIMARY KEY (`page_id`),\n  KEY `IDX_STORE` (`store_id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8;',
  '',
  'LOCK TABLES `cms_page` WRITE;',
  '/*!40000 ALTER TABLE `cms_page` DISABLE KEYS */;',
  "INSERT INTO `cms_page` VALUES (1,1,'<p>it\\'s; \"quoted\"</p>\\n-- no comment',0),(2,7,NULL,0);",
  '/*!40000 ALTER TABLE `cms_page` ENABLE KEYS */;',
  'UNLOCK TABLES;',
  'ALTER TABLE `cms_page`',
  '  ADD CONSTRAINT `CMS_PAGE_STORE_ID` FOREIGN KEY (`store_id`) REFERENCES `store` (`store_id`) ON DELETE CASCADE;',
  '--',
  '-- Triggers structure for table `cms_page`',
  '--',
  'DROP TRIGGER IF EXISTS trg_cms_page_update;',
  'delimiter ;;',
  'CREATE  TRIGGER trg_cms_page_update BEFORE UPDATE ON `cms_page` FOR EACH ROW BEGIN',
  '  SET NEW.updated = OLD.updated + 1;',
  'END',
  ';;',
  'delimiter ;',
  '',
  '/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;',
  '/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */; ',
  '/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;',
  '/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;',
  '/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;',
  '',
  '-- Dump completed on 2024-05-06 07:08:09 GMT',
].join('\n'); // Magento writes no newline after its footer

void test("Magento's own dump (delimiter ;;, FK section, footer without newline) restores", async () => {
  const file = await write('magento_db.sql', MAGENTO_DUMP);
  const live = await newLive('rmage', null);
  await conn.query(`CREATE TABLE \`${live}\`.store (store_id INT PRIMARY KEY, old INT)`);
  const r = await restoreDatabase({ config: configFor(server, live), file });
  assert.equal(r.mode, 'shadow');
  assert.equal(r.tables, 2);
  const pages = await queryRows(conn, `SELECT page_id, content FROM \`${live}\`.cms_page ORDER BY page_id`);
  assert.equal(pages[0]?.content, '<p>it\'s; "quoted"</p>\n-- no comment');
  const fks = await queryRows(
    conn,
    'SELECT REFERENCED_TABLE_SCHEMA AS s, REFERENCED_TABLE_NAME AS t FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL',
    [live],
  );
  assert.deepEqual(
    fks.map((x) => [String(x.s), String(x.t)]),
    [[live, 'store']],
    'the foreign key references the live table',
  );
  await conn.query(`UPDATE \`${live}\`.cms_page SET content = 'x' WHERE page_id = 1`);
  const upd = await queryRows(conn, `SELECT updated FROM \`${live}\`.cms_page WHERE page_id = 1`);
  assert.equal(Number(upd[0]?.updated), 1, 'the trigger was created and fires');
  assert.deepEqual(await leftovers(live), []);
});

void test('a failing statement is named with its line; in shadow mode the live database is unchanged', async () => {
  const text = MAGENTO_DUMP.replace('(2,7,NULL,0);', '(2,7,NULL);');
  const line = text.split('\n').findIndex((l) => l.startsWith('INSERT INTO `cms_page`')) + 1;
  const file = await write('bad.sql', text);
  const live = await newLive('rbad');
  const before = await snapshot(live);
  await assert.rejects(restoreDatabase({ config: configFor(server, live), file }), (err: unknown) => {
    assert.ok(err instanceof RestoreError);
    assert.match(err.message, new RegExp(`line ${line} of .*bad\\.sql`));
    assert.match(err.message, /INSERT INTO `cms_page` VALUES/);
    assert.match(err.message, /was not changed/);
    assert.equal(err.liveDamaged, false);
    return true;
  });
  assert.deepEqual(diffDatabases(before, await snapshot(live)), []);
  assert.deepEqual(await leftovers(live), []);
});

// The load is the dump's verification (one pass): each of these is refused, naming the file and what is wrong,
// after loading what it could into shadow tables, and nothing live changes.
void test('a truncated, incomplete, corrupt or empty dump is refused and nothing changes', async () => {
  const text = await fsp.readFile(zooDump);
  const footer = text.lastIndexOf('-- Dump completed');
  const gz = zlib.gzipSync(text);
  const corrupt = Buffer.from(gz);
  corrupt.fill(0x55, Math.floor(gz.length / 2), Math.floor(gz.length / 2) + 64);
  const cases: Array<[string, Buffer, RegExp]> = [
    [
      'cut.sql',
      text.subarray(0, Math.floor(text.length * 0.8)),
      /is truncated: it ends inside|is incomplete/,
    ],
    [
      'nofooter.sql',
      text.subarray(0, footer),
      /is incomplete: it does not end with a "-- Dump completed" line/,
    ],
    // the footer line inside an open string: found at the end of the load
    [
      'open-string.sql',
      Buffer.concat([
        text.subarray(0, footer),
        Buffer.from("INSERT INTO x VALUES ('a\n"),
        text.subarray(footer),
      ]),
      /is truncated: it ends inside a quoted string/,
    ],
    [
      'open-string.sql.gz',
      zlib.gzipSync(Buffer.concat([text.subarray(0, footer), Buffer.from("INSERT INTO x VALUES ('a")])),
      /is truncated: it ends inside a quoted string/,
    ],
    [
      'cut.sql.gz',
      gz.subarray(0, Math.floor(gz.length * 0.7)),
      /is truncated: its gzip data does not decode to the end/,
    ],
    ['corrupt.sql.gz', corrupt, /is (corrupt|truncated)/],
    ['empty.sql', Buffer.alloc(0), /is empty/],
  ];
  for (const [name, bytes, why] of cases) {
    const file = path.join(dir, name);
    await fsp.writeFile(file, bytes);
    const live = await newLive('rtrunc');
    const before = await snapshot(live);
    await assert.rejects(restoreDatabase({ config: configFor(server, live), file }), (err: Error) => {
      assert.ok(err.message.startsWith(`Database backup ${file} `), err.message);
      assert.match(err.message, why, name);
      return true;
    });
    assert.deepEqual(diffDatabases(before, await snapshot(live)), [], name);
    assert.deepEqual(await leftovers(live), [], name);
  }
});

for (const at of ['loading', 'loaded'] as RestoreStep[]) {
  void test(`an abort while ${at} leaves the live database untouched and no shadow database`, async () => {
    const live = await newLive('rabort');
    const before = await snapshot(live);
    const ac = new AbortController();
    await assert.rejects(
      restoreDatabase({
        config: configFor(server, live),
        file: zooDump,
        signal: ac.signal,
        onStep: (s) => {
          if (s === at) ac.abort('SIGINT');
        },
      }),
      (err: unknown) => err instanceof InterruptedError,
    );
    assert.deepEqual(diffDatabases(before, await snapshot(live)), []);
    assert.deepEqual(await leftovers(live), []);
  });
}

void test('an abort in the middle of the load, statements in flight: no shadow table is left, and none is claimed', async () => {
  // 120 tables: the abort comes while both loader connections have statements in flight. Their sessions end on
  // the server after our ends are gone (a CREATE TABLE already received still completes), and the destroyed
  // connections' errors look like a lost server: the clean-up must wait for them and run all the same.
  const parts = ['SET NAMES utf8mb4;'];
  for (let t = 0; t < 120; t++) {
    parts.push(`CREATE TABLE \`many_${t}\` (id INT PRIMARY KEY, v VARCHAR(64), KEY (v));`);
    const rows = Array.from({ length: 300 }, (_, i) => `(${i},'value ${t} ${i}')`);
    parts.push(`INSERT INTO \`many_${t}\` VALUES ${rows.join(',')};`);
  }
  parts.push('-- Dump completed on 2026-12-02 12:00:00');
  const file = await write('many.sql', parts.join('\n') + '\n');
  for (const at of [2, 10, 40, 90]) {
    const live = await newLive('rmid', null);
    const ac = new AbortController();
    const watcher = await server.connect(live);
    let seen = 0;
    const watch = (async () => {
      while (!ac.signal.aborted) {
        const [r] = await watcher.query(
          "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '\\_\\_mbk\\_%\\_n%'",
        );
        seen = Number((r as Array<{ n: unknown }>)[0]?.n);
        if (seen >= at) ac.abort('SIGTERM');
        else await new Promise((res) => setTimeout(res, 2));
      }
    })();
    let claimed: string[] | undefined;
    try {
      await assert.rejects(
        restoreDatabase({ config: configFor(server, live), file, signal: ac.signal }),
        (err: unknown) => {
          assert.ok(err instanceof InterruptedError, String(err));
          claimed = (err as { leftovers?: string[] }).leftovers;
          return true;
        },
      );
    } finally {
      ac.abort('SIGTERM');
      await watch;
      await watcher.end();
    }
    assert.ok(seen >= at, `the abort came with ${seen} shadow tables (wanted ${at})`);
    assert.deepEqual(await leftovers(live), [], `abort at ${at} shadow tables`);
    assert.deepEqual(claimed ?? [], [], `abort at ${at}: nothing is left, and nothing is claimed`);
    const [tables] = await conn.query(
      'SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
      [live],
    );
    assert.equal(
      Number((tables as Array<{ n: unknown }>)[0]?.n),
      0,
      'the live database stays as it was (empty)',
    );
  }
});

void test('recovery drops the tables of unfinished restores and leaves the rest alone', async () => {
  const live = await newLive('rrec1');
  const before = await snapshot(live);
  await conn.query(`CREATE TABLE \`${live}\`.\`__mbk_aaaa_n0123\` (id INT)`);
  await conn.query(`CREATE TABLE \`${live}\`.\`__mbk_bbbb_journal\` (seq INT PRIMARY KEY)`);
  await conn.query(`CREATE TABLE \`${live}\`.\`__mbk_bbbb_n0123\` (id INT)`);
  const other = await newLive('rrec1x', null);
  await conn.query(`CREATE TABLE \`${other}\`.\`__mbk_cccc_n0123\` (id INT)`);
  const done = await recoverInterruptedRestores(configFor(server, live));
  assert.equal(done.length, 2, done.join('\n'));
  assert.deepEqual(await leftovers(live), []);
  assert.deepEqual(await leftovers(other), ['__mbk_cccc_n0123'], "another database's leftovers stay");
  assert.deepEqual(diffDatabases(before, await snapshot(live)), []);
});

for (const at of [
  'committing',
  'swapped',
  'constraints-renamed',
  'definitions-dropped',
  'definitions-created',
] as RestoreStep[]) {
  void test(`a failure at '${at}' puts the old tables and definitions back by itself`, async () => {
    const live = await newLive('rrec2');
    const before = await snapshot(live);
    await assert.rejects(
      restoreDatabase({
        config: configFor(server, live),
        file: zooDump,
        onStep: (s) => {
          if (s === at) throw new Error(`simulated failure at ${s}`);
        },
      }),
      (err: unknown) => {
        assert.ok(err instanceof RestoreError, String(err));
        assert.match(err.message, /simulated failure/);
        assert.match(err.message, /put back as it was/);
        assert.equal(err.live, 'unchanged');
        return true;
      },
    );
    assert.deepEqual(diffDatabases(before, await snapshot(live)), []);
    assert.deepEqual(await leftovers(live), []);
  });
}

// Big tables' secondary keys are dropped once their rows pass deferKeysAfterBytes and built again after them
// (restore-indexes.ts); 1 byte: every keyed table of the dump that has plain INSERTs.
void test('secondary keys built after the rows: the zoo restores exactly (mariadb-dump; ours as the Magento user)', async () => {
  const { dumpDatabase } = await import('../../src/db/dump.js');
  const ours = path.join(dir, 'ours-keys.sql');
  await dumpDatabase({ config: configFor(server, src), outFile: ours, compress: false });
  // mariadb-dump's file names DEFINER=root: only root loads its definitions
  const stock = await newLive('rkeys');
  const r = await restoreDatabase({
    config: configFor(server, stock),
    file: zooDump,
    deferKeysAfterBytes: 1,
  });
  assert.ok(r.keysBuiltAfterRows > 0, 'keys were built after the rows');
  assert.deepEqual(unexpected(diffDatabases(srcSnap, await snapshot(stock))), []);
  assert.deepEqual(await leftovers(stock), []);
  const live = await newLive('rkeysours');
  const mage = await magentoUser(conn, live, { name: `mbk_keys_${process.pid}`, password: 'limited-Pw-1' });
  try {
    const config = { ...configFor(server, live), user: mage.user, password: mage.password };
    const o = await restoreDatabase({ config, file: ours, deferKeysAfterBytes: 1 });
    assert.ok(o.keysBuiltAfterRows > 0, 'keys were built after the rows (ours)');
    assert.deepEqual(diffDatabases(srcSnap, await snapshot(live)), []);
    assert.deepEqual(await leftovers(live), []);
  } finally {
    await mage.drop();
  }
});

// A plain dump is read into buffers that are used again (RecyclingFileReader): with reads of a few bytes every
// statement spans many of them, and a buffer read into again while a statement in it waits to be sent, or while a
// held definition or session statement still points into it, would load other bytes than the dump's.
void test('reads into reused memory: every statement, definition and session statement loads as dumped', async () => {
  const stock = await newLive('rreuse');
  await restoreDatabase({
    config: configFor(server, stock),
    file: zooDump,
    readChunkBytes: 509,
    concurrency: 2,
  });
  assert.deepEqual(unexpected(diffDatabases(srcSnap, await snapshot(stock))), []);
  assert.deepEqual(await leftovers(stock), []);
  const rows = (from: number): string =>
    Array.from({ length: 40 }, (_, k) => {
      const id = from + k;
      return `(${id},'${"ab\\'c;d".repeat(1 + (id % 7))}-${id}',${id % 13})`;
    }).join(',');
  const lines = ['SET NAMES utf8mb4;'];
  for (const t of ['r1', 'r2']) {
    lines.push(
      `CREATE TABLE \`${t}\` (\`id\` int NOT NULL, \`s\` varchar(200) NOT NULL, \`n\` int, PRIMARY KEY (\`id\`)) ENGINE=InnoDB;`,
    );
    for (let i = 0; i < 30; i++) lines.push(`INSERT INTO \`${t}\` VALUES ${rows(i * 40)};`);
  }
  lines.push('-- Dump completed on 2026-12-02 12:00:00', '');
  const file = await write('reuse.sql', lines.join('\n'));
  const small = await newLive('rreuse2', null);
  const whole = await newLive('rreuse3', null);
  await restoreDatabase({ config: configFor(server, small), file, readChunkBytes: 97, concurrency: 2 });
  await restoreDatabase({ config: configFor(server, whole), file, concurrency: 1 });
  const got = await snapshot(small);
  assert.equal(Object.keys(got.tables).length, 2);
  assert.deepEqual(diffDatabases(await snapshot(whole), got), []);
  const [c] = await queryRows(conn, `SELECT COUNT(*) AS n FROM \`${small}\`.r2`);
  assert.equal(Number(c!.n), 1200);
  assert.deepEqual(await leftovers(small), []);
});

const KEYED_DUMP = (rows: string[]): string =>
  [
    'SET NAMES utf8mb4;',
    'CREATE TABLE `p` (`id` int NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;',
    'INSERT INTO `p` VALUES (1),(2);',
    'CREATE TABLE `c` (`id` int NOT NULL AUTO_INCREMENT, `a` varchar(20) DEFAULT NULL, `b` int DEFAULT NULL,',
    "  PRIMARY KEY (`id`), UNIQUE KEY `u_a` (`a`), KEY `k_b` (`b`) COMMENT 'b''s key', KEY `k_a` (`a`(3)),",
    '  CONSTRAINT `fk_b` FOREIGN KEY (`b`) REFERENCES `p` (`id`) ON DELETE CASCADE) ENGINE=InnoDB AUTO_INCREMENT=50;',
    ...rows,
    '-- Dump completed on 2026-12-02 12:00:00',
    '',
  ].join('\n');

void test('a table without its keys runs only plain INSERTs: the others wait for the keys; the table ends as dumped', async () => {
  const file = await write(
    'keys-order.sql',
    KEYED_DUMP([
      "INSERT INTO `c` VALUES (1,'x',1),(2,'y',2);",
      "INSERT INTO `c` VALUES (3,'z',1);",
      // a duplicate of u_a: ignored only if the key is there
      "INSERT IGNORE INTO `c` VALUES (4,'x',2);",
      "INSERT INTO `c` VALUES (5,'w',2);",
    ]),
  );
  const live = await newLive('rkeyord', null);
  const r = await restoreDatabase({ config: configFor(server, live), file, deferKeysAfterBytes: 1 });
  assert.equal(r.keysBuiltAfterRows, 1);
  const rows = await queryRows(conn, `SELECT id, a, b FROM \`${live}\`.c ORDER BY id`);
  assert.deepEqual(
    rows.map((x) => Number(x.id)),
    [1, 2, 3, 5],
  );
  // the definition the dump's CREATE TABLE gives, keys and constraint included
  const ref = await server.createDatabase('rkeyref');
  const c = await server.connect(ref);
  try {
    for (const s of KEYED_DUMP([]).split(';\n').slice(1, 4)) await c.query(s);
  } finally {
    await c.end();
  }
  const show = async (db: string): Promise<string> =>
    String((await queryRows(conn, `SHOW CREATE TABLE \`${db}\`.c`))[0]?.['Create Table']);
  assert.equal(
    (await show(live)).replace(/ AUTO_INCREMENT=\d+/, ''),
    (await show(ref)).replace(/ AUTO_INCREMENT=\d+/, ''),
  );
  // the keys work: the constraint's cascade, the unique key
  await conn.query(`DELETE FROM \`${live}\`.p WHERE id = 1`);
  assert.deepEqual(
    (await queryRows(conn, `SELECT id FROM \`${live}\`.c ORDER BY id`)).map((x) => Number(x.id)),
    [2, 5],
  );
  await assert.rejects(conn.query(`INSERT INTO \`${live}\`.c VALUES (9, 'y', 2)`), /Duplicate entry 'y'/);
  assert.deepEqual(await leftovers(live), []);
});

void test('rows that break a unique key built after them are refused; nothing changes', async () => {
  const file = await write(
    'keys-dup.sql',
    KEYED_DUMP(["INSERT INTO `c` VALUES (1,'x',1);", "INSERT INTO `c` VALUES (2,'x',2);"]),
  );
  const live = await newLive('rkeydup');
  const before = await snapshot(live);
  await assert.rejects(
    restoreDatabase({ config: configFor(server, live), file, deferKeysAfterBytes: 1 }),
    (err: unknown) => {
      assert.ok(err instanceof RestoreError);
      assert.match(err.message, /Duplicate entry 'x' for key 'u_a'/);
      assert.match(err.message, /keys-dup\.sql/);
      assert.match(err.message, /was not changed/);
      return true;
    },
  );
  assert.deepEqual(diffDatabases(before, await snapshot(live)), []);
  assert.deepEqual(await leftovers(live), []);
});

// The employees sample's (and mysqldump's) foreign keys are named <table>_ibfk_<n>, a form InnoDB renames with its
// table: the shadow tables are created with <shadow>_ibfk_<n>, and the swap's RENAME TABLE alone gives every name
// back, the live tables' own included (no ALTER TABLE after the swap).
const IBFK_DUMP = (v: string): string =>
  [
    'SET NAMES utf8mb4;',
    '/*!40014 SET FOREIGN_KEY_CHECKS=0 */;',
    'CREATE TABLE `emp` (`id` int NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;',
    `INSERT INTO \`emp\` VALUES (1),(2),(${v === 'new' ? 3 : 4});`,
    'CREATE TABLE `sal` (`id` int NOT NULL, `emp` int NOT NULL, `x` int DEFAULT NULL, PRIMARY KEY (`id`), KEY `emp` (`emp`), KEY `x` (`x`),',
    '  CONSTRAINT `sal_ibfk_1` FOREIGN KEY (`emp`) REFERENCES `emp` (`id`) ON DELETE CASCADE,',
    '  CONSTRAINT `sal_ibfk_12` FOREIGN KEY (`x`) REFERENCES `emp` (`id`),',
    '  CONSTRAINT `named_fk` FOREIGN KEY (`x`) REFERENCES `emp` (`id`) ON DELETE SET NULL) ENGINE=InnoDB;',
    `INSERT INTO \`sal\` VALUES (1,1,NULL),(2,2,1),(3,${v === 'new' ? 3 : 4},2);`,
    '-- Dump completed on 2026-12-02 12:00:00',
    '',
  ].join('\n');

void test('foreign keys named <table>_ibfk_<n> are named after their shadow table and come back by the swap alone', async () => {
  const file = await write('ibfk-new.sql', IBFK_DUMP('new'));
  const live = await server.createDatabase('ribfk');
  const ref = await server.createDatabase('ribfkref');
  for (const [db, v] of [
    [live, 'old'],
    [ref, 'new'],
  ] as const) {
    const c = await server.connect(db);
    try {
      for (const s of IBFK_DUMP(v).split(';\n').slice(0, -1)) await c.query(s);
    } finally {
      await c.end();
    }
  }
  const before = await snapshot(live);
  const fkNames = async (db: string): Promise<string[]> =>
    (
      await queryRows(
        conn,
        'SELECT CONCAT(TABLE_NAME, ".", CONSTRAINT_NAME) AS n FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? ORDER BY 1',
        [db],
      )
    ).map((x) => String(x.n));
  // a failure after the swap: the RENAME back gives the live tables their names back too
  for (const at of ['swapped', 'definitions-created'] as RestoreStep[]) {
    await assert.rejects(
      restoreDatabase({
        config: configFor(server, live),
        file,
        onStep: (s) => {
          if (s === at) throw new Error(`simulated failure at ${s}`);
        },
      }),
      /put back as it was/,
    );
    assert.deepEqual(diffDatabases(before, await snapshot(live)), [], at);
    assert.deepEqual(await leftovers(live), []);
  }
  let prepared: string[] = [];
  await restoreDatabase({
    config: configFor(server, live),
    file,
    onStep: async (s) => {
      if (s === 'prepared') prepared = await fkNames(live);
    },
  });
  const shadow = prepared.find((n) => n.startsWith('__mbk_') && n.endsWith('_ibfk_12'));
  assert.ok(shadow, prepared.join(', '));
  assert.match(shadow, /^(__mbk_\w+)\.\1_ibfk_12$/, 'named after its shadow table');
  assert.deepEqual(diffDatabases(await snapshot(ref), await snapshot(live)), []);
  assert.deepEqual(await fkNames(live), ['sal.named_fk', 'sal.sal_ibfk_1', 'sal.sal_ibfk_12']);
  assert.deepEqual(await leftovers(live), []);
});
