// Signed state files (journals): written once as `{"hmac":"…","body":<JSON>}`, verified byte for byte; a journal
// in the former `{"body":"<string>","hmac":"…"}` form (an earlier version's, left by a killed run) still reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHmac } from 'node:crypto';
import { openStateDir, readSigned, writeSigned } from '../../src/store/state-dir.js';
import { storePaths } from '../../src/store/paths.js';
import { CliError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';

async function state(): Promise<Awaited<ReturnType<typeof openStateDir>>> {
  const root = tempDir('mbk-state-');
  fs.mkdirSync(path.join(root, 'var', 'backups'), { recursive: true, mode: 0o700 });
  return openStateDir(storePaths(root));
}

const untrusted = (e: unknown): boolean =>
  e instanceof CliError && /^Untrusted journal .*op-1\.json/.test(e.message);

void test('a signed file round-trips; its body is written once, as JSON', async () => {
  const s = await state();
  const data = { phase: 'staging', names: ['a"b', 'c\\d', 'é\n', '</x>'], n: 1.5, nested: { list: [1, 2] } };
  await writeSigned(s, 'op-1.json', data);
  const text = fs.readFileSync(path.join(s.dir, 'op-1.json'), 'utf8');
  assert.match(text, /^\{"hmac":"[0-9a-f]{64}","body":\{"phase":"staging",/);
  assert.ok(text.endsWith('}}\n'));
  assert.deepEqual((JSON.parse(text) as { body: unknown }).body, data);
  assert.deepEqual(await readSigned(s, 'op-1.json'), data);
  assert.equal(fs.statSync(path.join(s.dir, 'op-1.json')).mode & 0o777, 0o600);
});

void test('a changed byte, a body that is not JSON, an appended line or another key: refused, never parsed as ours', async () => {
  const s = await state();
  const file = path.join(s.dir, 'op-1.json');
  await writeSigned(s, 'op-1.json', { phase: 'staging', root: '/srv/store' });
  const good = fs.readFileSync(file, 'utf8');
  const sign = (body: string): string =>
    `{"hmac":"${createHmac('sha256', s.key).update(body).digest('hex')}","body":${body}}\n`;
  for (const bad of [
    good.replace('/srv/store', '/srv/other'),
    good.replace('"body":', '"body" :'),
    good.slice(0, -1),
    good + '{"phase":"committing"}\n',
    sign('{"phase":'),
    `{"hmac":"${'0'.repeat(64)}","body":{"phase":"staging","root":"/srv/store"}}\n`,
    '',
  ]) {
    fs.writeFileSync(file, bad, { mode: 0o600 });
    await assert.rejects(readSigned(s, 'op-1.json'), untrusted, JSON.stringify(bad));
  }
  fs.writeFileSync(file, sign('{"phase":"committing"}'), { mode: 0o600 });
  assert.deepEqual(await readSigned(s, 'op-1.json'), { phase: 'committing' });
});

void test('the former form (body as a string) still reads, with the same check', async () => {
  const s = await state();
  const file = path.join(s.dir, 'op-1.json');
  const body = JSON.stringify({ phase: 'committing', trees: [] });
  const hmac = createHmac('sha256', s.key).update(body).digest('hex');
  fs.writeFileSync(file, JSON.stringify({ body, hmac }) + '\n', { mode: 0o600 });
  assert.deepEqual(await readSigned(s, 'op-1.json'), { phase: 'committing', trees: [] });
  fs.writeFileSync(file, JSON.stringify({ body: body.replace('committing', 'staging'), hmac }) + '\n');
  await assert.rejects(readSigned(s, 'op-1.json'), untrusted);
});
