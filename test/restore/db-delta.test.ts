// The selective database rollback (issue 14): with the table hashes of its manifest, a rollback loads only the
// tables whose schema or rows differ from the backup's, re-creates every definition, and ends with a database
// exactly equal to the backup; without hashes (an older manifest, a mariadb-dump dump), or with --full, it
// restores every table, as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { createZoo } from '../../fixtures/db-zoo.js';
import { stockDump } from '../../fixtures/db-clients.js';
import { generateStore } from '../../fixtures/store.js';
import { describeDatabase, diffDatabases, type DbSnapshot } from '../../fixtures/db-compare.js';
import { runBackup } from '../../src/backup/run-backup.js';
import { runRollback, type RollbackPartResult } from '../../src/restore/run-rollback.js';
import type { MagebackupEvent } from '../../src/events.js';
import { tempDir } from '../helpers/tmp.js';

interface Setup {
  server: TestServer;
  db: string;
  conn: Connection;
  root: string;
}

async function setup(prefix: string): Promise<Setup> {
  const server = await getTestServer();
  const db = await server.createDatabase(prefix);
  const conn = await server.connect(db);
  await createZoo(conn, { bigRows: 2000, bigBlobBytes: 20_000 });
  const root = path.join(tempDir('mbk-dbdelta-'), 'store');
  await generateStore({
    dir: root,
    size: 'tiny',
    db: { host: server.host, port: server.port, user: server.user, password: server.password, dbname: db },
  });
  return { server, db, conn, root };
}

/** Changes of every kind a selective rollback must undo; returns the tables it must load. */
async function changeEverything(conn: Connection): Promise<string[]> {
  // rows changed, the row count kept
  await conn.query('UPDATE zoo_big SET payload = REVERSE(payload) WHERE id IN (3, 1500)');
  // a column added
  await conn.query('ALTER TABLE zoo_orders ADD COLUMN later INT NULL');
  // a trigger of a table that is otherwise equal, changed
  await conn.query('DROP TRIGGER zoo_basic_bu');
  await conn.query(
    "CREATE TRIGGER zoo_basic_bu BEFORE UPDATE ON zoo_basic FOR EACH ROW SET NEW.note = 'trigger changed'",
  );
  // a view and a routine changed, an event dropped
  await conn.query('CREATE OR REPLACE VIEW v_base AS SELECT id, name FROM zoo_basic');
  await conn.query('DROP PROCEDURE zoo_proc_noargs');
  await conn.query('CREATE PROCEDURE zoo_proc_noargs() SELECT 2');
  await conn.query('DROP EVENT zoo_event_at');
  // a table dropped, one added
  await conn.query('DROP TABLE zoo_empty');
  await conn.query('CREATE TABLE zoo_later (id INT PRIMARY KEY)');
  // the counter moved, the rows did not: the table is kept, its AUTO_INCREMENT given back
  await conn.query('INSERT INTO zoo_autoinc VALUES ()');
  await conn.query('DELETE FROM zoo_autoinc ORDER BY id DESC LIMIT 1');
  // a keyless table with the same rows is loaded anyway
  return ['zoo_big', 'zoo_empty', 'zoo_orders'];
}

function dbPart(parts: RollbackPartResult[]): RollbackPartResult {
  const p = parts.find((x) => x.part === 'db');
  assert.ok(p, 'a db part');
  return p;
}

void test('selective: only the tables that differ are loaded, and the database ends exactly as the backup', async () => {
  const { db, conn, root } = await setup('dd_sel');
  try {
    const backup = await runBackup({ root, parts: { code: false, media: false, db: true } });
    const dbFile = backup.parts.find((p) => p.part === 'db')!.file;
    const manifest = JSON.parse(
      await fsp.readFile(path.join(root, 'var/backups', `${backup.timestamp}_manifest.json`), 'utf8'),
    ) as { parts: Array<{ part: string; content?: { tables: unknown[] } }> };
    assert.ok((manifest.parts.find((p) => p.part === 'db')?.content?.tables.length ?? 0) > 20);
    const before: DbSnapshot = await describeDatabase(conn, db);
    const mustLoad = await changeEverything(conn);

    let question: string[] = [];
    const events: MagebackupEvent[] = [];
    const result = await runRollback({
      root,
      dbFile,
      confirm: (plan) => {
        question = plan;
        return Promise.resolve(true);
      },
      onEvent: (e) => events.push(e),
    });
    const p = dbPart(result.parts);
    const restored = p.restoredTables ?? [];
    for (const t of mustLoad) assert.ok(restored.includes(t), `${t} is loaded`);
    assert.ok(restored.includes('zoo_nopk'), 'a table without a key is always loaded');
    for (const t of ['zoo_basic', 'zoo_autoinc', 'zoo_blobs', 'zoo_fk_a', 'zoo_fk_b'])
      assert.ok(!restored.includes(t), `${t} is equal and kept`);
    assert.ok((p.kept ?? 0) > 15, `most tables are kept (${p.kept})`);
    // the sequence is loaded too (a sequence has no row hash)
    assert.equal(p.tables, restored.length + 1);
    assert.match(question[0] ?? '', new RegExp(`^${restored.length} tables will be restored$`));
    assert.match(
      question[1] ?? '',
      /^db from var\/backups\/.*: \d+ of \d+ tables will be restored: 1 with other rows/,
    );

    // the extra table stays (as without --drop-extra-tables), everything else is the backup's
    const now = await describeDatabase(conn, db);
    delete now.tables.zoo_later;
    assert.deepEqual(diffDatabases(before, now), []);
    assert.ok(events.some((e) => e.type === 'warning' && e.code === 'EXTRA_TABLES'));
  } finally {
    await conn.end();
  }
});

