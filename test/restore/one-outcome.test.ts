// One operation, one outcome: a rollback of code, media and database together ends with all three as the
// backup's or all three as before — when it is SIGKILLed at any step (the next run finishes or undoes it), and
// when a rename is refused half-way through the swap (undone at once; maintenance as it was).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Connection } from 'mysql2/promise';
import { diffDatabases, type DbSnapshot } from '../../fixtures/db-compare.js';
import { runBackup } from '../../src/backup/run-backup.js';
import { runRollback } from '../../src/restore/run-rollback.js';
import { recoverStore } from '../../src/restore/recover.js';
import { storePaths } from '../../src/store/paths.js';
import { resolveDbConfig } from '../../src/db/config.js';
import { acquireLock } from '../../src/fs/lock.js';
import { diffTrees, type TreeEntry } from '../helpers/tree.js';
import { tinyStoreOnServer } from '../helpers/store.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'one-outcome-child.js');

interface State {
  code: Map<string, TreeEntry>;
  media: Map<string, TreeEntry>;
  db: DbSnapshot;
}

async function setup() {
  const { server, dbname, conn, root, state } = await tinyStoreOnServer('oneout');
  const snap = (): Promise<State> => state((rel) => rel.startsWith('.magebackup-'));
  const files = async () => {
    const b = await runBackup({ root, parts: { code: true, media: true, db: true }, now: () => Date.now() });
    return Object.fromEntries(b.parts.map((p) => [p.part, p.file])) as Record<
      'code' | 'media' | 'db',
      string
    >;
  };
  const a = await files();
  const stateA = await snap();
  // Change all three parts.
  fs.writeFileSync(path.join(root, 'index.php'), '<?php // changed\n');
  fs.writeFileSync(path.join(root, 'app/new-file.php'), '<?php // new\n');
  fs.rmSync(path.join(root, 'app/etc/config.php'));
  fs.writeFileSync(path.join(root, 'pub/media/new-upload.jpg'), 'new');
  await conn.query('SET FOREIGN_KEY_CHECKS=0');
  await conn.query('CREATE TABLE extra_after_backup (id INT PRIMARY KEY)');
  await conn.query('INSERT INTO extra_after_backup VALUES (1), (2)');
  // within the same second, the second run takes the next free one (pickTimestamp): no wait needed
  const b = await files();
  assert.notEqual(b.code, a.code, 'two runs, two names');
  const stateB = await snap();
  return { server, dbname, conn, root, a, b, stateA, stateB, snap };
}

/** 'A', 'B', or a description of the mix. */
function sideOf(s: State, A: State, B: State): string {
  const parts = {
    code:
      diffTrees(A.code, s.code).length === 0 ? 'A' : diffTrees(B.code, s.code).length === 0 ? 'B' : 'mixed',
    media:
      diffTrees(A.media, s.media).length === 0
        ? 'A'
        : diffTrees(B.media, s.media).length === 0
          ? 'B'
          : 'mixed',
    db: diffDatabases(A.db, s.db).length === 0 ? 'A' : diffDatabases(B.db, s.db).length === 0 ? 'B' : 'mixed',
  };
  const sides = new Set(Object.values(parts));
  return sides.size === 1 && !sides.has('mixed') ? [...sides][0]! : JSON.stringify(parts);
}

function runChild(root: string, f: Record<string, string>, killAt: string) {
  return spawnSync(process.execPath, [CHILD, root, f.code!, f.media!, f.db!, killAt], { encoding: 'utf8' });
}

/** The next run: takes the dead run's lock over and recovers, as every command does first. */
async function nextRun(root: string): Promise<string[]> {
  const paths = storePaths(root);
  const db = await resolveDbConfig({ root, flags: {}, env: {} });
  const lock = await acquireLock(paths.backupsDir, { command: 'test' });
  const messages: string[] = [];
  try {
    await recoverStore({
      paths,
      db,
      onEvent: (e) => {
        if (e.type === 'info' || e.type === 'warning') messages.push(e.message);
      },
    });
  } finally {
    await lock.release();
  }
  return messages;
}

async function leftovers(root: string, conn: Connection, dbname: string): Promise<string[]> {
  const out = fs.readdirSync(root).filter((n) => n.startsWith('.magebackup-'));
  const state = path.join(root, 'var/backups/.magebackup-state');
  if (fs.existsSync(state)) out.push(`${state} (empty once no operation is under way)`);
  if (fs.existsSync(path.join(root, 'var/.maintenance.flag'))) out.push('var/.maintenance.flag');
  if (fs.existsSync(path.join(root, 'var/backups/.lock'))) out.push('var/backups/.lock');
  const [rows] = (await conn.query('SHOW DATABASES')) as unknown as [Array<{ Database: string }>];
  out.push(...rows.map((r) => r.Database).filter((d) => d.startsWith(dbname) && d !== dbname));
  const [own] = (await conn.query(`SHOW TABLES FROM \`${dbname}\` LIKE '\\_\\_mbk\\_%'`)) as unknown as [
    Array<Record<string, string>>,
  ];
  out.push(...own.map((r) => Object.values(r)[0]!));
  return out;
}

