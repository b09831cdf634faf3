import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync, mkdirSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import { runBackup } from '../../src/backup/run-backup.js';
import { readManifest, validateManifest, hashFile, type Manifest } from '../../src/store/manifest.js';
import { listSnapshots, getSnapshot, classifyBackupFile } from '../../src/store/snapshot-list.js';
import { minimalStore } from '../helpers/tmp.js';

const backups = (root: string) => path.join(root, 'var', 'backups');
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

void test('a run writes <ts>_manifest.json last, 0600, with sizes and SHA-256 of every part', async () => {
  const root = minimalStore();
  const r = await runBackup({
    root,
    parts: { code: true, media: true, db: false },
    now: () => 1_700_000_000_000,
  });
  assert.equal(path.basename(r.manifest), '1700000000_manifest.json');
  assert.equal(statSync(r.manifest).mode & 0o777, 0o600);
  const m = (await readManifest(r.manifest, 1_700_000_000))!;
  assert.equal(m.format, 'magebackup-manifest');
  assert.equal(m.id, '1700000000');
  assert.equal(m.root, path.resolve(root));
  assert.equal(m.tool.name, 'magebackup');
  assert.match(m.tool.version, /^\d+\.\d+\.\d+/);
  assert.deepEqual(
    m.parts.map((p) => p.part),
    ['code', 'media'],
  );
  for (const p of m.parts) {
    const file = path.join(backups(root), p.file);
    assert.equal(p.size, statSync(file).size, p.file);
    assert.equal(p.sha256, sha(file), p.file);
    assert.ok((p.files ?? 0) > 0, p.file);
  }
  assert.ok(m.parts[0]!.excludes!.includes('/var'));
  // Nothing else is left: no run marker, no partial, no lock.
  assert.deepEqual(readdirSync(backups(root)).sort(), [
    '1700000000_filesystem.tgz',
    '1700000000_filesystem_media.tgz',
    '1700000000_manifest.json',
  ]);
  const { snapshots } = await listSnapshots(root, { now: () => 1_700_000_100_000 });
  assert.equal(snapshots.length, 1);
  assert.equal(snapshots[0]!.status, 'complete');
  assert.equal(snapshots[0]!.age, 100);
  assert.deepEqual(snapshots[0]!.parts, ['code', 'media']);
});

void test('a failed run is invisible: the parts it had finished are taken back with its marker', async () => {
  const root = minimalStore();
  await assert.rejects(
    runBackup({
      root,
      parts: { code: true, media: true, db: false },
      now: () => 1_700_000_000_000,
      onEvent: (e) => {
        if (e.type === 'part-start' && e.part === 'media') throw new Error('injected failure');
      },
    }),
    /injected failure/,
  );
  const { snapshots } = await listSnapshots(root);
  assert.deepEqual(snapshots, [], 'nothing of the failed run is listed');
  assert.deepEqual(
    readdirSync(path.join(root, 'var/backups')).filter((n) => n.startsWith('1700000000')),
    [],
  );
});

void test('statuses: Magento backups without a manifest are legacy; a changed size or a missing part is corrupt', async () => {
  const root = minimalStore();
  const dir = backups(root);
  const r = await runBackup({
    root,
    parts: { code: true, media: true, db: false },
    now: () => 1_700_000_000_000,
  });
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, '1500000000_filesystem_code.tgz'), 'x');
  writeFileSync(path.join(dir, '1500000000_db.sql'), 'x');
  writeFileSync(path.join(dir, '1400000000_filesystem_media.tgz.partial'), 'x');
  writeFileSync(path.join(dir, 'README'), 'not a backup');
  let list = (await listSnapshots(root)).snapshots;
  assert.deepEqual(
    list.map((s) => [s.id, s.status]),
    [
      ['1700000000', 'complete'],
      ['1500000000', 'legacy'],
      ['1400000000', 'incomplete'],
    ],
  );
  assert.deepEqual(list[1]!.parts, ['code', 'db']);

  appendFileSync(r.parts[1]!.path, 'garbage');
  list = (await listSnapshots(root)).snapshots;
  assert.equal(list[0]!.status, 'corrupt');
  assert.match(list[0]!.problems.join(), /1700000000_filesystem_media\.tgz has \d+ bytes, its manifest says/);

  writeFileSync(r.manifest, '{"format": "magebackup-manifest", "vers');
  list = (await listSnapshots(root)).snapshots;
  assert.equal(list[0]!.status, 'corrupt');
  assert.match(list[0]!.problems.join(), /Manifest .*1700000000_manifest\.json is corrupt: not valid JSON/);
});