void test('selective with --drop-extra-tables, and a second rollback right after finds nothing to load', async () => {
  const { db, conn, root } = await setup('dd_twice');
  try {
    const backup = await runBackup({ root, parts: { code: false, media: false, db: true } });
    const dbFile = backup.parts.find((p) => p.part === 'db')!.file;
    const before = await describeDatabase(conn, db);
    await changeEverything(conn);
    await runRollback({ root, dbFile, dropExtraTables: true });
    assert.deepEqual(diffDatabases(before, await describeDatabase(conn, db)), []);
    const again = dbPart((await runRollback({ root, dbFile })).parts);
    // the tables just loaded hash as the backup's again: only those never compared (no key, no row hash) load
    const m = JSON.parse(
      await fsp.readFile(path.join(root, 'var/backups', `${backup.timestamp}_manifest.json`), 'utf8'),
    ) as { parts: Array<{ part: string; content?: { tables: Array<{ name: string; rows?: string }> } }> };
    const unhashed = (m.parts.find((x) => x.part === 'db')?.content?.tables ?? [])
      .filter((t) => t.rows === undefined)
      .map((t) => t.name);
    assert.ok(unhashed.includes('zoo_nopk'));
    assert.deepEqual([...(again.restoredTables ?? [])].sort(), unhashed.sort());
    assert.deepEqual(diffDatabases(before, await describeDatabase(conn, db)), []);
  } finally {
    await conn.end();
  }
});

void test('without table hashes (an older manifest, a mariadb-dump dump) and with --full, every table is restored', async () => {
  const { server, db, conn, root } = await setup('dd_whole');
  try {
    const backup = await runBackup({ root, parts: { code: false, media: false, db: true } });
    const dbFile = backup.parts.find((p) => p.part === 'db')!.file;
    const before = await describeDatabase(conn, db);
    const total = Object.keys(before.tables).length + Object.keys(before.sequences).length;

    // --full
    await changeEverything(conn);
    let p = dbPart((await runRollback({ root, dbFile, full: true, dropExtraTables: true })).parts);
    assert.equal(p.kept, undefined);
    assert.equal(p.restoredTables, undefined);
    assert.equal(p.tables, total);
    assert.deepEqual(diffDatabases(before, await describeDatabase(conn, db)), []);

    // a manifest written before table hashes existed
    const mf = path.join(root, 'var/backups', `${backup.timestamp}_manifest.json`);
    const m = JSON.parse(await fsp.readFile(mf, 'utf8')) as { parts: Array<Record<string, unknown>> };
    for (const part of m.parts) delete part.content;
    await fsp.writeFile(mf, JSON.stringify(m));
    await changeEverything(conn);
    p = dbPart((await runRollback({ root, dbFile, dropExtraTables: true })).parts);
    assert.equal(p.kept, undefined);
    assert.equal(p.tables, total);
    assert.deepEqual(diffDatabases(before, await describeDatabase(conn, db)), []);

    // a mariadb-dump dump in var/backups (no manifest at all)
    const stock = `${backup.timestamp + 7}_db.sql`;
    await stockDump(server, db, path.join(root, 'var/backups', stock));
    await changeEverything(conn);
    p = dbPart((await runRollback({ root, dbFile: stock, dropExtraTables: true })).parts);
    assert.equal(p.kept, undefined);
    assert.equal(p.tables, total);
  } finally {
    await conn.end();
  }
});

void test('a dump that no longer matches its manifest is restored whole, with a warning', async () => {
  const { db, conn, root } = await setup('dd_tamper');
  try {
    const backup = await runBackup({ root, parts: { code: false, media: false, db: true } });
    const dbFile = backup.parts.find((p) => p.part === 'db')!.file;
    const file = path.join(root, 'var/backups', dbFile);
    // the same statements, one comment more: loadable, but not the file the hashes describe
    await fsp.writeFile(file, Buffer.concat([Buffer.from('-- touched\n'), await fsp.readFile(file)]));
    const before = await describeDatabase(conn, db);
    await changeEverything(conn);
    const events: MagebackupEvent[] = [];
    const p = dbPart(
      (await runRollback({ root, dbFile, dropExtraTables: true, onEvent: (e) => events.push(e) })).parts,
    );
    assert.equal(p.kept, undefined);
    assert.ok(events.some((e) => e.type === 'warning' && e.code === 'DB_FULL_RESTORE'));
    assert.deepEqual(diffDatabases(before, await describeDatabase(conn, db)), []);
  } finally {
    await conn.end();
  }
});