void test('a code + media + database rollback SIGKILLed at every step ends all old or all new after the next run', async (t) => {
  const { conn, dbname, root, a, b, stateA, stateB, snap } = await setup();
  try {
    // From B back to A without a kill: every point a kill can hit.
    const probe = runChild(root, a, 'never');
    assert.equal(probe.status, 0, probe.stderr);
    const points = JSON.parse(probe.stdout) as string[];
    assert.equal(sideOf(await snap(), stateA, stateB), 'A');
    assert.ok(points.includes('op:committing') && points.includes('db:swapped'), points.join(' '));
    const renames = points.filter((p) => p.startsWith('rename:'));
    // every operation and database step ('loading' is where 'journal-created' is for a kill, 'done' where
    // 'op:db-committed' is) and one rename in
    // the middle of the swap (tree-swap.test.ts kills after every single rename of a code swap)
    const kills = [
      ...points.filter((p) => !p.startsWith('rename:') && p !== 'db:loading' && p !== 'db:done'),
      renames[Math.floor(renames.length / 2)]!,
    ];
    let current = 'A';
    const outcomes: string[] = [];
    for (const point of kills) {
      const target = current === 'A' ? b : a;
      const r = runChild(root, target, point);
      assert.equal(r.signal, 'SIGKILL', `killed at ${point}: ${r.stderr}`);
      const messages = await nextRun(root);
      const side = sideOf(await snap(), stateA, stateB);
      assert.ok(
        side === 'A' || side === 'B',
        `killed at ${point}: ${side}; the next run said: ${messages.join(' | ')}`,
      );
      assert.deepEqual(await leftovers(root, conn, dbname), [], `after a kill at ${point}`);
      // the next run says which side every part went to
      assert.match(
        messages.join(' | '),
        side !== current
          ? /finished the interrupted rollback of code, media and database: all of it is now the backup's|removed the content replaced by a finished rollback of code, media and database/
          : /undid the interrupted rollback of code(, media|) and (media|database)(?: \(.*\))?: all of it is as it was before/,
        `killed at ${point}`,
      );
      outcomes.push(`${point}→${side === current ? 'old' : 'new'}`);
      current = side;
    }
    t.diagnostic(outcomes.join(' '));
    // a kill before the point of no return ends old, from it on new
    const before = outcomes.filter((o) => /^db:(journal-created|loaded|prepared)/.test(o));
    assert.ok(before.length > 0 && before.every((o) => o.endsWith('old')), outcomes.join(' '));
    const after = outcomes.filter((o) => /^(op:|rename:)/.test(o));
    assert.ok(after.length > 0 && after.every((o) => o.endsWith('new')), outcomes.join(' '));
  } finally {
    await conn.end();
  }
});

void test('a rename refused half-way (immutable vendor/) undoes every part at once: all old, maintenance off', async () => {
  const { conn, dbname, root, a, stateA, stateB, snap } = await setup();
  // the last code unit of a full restore (--full: every top-level directory is a unit; a selective one would
  // not touch an unchanged vendor/): by then other units (and pub/...) were swapped, so the undo has work to do
  const units = fs
    .readdirSync(root)
    .filter((n) => !n.startsWith('.') && !['var', 'pub', 'update'].includes(n));
  const last = path.join(root, units.sort().at(-1)!);
  execFileSync('chattr', ['+i', last]);
  try {
    await assert.rejects(
      runRollback({
        root,
        codeFile: a.code,
        mediaFile: a.media,
        dbFile: a.db,
        dropExtraTables: true,
        full: true,
        db: { flags: {}, env: {} },
      }),
      /could not finish .*every part was put back as it was before, nothing changed/,
    );
  } finally {
    execFileSync('chattr', ['-i', last]);
  }
  try {
    assert.equal(sideOf(await snap(), stateA, stateB), 'B');
    assert.deepEqual(await leftovers(root, conn, dbname), []);
    // and it works once the directory may be renamed again
    await runRollback({
      root,
      codeFile: a.code,
      mediaFile: a.media,
      dbFile: a.db,
      dropExtraTables: true,
      db: { flags: {}, env: {} },
    });
    assert.equal(sideOf(await snap(), stateA, stateB), 'A');
  } finally {
    await conn.end();
  }
});
