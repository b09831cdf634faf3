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
const CACHE_FORMAT = 2;

/** The narrow, numeric-heavy database next to the Magento one (the shape of the public `employees` sample). */
export const NARROW_DB = 'employees_bench';

/** employees per size: the other tables follow (about 13 rows and 570 bytes of SQL per employee) */
const NARROW_EMPLOYEES: Record<StoreSize, number> = {
  tiny: 2000,
  small: 30_000,
  medium: 300_000,
  large: 300_000,
};

export interface DbStats {
  tables?: number;
  rows?: number;
  [k: string]: unknown;
}

export interface FixtureMeta {
  size: StoreSize;
  key: string;
  dbName: string;
  /** the narrow database (integers and dates), absent in caches made before it existed */
  narrowDbName?: string;
  narrow?: DbStats;
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
  h.update(`narrow ${NARROW_EMPLOYEES[size]} ${NARROW_SCHEMA.join('\n')}\n`);
  for (const f of ['fixtures/store.ts', 'fixtures/store-db.ts']) {
    const p = join(top, f);
    h.update(`${f}\n`);
    if (existsSync(p)) h.update(readFileSync(p));
  }
  return h.digest('hex').slice(0, 12);
}

/**
 * The employees sample's tables (integers, dates, short strings; 3.9 M rows and ~170 MB of SQL at 300,000
 * employees), filled server-side from seq_1_to_N in a few statements.
 */
