// The whole job, as an operator runs it: back up a generated store (code, media, database), change all three,
// roll each back, and the store equals the backup — trees file by file (modes, symlinks, mtimes), the database
// object by object.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdirSync,
  readdirSync,
  rmSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  statSync,
  copyFileSync,
} from 'node:fs';
import path from 'node:path';
import { describeDatabase, diffDatabases } from '../../fixtures/db-compare.js';
import { runBackup } from '../../src/backup/run-backup.js';
import { runRollback } from '../../src/restore/run-rollback.js';
import { describeTree, diffTrees } from '../helpers/tree.js';
import { CODE_SKIP, tinyStoreOnServer } from '../helpers/store.js';

void test('back up, change code, media and database, roll each back: the store equals the backup', async () => {
  const { dbname, conn, root } = await tinyStoreOnServer('roundtrip');
  try {
    const backup = await runBackup({ root, parts: { code: true, media: true, db: true } });
    assert.equal(backup.warnings, 0);
    const files = Object.fromEntries(backup.parts.map((p) => [p.part, p.file]));
    const codeBefore = describeTree(root, CODE_SKIP);
    const mediaBefore = describeTree(path.join(root, 'pub/media'));
    const dbBefore = await describeDatabase(conn, dbname);

    // Change everything.
    writeFileSync(path.join(root, 'index.php'), '<?php // changed\n');
    writeFileSync(path.join(root, 'app/new-file.php'), '<?php // new\n');
    rmSync(path.join(root, 'app/etc/config.php'));
    mkdirSync(path.join(root, 'app/code/NewVendor'), { recursive: true });
    symlinkSync('somewhere-else', path.join(root, 'app/new-link'));
    const mediaFiles = readdirSync(path.join(root, 'pub/media'), {
      recursive: true,
      withFileTypes: true,
    }).filter((d) => d.isFile());
    unlinkSync(path.join(mediaFiles[0]!.parentPath ?? mediaFiles[0]!.path, mediaFiles[0]!.name));
    writeFileSync(path.join(root, 'pub/media/new-upload.jpg'), 'new');
    writeFileSync(path.join(root, 'var/log/after-backup.log'), 'var is not part of the code backup');
    const [tables] = (await conn.query('SHOW FULL TABLES WHERE Table_type = "BASE TABLE"')) as unknown as [
      Array<Record<string, string>>,
    ];
    const someTable = Object.values(tables[0]!)[0]!;
    await conn.query('SET FOREIGN_KEY_CHECKS=0');
    await conn.query(`DELETE FROM \`${someTable}\``);
    await conn.query('CREATE TABLE extra_after_backup (id INT PRIMARY KEY)');

    const result = await runRollback({
      root,
      codeFile: files.code,
      mediaFile: files.media,
      dbFile: files.db,
      dropExtraTables: true,
    });
    assert.deepEqual(result.parts.map((p) => p.part).sort(), ['code', 'db', 'media']);
    assert.deepEqual(diffTrees(codeBefore, describeTree(root, CODE_SKIP)), []);
    assert.deepEqual(diffTrees(mediaBefore, describeTree(path.join(root, 'pub/media'))), []);
    assert.deepEqual(diffDatabases(dbBefore, await describeDatabase(conn, dbname)), []);
    // Excluded paths are untouched by a code rollback; backups are never deleted; no staging left behind.
    assert.ok(statSync(path.join(root, 'var/log/after-backup.log')).isFile());
    for (const f of Object.values(files)) assert.ok(statSync(path.join(root, 'var/backups', f)).isFile(), f);
    assert.deepEqual(
      readdirSync(root).filter((n) => n.startsWith('.magebackup')),
      [],
    );
  } finally {
    await conn.end();
  }
});

void test('a truncated archive or dump, or a file of the wrong kind, is refused with nothing changed', async () => {
  const { dbname, conn, root } = await tinyStoreOnServer('roundtrip');
  try {
    const backup = await runBackup({ root, parts: { code: true, media: true, db: true } });
    const files = Object.fromEntries(backup.parts.map((p) => [p.part, p.file]));
    writeFileSync(path.join(root, 'index.php'), '<?php // changed after the backup\n');
    await conn.query('CREATE TABLE changed_after_backup (id INT PRIMARY KEY)');
    const codeNow = describeTree(root, (r) => r.startsWith('var/'));
    const dbNow = await describeDatabase(conn, dbname);
    const dir = path.join(root, 'var/backups');

    await assert.rejects(
      runRollback({ root, codeFile: files.media }),
      /expects a code backup.*is a media backup/,
    );
    await assert.rejects(
      runRollback({ root, mediaFile: 'nope_filesystem_media.tgz' }),
      /media backup|not a backup/,
    );
    await assert.rejects(runRollback({ root, dbFile: '1_db.sql' }), /not found/);

    // A copy under another timestamp, cut at 60 %: what a full disk or an interrupted copy leaves.
    const cut = (name: string) => {
      const copy = name.replace(/^(\d+)/, (ts) => String(Number(ts) + 100));
      copyFileSync(path.join(dir, name), path.join(dir, copy));
      truncateSync(path.join(dir, copy), Math.floor(statSync(path.join(dir, copy)).size * 0.6));
      return copy;
    };
    const badCode = cut(files.code!);
    const badDb = cut(files.db!);
    await assert.rejects(
      runRollback({ root, codeFile: badCode, mediaFile: files.media }),
      new RegExp(badCode),
    );
    await assert.rejects(runRollback({ root, dbFile: badDb, codeFile: files.code }), new RegExp(badDb));
    for (const f of [badCode, badDb]) assert.ok(statSync(path.join(dir, f)).isFile(), 'never deleted');

    assert.deepEqual(
      diffTrees(
        codeNow,
        describeTree(root, (r) => r.startsWith('var/')),
      ),
      [],
    );
    assert.deepEqual(diffDatabases(dbNow, await describeDatabase(conn, dbname)), []);
    assert.deepEqual(
      readdirSync(root).filter((n) => n.startsWith('.magebackup')),
      [],
    );
  } finally {
    await conn.end();
  }
});
