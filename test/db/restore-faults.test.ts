/**
 * The DB rollback for the usual Magento grant (ALL ON <db>.* only) and its faults: repeated rollbacks of a
 * schema with a foreign-key cycle, triggers, views, routines and events; lock waits that hit their bound; an
 * abort while a statement hangs; the server dying mid-restore; names inside definitions; extra objects; packages.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, startMariaDB, type TestServer } from '../../fixtures/mariadb.js';
import { describeDatabase, diffDatabases, type DbSnapshot } from '../../fixtures/db-compare.js';
import { dumpDatabase } from '../../src/db/dump.js';
import {
  prepareDatabaseRestore,
  recoverInterruptedRestores,
  restoreDatabase,
  RestoreError,
  RestoreInterruptedError,
} from '../../src/db/restore.js';
import type { DbConnectionConfig } from '../../src/db/types.js';
import type { MagebackupEvent } from '../../src/events.js';
import { configFor, queryRows, stockDump } from './restore-helpers.js';
import { magentoUser, type MagentoUser } from '../helpers/db-users.js';

let server: TestServer;
let conn: Connection;
let dir: string;

void before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mbk-rfault-'));
});

void after(async () => {
  await conn?.end();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

/** A small store: an FK cycle, a trigger on each side, views over views, a procedure, a function, an event. */
async function smallSchema(c: Connection, tag: string): Promise<void> {
  await c.query('SET SESSION foreign_key_checks = 0');
  await c.query(
    'CREATE TABLE fk_a (id INT PRIMARY KEY, b_id INT, note VARCHAR(20), KEY (b_id), CONSTRAINT fk_a_b FOREIGN KEY (b_id) REFERENCES fk_b (id) ON DELETE SET NULL) ENGINE=InnoDB',
  );
  await c.query(
    'CREATE TABLE fk_b (id INT PRIMARY KEY, a_id INT, KEY (a_id), CONSTRAINT fk_b_a FOREIGN KEY (a_id) REFERENCES fk_a (id) ON DELETE CASCADE) ENGINE=InnoDB',
  );
  await c.query('CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(50)) ENGINE=InnoDB');
  await c.query('SET SESSION foreign_key_checks = 1');
  await c.query('INSERT INTO fk_a VALUES (1, NULL, ?), (2, NULL, ?)', [tag, tag]);
  await c.query('INSERT INTO fk_b VALUES (10, 1), (20, 2)');
  await c.query('UPDATE fk_a SET b_id = 10 WHERE id = 1');
  await c.query(
    `CREATE TRIGGER fk_a_ai AFTER INSERT ON fk_a FOR EACH ROW INSERT INTO audit (msg) VALUES (CONCAT('${tag} a ', NEW.id))`,
  );
  await c.query(
    `CREATE TRIGGER fk_b_bu BEFORE UPDATE ON fk_b FOR EACH ROW SET NEW.a_id = COALESCE(NEW.a_id, OLD.a_id)`,
  );
  await c.query('CREATE VIEW v_a AS SELECT id, note FROM fk_a');
  await c.query('CREATE VIEW v_ab AS SELECT v_a.id, fk_b.id AS b FROM v_a JOIN fk_b ON fk_b.a_id = v_a.id');
  await c.query(`CREATE PROCEDURE p_count(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM fk_a; END`);
  await c.query(`CREATE FUNCTION f_tag() RETURNS VARCHAR(20) DETERMINISTIC RETURN '${tag}'`);
  await c.query(
    "CREATE EVENT e_tick ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01 00:00:00' DISABLE DO DELETE FROM audit WHERE id < 0",
  );
}

function limitedUser(db: string): Promise<MagentoUser> {
  return magentoUser(conn, db, { password: 'limited-Pw-2' });
}

async function leftovers(db: string, c: Connection = conn): Promise<string[]> {
  const r = await queryRows(
    c,
    "SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE '\\_\\_mbk\\_%'",
    [db],
  );
  return r.map((x) => String(x.n));
}

async function snap(db: string, c: Connection = conn): Promise<DbSnapshot> {
  return describeDatabase(c, db);
}

