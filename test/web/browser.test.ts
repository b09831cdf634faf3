// The web interface in a real browser: Debian's chromium driven by playwright-core (its own browser download
// cannot work here). Opens the list, creates a snapshot and follows its progress to the end, breaks the store,
// restores it with the typed confirmation and finds tree and database equal to the snapshot, reads the history;
// and is refused without the token, without the CSRF token, with a foreign Host and while a CLI run holds the
// store. Screenshots of each page go to test-screenshots/ (gitignored).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_HINT, findChromium } from '../../fixtures/chromium.js';
import { describeDatabase, diffDatabases } from '../../fixtures/db-compare.js';
import { describeTree, diffTrees } from '../helpers/tree.js';
import { startWeb } from './helpers.js';
import { CODE_SKIP as STORE_CODE_SKIP, tinyStoreOnServer } from '../helpers/store.js';

const SHOTS = fileURLToPath(new URL('../../../test-screenshots/', import.meta.url));

function chromiumPath(): string {
  const found = findChromium();
  // scripts/run-tests.mjs installs it when it can (root with apt-get); otherwise this names the command.
  if (found === undefined)
    throw new Error(`The browser tests need Debian's chromium, which is not installed. ${CHROMIUM_HINT}`);
  return found;
}

/** The code as a code backup holds it, without our own staging and trash directories beside it. */
const CODE_SKIP = (rel: string) => STORE_CODE_SKIP(rel) || rel.startsWith('.magebackup');

/** Waits for the operation on the Progress page to end; returns its status and message. */
async function jobEnd(page: Page, timeout: number): Promise<string> {
  await page.locator('#job-status .badge:not(.s-running)').waitFor({ timeout });
  const status = await page.locator('#job-status').innerText();
  const message = await page
    .locator('#job-message')
    .innerText()
    .catch(() => '');
  return `${status.trim()}: ${message}`;
}

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

