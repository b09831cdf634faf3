import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  planPrune,
  pruneBackups,
  assertPolicy,
  isoWeekOf,
  type RetentionPolicy,
} from '../../src/backup/prune.js';
import { runBackup } from '../../src/backup/run-backup.js';
import { listSnapshots, type SnapshotInfo, type SnapshotStatus } from '../../src/store/snapshot-list.js';
import { minimalStore } from '../helpers/tmp.js';

const DAY = 86400;
// Wednesday 2026-11-18 12:00:00 UTC
const NOW_S = Date.UTC(2026, 10, 18, 12) / 1000;

function snap(ts: number, status: SnapshotStatus = 'complete'): SnapshotInfo {
  return {
    id: String(ts),
    timestamp: ts,
    created: new Date(ts * 1000).toISOString(),
    age: NOW_S - ts,
    status,
    problems: [],
    parts: ['db'],
    partFiles: { db: `${ts}_db.sql` },
    totalSize: 10,
    files: [{ name: `${ts}_db.sql`, path: `/x/${ts}_db.sql`, kind: 'db', size: 10 }],
  };
}

function parts(ts: number, ...which: Array<'code' | 'media' | 'db'>): SnapshotInfo {
  const files = which.map((p) => ({
    name: `${ts}_${p === 'db' ? 'db.sql' : p === 'code' ? 'filesystem.tgz' : 'filesystem_media.tgz'}`,
    kind: p,
  }));
  return {
    ...snap(ts),
    parts: which,
    partFiles: Object.fromEntries(files.map((f) => [f.kind, f.name])),
    files: files.map((f) => ({ name: f.name, path: `/x/${f.name}`, kind: f.kind, size: 10 })),
  };
}

function kept(list: SnapshotInfo[], policy: RetentionPolicy): number[] {
  return planPrune(list, policy, NOW_S * 1000)
    .filter((d) => d.keep)
    .map((d) => d.timestamp);
}

// Two backups a day (00:30 and 12:00 UTC) for 30 days, newest first: now, now-12h30, now-1d, ...
const history = Array.from({ length: 30 }, (_, d) => [NOW_S - d * DAY, NOW_S - d * DAY - 41400]).flat();

void test('durations and policies', () => {
  assert.throws(() => assertPolicy({}), /Empty retention policy/);
  assert.throws(() => assertPolicy({ keepLast: 0, keepDaily: 0 }), /Empty retention policy/);
  assert.throws(() => assertPolicy({ keepLast: -1 }), /keepLast/);
  assert.equal(isoWeekOf(Date.UTC(2026, 0, 1) / 1000), '2026-W01');
  assert.equal(isoWeekOf(Date.UTC(2027, 0, 1) / 1000), '2026-W53');
  assert.equal(isoWeekOf(Date.UTC(2026, 10, 16) / 1000), '2026-W47');
  assert.equal(isoWeekOf(Date.UTC(2026, 10, 22, 23) / 1000), '2026-W47');
});

void test('each rule keeps exactly what it says, and a backup kept by any rule is kept', () => {
  const list = history.map((t) => snap(t));
  assert.deepEqual(kept(list, { keepLast: 3 }), history.slice(0, 3));
  // within 2d: now, -12h30, -1d, -1d12h30, -2d (inclusive boundary)
  assert.deepEqual(kept(list, { keepWithin: 2 * DAY }), history.slice(0, 5));
  // daily 3: the newest of each of the 3 most recent days (18th 12:00, 17th 12:00, 16th 12:00)
  assert.deepEqual(kept(list, { keepDaily: 3 }), [NOW_S, NOW_S - DAY, NOW_S - 2 * DAY]);
  // weekly 2: week 47 (Mon 16th..) newest = now; week 46 newest = Sunday 15th 12:00
  assert.deepEqual(kept(list, { keepWeekly: 2 }), [NOW_S, NOW_S - 3 * DAY]);
  assert.deepEqual(kept(list, { keepLast: 1, keepWeekly: 2 }), [NOW_S, NOW_S - 3 * DAY]);
  assert.deepEqual(kept(list, { keepLast: 2, keepDaily: 2 }), [NOW_S, NOW_S - 41400, NOW_S - DAY]);
});

void test('count rules apply per part: database-only runs never push out the only code and media backups', () => {
  const h = (n: number) => NOW_S - n * 3600;
  // A full snapshot, then database-only runs; a code-only run before it all.
  const list = [
    parts(h(1), 'db'),
    parts(h(2), 'db'),
    parts(h(3), 'db'),
    parts(h(4), 'code', 'media', 'db'),
    parts(h(5), 'code'),
  ];
  assert.deepEqual(kept(list, { keepLast: 2 }), [h(1), h(2), h(4), h(5)]);
  assert.deepEqual(kept(list, { keepLast: 1 }), [h(1), h(4)]);
  const plan = planPrune(list, { keepLast: 1 }, NOW_S * 1000);
  assert.deepEqual(plan[3]!.reasons, [
    'last code',
    'newest complete code',
    'last media',
    'newest complete media',
  ]);
  // daily: one per part per day (all on the same day here)
  assert.deepEqual(kept(list, { keepDaily: 1 }), [h(1), h(4)]);
  // The newest complete backup of each part stays even when a rule keeps nothing of it.
  const old = NOW_S - 40 * DAY;
  assert.deepEqual(
    kept([parts(NOW_S, 'db'), parts(old, 'code'), parts(old - DAY, 'media')], { keepWithin: DAY }),
    [NOW_S, old, old - DAY],
  );
});

