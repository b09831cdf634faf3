// The web interface's API: every route, its refusals (401 without a session, 403 without the CSRF token or with a
// foreign Host, 400 with a clear message for invalid input, 423 while a CLI run holds the store), and the actions
// themselves on a real store, recorded in the history with origin web.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { minimalStore } from '../helpers/tmp.js';
import { describeTree, diffTrees } from '../helpers/tree.js';
import { startWeb } from './helpers.js';

const DB_SECRET = 'Sup3r-S3cret-DB-pa55word';

function store(): string {
  return minimalStore({
    'app/etc/env.php': `<?php\nreturn ['db' => ['connection' => ['default' => ['host' => '127.0.0.1:1', 'dbname' => 'magento', 'username' => 'u', 'password' => '${DB_SECRET}']]]];\n`,
  });
}

const STATE_CHANGES: Array<[string, string, unknown]> = [
  ['POST', '/api/snapshots', { parts: ['code'], confirm: true }],
  ['POST', '/api/snapshots/1700000000/restore', { confirmId: '1700000000' }],
  ['POST', '/api/snapshots/1700000000/verify', {}],
  ['POST', '/api/prune', { confirm: true }],
  ['POST', '/api/maintenance', { enabled: true }],
  ['POST', '/api/logout', {}],
];
const READS = [
  '/api/status',
  '/api/snapshots',
  '/api/snapshots/1700000000',
  '/api/snapshots/1700000000/files/1700000000_db.sql',
  '/api/retention',
  '/api/maintenance',
  '/api/history',
  '/api/events',
];

function noStack(text: string): void {
  assert.doesNotMatch(text, /\n\s+at |node_modules|\.ts:\d+/, `no stack trace: ${text}`);
}

