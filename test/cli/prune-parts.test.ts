// Retention per part, through the binary against the test server: database-only runs never push out the only code
// and media backups.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tinyStoreOnServer } from '../helpers/store.js';
import { isHistoryFile } from '../../src/history/history.js';

void test('a full snapshot, then two setup:backup --db, then --keep-last 2: the code and media backups stay', async () => {
  const store = await tinyStoreOnServer('pruneparts');
  await store.conn.end();
  const { root } = store;
  const dir = path.join(root, 'var', 'backups');
  const full = await runCli(['snapshot:create', '--root', root, '--json']);
  assert.equal(full.code, 0, full.stderr);
  const { id } = JSON.parse(full.stdout) as { id: string };
  const dbOnly: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await runCli(['setup:backup', '--db', '--root', root, '--json']);
    assert.equal(r.code, 0, r.stderr);
    dbOnly.push(String((JSON.parse(r.stdout) as { timestamp: number }).timestamp));
  }
  const r = await runCli(['backups:prune', '--keep-last', '2', '--root', root, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as {
    removed: unknown[];
    kept: Array<{ id: string; reasons: string[] }>;
  };
  assert.deepEqual(result.removed, []);
  const why = Object.fromEntries(result.kept.map((k) => [k.id, k.reasons]));
  assert.ok(why[id]?.includes('last code') && why[id].includes('last media'), JSON.stringify(why));
  assert.ok(why[dbOnly[0]!]?.includes('last db'), JSON.stringify(why));
  for (const f of [`${id}_filesystem.tgz`, `${id}_filesystem_media.tgz`])
    assert.ok(existsSync(path.join(dir, f)), `${f} kept`);

  // --keep-last 1: the newest database backup, and the code and media of the full snapshot (kept whole).
  const one = await runCli(['backups:prune', '--keep-last', '1', '--root', root]);
  assert.equal(one.code, 0, one.stderr);
  const ids = [
    ...new Set(
      readdirSync(dir)
        .filter((n) => !isHistoryFile(n))
        .map((n) => n.split('_')[0]),
    ),
  ].sort();
  assert.deepEqual(ids, [id, dbOnly[1]].sort());
  assert.equal(existsSync(path.join(root, 'var', '.maintenance.flag')), false);
  assert.deepEqual(
    readdirSync(dir).filter(
      (n) => (n.startsWith('.') && !isHistoryFile(n)) || n.endsWith('.partial') || n.endsWith('.running'),
    ),
    [],
  );
});