void test('the newest complete backup is never removed; incomplete runs always are; corrupt ones only by age', () => {
  const old = NOW_S - 40 * DAY;
  const list = [
    snap(NOW_S, 'incomplete'),
    snap(NOW_S - DAY, 'corrupt'),
    snap(old),
    snap(old - DAY),
    snap(old - 2 * DAY, 'corrupt'),
  ];
  const plan = planPrune(list, { keepWithin: 14 * DAY }, NOW_S * 1000);
  assert.deepEqual(
    plan.map((d) => [d.timestamp, d.keep]),
    [
      [NOW_S, false],
      [NOW_S - DAY, true],
      [old, true],
      [old - DAY, false],
      [old - 2 * DAY, false],
    ],
  );
  assert.deepEqual(plan[2]!.reasons, ['newest complete db']);
  assert.match(plan[0]!.reasons[0]!, /incomplete/);
  // keep-last counts restorable snapshots only: the corrupt one does not take a place.
  assert.deepEqual(kept(list, { keepLast: 2 }), [old, old - DAY]);
  // Only Magento backups: the newest one is protected too.
  assert.deepEqual(kept([snap(old, 'legacy'), snap(old - DAY, 'legacy')], { keepWithin: DAY }), [old]);
});

void test('backups:prune on disk: dry run changes nothing; a real run removes old snapshots, crash leftovers and partials', async () => {
  const root = minimalStore();
  const dir = path.join(root, 'var', 'backups');
  // Three complete runs, 20, 10 and 1 days old, then a crashed run (parts, marker, partial), then leftovers.
  const ages = [20, 10, 1];
  for (const age of ages) {
    await runBackup({
      root,
      parts: { code: true, media: false, db: false },
      now: () => (NOW_S - age * DAY) * 1000,
    });
  }
  await assert.rejects(
    runBackup({
      root,
      parts: { code: true, media: true, db: false },
      now: () => (NOW_S - 3600) * 1000,
      onEvent: (e) => {
        if (e.type === 'part-start' && e.part === 'media') throw new Error('crash');
      },
    }),
  );
  const crashTs = NOW_S - 3600;
  writeFileSync(path.join(dir, `${crashTs}_filesystem_media.tgz.partial`), 'half');
  writeFileSync(path.join(dir, 'weird.partial'), 'x');
  writeFileSync(
    path.join(dir, '1500000000_db.sql'),
    '-- a Magento backup\n-- Dump completed on 2017-07-14 02:40:00 GMT',
  );
  mkdirSync(path.join(dir, 'keep-me'));
  writeFileSync(path.join(dir, 'notes.txt'), 'not ours');

  const before = readdirSync(dir).sort();
  const policy = { keepWithin: 14 * DAY };
  const dry = await pruneBackups({ root, policy, dryRun: true, now: () => NOW_S * 1000 });
  assert.deepEqual(readdirSync(dir).sort(), before, 'dry run changes nothing');
  assert.deepEqual(
    dry.removed.map((d) => d.timestamp).sort(),
    // The Magento database backup is old, but the only database backup: the newest of its part stays.
    [NOW_S - 20 * DAY, crashTs].sort(),
  );
  assert.deepEqual(dry.strayPartials, ['weird.partial']);

  const real = await pruneBackups({ root, policy, now: () => NOW_S * 1000 });
  assert.deepEqual(
    real.removed.map((d) => d.id),
    dry.removed.map((d) => d.id),
  );
  assert.ok(real.freed > 0);
  const { snapshots } = await listSnapshots(root);
  assert.deepEqual(
    snapshots.map((s) => [s.timestamp, s.status]),
    [
      [NOW_S - 1 * DAY, 'complete'],
      [NOW_S - 10 * DAY, 'complete'],
      [1500000000, 'legacy'],
    ],
  );
  assert.deepEqual(
    readdirSync(dir)
      .filter((n) => !/^\d+_(filesystem\.tgz|manifest\.json)$/.test(n))
      .sort(),
    ['1500000000_db.sql', 'keep-me', 'notes.txt'],
    'unknown files are left alone; no lock left',
  );

  // Long after: everything is outside the policy, but the newest complete snapshot stays.
  const later = await pruneBackups({
    root,
    policy: { keepLast: 0, keepWithin: DAY },
    now: () => (NOW_S + 100 * DAY) * 1000,
  });
  assert.deepEqual(
    later.kept.map((d) => d.timestamp),
    [NOW_S - DAY, 1500000000],
  );
  assert.ok(existsSync(path.join(dir, `${NOW_S - DAY}_manifest.json`)));
  await assert.rejects(pruneBackups({ root, policy: {} }), /Empty retention policy/);
});

void test('runBackup with prune applies the policy after the manifest, under the same lock', async () => {
  const root = minimalStore();
  await runBackup({
    root,
    parts: { code: true, media: false, db: false },
    now: () => (NOW_S - 30 * DAY) * 1000,
  });
  const r = await runBackup({
    root,
    parts: { code: true, media: false, db: false },
    now: () => NOW_S * 1000,
    prune: { keepWithin: 14 * DAY },
  });
  assert.deepEqual(
    r.pruned?.removed.map((d) => d.timestamp),
    [NOW_S - 30 * DAY],
  );
  const { snapshots } = await listSnapshots(root);
  assert.deepEqual(
    snapshots.map((s) => [s.timestamp, s.status]),
    [[NOW_S, 'complete']],
  );
});
