import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  readStatements,
  openDumpStream,
  StatementSplitter,
  type RawStatement,
} from '../../src/db/sql-reader.js';
import { valuesRefusal } from '../../src/db/restore-redirect.js';

function chunks(text: string | Buffer, size: number): AsyncIterable<Buffer> {
  const b = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) parts.push(b.subarray(i, i + size));
  return (async function* () {
    for (const p of parts) yield await Promise.resolve(p);
  })();
}

/** Splits with every chunk size from 1 to 17 and the whole: all must agree. */
async function split(text: string | Buffer): Promise<{ sql: string; line: number }[]> {
  let first: { sql: string; line: number }[] | undefined;
  for (const size of [1, 2, 3, 5, 7, 11, 13, 17, 1 << 20]) {
    const got: { sql: string; line: number }[] = [];
    for await (const s of readStatements(chunks(text, size))) got.push({ sql: s.sql, line: s.line });
    if (first === undefined) first = got;
    else assert.deepEqual(got, first, `chunk size ${size}`);
  }
  return first ?? [];
}

const sqls = async (text: string): Promise<string[]> => (await split(text)).map((s) => s.sql);

void test('plain statements, blank lines and line numbers', async () => {
  const got = await split('SELECT 1;\n\nSELECT 2;  SELECT 3\n;\n  INSERT INTO t VALUES (1),\n(2);\n');
  assert.deepEqual(got, [
    { sql: 'SELECT 1', line: 1 },
    { sql: 'SELECT 2', line: 3 },
    { sql: 'SELECT 3', line: 3 },
    { sql: 'INSERT INTO t VALUES (1),\n(2)', line: 5 },
  ]);
});

void test('strings with delimiters, quotes and backslash escapes', async () => {
  const text =
    "INSERT INTO t VALUES ('a;b','it''s','back\\\\slash\\\\','q\\';x','dq \"; \"',\"d\\\";q\");\n" +
    "INSERT INTO t VALUES ('-- not a comment', '# nor this', '/* nor this */');\nSELECT 'x\ny;z';";
  assert.deepEqual(await sqls(text), [
    "INSERT INTO t VALUES ('a;b','it''s','back\\\\slash\\\\','q\\';x','dq \"; \"',\"d\\\";q\")",
    "INSERT INTO t VALUES ('-- not a comment', '# nor this', '/* nor this */')",
    "SELECT 'x\ny;z'",
  ]);
  const lines = (await split(text)).map((s) => s.line);
  assert.deepEqual(lines, [1, 2, 3]);
});

void test('backtick identifiers may hold ; quotes and doubled backticks', async () => {
  assert.deepEqual(await sqls("CREATE TABLE `a;b` (`it's` int, `x``;y` int);SELECT 1;"), [
    "CREATE TABLE `a;b` (`it's` int, `x``;y` int)",
    'SELECT 1',
  ]);
});

void test('comments between statements are dropped, inside statements kept', async () => {
  const text =
    '-- header comment; with a semicolon\n#hash comment;\n/* block; comment */\n' +
    'SELECT 1 -- trailing; comment\n, 2 # another;\n/* in; */ FROM dual;\n--\n-- Dump completed on 2024-01-01  1:02:03\n';
  assert.deepEqual(await split(text), [
    { sql: 'SELECT 1 -- trailing; comment\n, 2 # another;\n/* in; */ FROM dual', line: 4 },
  ]);
  // `--` without a following space is not a comment
  assert.deepEqual(await sqls('SELECT 1--1;'), ['SELECT 1--1']);
});

void test('executable comments are sent as statements', async () => {
  const text =
    '/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n' +
    '/*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */;\n/*!50001 CREATE VIEW `v` AS SELECT 1 AS `a` */;\n';
  assert.deepEqual(await sqls(text), [
    '/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */',
    '/*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */',
    '/*!50001 CREATE VIEW `v` AS SELECT 1 AS `a` */',
  ]);
});