void test('manifest validation names the file and the problem', () => {
  const good: Manifest = {
    format: 'magebackup-manifest',
    version: 1,
    id: '5',
    timestamp: 5,
    created: '',
    completed: '',
    tool: { name: 'magebackup', version: '0.1.0' },
    command: 'setup:backup',
    root: '/x',
    warnings: 0,
    parts: [{ part: 'db', file: '5_db.sql', size: 1, sha256: 'a'.repeat(64) }],
  };
  assert.doesNotThrow(() => validateManifest(good, 'm.json', 5));
  assert.throws(
    () => validateManifest({ ...good, version: 9 }, 'm.json'),
    /m\.json is corrupt: version 9 is not supported/,
  );
  assert.throws(() => validateManifest(good, 'm.json', 6), /timestamp 5 is not the one in its name/);
  assert.throws(
    () => validateManifest({ ...good, parts: [{ ...good.parts[0]!, file: '../5_db.sql' }] }, 'm.json'),
    /valid file name/,
  );
  assert.throws(
    () => validateManifest({ ...good, parts: [{ ...good.parts[0]!, sha256: 'xyz' }] }, 'm.json'),
    /sha256/,
  );
  assert.throws(() => validateManifest([], 'm.json'), /not a JSON object/);
});

void test('file classification and streaming hash', async () => {
  assert.deepEqual(classifyBackupFile('17_manifest.json.running'), { timestamp: 17, kind: 'marker' });
  assert.deepEqual(classifyBackupFile('17_db.sql.gz.partial'), { timestamp: 17, kind: 'partial' });
  assert.deepEqual(classifyBackupFile('17_filesystem_code.tgz'), { timestamp: 17, kind: 'code' });
  assert.equal(classifyBackupFile('.lock'), null);
  assert.equal(classifyBackupFile('17_notes.txt'), null);
  const root = minimalStore();
  const f = path.join(root, 'index.php');
  assert.deepEqual(await hashFile(f), { sha256: sha(f), size: statSync(f).size });
  await assert.rejects(hashFile(path.join(root, 'nope')), /nope is missing/);
});

void test('a run still holding the lock is listed as in progress, not as crashed', async () => {
  const root = minimalStore();
  const dir = backups(root);
  mkdirSync(dir, { recursive: true });
  const host = (await import('node:os')).hostname();
  writeFileSync(path.join(dir, '1700000000_filesystem.tgz'), 'x');
  writeFileSync(
    path.join(dir, '1700000000_manifest.json.running'),
    JSON.stringify({ pid: process.pid, host, command: 'snapshot:create' }),
  );
  writeFileSync(
    path.join(dir, '.lock'),
    JSON.stringify({ pid: process.pid, host, command: 'snapshot:create' }),
  );
  let s = await getSnapshot(root, '1700000000');
  assert.equal(s.status, 'incomplete');
  assert.match(s.problems.join(), /snapshot:create \(pid \d+\) is still writing this run/);
  writeFileSync(
    path.join(dir, '.lock'),
    JSON.stringify({ pid: 999_999_999, host, command: 'backups:prune' }),
  );
  s = await getSnapshot(root, '1700000000');
  assert.match(s.problems.join(), /the run did not finish/);
});
