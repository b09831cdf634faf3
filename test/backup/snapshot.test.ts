// Snapshots end to end on a generated store and the real MariaDB: two snapshots with changes between them,
// restore the first and the store equals it; one flipped byte makes verify name the file and restore refuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  copyFileSync,
  readFileSync,
  openSync,
  readdirSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describeDatabase, diffDatabases } from '../../fixtures/db-compare.js';
import { createSnapshot } from '../../src/backup/snapshot-create.js';
import { restoreSnapshot } from '../../src/restore/snapshot-restore.js';
import { listSnapshots } from '../../src/store/snapshot-list.js';
import { verifyBackups, verifyProblems } from '../../src/backup/verify-backups.js';
import { runBackup } from '../../src/backup/run-backup.js';
import { describeTree, diffTrees } from '../helpers/tree.js';
import { minimalStore } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { CODE_SKIP, flipByte, tinyStoreOnServer } from '../helpers/store.js';

const T0 = 1_800_000_000_000;

void test('two snapshots with changes between them; restoring the first makes the store equal it', async () => {
  const { conn, root, state } = await tinyStoreOnServer('snapshot');
  try {
    const a = await createSnapshot({ root, now: () => T0 });
    assert.equal(a.id, String(T0 / 1000));
    assert.deepEqual(
      a.parts.map((p) => p.part),
      ['code', 'media', 'db'],
    );
    const before = await state();

    writeFileSync(path.join(root, 'index.php'), '<?php // changed\n');
    writeFileSync(path.join(root, 'app/new-file.php'), '<?php // new\n');
    rmSync(path.join(root, 'app/etc/config.php'));
    writeFileSync(path.join(root, 'pub/media/new-upload.jpg'), 'new');
    await conn.query('SET FOREIGN_KEY_CHECKS=0');
    const [tables] = (await conn.query('SHOW FULL TABLES WHERE Table_type = "BASE TABLE"')) as unknown as [
      Array<Record<string, string>>,
    ];
    await conn.query(`DELETE FROM \`${Object.values(tables[0]!)[0]!}\``);
    await conn.query('CREATE TABLE added_after_snapshot (id INT PRIMARY KEY)');

    const b = await createSnapshot({ root, now: () => T0 + 3600_000 });
    const { snapshots } = await listSnapshots(root, { now: () => T0 + 7200_000 });
    assert.deepEqual(
      snapshots.map((s) => [s.id, s.status, s.parts.join(',')]),
      [
        [b.id, 'complete', 'code,media,db'],
        [a.id, 'complete', 'code,media,db'],
      ],
    );
    assert.equal(snapshots[1]!.age, 7200);
    assert.ok(snapshots[0]!.manifest!.serverVersion!.length > 0, 'the server version is recorded');

    const verified = await verifyBackups({ root, ids: 'all' });
    assert.deepEqual(verifyProblems(verified), []);
    assert.equal(verified.ok, true);

    const r = await restoreSnapshot({ root, id: a.id, dropExtraTables: true });
    assert.equal(r.checksummed, true);
    assert.deepEqual(r.parts.map((p) => p.part).sort(), ['code', 'db', 'media']);
    const after = await state();
    assert.deepEqual(diffTrees(before.code, after.code), []);
    assert.deepEqual(diffTrees(before.media, after.media), []);
    assert.deepEqual(diffDatabases(before.db, after.db), []);
  } finally {
    await conn.end();
  }
});

void test('one corrupt byte: verify names the file, restore refuses before anything changes', async () => {
  const { conn, dbname, root, state, dir } = await tinyStoreOnServer('snapshot');
  try {
    const a = await createSnapshot({ root, now: () => T0 });
    writeFileSync(path.join(root, 'index.php'), '<?php // changed after the snapshot\n');
    const now = await state();

    for (const part of ['media', 'db'] as const) {
      const file = a.parts.find((p) => p.part === part)!.file;
      flipByte(path.join(dir, file));
      const v = await verifyBackups({ root, ids: [a.id] });
      assert.equal(v.ok, false);
      const problems = verifyProblems(v);
      assert.ok(problems.length > 0);
      for (const p of problems) assert.match(p, new RegExp(file.replace(/\./g, '\\.')), p);
      assert.ok(
        problems.some((p) => /SHA-256/.test(p)),
        problems.join('\n'),
      );
      await assert.rejects(
        restoreSnapshot({ root, id: a.id, dropExtraTables: true }),
        new RegExp(`Snapshot ${a.id} is corrupt.*${file.replace(/\./g, '\\.')}`),
      );
      assert.deepEqual(diffTrees(now.code, describeTree(root, CODE_SKIP)), []);
      assert.deepEqual(diffTrees(now.media, describeTree(path.join(root, 'pub/media'))), []);
      assert.deepEqual(diffDatabases(now.db, await describeDatabase(conn, dbname)), []);
      flipByte(path.join(dir, file)); // flip it back
    }
    assert.equal((await verifyBackups({ root, ids: [a.id] })).ok, true);

    // A missing part: listed as corrupt, refused.
    rmSync(path.join(dir, a.parts.find((p) => p.part === 'media')!.file));
    await assert.rejects(
      restoreSnapshot({ root, id: a.id }),
      /is corrupt and cannot be restored: .*_filesystem_media\.tgz is missing/,
    );
    await assert.rejects(restoreSnapshot({ root, id: 'abc' }), /Invalid snapshot id "abc"/);
    await assert.rejects(restoreSnapshot({ root, id: '12345' }), /No snapshot 12345 in .*var\/backups/);
  } finally {
    await conn.end();
  }
});

