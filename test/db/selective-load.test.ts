// The selective rollback's overlapped load (issue 14, selective-load.ts): a table found to differ starts loading
// while the comparison and the dump's check still run; the triggers and the definitions are read only once both
// ended well, so nothing can be swapped before; a failed check or an interruption leaves nothing behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { createZoo } from '../../fixtures/db-zoo.js';
import { describeDatabase, diffDatabases, type DbSnapshot } from '../../fixtures/db-compare.js';
import { dumpDatabase } from '../../src/db/dump.js';
import { compareAndLoad } from '../../src/db/selective-load.js';
import { shadowName } from '../../src/db/restore-journal.js';
import { InterruptedError } from '../../src/errors.js';
import type { MagebackupEvent } from '../../src/events.js';
import type { DbContentHashes } from '../../src/db/table-hash.js';
import { configFor, queryRows } from './restore-helpers.js';

let server: TestServer;
let root: Connection;
let dir: string;

before(async () => {
  server = await getTestServer();
  root = await server.connect();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mbk-selload-'));
});

after(async () => {
  await root?.end();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

interface Case {
  db: string;
  file: string;
  hashes: DbContentHashes;
  backup: DbSnapshot;
  changed: DbSnapshot;
}

/** A zoo, its dump, then rows changed in the biggest table (compared first) and in a small one (compared late). */
async function setup(prefix: string): Promise<Case> {
  const db = await server.createDatabase(prefix);
  const c = await server.connect(db);
  try {
    await createZoo(c, { bigRows: 2000, bigBlobBytes: 20_000 });
    const backup = await describeDatabase(root, db);
    const file = path.join(dir, `${db}.sql`);
    const r = await dumpDatabase({ config: configFor(server, db), outFile: file, compress: false });
    assert.ok(r.content, 'the dump has table hashes');
    await c.query('UPDATE zoo_big SET payload = REVERSE(payload) WHERE id IN (3, 1500)');
    await c.query("UPDATE zoo_basic SET note = 'changed after the backup'");
    return { db, file, hashes: r.content, backup, changed: await describeDatabase(root, db) };
  } finally {
    await c.end();
  }
}

/** Waits until the load has a shadow table of `table` (the journal names the restore's id). */
async function shadowExists(db: string, table: string): Promise<void> {
  for (;;) {
    const names = (
      await queryRows(
        root,
        "SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE '\\_\\_mbk\\_%'",
        [db],
      )
    ).map((r) => String(r.n));
    const journal = names.find((n) => n.endsWith('_journal'));
    const id = journal?.slice('__mbk_'.length, -'_journal'.length);
    if (id !== undefined && names.includes(shadowName(id, table))) return;
    await new Promise((res) => setTimeout(res, 20));
  }
}

async function ownTables(db: string): Promise<number> {
  const [r] = await queryRows(
    root,
    "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE '\\_\\_mbk\\_%'",
    [db],
  );
  return Number(r?.n);
}

void test('a table that differs loads before the dump is checked; one found to differ late is loaded too; the database ends as the backup', async () => {
  const k = await setup('sl_ok');
  const events: MagebackupEvent[] = [];
  let checked = false;
  const sel = await compareAndLoad({
    restore: { config: configFor(server, k.db), file: k.file, onEvent: (e) => events.push(e) },
    hashes: k.hashes,
    check: async () => {
      // the biggest table is compared first: its load is under way before the check ends
      await shadowExists(k.db, 'zoo_big');
      checked = true;
      return null;
    },
  });
  assert.ok(checked);
  assert.ok(!('problem' in sel));
  const state = (t: string): string | undefined => sel.delta.tables.find((x) => x.name === t)?.state;
  assert.equal(state('zoo_big'), 'rows');
  assert.equal(state('zoo_basic'), 'rows', 'the small table, compared late, differs');
  assert.equal(state('zoo_blobs'), 'equal');
  assert.ok(events.some((e) => e.type === 'info' && /as the comparison finds them/.test(e.message)));
  const r = await sel.prepared.commit();
  assert.ok(r.kept > 10, `the equal tables are kept (${r.kept})`);
  assert.deepEqual(diffDatabases(k.backup, await describeDatabase(root, k.db)), []);
  assert.equal(await ownTables(k.db), 0);
});

void test('the dump fails its check while a table loads: nothing is kept of the load, the live tables are unchanged', async () => {
  const k = await setup('sl_bad');
  const sel = await compareAndLoad({
    restore: { config: configFor(server, k.db), file: k.file },
    hashes: k.hashes,
    check: async () => {
      await shadowExists(k.db, 'zoo_big');
      return 'the SHA-256 does not match';
    },
  });
  assert.deepEqual(sel, { problem: 'the SHA-256 does not match' });
  assert.equal(await ownTables(k.db), 0, 'the shadow tables and the journal are dropped');
  assert.deepEqual(diffDatabases(k.changed, await describeDatabase(root, k.db)), []);
});

void test('interrupted while a table loads and the comparison runs: an interruption, nothing left, nothing changed', async () => {
  const k = await setup('sl_int');
  const ac = new AbortController();
  await assert.rejects(
    compareAndLoad({
      restore: { config: configFor(server, k.db), file: k.file, signal: ac.signal },
      hashes: k.hashes,
      check: async (signal) => {
        await shadowExists(k.db, 'zoo_big');
        ac.abort('SIGTERM');
        signal.throwIfAborted();
        return null;
      },
    }),
    (err: Error) => err instanceof InterruptedError && /SIGTERM/.test(err.message),
  );
  assert.equal(await ownTables(k.db), 0, 'the shadow tables and the journal are dropped');
  assert.deepEqual(diffDatabases(k.changed, await describeDatabase(root, k.db)), []);
});
