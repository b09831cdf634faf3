// The selective database rollback (issue 14): with the table hashes of its manifest, a rollback loads only the
// tables whose schema or rows differ from the backup's, re-creates every definition, and ends with a database
// exactly equal to the backup; without hashes (an older manifest, a mariadb-dump dump), or with --full, it
// restores every table, as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
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

interface Section {
  offset: number;
  line: number;
  length: number;
  triggers: number;
  triggersLine: number;
}
interface Manifest {
  parts: Array<{
    part: string;
    size: number;
    sha256: string;
    content?: {
      tables: Array<{ name: string; section?: Section }>;
      tail?: { offset: number; line: number; end: number };
    };
  }>;
}

async function readManifest(root: string, ts: number): Promise<{ file: string; m: Manifest }> {
  const file = path.join(root, 'var/backups', `${ts}_manifest.json`);
  return { file, m: JSON.parse(await fsp.readFile(file, 'utf8')) as Manifest };
}

const linesBefore = (b: Buffer, offset: number): number => {
  let n = 1;
  for (let i = b.indexOf(0x0a); i >= 0 && i < offset; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
};

void test("the manifest's table sections cut the dump into head, each table (then its triggers) and tail, on the right lines", async () => {
  const { conn, root } = await setup('dd_sections');
  try {
    const backup = await runBackup({ root, parts: { code: false, media: false, db: true } });
    const dbFile = backup.parts.find((p) => p.part === 'db')!.file;
    const dump = await fsp.readFile(path.join(root, 'var/backups', dbFile));
    const { m } = await readManifest(root, backup.timestamp);
    const c = m.parts.find((p) => p.part === 'db')!.content!;
    assert.ok(c.tail, 'a tail');
    assert.equal(c.tail.end, dump.length);
    assert.equal(c.tail.line, linesBefore(dump, c.tail.offset));
    assert.match(dump.subarray(c.tail.offset).toString('latin1'), /-- Dump completed on /);
    let withTriggers = 0;
    for (const t of c.tables) {
      const s = t.section!;
      assert.ok(s, `${t.name} has a section`);
      const part = dump.subarray(s.offset, s.offset + s.length).toString('latin1');
      assert.ok(part.startsWith(`--\n-- Table structure for table `), t.name);
      assert.match(part, /^DROP TABLE IF EXISTS `/m, t.name);
      assert.ok(part.endsWith('\n\n'), `${t.name}'s section ends between statements`);
      assert.equal(s.line, linesBefore(dump, s.offset), `${t.name}: line`);
      assert.equal(s.triggersLine, linesBefore(dump, s.offset + s.length), `${t.name}: triggers line`);
      const tr = dump.subarray(s.offset + s.length, s.offset + s.length + s.triggers).toString('latin1');
      if (s.triggers > 0) {
        withTriggers++;
        assert.match(tr, /CREATE (?:DEFINER=\S+ )?TRIGGER/);
        assert.ok(!part.includes('TRIGGER'), `${t.name}: no trigger in the structure and rows`);
      }
    }
    assert.ok(withTriggers > 0, 'the zoo has tables with triggers');
  } finally {
    await conn.end();
  }
});

/** Overwrites bytes of the dump and tells the manifest its new size and SHA-256 (as if it had been written so). */
async function rewriteDump(
  root: string,
  ts: number,
  dbFile: string,
  at: number,
  bytes: Buffer,
): Promise<void> {
  const file = path.join(root, 'var/backups', dbFile);
  const dump = await fsp.readFile(file);
  bytes.copy(dump, at);
  await fsp.writeFile(file, dump);
  const { file: mf, m } = await readManifest(root, ts);
  const part = m.parts.find((p) => p.part === 'db')!;
  part.sha256 = createHash('sha256').update(dump).digest('hex');
  await fsp.writeFile(mf, JSON.stringify(m));
}

void test("a selective rollback never reads the kept tables' sections: garbage there (the manifest's SHA-256 matching) changes nothing", async () => {
  const { db, conn, root } = await setup('dd_ranges');
  try {
    const backup = await runBackup({ root, parts: { code: false, media: false, db: true } });
    const dbFile = backup.parts.find((p) => p.part === 'db')!.file;
    const { m } = await readManifest(root, backup.timestamp);
    const c = m.parts.find((p) => p.part === 'db')!.content!;
    // zoo_blobs stays equal: its structure and rows (but their first line) become bytes no reader could take for SQL
    const s = c.tables.find((t) => t.name === 'zoo_blobs')!.section!;
    const dump = await fsp.readFile(path.join(root, 'var/backups', dbFile));
    const head = dump.indexOf(';\n', s.offset) + 2 - s.offset; // through its DROP TABLE
    await rewriteDump(root, backup.timestamp, dbFile, s.offset + head, Buffer.alloc(s.length - head, "'"));
    const before = await describeDatabase(conn, db);
    await conn.query('UPDATE zoo_big SET payload = REVERSE(payload) WHERE id = 7');
    const events: MagebackupEvent[] = [];
    const p = dbPart((await runRollback({ root, dbFile, onEvent: (e) => events.push(e) })).parts);
    assert.ok(p.restoredTables?.includes('zoo_big'));
    assert.ok(!p.restoredTables?.includes('zoo_blobs'));
    assert.ok(
      !events.some((e) => e.type === 'warning' && /SECTIONS|FULL_RESTORE/.test(e.code)),
      'no fallback',
    );
    assert.deepEqual(diffDatabases(before, await describeDatabase(conn, db)), []);
  } finally {
    await conn.end();
  }
});

/** Moves the boundary after table `name` by `k` bytes into the next table's section (a wrong manifest). */
async function shiftBoundary(root: string, ts: number, name: string, k: number): Promise<string> {
  const { file, m } = await readManifest(root, ts);
  const tables = m.parts.find((p) => p.part === 'db')!.content!.tables;
  const i = tables.findIndex((t) => t.name === name);
  const a = tables[i]!.section!;
  const b = tables[i + 1]!.section!;
  if (a.triggers > 0) a.triggers += k;
  else a.length += k;
  b.offset += k;
  b.length -= k;
  await fsp.writeFile(file, JSON.stringify(m));
  return tables[i + 1]!.name;
}

void test('wrong table sections in the manifest: a .sql is read whole (with a warning), never loaded wrong', async () => {
  const { db, conn, root } = await setup('dd_badsec');
  try {
    const backup = await runBackup({ root, parts: { code: false, media: false, db: true } });
    const dbFile = backup.parts.find((p) => p.part === 'db')!.file;
    await shiftBoundary(root, backup.timestamp, 'zoo_big', 40);
    const before = await describeDatabase(conn, db);
    const mustLoad = await changeEverything(conn);
    const events: MagebackupEvent[] = [];
    const p = dbPart(
      (await runRollback({ root, dbFile, dropExtraTables: true, onEvent: (e) => events.push(e) })).parts,
    );
    for (const t of mustLoad) assert.ok(p.restoredTables?.includes(t), `${t} is loaded`);
    const w = events.find((e) => e.type === 'warning' && e.code === 'DB_SECTIONS_UNUSED');
    assert.ok(w && w.type === 'warning', 'a warning');
    assert.match(w.message, /does not start there; it is read whole$/);
    assert.deepEqual(diffDatabases(before, await describeDatabase(conn, db)), []);
  } finally {
    await conn.end();
  }
});

void test('wrong table sections in the manifest of a .sql.gz: the rollback refuses, the database is not changed', async () => {
  const { db, conn, root } = await setup('dd_badgz');
  try {
    const backup = await runBackup({ root, parts: { code: false, media: false, db: true }, compress: true });
    const dbFile = backup.parts.find((p) => p.part === 'db')!.file;
    assert.match(dbFile, /\.sql\.gz$/);
    await shiftBoundary(root, backup.timestamp, 'zoo_big', 60);
    await conn.query('UPDATE zoo_big SET payload = REVERSE(payload) WHERE id = 7');
    const changed = await describeDatabase(conn, db);
    await assert.rejects(
      runRollback({ root, dbFile }),
      (err: Error) =>
        err.message.includes("does not match its manifest's table sections") &&
        /roll back with --full/.test(err.message),
    );
    assert.deepEqual(diffDatabases(changed, await describeDatabase(conn, db)), []);
    const [left] = (await conn.query("SHOW TABLES LIKE '\\_\\_mbk\\_%'")) as unknown as [unknown[]];
    assert.deepEqual(left, []);
    // the same file, read correctly: the backup comes back
    await shiftBoundary(root, backup.timestamp, 'zoo_big', -60);
    const p = dbPart((await runRollback({ root, dbFile })).parts);
    assert.ok(p.restoredTables?.includes('zoo_big'));
  } finally {
    await conn.end();
  }
});