void test('the sandbox-mode first line of mariadb-dump is skipped', async () => {
  for (const first of [
    '/*!999999\\- enable the sandbox mode */',
    '/*M!999999\\- enable the sandbox mode */',
  ]) {
    assert.deepEqual(await split(`${first} \n-- MariaDB dump 10.19\nSELECT 1;\n`), [
      { sql: 'SELECT 1', line: 3 },
    ]);
  }
});

void test('DELIMITER blocks in any case, including Magento delimiter ;;', async () => {
  const text =
    'DROP TRIGGER IF EXISTS trg;\ndelimiter ;;\nCREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW BEGIN\n' +
    "  SET NEW.a = 1; SET NEW.b = ';;';\nEND\n;;\ndelimiter ;\n" +
    'DELIMITER $$\nCREATE PROCEDURE p() BEGIN SELECT 1; END$$\nDELIMITER ;\nSELECT 2;\n' +
    'Delimiter //\r\nCREATE FUNCTION f() RETURNS INT RETURN 1 //\r\ndelimiter ;\r\nSELECT 3;';
  assert.deepEqual(await split(text), [
    { sql: 'DROP TRIGGER IF EXISTS trg', line: 1 },
    {
      sql: "CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW BEGIN\n  SET NEW.a = 1; SET NEW.b = ';;';\nEND",
      line: 3,
    },
    { sql: 'CREATE PROCEDURE p() BEGIN SELECT 1; END', line: 9 },
    { sql: 'SELECT 2', line: 11 },
    { sql: 'CREATE FUNCTION f() RETURNS INT RETURN 1', line: 13 },
    { sql: 'SELECT 3', line: 15 },
  ]);
});

void test('mariadb-dump routine style: executable comments with ;; delimiter', async () => {
  const text =
    "DELIMITER ;;\n/*!50003 CREATE*/ /*!50020 DEFINER=`root`@`localhost`*/ /*!50003 PROCEDURE `p`()\nBEGIN\n  SELECT ';';\nEND */;;\n" +
    'DELIMITER ;\n/*!50003 SET sql_mode = @saved_sql_mode */ ;\n';
  assert.deepEqual(await sqls(text), [
    "/*!50003 CREATE*/ /*!50020 DEFINER=`root`@`localhost`*/ /*!50003 PROCEDURE `p`()\nBEGIN\n  SELECT ';';\nEND */",
    '/*!50003 SET sql_mode = @saved_sql_mode */',
  ]);
});

void test('a trailing statement without delimiter is yielded; raw bytes are kept exactly', async () => {
  assert.deepEqual(await sqls('SELECT 1;\nSELECT 2'), ['SELECT 1', 'SELECT 2']);
  const bin = Buffer.concat([
    Buffer.from("INSERT INTO t VALUES ('"),
    Buffer.from([0xff, 0xfe, 0x00, 0x80]),
    Buffer.from("');"),
  ]);
  const got: RawStatement[] = [];
  for await (const s of readStatements(chunks(bin, 3))) got.push(s);
  assert.equal(got.length, 1);
  assert.deepEqual(got[0]!.raw, bin.subarray(0, bin.length - 1));
});

void test('end state reports an input cut inside a string or a statement', () => {
  const cases: [string, string][] = [
    ['SELECT 1;\n', 'clean'],
    ["INSERT INTO t VALUES ('abc", 'string'],
    ['INSERT INTO t VALUES (1', 'statement'],
    ['SELECT `a', 'identifier'],
    ['SELECT 1; /* open', 'comment'],
    ['SELECT 1;\n-- Dump completed on 2024-01-01 00:00:00 GMT', 'clean'],
  ];
  for (const [text, want] of cases) {
    const sp = new StatementSplitter();
    const out: RawStatement[] = [];
    sp.push(Buffer.from(text), out);
    assert.equal(sp.end(out), want, text);
  }
});

