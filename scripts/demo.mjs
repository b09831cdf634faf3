#!/usr/bin/env node
// `npm run demo`: builds a Magento-shaped demo store (tree + database on a throwaway MariaDB server), then runs
// magebackup on it the way an operator would: back up everything, list the backups, break the store, roll back.
// Options: --size tiny|small|medium|large (default small), --dir DIR (default ./demo-store).
import { spawnSync } from 'node:child_process';
import { rmSync, existsSync, writeFileSync, readFileSync } from 'node:fs';
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

const { startMariaDB, ensureServerInstalled } = await import(path.join(top, 'dist/fixtures/mariadb.js'));
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
let server;
try {
  // No server binary: installed with apt-get when running as root, else stop with the command to run.
  ensureServerInstalled('demo');
  server = await startMariaDB();
} catch (err) {
  console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
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
  const n = (x) => x.toLocaleString('en-US');
  console.log(
    `${n(tree.files)} files outside pub/media, of which ${n(tree.codeFiles)} belong in a code backup ` +
      `(var/, pub/static/, .git/, node_modules/ … are left out); ${n(tree.mediaFiles)} media files; ` +
      `${n(db.tables)} tables, ${n(db.rows)} rows`,
  );
  console.log(
    'Counts below: a backup counts the files it archived; a rollback and a verification count archive entries ' +
      '(files, directories and links), so they show a larger number for the same archive.',
  );

  step('Back up everything (code, media, database)');
  magebackup('setup:backup', '--code', '--media', '--db', '--root', dir);

  step('List the backups');
  magebackup('info:backups:list', '--root', dir);
  magebackup('snapshot:list', '--root', dir);

  step('A bad deploy: pub/index.php overwritten, products deleted');
  const listed = spawnSync(process.execPath, [bin, 'info:backups:list', '--root', dir, '--json'], {
    encoding: 'utf8',
  });
  const { backups } = JSON.parse(listed.stdout);
  const newest = (kind) => backups.find((b) => b.kind === kind).name;
  writeFileSync(path.join(dir, 'pub/index.php'), '<?php echo "broken deploy";\n');
  const c2 = await server.connect(dbname);
  const count = async () => (await c2.query('SELECT COUNT(*) AS n FROM catalog_product_entity'))[0][0].n;
  const before = await count();
  await c2.query('SET FOREIGN_KEY_CHECKS=0');
  await c2.query('DELETE FROM catalog_product_entity');
  console.log(`catalog_product_entity: ${before} rows -> ${await count()} rows`);

  step('Roll back code and database (verified fully before anything changes)');
  magebackup('setup:rollback', '-c', newest('code'), '-d', newest('db'), '--root', dir, '--yes');
  console.log(`catalog_product_entity: ${await count()} rows again`);
  console.log(
    `pub/index.php: ${readFileSync(path.join(dir, 'pub/index.php'), 'utf8').includes('broken deploy') ? 'still broken' : 'restored'}`,
  );
  await c2.end();

  step('Verify every backup against its manifest');
  magebackup('backups:verify', '--all', '--root', dir);
} finally {
  await server.stop();
}

step('Done');
const shown = path.relative(process.cwd(), dir).startsWith('..')
  ? dir
  : path.relative(process.cwd(), dir) || '.';
console.log(
  `The demo store stays in ${shown}, but the MariaDB server it used has been ` +
    'stopped (with its data): magebackup commands that need the database fail there now. ' +
    'Run `npm run demo` again to get a working store and server; code and media commands work as they are, e.g.:',
);
console.log(`  node bin/magebackup.js info:backups:list --root ${shown}`);
console.log(
  'The web interface on the demo store (list, verify, download, code and media restores, history, retention):',
);
console.log(`  node bin/magebackup.js serve --root ${shown}`);
console.log(
  '  then open the address it prints (http://127.0.0.1:8765/#token=…); it listens on 127.0.0.1 only. ' +
    'Over SSH: ssh -L 8765:127.0.0.1:8765 <this host>, then open the same address on your machine.',
);