const NARROW_SCHEMA = [
  `CREATE TABLE departments (dept_no CHAR(4) NOT NULL, dept_name VARCHAR(40) NOT NULL,
    PRIMARY KEY (dept_no), UNIQUE KEY dept_name (dept_name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE employees (emp_no INT NOT NULL, birth_date DATE NOT NULL, first_name VARCHAR(14) NOT NULL,
    last_name VARCHAR(16) NOT NULL, gender ENUM('M','F') NOT NULL, hire_date DATE NOT NULL,
    PRIMARY KEY (emp_no)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE dept_emp (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, from_date DATE NOT NULL,
    to_date DATE NOT NULL, PRIMARY KEY (emp_no, dept_no), KEY dept_no (dept_no),
    CONSTRAINT dept_emp_ibfk_1 FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE,
    CONSTRAINT dept_emp_ibfk_2 FOREIGN KEY (dept_no) REFERENCES departments (dept_no) ON DELETE CASCADE)
    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE dept_manager (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, from_date DATE NOT NULL,
    to_date DATE NOT NULL, PRIMARY KEY (emp_no, dept_no), KEY dept_no (dept_no),
    CONSTRAINT dept_manager_ibfk_1 FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE,
    CONSTRAINT dept_manager_ibfk_2 FOREIGN KEY (dept_no) REFERENCES departments (dept_no) ON DELETE CASCADE)
    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE titles (emp_no INT NOT NULL, title VARCHAR(50) NOT NULL, from_date DATE NOT NULL,
    to_date DATE DEFAULT NULL, PRIMARY KEY (emp_no, title, from_date),
    CONSTRAINT titles_ibfk_1 FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE)
    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE salaries (emp_no INT NOT NULL, salary INT NOT NULL, from_date DATE NOT NULL,
    to_date DATE NOT NULL, PRIMARY KEY (emp_no, from_date),
    CONSTRAINT salaries_ibfk_1 FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE)
    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
];

/** Fills the current database of `conn` with the narrow tables for `employees` employees. */
export async function generateNarrowDatabase(conn: mysql.Connection, employees: number): Promise<DbStats> {
  const n = employees;
  const emp = 'e.seq + 10000';
  const sqls = [
    'SET SESSION foreign_key_checks = 0',
    'SET SESSION unique_checks = 0',
    ...NARROW_SCHEMA,
    `INSERT INTO departments SELECT CONCAT('d', LPAD(seq, 3, '0')),
      ELT(seq, 'Marketing', 'Finance', 'Human Resources', 'Production', 'Development', 'Quality Management',
        'Sales', 'Research', 'Customer Service') FROM seq_1_to_9`,
    `INSERT INTO employees SELECT ${emp}, DATE'1952-02-01' + INTERVAL (e.seq * 7919) % 4750 DAY,
      ELT(1 + e.seq % 7, 'Georgi', 'Bezalel', 'Parto', 'Chirstian', 'Kyoichi', 'Anneke', 'Tzvetan'),
      ELT(1 + (e.seq * 13) % 9, 'Facello', 'Simmel', 'Bamford', 'Koblick', 'Maliniak', 'Preusig', 'Zielinski',
        'Kalloufi', 'Peac'),
      IF(e.seq % 5 < 3, 'M', 'F'), DATE'1985-01-01' + INTERVAL (e.seq * 104729) % 5110 DAY
      FROM seq_1_to_${n} e`,
    `INSERT INTO dept_emp SELECT ${emp}, CONCAT('d', LPAD(1 + e.seq % 9, 3, '0')),
      DATE'1985-01-01' + INTERVAL (e.seq * 104729) % 5110 DAY, IF(e.seq % 4 = 0, DATE'1999-12-01', DATE'9999-01-01')
      FROM seq_1_to_${n} e`,
    `INSERT INTO dept_emp SELECT ${emp}, CONCAT('d', LPAD(1 + (e.seq + 4) % 9, 3, '0')),
      DATE'2000-01-01' + INTERVAL e.seq % 700 DAY, DATE'9999-01-01' FROM seq_1_to_${n} e WHERE e.seq % 10 = 0`,
    `INSERT INTO dept_manager SELECT 10000 + s.seq * 1000, CONCAT('d', LPAD(1 + s.seq % 9, 3, '0')),
      DATE'1985-01-01' + INTERVAL s.seq * 300 DAY, DATE'9999-01-01' FROM seq_1_to_24 s`,
    `INSERT INTO titles SELECT ${emp}, ELT(1 + e.seq % 7, 'Senior Engineer', 'Staff', 'Engineer',
      'Senior Staff', 'Assistant Engineer', 'Technique Leader', 'Manager'),
      DATE'1985-01-01' + INTERVAL (e.seq * 104729) % 5110 DAY, IF(e.seq % 3 = 0, DATE'1999-06-01', NULL)
      FROM seq_1_to_${n} e`,
    `INSERT INTO titles SELECT ${emp}, 'Senior Manager', DATE'1999-06-01', NULL
      FROM seq_1_to_${n} e WHERE e.seq % 3 = 0`,
    // 5 to 14 salary periods per employee, one year each, ~9.5 on average
    `INSERT INTO salaries SELECT ${emp}, 38000 + (e.seq * 7 + y.seq * 1009) % 90000,
      DATE'1986-06-26' + INTERVAL y.seq YEAR + INTERVAL e.seq % 300 DAY,
      DATE'1987-06-26' + INTERVAL y.seq YEAR + INTERVAL e.seq % 300 DAY
      FROM seq_1_to_${n} e JOIN seq_0_to_13 y ON y.seq < 5 + e.seq % 10`,
  ];
  let rows = 0;
  for (const sql of sqls) {
    const [res] = await conn.query(sql);
    if (/^\s*INSERT/.test(sql)) rows += (res as { affectedRows: number }).affectedRows;
  }
  return { tables: 6, rows };
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
    const admin2 = await server.connect();
    await admin2.query(`CREATE DATABASE \`${NARROW_DB}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
    await admin2.end();
    const narrowConn = await server.connect(NARROW_DB);
    let narrow: DbStats;
    try {
      narrow = await generateNarrowDatabase(narrowConn, NARROW_EMPLOYEES[size]);
    } finally {
      await narrowConn.end();
    }
    const dbSeconds = (Date.now() - t0) / 1000;
    log(`  database: ${JSON.stringify(db)}, narrow ${JSON.stringify(narrow)} in ${dbSeconds.toFixed(0)} s`);
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
      narrowDbName: NARROW_DB,
      narrow,
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
