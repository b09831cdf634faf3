// The snapshot and backups:* commands through the built binary: exit codes, stdout/stderr split, JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { flipByte, tinyStoreOnServer } from '../helpers/store.js';

interface ListJson {
  snapshots: Array<{
    id: string;
    status: string;
    parts: string[];
    totalSize: number;
    age: number;
    manifest?: { command: string; created: string; completed: string; warnings: number };
  }>;
}

void test('snapshot:create, list, verify, a corrupt byte, restore refused; bad ids and policies are usage errors', async () => {
  const store = await tinyStoreOnServer('snapcli');
  await store.conn.end();
  const root = store.root;
  const created = await runCli(['snapshot:create', '--root', root, '--json']);
  assert.equal(created.code, 0, created.stderr);
  const { id } = JSON.parse(created.stdout) as { id: string };
  assert.match(id, /^\d+$/);
  // every stderr line an NDJSON event with a type (a truthy JSON.parse alone would accept any object or number)
  const types = created.stderr
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { type?: unknown }).type);
  for (const t of types) assert.equal(typeof t, 'string');
  assert.ok(types.includes('part-done'), types.join(' '));

  const list = await runCli(['snapshot:list', '--root', root, '--json']);
  assert.equal(list.code, 0);
  const data = JSON.parse(list.stdout) as ListJson;
  assert.deepEqual(
    data.snapshots.map((s) => [s.id, s.status, s.parts.join(',')]),
    [[id, 'complete', 'code,media,db']],
  );
  // the public view (store/snapshot-view.ts, the web's too): the run's manifest facts, no absolute path
  const m = data.snapshots[0]!.manifest!;
  assert.deepEqual(
    [m.command, m.warnings, typeof m.created, typeof m.completed],
    ['snapshot:create', 0, 'string', 'string'],
  );
  assert.ok(!JSON.stringify(data.snapshots).includes(root), 'no absolute path in a snapshot');
  const table = await runCli(['snapshot:list', '--root', root]);
  assert.match(table.stdout, new RegExp(`\\| ${id} \\|.*\\| code,media,db \\|.*\\| complete \\|`));

  const ok = await runCli(['backups:verify', id, '--root', root]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`${id}: OK`));

  const dir = path.join(root, 'var/backups');
  const media = readdirSync(dir).find((n) => n.endsWith('_filesystem_media.tgz'))!;
  flipByte(path.join(dir, media));
  const bad = await runCli(['backups:verify', '--root', root]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, new RegExp(`Error: Verification failed: .*${media.replace(/\./g, '\\.')}`));
  assert.doesNotMatch(bad.stderr, /at .*\.js:\d+/, 'no stack trace');
  const badJson = await runCli(['backups:verify', '--all', '--json', '--root', root]);
  assert.equal(badJson.code, 1);
  assert.equal((JSON.parse(badJson.stdout) as { ok: boolean }).ok, false);
  const err = JSON.parse(badJson.stderr.trim().split('\n').at(-1)!) as {
    type: string;
    code: number;
    message: string;
  };
  assert.deepEqual([err.type, err.code], ['error', 1]);

  const refused = await runCli(['snapshot:restore', id, '--yes', '--root', root]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`Snapshot ${id} is corrupt.*${media.replace(/\./g, '\\.')}`));
  assert.doesNotMatch(refused.stderr, /Enabling maintenance mode/, 'refused before anything changed');

  assert.equal((await runCli(['snapshot:restore', 'x1', '--root', root])).code, 2);
  assert.equal((await runCli(['snapshot:restore', '--root', root])).code, 2);
  assert.match((await runCli(['snapshot:restore', '42', '-y', '--root', root])).stderr, /No snapshot 42/);
  assert.equal((await runCli(['backups:verify', '1', '--all', '--root', root])).code, 2);
  assert.equal((await runCli(['backups:prune', '--keep-last', '0', '--root', root])).code, 2);
  assert.equal((await runCli(['backups:prune', '--keep-within', 'soon', '--root', root])).code, 2);
  assert.equal((await runCli(['setup:backup', '--code', '--keep-last', '2', '--root', root])).code, 2);
});

void test('snapshot:create --prune --keep-last 1 removes the older snapshot; backups:prune --dry-run --json removes nothing', async () => {
  const store = await tinyStoreOnServer('snapcli');
  await store.conn.end();
  const root = store.root;
  const first = await runCli(['snapshot:create', '--root', root, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const firstId = (JSON.parse(first.stdout) as { id: string }).id;
  const dry = await runCli(['backups:prune', '--keep-last', '1', '--dry-run', '--json', '--root', root]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.deepEqual((JSON.parse(dry.stdout) as { removed: unknown[] }).removed, []);

  const second = await runCli(['snapshot:create', '--prune', '--keep-last', '1', '--root', root]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /Snapshot \d+ created/);
  assert.match(second.stdout, new RegExp(`Removed 1 snapshot.*\\n  - ${firstId} \\(complete\\)`));
  const data = JSON.parse((await runCli(['snapshot:list', '--json', '--root', root])).stdout) as ListJson;
  assert.equal(data.snapshots.length, 1);
  assert.notEqual(data.snapshots[0]!.id, firstId);
});
