import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyStatement, definitionTarget } from '../../src/db/restore-parse.js';
import { renameTables } from '../../src/db/restore-redirect.js';
import { statementExcerpt, statementHead } from '../../src/db/sql-tokens.js';

const kind = (sql: string) => classifyStatement(statementHead(Buffer.from(sql)));

void test('statements are classified through executable comments', () => {
  assert.deepEqual(kind('USE `shop`'), { kind: 'skip', why: 'use', database: 'shop' });
  assert.deepEqual(
    kind('CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */'),
    {
      kind: 'skip',
      why: 'create-database',
      database: 'shop',
    },
  );
  assert.deepEqual(kind('LOCK TABLES `t` WRITE'), { kind: 'skip', why: 'lock' });
  assert.deepEqual(kind('UNLOCK TABLES'), { kind: 'skip', why: 'lock' });
  assert.deepEqual(kind('/*!40101 SET NAMES utf8mb4 */'), { kind: 'session' });
  assert.deepEqual(kind('DROP TABLE IF EXISTS `we``ird`'), { kind: 'table', table: 'we`ird', drop: true });
  assert.deepEqual(kind('CREATE TABLE `a.b` (x int)'), { kind: 'table', table: 'a.b', create: true });
  assert.deepEqual(kind('CREATE SEQUENCE `s` start with 1'), { kind: 'table', table: 's', create: true });
  assert.deepEqual(kind('INSERT INTO `t` VALUES (1)'), { kind: 'table', table: 't' });
  assert.deepEqual(kind('INSERT IGNORE INTO shop.t VALUES (1)'), {
    kind: 'table',
    table: 't',
    database: 'shop',
  });
  assert.deepEqual(kind('/*!40000 ALTER TABLE `t` DISABLE KEYS */'), { kind: 'table', table: 't' });
  assert.deepEqual(kind('SELECT SETVAL(`s`, 1001, 0)'), { kind: 'table', table: 's' });
  assert.deepEqual(kind('-- c\n/*!50001 DROP VIEW IF EXISTS `v`*/'), { kind: 'definition', object: 'view' });
  assert.deepEqual(
    kind(
      '/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */\n/*!50001 VIEW `v` AS select 1 */',
    ),
    { kind: 'definition', object: 'view' },
  );
  assert.deepEqual(
    kind(
      '/*!50003 CREATE*/ /*!50017 DEFINER=`a b`@`%`*/ /*!50003 TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a=1 */',
    ),
    {
      kind: 'definition',
      object: 'trigger',
    },
  );
  assert.deepEqual(kind('CREATE  TRIGGER trg BEFORE UPDATE ON `t` FOR EACH ROW BEGIN END'), {
    kind: 'definition',
    object: 'trigger',
  });
  assert.deepEqual(kind('CREATE DEFINER=`root`@`localhost` FUNCTION `f`() RETURNS int RETURN 1'), {
    kind: 'definition',
    object: 'function',
  });
  assert.deepEqual(
    kind(
      '/*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1 */',
    ),
    {
      kind: 'definition',
      object: 'event',
    },
  );
  assert.deepEqual(kind('/*!50003 ALTER DATABASE `shop` CHARACTER SET latin1 */'), {
    kind: 'definition',
    object: 'database',
  });
  assert.deepEqual(
    kind("EXECUTE IMMEDIATE 'CREATE TRIGGER t2 BEFORE INSERT ON `o` FOR EACH ROW SET NEW.s = \\'x;\\''"),
    {
      kind: 'definition',
      object: 'trigger',
    },
  );
  assert.deepEqual(kind("EXECUTE IMMEDIATE 'CREATE PROCEDURE `p`() BEGIN END'"), {
    kind: 'definition',
    object: 'procedure',
  });
  assert.deepEqual(kind("EXECUTE IMMEDIATE 'SELECT 1'"), { kind: 'barrier' });
  assert.deepEqual(kind('DROP TABLE IF EXISTS a, b'), { kind: 'barrier' });
  assert.deepEqual(kind('GRANT ALL ON x.* TO y'), { kind: 'barrier' });
});

