import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Connection } from 'mysql2/promise';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { createZoo } from '../../fixtures/db-zoo.js';
import { describeDatabase, diffDatabases, type DbSnapshot } from '../../fixtures/db-compare.js';
import { dumpDatabase } from '../../src/db/dump.js';
import { recoverInterruptedRestores } from '../../src/db/restore.js';
import type { DbConnectionConfig } from '../../src/db/types.js';
import { configFor, databasesLike, queryRows } from './restore-helpers.js';
import { magentoUser } from '../helpers/db-users.js';

let server: TestServer;
let conn: Connection;
let dir: string;
let srcSnap: DbSnapshot;
let dump: string;
const child = fileURLToPath(new URL('./restore-kill-child.js', import.meta.url));

/**
 * Only what RENAME TABLE moves at once: the tables' rows (constraint names and definitions are given back
 * after the swap, and the recovery finishes that).
 */
function tablesOf(s: DbSnapshot): DbSnapshot {
  const tables: DbSnapshot['tables'] = {};
  for (const [n, t] of Object.entries(s.tables)) {
    if (!n.startsWith('__mbk_')) tables[n] = { ...t, create: '' };
  }
  const sequences: DbSnapshot['sequences'] = {};
  for (const [n, q] of Object.entries(s.sequences)) if (!n.startsWith('__mbk_')) sequences[n] = q;
  return { ...s, tables, sequences, views: {}, routines: {}, triggers: {}, events: {} };
}

void before(async () => {
  server = await getTestServer();
  conn = await server.connect();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mbk-kill-'));
  const src = await server.createDatabase('ksrc');
  const c = await server.connect(src);
  try {
    await createZoo(c, { bigRows: 6000 });
  } finally {
    await c.end();
  }
  srcSnap = await describeDatabase(conn, src);
  dump = path.join(dir, 'zoo.sql');
  await dumpDatabase({ config: configFor(server, src), outFile: dump, compress: false });
});