void test('openDumpStream gunzips by magic bytes, whatever the name', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mbk-reader-'));
  try {
    const text = 'SELECT 1;\nSELECT 2;\n';
    await fsp.writeFile(path.join(dir, 'a.sql'), gzipSync(text));
    await fsp.writeFile(path.join(dir, 'b.sql.gz'), text);
    for (const f of ['a.sql', 'b.sql.gz']) {
      const got: string[] = [];
      for await (const s of readStatements(openDumpStream(path.join(dir, f)))) got.push(s.sql);
      assert.deepEqual(got, ['SELECT 1', 'SELECT 2'], f);
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

void test('sql_mode set by the dump: NO_BACKSLASH_ESCAPES and ANSI_QUOTES change how strings end', async () => {
  const text =
    "SELECT 'a\\';b';\n" +
    "/*!50003 SET @saved_sql_mode = @@sql_mode */;\n/*!50003 SET sql_mode = 'NO_BACKSLASH_ESCAPES' */;\n" +
    "DELIMITER ;;\nCREATE FUNCTION f() RETURNS TEXT RETURN 'C:\\' ;;\nDELIMITER ;\n" +
    'SELECT "x\\";\n' +
    '/*!50003 SET sql_mode = @saved_sql_mode */;\n' +
    "SELECT 'b\\';c';\n" +
    "SET @OLD_SQL_MODE=@@SQL_MODE, SESSION SQL_MODE='ANSI_QUOTES';\nSELECT \"d\\\" FROM t;\nSELECT 'e\\';f';\n" +
    'SET SQL_MODE=@OLD_SQL_MODE;\nSELECT "g\\";h";\n';
  assert.deepEqual(await sqls(text), [
    "SELECT 'a\\';b'",
    '/*!50003 SET @saved_sql_mode = @@sql_mode */',
    "/*!50003 SET sql_mode = 'NO_BACKSLASH_ESCAPES' */",
    "CREATE FUNCTION f() RETURNS TEXT RETURN 'C:\\'",
    'SELECT "x\\"',
    '/*!50003 SET sql_mode = @saved_sql_mode */',
    "SELECT 'b\\';c'",
    "SET @OLD_SQL_MODE=@@SQL_MODE, SESSION SQL_MODE='ANSI_QUOTES'",
    'SELECT "d\\" FROM t',
    "SELECT 'e\\';f'",
    'SET SQL_MODE=@OLD_SQL_MODE',
    'SELECT "g\\";h"',
  ]);
  const splitter = new StatementSplitter();
  const out: RawStatement[] = [];
  splitter.push(Buffer.from("SET sql_mode='NO_BACKSLASH_ESCAPES';\nSELECT 'C:\\';\n"), out);
  assert.equal(splitter.end(out), 'clean');
  assert.equal(out.length, 2);
  // a GLOBAL change does not affect the session
  const g = new StatementSplitter();
  const out2: RawStatement[] = [];
  g.push(Buffer.from("SET GLOBAL sql_mode='NO_BACKSLASH_ESCAPES';\nSELECT 'C:\\';\n"), out2);
  assert.equal(g.end(out2), 'string');
});

/** Every statement of `text`, split in chunks of `size` bytes. */
function splitRaw(text: Buffer, size: number): RawStatement[] {
  const sp = new StatementSplitter();
  const out: RawStatement[] = [];
  for (let p = 0; p < text.length; p += size) sp.push(Buffer.from(text.subarray(p, p + size)), out);
  sp.end(out);
  return out;
}

void test('literal values: plain row lists are seen as literals only, anything else is left to the full check', () => {
  const lit = (sql: string): boolean[] =>
    splitRaw(Buffer.from(sql, 'latin1'), 1 << 20).map((s) => s.literalValues);
  assert.deepEqual(lit("INSERT INTO `t` VALUES (1,'a\\'b',NULL),(-2,'x',0x1F), (3 , 'y', 1e5);"), [true]);
  assert.deepEqual(lit("REPLACE INTO t VALUE (1,'('),(2,')');"), [true]);
  for (const sql of [
    'INSERT INTO t VALUES (f(1));',
    'INSERT INTO t VALUES (1, f (1));',
    'INSERT INTO t VALUES (1, `f`(1));',
    'INSERT INTO t VALUES ((SELECT 1));',
    'INSERT INTO t VALUES (1, ( SELECT 1));',
    'INSERT INTO t VALUES (1, 1 IN (SELECT 1));',
    'INSERT INTO t VALUES (1, f/**/(1));',
    'INSERT INTO t VALUES (1, /*!50000 f*/(1));',
    'INSERT INTO t VALUES (1) -- x\n;',
    'INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a);',
    'INSERT INTO t VALUES (1) RETURNING f(a);',
    'INSERT INTO t (a) VALUES (1);',
    'INSERT INTO t SELECT 1;',
    'INSERT INTO t PARTITION (p0) VALUES (1);',
    "SET sql_mode = 'NO_BACKSLASH_ESCAPES'; INSERT INTO t VALUES ('a\\');",
    'SET sql_mode = \'ANSI_QUOTES\'; INSERT INTO t VALUES ("f"(1));',
  ]) {
    assert.equal(lit(sql).at(-1), false, sql);
  }
});

void test('literal values, generated: a statement seen as literals only is one valuesRefusal finds nothing in', () => {
  let seed = 20261202;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
  const atoms = [
    '1',
    '-5',
    '0x1F',
    "'a''b'",
    "'x\\'y'",
    'NULL',
    'null',
    'NULLx',
    "'('",
    "')'",
    '"s"',
    '@v',
    '1e5',
  ];
  const evil = [
    'f(1)',
    'f (1)',
    '`f`(1)',
    '(SELECT 1)',
    '( SELECT 1)',
    'VALUES(a)',
    'a/**/(1)',
    '/*!50000 f*/(1)',
  ];
  evil.push(
    '/* c */',
    '-- c\n',
    '# c\n',
    '((1))',
    'db.f(1)',
    '`db`.`f`(1)',
    'NOW()',
    'ROW(1,2)',
    '1 IN (SELECT 1)',
  );
  evil.push('(WITH x AS (SELECT 1) SELECT 2)', '(VALUES (1))', 'f\n(1)', "_binary'z'", "X'ab'", '$f(1)');
  const ws = (): string => pick(['', '', ' ', '\n', '\t']);
  const row = (): string => {
    const v: string[] = [];
    for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--)
      v.push(ws() + (rnd() < 0.93 ? pick(atoms) : pick(evil)) + ws());
    return `(${v.join(',')})`;
  };
  const heads = [
    'INSERT INTO `t` VALUES ',
    'insert into t value',
    'REPLACE INTO `t` VALUES ',
    'INSERT INTO `t` (`a`) VALUES ',
  ];
  const tails = ['', '', '', '', ' ON DUPLICATE KEY UPDATE a=VALUES(a)', ' RETURNING f(a)', ' -- tail\n'];
  let seen = 0;
  for (let n = 0; n < 3000; n++) {
    const rows: string[] = [];
    for (let k = 1 + Math.floor(rnd() * 5); k > 0; k--) rows.push(row());
    const text = Buffer.from(
      `${pick(heads)}${ws()}${rows.join(pick([',', ', ', ',\n']))}${pick(tails)};\n`,
      'latin1',
    );
    for (const size of [1 << 20, 1 + Math.floor(rnd() * 40)]) {
      for (const s of splitRaw(text, size)) {
        if (!s.literalValues) continue;
        seen++;
        const dup = { duplicate: false };
        const from = s.raw.indexOf('`t`') >= 0 ? s.raw.indexOf('`t`') + 3 : s.raw.indexOf(' t ') + 2;
        assert.equal(valuesRefusal(s.raw, from, undefined, dup), undefined, s.raw.toString('latin1'));
        assert.equal(dup.duplicate, false, s.raw.toString('latin1'));
      }
    }
  }
  assert.ok(seen > 500, `only ${seen} statements seen as literals only`);
});
