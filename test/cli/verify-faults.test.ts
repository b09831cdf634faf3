// backups:verify under faults, through the binary against the test server: kill -9 during --deep and the next
// command; --deep as the usual Magento user (no CREATE DATABASE); "<file>: OK" only for a file that passed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { generateStore } from '../../fixtures/store.js';
import { generateStoreDatabase } from '../../fixtures/store-db.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { backupsOf, flagOf, spawnCli, stopProcess, waitFor } from './fault-helpers.js';

async function store(server: TestServer, user?: { name: string; password: string }) {
  const dbname = await server.createDatabase('verifyfault');
  const conn = await server.connect(dbname);
  try {
    await generateStoreDatabase(conn, { size: 'tiny' });
    // Enough rows that loading the dump takes a while.
    await conn.query('CREATE TABLE big_log (id INT PRIMARY KEY, v VARCHAR(200))');
    await conn.query("INSERT INTO big_log SELECT seq, REPEAT('y', 200) FROM seq_1_to_150000");
    if (user) {
      await conn.query('CREATE USER ?@? IDENTIFIED BY ?', [user.name, '127.0.0.1', user.password]);
      await conn.query(`GRANT ALL ON \`${dbname}\`.* TO ?@?`, [user.name, '127.0.0.1']);
    }
  } finally {
    await conn.end();
  }
  const root = path.join(tempDir('mbk-verifyfault-'), 'store');
  await generateStore({
    dir: root,
    size: 'tiny',
    db: {
      host: server.host,
      port: server.port,
      user: user?.name ?? server.user,
      password: user?.password ?? server.password,
      dbname,
    },
  });
  return { root, dbname };
}

async function verifyDatabases(server: TestServer): Promise<string[]> {
  const conn = await server.connect();
  try {
    const [rows] = await conn.query<Array<{ n: string }> & import('mysql2').RowDataPacket[]>(
      "SELECT SCHEMA_NAME AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'magebackup\\_verify\\_%'",
    );
    return rows.map((r) => r.n);
  } finally {
    await conn.end();
  }
}

const verifyDirs = (root: string) =>
  readdirSync(backupsOf(root)).filter((n) => n.startsWith('.magebackup-verify-'));

void test('kill -9 during backups:verify --deep: the next command of the store removes its database and folder', async () => {
  const server = await getTestServer();
  const { root } = await store(server);
  const made = await runCli(['setup:backup', '--db', '--root', root]);
  assert.equal(made.code, 0, made.stderr);
  const before = await verifyDatabases(server);

  const run = spawnCli(['backups:verify', '--deep', '--root', root]);
  // Mid-load: its run directory lists a database that exists on the server.
  const db = await waitFor('a throwaway database being loaded', () => {
    const dir = verifyDirs(root)[0];
    if (!dir) return undefined;
    try {
      const rec = JSON.parse(readFileSync(path.join(backupsOf(root), dir, 'run.json'), 'utf8')) as {
        databases: string[];
      };
      return rec.databases[0];
    } catch {
      return undefined;
    }
  });
  await waitFor('the database on the server', async () => (await verifyDatabases(server)).includes(db));
  await stopProcess(run.child.pid!);
  run.child.kill('SIGKILL');
  const killed = await run.done;
  assert.equal(killed.signal, 'SIGKILL');
  assert.ok((await verifyDatabases(server)).includes(db), 'the kill left the database');
  assert.equal(verifyDirs(root).length, 1, 'and the folder');

  // Any command: here the read-only list.
  const list = await runCli(['info:backups:list', '--root', root]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stderr, new RegExp(`Removed database ${db}, left by a killed backups:verify --deep`));
  assert.deepEqual(await verifyDatabases(server), before);
  assert.deepEqual(verifyDirs(root), []);
  assert.equal(existsSync(flagOf(root)), false);
});

void test('backups:verify --deep as a user with ALL ON <db>.* only: one line naming the privilege and --db-user', async () => {
  const server = await getTestServer();
  const user = { name: `mage_${process.pid}`, password: 'Mage-pw-1' };
  const { root } = await store(server, user);
  const made = await runCli(['setup:backup', '--db', '--root', root]);
  assert.equal(made.code, 0, made.stderr);
  const before = await verifyDatabases(server);
  const r = await runCli(['backups:verify', '--deep', '--root', root]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^Error: backups:verify --deep .*needs the CREATE and DROP privileges.*--db-user/m);
  assert.doesNotMatch(r.stderr, /Internal error|    at |: OK/);
  assert.equal(
    r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('Error')).length,
    1,
  );
  assert.deepEqual(verifyDirs(root), []);
  assert.deepEqual(await verifyDatabases(server), before);
  // Plain verify needs no privilege at all.
  const plain = await runCli(['backups:verify', '--root', root]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stderr, /_db\.sql: OK/);
  const conn = await server.connect();
  await conn.query('DROP USER ?@?', [user.name, '127.0.0.1']);
  await conn.end();
});

void test('backups:verify prints "<file>: OK" only for a file that passed every check', async () => {
  const server = await getTestServer();
  const { root } = await store(server);
  const made = await runCli(['setup:backup', '--db', '--compress', '--root', root, '--json']);
  assert.equal(made.code, 0, made.stderr);
  const file = (JSON.parse(made.stdout) as { parts: Array<{ path: string }> }).parts[0]!.path;
  // Same size, other content: only the checksum tells.
  const { openSync, writeSync, closeSync } = await import('node:fs');
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.from('garbage!'), 0, 8, 100);
  closeSync(fd);
  const r = await runCli(['backups:verify', '--root', root]);
  assert.equal(r.code, 1, r.stderr);
  assert.doesNotMatch(r.stderr + r.stdout, new RegExp(`${path.basename(file)}: OK`));
  assert.match(r.stderr, /does not match the manifest/);
});