void test('browser: list, create with progress, break, restore with the typed id, history; refusals', async (t) => {
  const executablePath = chromiumPath();
  const { conn, dbname, root } = await tinyStoreOnServer('web_e2e');
  t.after(() => conn.end());
  const web = await startWeb(root);
  // Registered before the launch: a browser that fails to start must not leave the server holding the test open.
  const opened: { browser?: Browser } = {};
  t.after(async () => {
    await opened.browser?.close();
    await web.close();
  });
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  opened.browser = browser;
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));

  // without the token: the login page, and the API says 401
  await page.goto(`${web.base}/`);
  await page.getByRole('heading', { name: 'Log in' }).waitFor();
  const noToken = await page.evaluate(async () => (await fetch('/api/snapshots')).status);
  assert.equal(noToken, 401);
  await page.getByLabel('Token or password').fill('wrong');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('Wrong token').waitFor();
  await shot(page, '01-login');

  // with the token in the address: logged in, the token leaves the address bar
  await page.goto(`${web.base}/#token=${web.token}`);
  await page.getByRole('heading', { name: 'Backups' }).waitFor();
  assert.doesNotMatch(page.url(), /token/);
  await page.getByText('No backups yet.').waitFor();

  // create a snapshot, confirm, follow its progress to the end
  await page.getByRole('link', { name: 'Create', exact: true }).click();
  await page.getByRole('heading', { name: 'Create a backup' }).waitFor();
  await page.getByLabel('Compress the database dump (gzip)').check();
  await shot(page, '02-create');
  await page.getByRole('button', { name: 'Review…' }).click();
  await page.getByText(/Back up code, media, db, dump compressed/).waitFor();
  await page.getByRole('button', { name: 'Create the backup now' }).click();
  await page.getByRole('heading', { name: 'Progress' }).waitFor();
  // the page reloads mid-run or after: progress survives (it comes from the server)
  await page.reload();
  await page.getByRole('heading', { name: 'Progress' }).waitFor();
  assert.match(await jobEnd(page, 300_000), /^ok: /);
  await page.getByText(/db backup done: \d+_db\.sql/).waitFor();
  await page.getByText(/code backup done: \d+_filesystem\.tgz/).waitFor();
  await shot(page, '03-progress');

  // the list shows it, complete, with its restore window
  await page.getByRole('link', { name: 'Backups', exact: true }).click();
  const row = page.locator('tbody tr').first();
  await row.getByText('complete').waitFor();
  const id = (await row.locator('td').first().innerText()).trim();
  assert.match(id, /^\d+$/);
  await shot(page, '04-backups');

  // the snapshot page: verify
  await page.getByRole('link', { name: id }).click();
  await page.getByRole('heading', { name: `Snapshot ${id}` }).waitFor();
  await shot(page, '05-snapshot');
  await page.getByRole('button', { name: 'Verify', exact: true }).click();
  await page.getByRole('heading', { name: 'Progress' }).waitFor();
  assert.match(await jobEnd(page, 300_000), /^ok: /);
  await page.getByText(/^Verification: \d+ OK$/).waitFor();

  // break the store: code, media and database
  const codeBefore = describeTree(root, CODE_SKIP);
  const mediaBefore = describeTree(path.join(root, 'pub/media'));
  const dbBefore = await describeDatabase(conn, dbname);
  writeFileSync(path.join(root, 'index.php'), '<?php // broken\n');
  rmSync(path.join(root, 'app/etc/config.php'));
  writeFileSync(path.join(root, 'pub/media/planted.php'), '<?php evil();');
  const [tables] = (await conn.query('SHOW FULL TABLES WHERE Table_type = "BASE TABLE"')) as unknown as [
    Array<Record<string, string>>,
  ];
  await conn.query('SET FOREIGN_KEY_CHECKS=0');
  await conn.query(`DELETE FROM \`${Object.values(tables[0]!)[0]!}\``);
  assert.notDeepEqual(diffTrees(codeBefore, describeTree(root, CODE_SKIP)), []);

  // restore: a warning naming what is lost, a button that stays disabled until the id is typed
  await page.goto(`${web.base}/#/restore/${id}`);
  await page.getByRole('heading', { name: `Restore snapshot ${id}` }).waitFor();
  await page.getByText(/orders, customers and admin changes made since/).waitFor();
  const go = page.getByRole('button', { name: `Restore snapshot ${id}` });
  assert.equal(await go.isDisabled(), true);
  await page.getByLabel(`Type the snapshot id ${id} to confirm`).fill(id.slice(0, -1));
  assert.equal(await go.isDisabled(), true, 'a wrong id keeps it disabled');
  await page.getByLabel(`Type the snapshot id ${id} to confirm`).fill(id);
  await shot(page, '06-restore');
  await go.click();
  await page.getByRole('heading', { name: 'Progress' }).waitFor();
  assert.match(await jobEnd(page, 300_000), /^ok: /);
  assert.deepEqual(diffTrees(codeBefore, describeTree(root, CODE_SKIP)), []);
  assert.deepEqual(diffTrees(mediaBefore, describeTree(path.join(root, 'pub/media'))), []);
  assert.deepEqual(diffDatabases(dbBefore, await describeDatabase(conn, dbname)), []);

  // the history has every action, from the web
  await page.getByRole('link', { name: 'History' }).click();
  await page.getByRole('heading', { name: 'History' }).waitFor();
  const rows = await page.locator('tbody tr').allInnerTexts();
  assert.equal(rows.length, 3, rows.join('\n'));
  assert.match(rows[0]!, /web\s+snapshot:restore \d+\s+ok/);
  assert.match(rows[1]!, /web\s+backups:verify \d+\s+ok/);
  assert.match(rows[2]!, /web\s+snapshot:create \d+\s+ok/);
  await shot(page, '07-history');

  // retention and maintenance pages
  await page.getByRole('link', { name: 'Retention' }).click();
  await page.getByRole('heading', { name: /Policy: keep within 14d/ }).waitFor();
  await shot(page, '08-retention');
  await page.getByRole('link', { name: 'Maintenance' }).click();
  await page.getByRole('button', { name: 'Turn maintenance mode on' }).click();
  await page.getByText('Maintenance mode is ON').waitFor();
  assert.ok(existsSync(path.join(root, 'var/.maintenance.flag')));
  await shot(page, '09-maintenance');
  await page.getByRole('button', { name: 'Turn maintenance mode off' }).click();
  await page.getByText('Maintenance mode is off').waitFor();

  // without the CSRF token the session cookie alone changes nothing
  const noCsrf = await page.evaluate(async () => {
    const r = await fetch('/api/maintenance', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ enabled: true }),
    });
    return r.status;
  });
  assert.equal(noCsrf, 403);
  assert.equal(existsSync(path.join(root, 'var/.maintenance.flag')), false);

  // a foreign Host (DNS rebinding: evil.example resolving to 127.0.0.1) is refused
  const rebound = await web.call('GET', '/', { host: `evil.example:${web.port}` });
  assert.equal(rebound.status, 403);

  // a CLI run holding the store: shown as busy with its holder, and actions are refused
  const holder = spawn('sleep', ['120'], { stdio: 'ignore' });
  t.after(() => holder.kill());
  writeFileSync(
    path.join(root, 'var/backups/.lock'),
    JSON.stringify({
      pid: holder.pid,
      host: os.hostname(),
      started: new Date().toISOString(),
      command: 'setup:backup',
    }),
  );
  await page.goto(`${web.base}/#/create`);
  await page.getByText(/Busy: the store is locked by a command-line run: setup:backup \(pid \d+/).waitFor();
  await page.getByRole('button', { name: 'Review…' }).click();
  await page.getByRole('button', { name: 'Create the backup now' }).click();
  await page
    .getByRole('alert')
    .getByText(/locked by another magebackup run: setup:backup/)
    .waitFor();
  await shot(page, '10-locked');
  holder.kill();
  rmSync(path.join(root, 'var/backups/.lock'));

  // on a phone: the list is usable (no page-wide horizontal scroll; the table scrolls in its own box)
  await page.setViewportSize({ width: 375, height: 740 });
  await page.goto(`${web.base}/#/`);
  await page.getByRole('heading', { name: 'Backups' }).waitFor();
  const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
  assert.ok(overflow <= 0, `page wider than the phone by ${overflow}px`);
  await shot(page, '11-phone');

  // keyboard: each page puts the focus on its heading, and Tab goes on to the page's first control
  assert.equal(await page.evaluate<string>('document.activeElement?.textContent'), 'Backups');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate<string>('document.activeElement?.textContent'), 'Create a backup');

  assert.deepEqual(pageErrors, []);
});
