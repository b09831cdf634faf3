#!/usr/bin/env node
// `npm run demo`: builds a Magento-shaped demo store (tree + database on a throwaway MariaDB server), then runs
// magebackup on it the way an operator would: back up everything, list the backups.
// Options: --size tiny|small|medium|large (default small), --dir DIR (default ./demo-store).
import { spawnSync } from 'node:child_process';
import { rmSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const top = path.resolve(here, '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : def;
};
const size = opt('--size', 'small');
const dir = path.resolve(opt('--dir', path.join(top, 'demo-store')));

const { startMariaDB } = await import(path.join(top, 'dist/fixtures/mariadb.js'));
const { generateStore } = await import(path.join(top, 'dist/fixtures/store.js'));
const { generateStoreDatabase } = await import(path.join(top, 'dist/fixtures/store-db.js'));

const bin = path.join(top, 'bin/magebackup.js');
const step = (title) => console.log(`\n\x1b[1m== ${title}\x1b[0m`);
function magebackup(...cliArgs) {
  console.log(`$ magebackup ${cliArgs.join(' ')}`);
  const r = spawnSync(process.execPath, [bin, ...cliArgs], { stdio: 'inherit' });
  if (r.status !== 0 && r.status !== 3) {
    console.error(`magebackup exited with ${r.status}`);
    process.exitCode = 1;
  }
  return r.status;
}

step('Starting a throwaway MariaDB server');
const server = await startMariaDB();
try {
  console.log(`MariaDB on 127.0.0.1:${server.port}`);
  step(`Generating a ${size} demo store in ${dir}`);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  const dbname = await server.createDatabase('magento_demo');
  const conn = await server.connect(dbname);
  const db = await generateStoreDatabase(conn, { size });
  await conn.end();
  const tree = await generateStore({
    dir,
    size,
    db: { host: server.host, port: server.port, user: server.user, password: server.password, dbname },
  });
  console.log(`${tree.files} code files, ${tree.mediaFiles} media files; ${db.tables} tables, ${db.rows} rows`);

  step('Back up everything (code, media, database)');
  magebackup('setup:backup', '--code', '--media', '--db', '--root', dir);

  step('List the backups');
  magebackup('info:backups:list', '--root', dir);
} finally {
  await server.stop();
}