void test('a crashed run is listed as incomplete, refused by restore and verify, and pruned', async () => {
  const { conn, root, dir } = await tinyStoreOnServer('snapshot');
  try {
    await runBackup({
      root,
      parts: { code: true, media: false, db: false },
      now: () => Date.now() - 86400_000,
    });
    // A real crash: SIGKILL while the media part is being written (a big incompressible file keeps it busy),
    // so no cleanup code runs. The code part is complete, the media part a .partial, the marker stays.
    const fd = openSync(path.join(root, 'pub/media/big.bin'), 'w');
    const chunk = randomBytes(8 << 20);
    for (let i = 0; i < 24; i++) writeSync(fd, chunk);
    closeSync(fd);
    let killed = false;
    const r = await runCli(['snapshot:create', '--root', root], {
      onStderr: (text, child) => {
        if (!killed && /Media backup is starting/.test(text)) {
          killed = true;
          child.kill('SIGKILL');
        }
      },
    });
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    const marker = readdirSync(dir).find((n) => n.endsWith('_manifest.json.running'));
    assert.ok(marker, `a crashed run leaves its marker: ${readdirSync(dir).join(' ')}`);
    const id = marker.split('_')[0]!;
    const { snapshots } = await listSnapshots(root);
    assert.equal(snapshots[0]!.id, id);
    assert.equal(snapshots[0]!.status, 'incomplete');
    await assert.rejects(restoreSnapshot({ root, id }), new RegExp(`Snapshot ${id} is incomplete`));
    const v = await verifyBackups({ root });
    assert.equal(v.ok, false);
    assert.match(verifyProblems(v).join('\n'), /did not finish/);

    const { pruneBackups } = await import('../../src/backup/prune.js');
    const p = await pruneBackups({ root, policy: { keepWithin: 14 * 86400 }, now: () => Date.now() + 1000 });
    assert.deepEqual(
      p.removed.map((d) => d.id),
      [id],
    );
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith(id)),
      [],
    );
  } finally {
    await conn.end();
  }
});

void test('backups:verify --deep extracts every archive and loads the dump into a throwaway database', async () => {
  const { conn, root } = await tinyStoreOnServer('snapshot');
  try {
    const a = await createSnapshot({ root, now: () => T0 });
    // only verify's own throwaway databases: other test files create and drop theirs on the same server meanwhile
    const verifyDbs = async () => (await conn.query("SHOW DATABASES LIKE 'magebackup\\_verify%'"))[0];
    const dbsBefore = await verifyDbs();
    const v = await verifyBackups({ root, ids: [a.id], deep: true });
    assert.deepEqual(verifyProblems(v), []);
    const files = v.snapshots[0]!.files;
    assert.ok(files.find((f) => f.part === 'code')!.extracted! > 0);
    assert.ok(files.find((f) => f.part === 'media')!.extracted! > 0);
    assert.ok(files.find((f) => f.part === 'db')!.tables! > 0);
    assert.deepEqual(await verifyDbs(), dbsBefore, 'the throwaway database is dropped');
    assert.deepEqual(
      readdirSync(path.join(root, 'var/backups')).filter((n) => n.startsWith('.magebackup')),
      [],
    );
  } finally {
    await conn.end();
  }
});

void test('a Magento backup without a manifest lists as legacy and restores (without checksums)', async () => {
  const root = minimalStore();
  const r = await runBackup({ root, parts: { code: true, media: false, db: false }, now: () => T0 });
  const dir = path.join(root, 'var/backups');
  // Magento 2.4's name for a code backup, made "by Magento": no manifest.
  copyFileSync(r.parts[0]!.path, path.join(dir, '1500000000_filesystem_code.tgz'));
  writeFileSync(path.join(root, 'index.php'), '<?php // changed\n');
  const s = (await listSnapshots(root)).snapshots.find((x) => x.id === '1500000000')!;
  assert.equal(s.status, 'legacy');
  const v = await verifyBackups({ root, ids: ['1500000000'] });
  assert.equal(v.ok, true, verifyProblems(v).join('\n'));
  const restored = await restoreSnapshot({ root, id: '1500000000' });
  assert.equal(restored.checksummed, false);
  assert.equal(readFileSync(path.join(root, 'index.php'), 'utf8'), '<?php // index\n');
});
