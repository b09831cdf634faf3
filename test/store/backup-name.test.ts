import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backupFileName, parseBackupName } from '../../src/store/backup-name.js';

void test('our names round-trip', () => {
  for (const kind of ['code', 'media', 'db', 'manifest'] as const) {
    const name = backupFileName(1700000000, kind);
    assert.equal(parseBackupName(name)?.kind, kind, name);
    assert.equal(parseBackupName(name)?.timestamp, 1700000000);
  }
  assert.equal(backupFileName(1, 'db', { compress: true }), '1_db.sql.gz');
  assert.equal(parseBackupName('1_db.sql.gz')?.compressed, true);
});

void test('Magento 2.0-2.4 names are recognised with the right kind', () => {
  const cases: Array<[string, string, string?]> = [
    ['1500000000_filesystem.tgz', 'code'],
    ['1500000000_filesystem_code.tgz', 'code'],
    ['1500000000_filesystem_media.tgz', 'media'],
    ['1500000000_db.sql', 'db'],
    ['1500000000_db_before-upgrade.sql', 'db', 'before-upgrade'],
    ['1500000000_snapshot_nightly.tgz', 'code', 'nightly'],
    ['1500000000_media.tgz', 'media'],
    ['1500000000_nomedia.tgz', 'code'],
  ];
  for (const [name, kind, label] of cases) {
    const p = parseBackupName(name);
    assert.ok(p, name);
    assert.equal(p.kind, kind, name);
    assert.equal(p.label, label, name);
  }
});

void test('other files are not backups', () => {
  for (const name of [
    '.lock',
    'notes.txt',
    '1_filesystem.tgz.partial',
    'x_db.sql',
    '1_db.tgz',
    '1_filesystem.sql',
    '1_unknown.tgz',
  ]) {
    assert.equal(parseBackupName(name), null, name);
  }
});
