/**
 * Big binary values on a server with MariaDB's default max_allowed_packet (16 MiB): a 12 MiB random BLOB (24 MiB
 * as 0x hex) is written as an escaped `_binary` literal and loads with the stock client. A 20 MiB row can fit no
 * 16 MiB packet in any encoding: the dump says so (ROW_TOO_BIG, naming the table and the size).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMariaDB, type TestServer } from '../../fixtures/mariadb.js';
import { WarningCode } from '../../src/events.js';
import { dumpTo, stockLoad } from './dump-helpers.js';

let server: TestServer;
let dir: string;
const MB = 1024 * 1024;

before(async () => {
  server = await startMariaDB();
  dir = mkdtempSync(path.join(os.tmpdir(), 'mbk-big-'));
});

after(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function setPacket(bytes: number): Promise<void> {
  const c = await server.connect();
  try {
    await c.query(`SET GLOBAL max_allowed_packet = ${bytes}`);
  } finally {
    await c.end();
  }
}

async function checksum(db: string, table: string): Promise<string> {
  const c = await server.connect(db);
  try {
    const [r] = await c.query(
      `SELECT COUNT(*) AS n, SHA2(GROUP_CONCAT(SHA2(v, 256) ORDER BY id), 256) AS h FROM ${table}`,
    );
    const row = (r as { n: number; h: string }[])[0]!;
    return `${row.n}:${row.h}`;
  } finally {
    await c.end();
  }
}

void test('a 12 MiB random BLOB loads with the stock client where max_allowed_packet is 16 MiB', async () => {
  await setPacket(64 * MB);
  const db = await server.createDatabase('big');
  const c = await server.connect(db);
  try {
    await c.query('CREATE TABLE b (id INT PRIMARY KEY, v LONGBLOB, w VARBINARY(16))');
    await c.query('INSERT INTO b VALUES (1, ?, ?), (2, ?, NULL), (3, ?, ?)', [
      randomBytes(12 * MB),
      Buffer.from([0, 0x27, 0x5c]),
      Buffer.from("plain 'text' bytes"),
      Buffer.alloc(0),
      Buffer.alloc(3, 0xff),
    ]);
  } finally {
    await c.end();
  }
  const expected = await checksum(db, 'b');
  await setPacket(16 * MB);

  const { file, events } = await dumpTo(server, dir, db);
  assert.deepEqual(
    events.filter((e) => e.type === 'warning'),
    [],
  );
  const target = await server.createDatabase('big_load');
  const r = await stockLoad(server, file, target);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await checksum(target, 'b'), expected);
});

void test('a row that fits no 16 MiB packet: a ROW_TOO_BIG warning naming the table and its size', async () => {
  await setPacket(64 * MB);
  const db = await server.createDatabase('huge');
  const c = await server.connect(db);
  try {
    await c.query('CREATE TABLE small (id INT PRIMARY KEY, v LONGBLOB)');
    await c.query("INSERT INTO small VALUES (1, REPEAT('a', 1000))");
    await c.query('CREATE TABLE h (id INT PRIMARY KEY, v LONGBLOB)');
    await c.query("INSERT INTO h VALUES (1, REPEAT('x', 20 * 1024 * 1024))");
  } finally {
    await c.end();
  }
  await setPacket(16 * MB);
  const { events } = await dumpTo(server, dir, db);
  const warnings = events.filter((e) => e.type === 'warning');
  assert.equal(warnings.length, 1);
  const w = warnings[0]!;
  assert.ok(w.type === 'warning');
  assert.equal(w.code, WarningCode.ROW_TOO_BIG);
  assert.match(w.message, /^Table h has a row of 2097\d{4} bytes/);
  assert.match(w.message, /max_allowed_packet \(16777216 bytes\)/);
});
