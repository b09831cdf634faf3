/**
 * The benchmark's store and database, generated once per size and generator version and cached under
 * .bench/cache/<size>-<hash>/ (gitignored):
 *   store/    the generated Magento tree (golden copy, never touched by a benchmark)
 *   datadir/  a MariaDB datadir holding the generated database (golden copy, cleanly shut down)
 *   meta.json db name, root password (file is 0600), generator stats
 * Each run works on copies (.bench/run/), so a failed rollback can never spoil the cache.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type mysql from 'mysql2/promise';
import { startMariaDB } from '../fixtures/mariadb.js';
import { generateStore, type StoreSize, type StoreStats } from '../fixtures/store.js';

/** Bump when the way the cache is built changes (the generators' own sources are hashed in too). */
const CACHE_FORMAT = 1;

export interface DbStats {
  tables?: number;
  rows?: number;
  [k: string]: unknown;
}

export interface FixtureMeta {
  size: StoreSize;
  key: string;
  dbName: string;
  password: string;
  tree: StoreStats;
  db: DbStats;
  generatedAt: string;
  generateSeconds: { tree: number; db: number };
}

export interface Fixture {
  dir: string;
  storeDir: string;
  dataDir: string;
  meta: FixtureMeta;
  reused: boolean;
}

type GenerateStoreDatabase = (conn: mysql.Connection, opts: { size: StoreSize }) => Promise<DbStats>;

export function fixtureKey(top: string, size: StoreSize): string {
  const h = createHash('sha256');
  h.update(`format ${CACHE_FORMAT}\nsize ${size}\n`);
  for (const f of ['fixtures/store.ts', 'fixtures/store-db.ts']) {
    const p = join(top, f);
    h.update(`${f}\n`);
    if (existsSync(p)) h.update(readFileSync(p));
  }
  return h.digest('hex').slice(0, 12);
}

async function loadDbGenerator(top: string, log: (line: string) => void): Promise<GenerateStoreDatabase> {
  const p = join(top, 'dist/fixtures/store-db.js');
  if (!existsSync(p)) {
    // Until the store database generator lands, the database is the (small) test zoo: enough to exercise
    // every operation. The cache key hashes fixtures/store-db.ts, so the real database replaces it later.
    log(`  ${p} is missing: using the database test zoo instead of a Magento-shaped database`);
    return async (conn) => {
      const { createZoo } = await import('../fixtures/db-zoo.js');
      await createZoo(conn);
      return { generator: 'fixtures/db-zoo.ts (store-db.ts missing)' };
    };
  }
  // Imported by path: the generator is written by another engineer and may not exist at compile time.
  const mod = (await import(pathToFileURL(p).href)) as { generateStoreDatabase?: GenerateStoreDatabase };
  if (typeof mod.generateStoreDatabase !== 'function') {
    throw new Error(`${p} does not export generateStoreDatabase`);
  }
  return mod.generateStoreDatabase;
}