/** Two dumps of the small schema with different data and definitions, and a live database for them. */
async function twoDumps(
  prefix: string,
): Promise<{ live: string; a: string; b: string; snapA: DbSnapshot; snapB: DbSnapshot }> {
  const out: string[] = [];
  const snaps: DbSnapshot[] = [];
  for (const tag of ['one', 'two']) {
    const db = await server.createDatabase(`${prefix}${tag}`);
    const c = await server.connect(db);
    try {
      await smallSchema(c, tag);
    } finally {
      await c.end();
    }
    const file = path.join(dir, `${db}.sql`);
    await dumpDatabase({ config: configFor(server, db), outFile: file, compress: false });
    out.push(file);
    snaps.push(await snap(db));
  }
  const live = await server.createDatabase(`${prefix}live`);
  return { live, a: out[0]!, b: out[1]!, snapA: snaps[0]!, snapB: snaps[1]! };
}

/** Snapshots of different databases compare equal apart from the database name. */
function same(a: DbSnapshot, b: DbSnapshot): string[] {
  return diffDatabases({ ...a, database: 'x' }, { ...b, database: 'x' });
}

void test('20 rollbacks in a row as a user with only ALL ON <db>.*: FK cycle, triggers, views, routines, event', async () => {
  const { live, a, b, snapA, snapB } = await twoDumps('r20');
  const u = await limitedUser(live);
  try {
    const config: DbConnectionConfig = { ...configFor(server, live), user: u.user, password: u.password };
    for (let i = 0; i < 20; i++) {
      const even = i % 2 === 0;
      const r = await restoreDatabase({ config, file: even ? a : b, concurrency: 3 });
      assert.equal(r.tables, 3);
      assert.deepEqual(same(even ? snapA : snapB, await snap(live)), [], `rollback ${i + 1}`);
      assert.deepEqual(await leftovers(live), []);
    }
    // the triggers work on the restored tables
    await conn.query(`INSERT INTO \`${live}\`.fk_a VALUES (3, NULL, 'x')`);
    const [row] = await queryRows(conn, `SELECT msg FROM \`${live}\`.audit ORDER BY id DESC LIMIT 1`);
    assert.equal(row?.msg, 'two a 3');
  } finally {
    await u.drop();
  }
});

void test('prepare, then discard: nothing changes; prepare, then commit: restored', async () => {
  const { live, a, b, snapA, snapB } = await twoDumps('rprep');
  await restoreDatabase({ config: configFor(server, live), file: a });
  const p = await prepareDatabaseRestore({ config: configFor(server, live), file: b });
  assert.match(p.id, /^[0-9a-z]+$/);
  assert.notDeepEqual(await leftovers(live), []);
  await p.discard();
  assert.deepEqual(same(snapA, await snap(live)), []);
  assert.deepEqual(await leftovers(live), []);
  const p2 = await prepareDatabaseRestore({ config: configFor(server, live), file: b });
  // a prepared restore found by the recovery: the caller decides
  const seen: string[] = [];
  await recoverInterruptedRestores(configFor(server, live), (id) => {
    seen.push(id);
    return 'forward';
  });
  assert.deepEqual(seen, [p2.id]);
  assert.deepEqual(same(snapB, await snap(live)), []);
  assert.deepEqual(await leftovers(live), []);
});

void test("a statement blocked by another session's lock fails within the bound, naming the table; nothing changes", async () => {
  const { live, a, b, snapA } = await twoDumps('rlock');
  await restoreDatabase({ config: configFor(server, live), file: a });
  const holder = await server.connect(live);
  try {
    await holder.query('START TRANSACTION');
    await holder.query('SELECT * FROM fk_b FOR UPDATE');
    await assert.rejects(
      restoreDatabase({ config: configFor(server, live), file: b, lockWaitSeconds: 2 }),
      (err: unknown) => {
        assert.ok(err instanceof RestoreError, String(err));
        assert.match(err.message, /Waited more than 2 s for a lock on .*fk_b/);
        assert.match(err.message, /put back as it was|was not changed/);
        assert.equal(err.live, 'unchanged');
        return true;
      },
    );
  } finally {
    await holder.query('ROLLBACK');
    await holder.end();
  }
  assert.deepEqual(same(snapA, await snap(live)), []);
  assert.deepEqual(await leftovers(live), []);
});