void after(async () => {
  await conn?.end();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

/** Runs the child until it reports `at <step>`, then SIGKILLs it. */
async function killAt(
  step: string,
  config: DbConnectionConfig,
  selective?: { dump: string; hashes: string },
): Promise<void> {
  const args = selective ? [child, step, selective.dump, selective.hashes] : [child, step, dump];
  const p = spawn(process.execPath, args, {
    env: { ...process.env, MBK_KILL_CFG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
  const reached = await new Promise<boolean>((resolve) => {
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(`at ${step}\n`)) resolve(true);
    });
    void exited.then(() => resolve(false));
  });
  if (reached) p.kill('SIGKILL');
  await exited;
  assert.ok(reached, `the child never reached '${step}': ${out} ${err}`);
}

const steps: [string, 'old' | 'new', ('back' | undefined)?][] = [
  ['journal-created', 'old'],
  ['loading', 'old'],
  ['mid-load', 'old'],
  ['loaded', 'old'],
  ['prepared', 'old'],
  ['committing', 'new'],
  ['swapped', 'new'],
  ['constraints-renamed', 'new'],
  ['definitions-dropped', 'new'],
  ['definitions-created', 'new'],
  // a caller (a multi-part rollback) may ask the recovery to go back instead
  ['swapped', 'old', 'back'],
  ['definitions-dropped', 'old', 'back'],
];

for (const [step, after, decision] of steps) {
  void test(`SIGKILL at '${step}': the live tables are all old or all new, and the next run leaves it ${after}${decision ? ' (told to go back)' : ''}`, async () => {
    const live = await server.createDatabase('klive');
    const c = await server.connect(live);
    try {
      await createZoo(c, { bigRows: 40, bigBlobBytes: 500 });
      await c.query("UPDATE zoo_basic SET note = 'old'");
    } finally {
      await c.end();
    }
    const oldSnap = await describeDatabase(conn, live);
    // the usual Magento grant: ALL ON <db>.* and nothing else
    const mage = await magentoUser(conn, live, {
      name: `mbk_k_${process.pid}_${step.replace(/-/g, '_').slice(0, 12)}${decision ? '_b' : ''}`,
    });
    // going back puts the old routines back: root's routines are readable by root only
    const config = decision
      ? configFor(server, live)
      : { ...configFor(server, live), user: mage.user, password: mage.password };
    try {
      await killAt(step, config);

      const now = tablesOf(await describeDatabase(conn, live));
      const isOld = diffDatabases(tablesOf(oldSnap), now).length === 0;
      const isNew = diffDatabases(tablesOf(srcSnap), now).length === 0;
      assert.ok(isOld || isNew, `a mix of old and new tables after a kill at '${step}'`);

      await recoverInterruptedRestores(config, () => decision);
    } finally {
      await mage.drop();
    }
    const want = after === 'old' ? oldSnap : srcSnap;
    assert.deepEqual(diffDatabases(want, await describeDatabase(conn, live)), []);
    assert.deepEqual(await databasesLike(conn, `${live}__mbk_`), []);
    const [trig] = await queryRows(
      conn,
      'SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?',
      [live],
    );
    assert.equal(Number(trig?.n), Object.keys(want.triggers).length, 'every trigger is present');
  });
}

// The selective path (issue 14): only the tables that differ from the backup are loaded, the equal ones stay
// (their triggers replaced, their AUTO_INCREMENT given back). A kill at any step leaves the tables old or new,
// and the recovery ends at exactly the backup (or, told to go back, at exactly the state before).
// the overlapped load (selective-load.ts): a table that differs loads while the comparison and the dump's check
// still run; a kill then leaves the live tables old, and the next run drops the shadow tables
const selectiveSteps: typeof steps = [['early-load', 'old'], ...steps];

for (const [step, after, decision] of selectiveSteps) {
  void test(`selective: SIGKILL at '${step}': old or new, and the next run leaves it ${after}${decision ? ' (told to go back)' : ''}`, async () => {
    const live = await server.createDatabase('kdelta');
    const c = await server.connect(live);
    let backupSnap: DbSnapshot;
    const file = path.join(dir, `${live}.sql`);
    const hashes = path.join(dir, `${live}.json`);
    try {
      await createZoo(c, { bigRows: 40, bigBlobBytes: 500 });
      backupSnap = await describeDatabase(conn, live);
      const r = await dumpDatabase({ config: configFor(server, live), outFile: file, compress: false });
      await fsp.writeFile(hashes, JSON.stringify(r.content));
      // after the backup: rows (same count), a column, a trigger of a kept table, a moved counter, a dropped table
      await c.query("UPDATE zoo_basic SET note = 'changed after the backup'");
      await c.query('ALTER TABLE zoo_orders ADD COLUMN later INT NULL');
      await c.query('DROP TRIGGER zoo_orders_ai');
      await c.query('INSERT INTO zoo_autoinc VALUES ()');
      await c.query('DELETE FROM zoo_autoinc ORDER BY id DESC LIMIT 1');
      await c.query('DROP TABLE zoo_empty');
    } finally {
      await c.end();
    }
    const oldSnap = await describeDatabase(conn, live);
    // the usual Magento grant (ALL ON <db>.* only), as on the whole-restore path above; going back needs root
    const mage = await magentoUser(conn, live, {
      name: `mbk_s_${process.pid}_${step.replace(/-/g, '_').slice(0, 12)}${decision ? '_b' : ''}`,
    });
    const config = decision
      ? configFor(server, live)
      : { ...configFor(server, live), user: mage.user, password: mage.password };
    try {
      await killAt(step, config, { dump: file, hashes });
      const now = tablesOf(await describeDatabase(conn, live));
      const isOld = diffDatabases(tablesOf(oldSnap), now).length === 0;
      const isNew = diffDatabases(tablesOf(backupSnap), now).length === 0;
      assert.ok(isOld || isNew, `a mix of old and new tables after a kill at '${step}'`);
      await recoverInterruptedRestores(config, () => decision);
    } finally {
      await mage.drop();
    }
    const want = after === 'old' ? oldSnap : backupSnap;
    assert.deepEqual(diffDatabases(want, await describeDatabase(conn, live)), []);
    const [own] = await queryRows(
      conn,
      "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE '\\_\\_mbk\\_%'",
      [live],
    );
    assert.equal(Number(own?.n), 0, "the restore's own tables are gone");
  });
}