export async function ensureFixture(
  top: string,
  size: StoreSize,
  log: (line: string) => void,
  /** reuse the newest complete cache of this size even if the generators changed since */
  reuseAny = false,
): Promise<Fixture> {
  const key = fixtureKey(top, size);
  const cacheRoot = join(top, '.bench', 'cache');
  if (reuseAny && existsSync(cacheRoot)) {
    const ready = readdirSync(cacheRoot)
      .filter((e) => e.startsWith(`${size}-`) && existsSync(join(cacheRoot, e, 'READY')))
      .map((e) => ({ e, t: statSync(join(cacheRoot, e, 'READY')).mtimeMs }))
      .sort((a, b) => b.t - a.t)[0];
    if (ready && ready.e !== `${size}-${key}`) {
      const d = join(cacheRoot, ready.e);
      log(
        `fixture: --reuse-cache: using ${ready.e} although the generators changed since (current key ${key})`,
      );
      const meta = JSON.parse(readFileSync(join(d, 'meta.json'), 'utf8')) as FixtureMeta;
      return { dir: d, storeDir: join(d, 'store'), dataDir: join(d, 'datadir'), meta, reused: true };
    }
  }
  const dir = join(cacheRoot, `${size}-${key}`);
  const storeDir = join(dir, 'store');
  const dataDir = join(dir, 'datadir');
  const metaFile = join(dir, 'meta.json');
  if (existsSync(join(dir, 'READY')) && existsSync(metaFile)) {
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as FixtureMeta;
    return { dir, storeDir, dataDir, meta, reused: true };
  }

  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });

  const generateStoreDatabase = await loadDbGenerator(top, log);
  log(`generating the ${size} fixture (cached in .bench/cache/${size}-${key}; later runs reuse it)`);
  const server = await startMariaDB({ dataDir });
  let meta: FixtureMeta;
  try {
    const dbName = 'magento_bench';
    const admin = await server.connect();
    await admin.query(`CREATE DATABASE \`${dbName}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
    await admin.end();
    const conn = await server.connect(dbName);
    let t0 = Date.now();
    let db: DbStats;
    try {
      db = await generateStoreDatabase(conn, { size });
    } finally {
      await conn.end();
    }
    const dbSeconds = (Date.now() - t0) / 1000;
    log(`  database: ${JSON.stringify(db)} in ${dbSeconds.toFixed(0)} s`);
    t0 = Date.now();
    const tree = await generateStore({
      dir: storeDir,
      size,
      db: {
        host: server.host,
        port: server.port,
        user: server.user,
        password: server.password,
        dbname: dbName,
      },
    });
    const treeSeconds = (Date.now() - t0) / 1000;
    log(
      `  tree: ${tree.files} files ${(tree.bytes / 1e6).toFixed(0)} MB, media ${tree.mediaFiles} files ` +
        `${(tree.mediaBytes / 1e6).toFixed(0)} MB in ${treeSeconds.toFixed(0)} s`,
    );
    meta = {
      size,
      key,
      dbName,
      password: server.password,
      tree,
      db,
      generatedAt: new Date().toISOString(),
      generateSeconds: { tree: treeSeconds, db: dbSeconds },
    };
  } finally {
    // caller-owned datadir: a clean (slow) shutdown, so the copy starts without crash recovery
    await server.stop();
  }
  writeFileSync(metaFile, JSON.stringify(meta, null, 2) + '\n', { mode: 0o600 });
  writeFileSync(join(dir, 'READY'), `${new Date().toISOString()}\n`);
  // Stale caches of the same size (older generator versions) only waste disk, now that this one is complete.
  if (existsSync(cacheRoot)) {
    for (const e of readdirSync(cacheRoot)) {
      if (e.startsWith(`${size}-`) && e !== `${size}-${key}`) {
        log(`removing stale fixture cache .bench/cache/${e}`);
        rmSync(join(cacheRoot, e), { recursive: true, force: true });
      }
    }
  }
  return { dir, storeDir, dataDir, meta, reused: false };
}

/** Fresh working copies of the golden tree and datadir. */
export function copyFixture(fx: Fixture, workDir: string): { storeDir: string; dataDir: string } {
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const storeDir = join(workDir, 'store');
  const dataDir = join(workDir, 'datadir');
  execFileSync('cp', ['-a', '--reflink=auto', fx.storeDir, storeDir]);
  execFileSync('cp', ['-a', '--reflink=auto', fx.dataDir, dataDir]);
  return { storeDir, dataDir };
}

/** A store root with `count` backup files (all kinds, Magento's and ours) for info:backups:list. */
export function makeListRoot(dir: string, count: number): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'app', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'app', 'etc', 'env.php'), '<?php\nreturn [];\n');
  const backups = join(dir, 'var', 'backups');
  mkdirSync(backups, { recursive: true, mode: 0o700 });
  const suffixes = [
    '_filesystem.tgz',
    '_filesystem_media.tgz',
    '_db.sql',
    '_db.sql.gz',
    '_filesystem_code.tgz',
  ];
  const body = Buffer.alloc(1024, 0x61);
  for (let i = 0; i < count; i++) {
    const ts = 1_700_000_000 + Math.floor(i / 3) * 3600;
    const name = `${ts}${suffixes[i % suffixes.length] as string}`;
    writeFileSync(join(backups, name), body, { mode: 0o600 });
  }
}
