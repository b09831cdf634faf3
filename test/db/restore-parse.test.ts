import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  classifyStatement,
  retargetDatabase,
  statementExcerpt,
  statementHead,
} from '../../src/db/restore-parse.js';

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

void test('retargetDatabase rewrites qualified names and ALTER DATABASE, nothing else', () => {
  const raw = Buffer.from('CREATE VIEW v AS SELECT `shop`.`t`.`a` AS `shop` FROM `shop`.`t`');
  assert.equal(
    retargetDatabase(raw, 'shop', 'new').toString(),
    'CREATE VIEW v AS SELECT `new`.`t`.`a` AS `shop` FROM `new`.`t`',
  );
  assert.equal(retargetDatabase(raw, undefined, 'new'), raw);
  assert.equal(retargetDatabase(raw, 'shop', 'shop'), raw);
  const alter = Buffer.from('/*!50003 ALTER DATABASE `shop` CHARACTER SET latin1 */');
  assert.equal(
    retargetDatabase(alter, 'shop', 'x', statementHead(alter)).toString(),
    '/*!50003 ALTER DATABASE `x` CHARACTER SET latin1 */',
  );
});

void test('statementExcerpt is one line of at most 80 characters', () => {
  const e = statementExcerpt(Buffer.from('INSERT INTO `t`\nVALUES ' + '(1),'.repeat(100)));
  assert.ok(e.length <= 80 && !e.includes('\n'), e);
  assert.ok(e.startsWith('INSERT INTO `t` VALUES (1)'));
});