void test(
  'an abort while a statement waits on a lock ends the restore within seconds; the live data stays old',
  { timeout: 120_000 },
  async () => {
    const { live, a, b, snapA } = await twoDumps('rterm');
    await restoreDatabase({ config: configFor(server, live), file: a });
    const holder = await server.connect(live);
    const ac = new AbortController();
    try {
      await holder.query('LOCK TABLES fk_a WRITE');
      const run = restoreDatabase({
        config: configFor(server, live),
        file: b,
        signal: ac.signal,
        lockWaitSeconds: 3600,
      });
      const outcome = run.then(
        () => undefined,
        (err: unknown) => err,
      );
      // wait until the swap waits on the lock, then "SIGTERM"
      for (;;) {
        const w = await queryRows(
          conn,
          "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND STATE LIKE 'Waiting for table metadata lock%'",
          [live],
        );
        if (w.length > 0) break;
        const done = await Promise.race([
          outcome.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 100)),
        ]);
        assert.equal(done, false, 'the restore ended before it waited on the lock');
      }
      ac.abort('SIGTERM');
      const err = await outcome;
      assert.ok(err instanceof RestoreInterruptedError, String(err));
      assert.match((err as Error).message, /SIGTERM/);
      assert.equal(err.live, 'unchanged');
    } finally {
      await holder.query('UNLOCK TABLES');
      await holder.end();
    }
    assert.deepEqual(same(snapA, await snap(live)), []);
    assert.deepEqual(await leftovers(live), []);
  },
);

for (const at of ['loading', 'swapped'] as const) {
  void test(
    `the server killed mid-restore (${at}): one clear error, no hang`,
    { timeout: 300_000 },
    async () => {
      const s2 = await startMariaDB();
      try {
        const c2 = await s2.connect();
        const db = await s2.createDatabase('rgone');
        const file = path.join(dir, `gone-${at}.sql`);
        try {
          const cs = await s2.connect(db);
          await smallSchema(cs, 'old');
          await cs.end();
          await dumpDatabase({ config: configFor(s2, db), outFile: file, compress: false });
          await c2.query(`UPDATE \`${db}\`.fk_a SET note = 'changed'`);
          const [pidRow] = await queryRows(c2, 'SELECT @@pid_file AS f');
          const pid = Number(readFileSync(String(pidRow?.f), 'utf8').trim());
          await assert.rejects(
            restoreDatabase({
              config: configFor(s2, db),
              file,
              onStep: (s) => {
                if (s === at) process.kill(pid, 'SIGKILL');
              },
            }),
            (err: unknown) => {
              assert.ok(err instanceof RestoreError, String(err));
              assert.match(err.message, /database server went away/);
              assert.doesNotMatch(err.message, /\n/);
              if (at === 'loading') {
                assert.equal(err.live, 'unchanged');
                assert.match(err.message, /was not changed/);
              } else {
                assert.equal(err.live, 'recovery-pending');
                assert.match(err.message, /next magebackup run/);
              }
              return true;
            },
          );
        } finally {
          c2.destroy();
        }
      } finally {
        await s2.stop();
      }
    },
  );
}

void test('a database holding a table of its own name, and a view naming `db`.`col`: restored exactly (issue 10 #9)', async () => {
  const db = await server.createDatabase('employees');
  const c = await server.connect(db);
  try {
    await c.query(`CREATE TABLE \`${db}\` (emp_no INT PRIMARY KEY, name VARCHAR(20))`);
    await c.query(`INSERT INTO \`${db}\` VALUES (1, 'a'), (2, 'b')`);
    await c.query(`CREATE VIEW current_emp AS SELECT \`${db}\`.\`emp_no\` AS emp_no FROM \`${db}\``);
    await c.query(
      `CREATE TRIGGER t_emp BEFORE INSERT ON \`${db}\` FOR EACH ROW SET NEW.name = UPPER(NEW.name)`,
    );
  } finally {
    await c.end();
  }
  const before = await snap(db);
  for (const [name, make] of [
    ['ours', (f: string) => dumpDatabase({ config: configFor(server, db), outFile: f, compress: false })],
    ['stock', (f: string) => stockDump(server, db, f)],
  ] as const) {
    const file = path.join(dir, `employees-${name}.sql`);
    await make(file);
    await conn.query(`UPDATE \`${db}\`.\`${db}\` SET name = 'changed'`);
    await restoreDatabase({ config: configFor(server, db), file });
    assert.deepEqual(diffDatabases(before, await snap(db)), [], name);
    assert.deepEqual(await leftovers(db), []);
  }
});