void test('web: without a session every API route is 401; pages and assets load; security headers', async (t) => {
  const web = await startWeb(store());
  t.after(() => web.close());
  for (const url of READS) {
    const r = await web.call('GET', url);
    assert.equal(r.status, 401, url);
    assert.match(String(r.json.error), /Not logged in/);
  }
  for (const [method, url, body] of STATE_CHANGES) {
    const r = await web.call(method, url, { body });
    assert.equal(r.status, 401, url);
  }
  const index = await web.call('GET', '/');
  assert.equal(index.status, 200);
  assert.match(index.text, /<script src="\/assets\/app.js"/);
  assert.match(String(index.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
  assert.equal(index.headers['x-frame-options'], 'DENY');
  for (const a of ['/assets/app.js', '/assets/app.css'])
    assert.equal((await web.call('GET', a)).status, 200, a);
  const missing = await web.call('GET', '/assets/../../package.json');
  assert.equal(missing.status, 404);
  noStack(missing.text);
});

void test('web: login — wrong token 401, right token an HttpOnly SameSite=Strict cookie, rate limited', async (t) => {
  const web = await startWeb(store(), { loginRate: 3 });
  t.after(() => web.close());
  const wrong = await web.call('POST', '/api/login', { body: { secret: 'guess' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json.error, 'Wrong token');
  const bad = await web.call('POST', '/api/login', { body: { token: 'x' } });
  assert.equal(bad.status, 400);
  noStack(bad.text);
  const ok = await web.call('POST', '/api/login', { body: { secret: web.token } });
  assert.equal(ok.status, 200);
  const cookie = String(ok.headers['set-cookie']?.[0]);
  assert.match(cookie, /^mbk_session=[A-Za-z0-9_-]{40,};/);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.equal(typeof ok.json.csrf, 'string');
  // the 4th attempt within a minute is refused, even with the right token
  const limited = await web.call('POST', '/api/login', { body: { secret: web.token } });
  assert.equal(limited.status, 429);
  noStack(limited.text);
  // the session works, and the CSRF token can be fetched again after a reload
  const sid = cookie.split(';')[0]!;
  const session = await web.call('GET', '/api/session', { cookie: sid });
  assert.equal(session.json.csrf, ok.json.csrf);
  // logout ends it
  assert.equal(
    (await web.call('POST', '/api/logout', { cookie: sid, csrf: String(ok.json.csrf) })).status,
    200,
  );
  assert.equal((await web.call('GET', '/api/status', { cookie: sid })).status, 401);
});

void test('web: a password from the environment works, the token does not exist then', async (t) => {
  const { makeSecret } = await import('../../src/web/auth.js');
  assert.throws(() => makeSecret('short'), /at least 12/);
  const { secret, token } = makeSecret('correct horse battery');
  assert.equal(token, undefined);
  assert.equal(secret.kind, 'password');
  const web = await startWeb(store(), { secret });
  t.after(() => web.close());
  assert.equal((await web.call('POST', '/api/login', { body: { secret: 'correct horse' } })).status, 401);
  assert.equal(
    (await web.call('POST', '/api/login', { body: { secret: 'correct horse battery' } })).status,
    200,
  );
});

void test('web: every state change without the CSRF token (or with a wrong one, or cross-origin) is 403', async (t) => {
  const web = await startWeb(store());
  t.after(() => web.close());
  const s = await web.login();
  for (const [method, url, body] of STATE_CHANGES) {
    const none = await web.call(method, url, { body, cookie: s.cookie });
    assert.equal(none.status, 403, url);
    assert.match(String(none.json.error), /CSRF/);
    const wrong = await web.call(method, url, { body, cookie: s.cookie, csrf: 'x'.repeat(s.csrf.length) });
    assert.equal(wrong.status, 403, url);
    const cross = await web.call(method, url, {
      body,
      cookie: s.cookie,
      csrf: s.csrf,
      headers: { origin: 'http://evil.example' },
    });
    assert.equal(cross.status, 403, url);
  }
  assert.equal(existsSync(path.join(web.jobs.view() ? '' : '/nonexistent')), false, 'no job ran');
  assert.equal(web.jobs.view(), null);
});

void test('web: a foreign Host header is refused (DNS rebinding), on pages and API', async (t) => {
  const web = await startWeb(store(), { allowHosts: ['backup.example'] });
  t.after(() => web.close());
  const s = await web.login();
  for (const host of [
    'evil.example',
    `evil.example:${web.port}`,
    `127.0.0.1:${web.port + 1}`,
    'localhost.evil.example',
  ]) {
    for (const url of ['/', '/api/status', '/assets/app.js']) {
      const r = await web.call('GET', url, { host, cookie: s.cookie });
      assert.equal(r.status, 403, `${host} ${url}`);
      if (url !== '/assets/app.js' || r.json.error) assert.match(String(r.json.error), /Host header/);
    }
  }
  for (const host of [`localhost:${web.port}`, `[::1]:${web.port}`, `backup.example:${web.port}`]) {
    assert.equal((await web.call('GET', '/api/status', { host, cookie: s.cookie })).status, 200, host);
  }
});

void test('web: invalid input is a 4xx with a clear one-line message, never a stack trace', async (t) => {
  const web = await startWeb(store());
  t.after(() => web.close());
  const s = await web.login();
  const cases: Array<[string, string, unknown, number, RegExp]> = [
    ['POST', '/api/snapshots', { parts: [], confirm: true }, 400, /parts/],
    ['POST', '/api/snapshots', { parts: ['code', 'code'], confirm: true }, 400, /duplicate|parts/],
    ['POST', '/api/snapshots', { parts: ['etc'], confirm: true }, 400, /allowed values/],
    ['POST', '/api/snapshots', { parts: ['code'] }, 400, /confirm/],
    ['POST', '/api/snapshots', { parts: ['code'], confirm: true, strip: ['@evil'] }, 400, /strip/],
    ['POST', '/api/snapshots', { parts: ['code'], confirm: true, root: '/' }, 400, /additional/],
    ['POST', '/api/snapshots/../../etc/restore', { confirmId: '1' }, 404, /No such page/],
    ['POST', '/api/snapshots/12ab/restore', { confirmId: '12ab' }, 400, /params\/id/],
    ['POST', '/api/snapshots/1700000000/restore', {}, 400, /confirmId/],
    [
      'POST',
      '/api/snapshots/1700000000/restore',
      { confirmId: '1700000001' },
      400,
      /Type the snapshot id 1700000000/,
    ],
    ['POST', '/api/snapshots/1700000000/restore', { confirmId: '1700000000' }, 404, /No snapshot 1700000000/],
    ['POST', '/api/snapshots/1700000000/verify', { deep: 'yes' }, 400, /deep/],
    ['POST', '/api/snapshots/1700000000/verify', {}, 404, /No snapshot/],
    ['POST', '/api/prune', { confirm: true, keepLast: -1 }, 400, /keepLast/],
    ['POST', '/api/prune', { confirm: true, keepWithin: '14 days' }, 400, /keepWithin/],
    ['POST', '/api/prune', { confirm: true, keepWithin: '0d' }, 400, /keepWithin "0d" must be longer than 0/],
    ['POST', '/api/prune', { confirm: true, keepWithin: '99999999999999999w' }, 400, /keepWithin .*too long/],
    ['POST', '/api/prune', { confirm: true, keepLast: 0 }, 400, /keeps nothing|policy|keep/i],
    ['POST', '/api/maintenance', { enabled: 'on' }, 400, /enabled/],
    ['GET', '/api/snapshots/1', undefined, 404, /No snapshot 1/],
    ['GET', '/api/snapshots/1/files/..%2F..%2Fapp%2Fetc%2Fenv.php', undefined, 400, /name/],
    ['GET', '/api/history?limit=lots', undefined, 400, /limit/],
    ['GET', '/api/retention?keepDaily=-2', undefined, 400, /keepDaily/],
    ['GET', '/api/nothing', undefined, 404, /No such page/],
  ];
  for (const [method, url, body, status, message] of cases) {
    const raw = await web.call(method, url, {
      cookie: s.cookie,
      csrf: s.csrf,
      ...(body !== undefined ? { body } : {}),
    });
    assert.equal(raw.status, status, `${method} ${url} ${JSON.stringify(body)}: ${raw.text}`);
    assert.match(String(raw.json.error), message, `${url}: ${raw.text}`);
    assert.doesNotMatch(String(raw.json.error), /\n/);
    noStack(raw.text);
  }
  // a body that is not JSON at all
  const notJson = await web.call('POST', '/api/maintenance', {
    cookie: s.cookie,
    csrf: s.csrf,
    body: '<enabled/>',
    headers: { 'content-type': 'application/xml' },
  });
  assert.equal(notJson.status, 415);
  noStack(notJson.text);
});

void test('web: create, list, detail, download, verify, restore, prune, maintenance — all in the history as web', async (t) => {
  const root = store();
  const web = await startWeb(root);
  t.after(() => web.close());
  const s = await web.login();
  const auth = { cookie: s.cookie, csrf: s.csrf };

  // create code + media (this store has no database server: the db part is tried below and fails cleanly)
  const created = await web.call('POST', '/api/snapshots', {
    ...auth,
    body: { parts: ['code', 'media'], confirm: true, maintenance: true },
  });
  assert.equal(created.status, 202, created.text);
  const job = await web.waitJob(s);
  assert.equal(job.status, 'ok', job.message);
  const list = await web.call('GET', '/api/snapshots', auth);
  const snaps = list.json.snapshots as Array<{
    id: string;
    status: string;
    parts: string[];
    restorableUntil: string;
  }>;
  assert.equal(snaps.length, 1);
  const id = snaps[0]!.id;
  assert.deepEqual(snaps[0]!.parts, ['code', 'media']);
  assert.equal(snaps[0]!.status, 'complete');
  assert.equal(Date.parse(snaps[0]!.restorableUntil), (Number(id) + 14 * 86400) * 1000);
  assert.equal(existsSync(path.join(root, 'var', '.maintenance.flag')), false, 'maintenance as it was');

  const detail = await web.call('GET', `/api/snapshots/${id}`, auth);
  assert.equal(detail.status, 200);
  const files = detail.json.files as Array<{ name: string; kind: string }>;
  const code = files.find((f) => f.kind === 'code')!.name;
  const dl = await web.call('GET', `/api/snapshots/${id}/files/${code}`, auth);
  assert.equal(dl.status, 200);
  assert.match(String(dl.headers['content-disposition']), new RegExp(`attachment; filename="${code}"`));
  assert.equal(
    Number(dl.headers['content-length']),
    readFileSync(path.join(root, 'var/backups', code)).length,
  );
  assert.equal((await web.call('GET', `/api/snapshots/${id}/files/${id}_db.sql`, auth)).status, 404);

  // verify
  assert.equal((await web.call('POST', `/api/snapshots/${id}/verify`, { ...auth, body: {} })).status, 202);
  assert.equal((await web.waitJob(s)).status, 'ok');

  // restore: the tree goes back to the snapshot
  const before = describeTree(root, (r) => r.startsWith('var'));
  writeFileSync(path.join(root, 'index.php'), '<?php // broken after the backup\n');
  writeFileSync(path.join(root, 'pub/media/catalog/a.jpg'), 'CHANGED');
  const restored = await web.call('POST', `/api/snapshots/${id}/restore`, {
    ...auth,
    body: { confirmId: id },
  });
  assert.equal(restored.status, 202, restored.text);
  const rj = await web.waitJob(s);
  assert.equal(rj.status, 'ok', rj.message);
  assert.deepEqual(
    diffTrees(
      before,
      describeTree(root, (r) => r.startsWith('var')),
    ),
    [],
  );

  // a database backup with an unreachable server fails, cleanly, and says why
  assert.equal(
    (await web.call('POST', '/api/snapshots', { ...auth, body: { parts: ['db'], confirm: true } })).status,
    202,
  );
  const failed = await web.waitJob(s);
  assert.equal(failed.status, 'failed');
  assert.equal(failed.exitCode, 1);
  noStack(failed.message);

  // retention: preview, then prune (keep 1 of each part: nothing to remove here but the rule is applied)
  const preview = await web.call('GET', '/api/retention?keepLast=1', auth);
  assert.equal(preview.status, 200, preview.text);
  assert.equal((preview.json.keep as unknown[]).length, 1);
  assert.equal(
    (await web.call('POST', '/api/prune', { ...auth, body: { confirm: true, keepLast: 1 } })).status,
    202,
  );
  assert.equal((await web.waitJob(s)).status, 'ok');

  // maintenance toggle
  const on = await web.call('POST', '/api/maintenance', { ...auth, body: { enabled: true } });
  assert.deepEqual(on.json, { enabled: true });
  assert.ok(existsSync(path.join(root, 'var', '.maintenance.flag')));
  assert.equal((await web.call('GET', '/api/maintenance', auth)).json.enabled, true);
  await web.call('POST', '/api/maintenance', { ...auth, body: { enabled: false } });
  assert.equal(existsSync(path.join(root, 'var', '.maintenance.flag')), false);

  const history = await web.call('GET', '/api/history', auth);
  const entries = history.json.entries as Array<{
    origin: string;
    command: string;
    result: string;
    id?: string;
  }>;
  assert.deepEqual(entries.map((e) => [e.origin, e.command, e.result]).reverse(), [
    ['web', 'setup:backup', 'ok'],
    ['web', 'backups:verify', 'ok'],
    ['web', 'snapshot:restore', 'ok'],
    ['web', 'setup:backup', 'failed'],
    ['web', 'backups:prune', 'ok'],
    ['web', 'maintenance:enable', 'ok'],
    ['web', 'maintenance:disable', 'ok'],
  ]);
  assert.equal(entries.find((e) => e.command === 'snapshot:restore')!.id, id);

  // no secret ever reached the browser: not the database password, not env.php
  for (const text of web.responses) {
    assert.doesNotMatch(text, new RegExp(DB_SECRET));
    assert.doesNotMatch(text, /'password' =>/);
  }
});

void test('web: while a CLI run holds the store, actions are 423 naming the holder, and status shows it busy', async (t) => {
  const root = store();
  const web = await startWeb(root);
  t.after(() => web.close());
  const s = await web.login();
  const auth = { cookie: s.cookie, csrf: s.csrf };
  // a live process holds the lock, as a CLI run does
  const holder = spawn('sleep', ['120'], { stdio: 'ignore' });
  t.after(() => holder.kill());
  mkdirSync(path.join(root, 'var', 'backups'), { recursive: true, mode: 0o700 });
  const lock = {
    pid: holder.pid,
    host: os.hostname(),
    started: new Date().toISOString(),
    command: 'snapshot:create',
  };
  writeFileSync(path.join(root, 'var', 'backups', '.lock'), JSON.stringify(lock));
  const status = await web.call('GET', '/api/status', auth);
  assert.equal(status.json.busy, true);
  assert.match(
    String((status.json.holder as { text: string }).text),
    new RegExp(`snapshot:create \\(pid ${holder.pid}`),
  );
  for (const [method, url, body] of [
    ['POST', '/api/snapshots', { parts: ['code'], confirm: true }],
    ['POST', '/api/prune', { confirm: true }],
    ['POST', '/api/maintenance', { enabled: true }],
  ] as const) {
    const r = await web.call(method, url, { ...auth, body });
    assert.equal(r.status, 423, url);
    assert.match(
      String(r.json.error),
      new RegExp(`locked by another magebackup run: snapshot:create \\(pid ${holder.pid}`),
    );
  }
  assert.equal(existsSync(path.join(root, 'var', '.maintenance.flag')), false);
  assert.equal(web.jobs.view(), null, 'nothing started');
});