void test('renameTables renames table names in heads, REFERENCES and LIKE, and FK constraint names, nothing else', () => {
  const r = {
    table: (n: string, db: string | undefined) => (db === undefined || db === 'shop' ? `S_${n}` : undefined),
    constraint: (n: string) => `C_${n}`,
  };
  const run = (sql: string): string => renameTables(Buffer.from(sql), r).toString();
  assert.equal(
    run(
      "CREATE TABLE `a` (`id` int, `b` int DEFAULT 'REFERENCES `x`', KEY `k` (`b`), CONSTRAINT `fk` FOREIGN KEY (`b`) REFERENCES `b` (`id`), CONSTRAINT `chk` CHECK (`b` > 0)) COMMENT='CONSTRAINT `y` FOREIGN KEY'",
    ),
    "CREATE TABLE `S_a` (`id` int, `b` int DEFAULT 'REFERENCES `x`', KEY `k` (`b`), CONSTRAINT `C_fk` FOREIGN KEY (`b`) REFERENCES `S_b` (`id`), CONSTRAINT `chk` CHECK (`b` > 0)) COMMENT='CONSTRAINT `y` FOREIGN KEY'",
  );
  assert.equal(run('INSERT INTO `shop`.`t` VALUES (1)'), 'INSERT INTO `S_t` VALUES (1)');
  assert.equal(run('INSERT INTO `other`.`t` VALUES (1)'), 'INSERT INTO `other`.`t` VALUES (1)');
  assert.equal(run('/*!40000 ALTER TABLE `t` DISABLE KEYS */'), '/*!40000 ALTER TABLE `S_t` DISABLE KEYS */');
  assert.equal(run('DROP TABLE IF EXISTS a, `b`'), 'DROP TABLE IF EXISTS `S_a`, `S_b`');
  assert.equal(run('SELECT SETVAL(`s`, 5, 0)'), 'SELECT SETVAL(`S_s`, 5, 0)');
  assert.equal(run('CREATE TABLE t2 LIKE t1'), 'CREATE TABLE `S_t2` LIKE `S_t1`');
  assert.equal(
    run(
      'ALTER TABLE `t`\n  ADD CONSTRAINT `X` FOREIGN KEY (`s`) REFERENCES `store` (`id`) ON DELETE CASCADE',
    ),
    'ALTER TABLE `S_t`\n  ADD CONSTRAINT `C_X` FOREIGN KEY (`s`) REFERENCES `S_store` (`id`) ON DELETE CASCADE',
  );
  assert.equal(run('CREATE INDEX i ON t (a)'), 'CREATE INDEX i ON `S_t` (a)');
  assert.equal(run('CREATE TABLE `é` (x int)'), 'CREATE TABLE `S_é` (x int)');
});

void test('definitionTarget names the object of a definition, packages included', () => {
  const t = (sql: string) => definitionTarget(statementHead(Buffer.from(sql)));
  assert.deepEqual(t('CREATE DEFINER=`a`@`%` PACKAGE BODY `pkg` AS END'), {
    object: 'package body',
    name: 'pkg',
    drop: false,
  });
  assert.deepEqual(t('CREATE OR REPLACE PACKAGE pkg AS END'), {
    object: 'package',
    name: 'pkg',
    drop: false,
  });
  assert.deepEqual(kind('CREATE PACKAGE pkg AS END'), { kind: 'definition', object: 'package' });
  assert.deepEqual(kind('CREATE PACKAGE BODY pkg AS END'), { kind: 'definition', object: 'package body' });
  assert.deepEqual(t('/*!50001 DROP VIEW IF EXISTS `v`*/'), { object: 'view', name: 'v', drop: true });
  assert.deepEqual(t('CREATE TRIGGER `shop`.`tr` BEFORE INSERT ON t FOR EACH ROW SET @a = 1'), {
    object: 'trigger',
    name: 'tr',
    drop: false,
  });
  assert.equal(t('CREATE TABLE t (x int)'), undefined);
});

void test('statementExcerpt is one line of at most 80 characters', () => {
  const e = statementExcerpt(Buffer.from('INSERT INTO `t`\nVALUES ' + '(1),'.repeat(100)));
  assert.ok(e.length <= 80 && !e.includes('\n'), e);
  assert.ok(e.startsWith('INSERT INTO `t` VALUES (1)'));
});