void test('extra views, routines, events and triggers are reported and kept, and dropped with dropExtraTables', async () => {
  const { live, a, snapA } = await twoDumps('rextra');
  for (const drop of [false, true]) {
    await restoreDatabase({ config: configFor(server, live), file: a });
    const c = await server.connect(live);
    try {
      await c.query(
        'CREATE TABLE extra_t (id INT PRIMARY KEY, a INT, KEY (a), CONSTRAINT extra_fk FOREIGN KEY (a) REFERENCES fk_a (id) ON DELETE CASCADE)',
      );
      await c.query('INSERT INTO extra_t VALUES (1, 1)');
      await c.query('CREATE VIEW extra_v AS SELECT 1 AS one');
      await c.query('CREATE PROCEDURE extra_p() SELECT 1');
      await c.query('CREATE FUNCTION extra_f() RETURNS INT DETERMINISTIC RETURN 1');
      await c.query(
        "CREATE EVENT extra_e ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01 00:00:00' DISABLE DO SELECT 1",
      );
      await c.query('CREATE TRIGGER extra_tr BEFORE DELETE ON fk_a FOR EACH ROW SET @x = 1');
    } finally {
      await c.end();
    }
    const withExtras = await snap(live);
    const events: MagebackupEvent[] = [];
    const r = await restoreDatabase({
      config: configFor(server, live),
      file: a,
      dropExtraTables: drop,
      onEvent: (e) => events.push(e),
    });
    assert.deepEqual(r.extraTables, ['extra_t']);
    assert.deepEqual([...r.extraObjects].sort(), [
      'event extra_e',
      'function extra_f',
      'procedure extra_p',
      'trigger extra_tr',
      'view extra_v',
    ]);
    if (drop) {
      assert.deepEqual(same(snapA, await snap(live)), []);
      assert.deepEqual(r.droppedTables, ['extra_t']);
    } else {
      assert.deepEqual(diffDatabases(withExtras, await snap(live)), []);
      const warn = events.find((e) => e.type === 'warning' && e.code === 'EXTRA_OBJECTS');
      assert.ok(
        warn && warn.type === 'warning' && /extra_v/.test(warn.message) && /extra_tr/.test(warn.message),
      );
      await conn.query(`DROP TABLE \`${live}\`.extra_t`);
      for (const s of [
        'VIEW extra_v',
        'PROCEDURE extra_p',
        'FUNCTION extra_f',
        'EVENT extra_e',
        'TRIGGER extra_tr',
      ]) {
        await conn.query(`DROP ${s.split(' ')[0]!} \`${live}\`.\`${s.split(' ')[1]!}\``);
      }
    }
    assert.deepEqual(await leftovers(live), []);
  }
});

const PACKAGE_DUMP = (body: string): string =>
  [
    '/*!40101 SET NAMES utf8mb4 */;',
    "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;",
    'DROP TABLE IF EXISTS `t`;',
    'CREATE TABLE `t` (`id` int(11) NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;',
    'INSERT INTO `t` VALUES (1);',
    "SET sql_mode = 'ORACLE';",
    'DELIMITER ;;',
    'CREATE PACKAGE `pkg` AS FUNCTION f RETURN INT; END;;',
    `CREATE PACKAGE BODY \`pkg\` AS FUNCTION f RETURN INT AS BEGIN RETURN ${body}; END; END;;`,
    'DELIMITER ;',
    "SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO';",
    '/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;',
    '-- Dump completed on 2026-12-01 20:00:00',
    '',
  ].join('\n');

void test('Oracle-mode packages: CREATE PACKAGE and PACKAGE BODY are restored as packages, a changed body replaced', async () => {
  const live = await server.createDatabase('rpkg');
  const f1 = path.join(dir, 'pkg1.sql');
  const f2 = path.join(dir, 'pkg2.sql');
  await fsp.writeFile(f1, PACKAGE_DUMP('1'));
  await fsp.writeFile(f2, PACKAGE_DUMP('2'));
  await restoreDatabase({ config: configFor(server, live), file: f1 });
  const call = async (): Promise<number> => {
    const [r] = await queryRows(conn, `SELECT \`${live}\`.pkg.f() AS v`);
    return Number(r?.v);
  };
  assert.equal(await call(), 1);
  const r = await restoreDatabase({ config: configFor(server, live), file: f2 });
  assert.deepEqual(r.extraObjects, []);
  assert.equal(await call(), 2);
  const [n] = await queryRows(
    conn,
    "SELECT COUNT(*) AS n FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE LIKE 'PACKAGE%'",
    [live],
  );
  assert.equal(Number(n?.n), 2);
  assert.deepEqual(await leftovers(live), []);
});
