/**
 * `npm run bench [-- --size small|medium|large] [--reps N] [--only op,op] [--profile] [--strace[=op,op]] [--no-write] [--keep]`
 *
 * Generates (once, then cached under .bench/) a Magento-shaped store and database, then measures each magebackup
 * operation, run through the real CLI as a child process, side by side with its stock reference (GNU tar + gzip,
 * mariadb-dump, mariadb) in the same run: one untimed warm-up each, then `reps` interleaved repetitions
 * (ours, reference, ours, reference, ...). Prints medians, ratios ours/reference and peak RSS, and refreshes the
 * section of this size in BENCHMARKS.md. Installs nothing: without GNU time, RSS is polled from /proc.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StoreSize } from '../fixtures/store.js';
import { startOnDataDir, type BenchServer } from './db-server.js';
import { NARROW_DB, copyFixture, ensureFixture, fixtureKey, makeListRoot, type Fixture } from './fixture.js';
import {
  findGnuTime,
  median,
  runMeasured,
  runningCount,
  signalRunning,
  type Measured,
  type RunSpec,
  type TimedEvent,
} from './measure.js';
import { formatProfile, summarizeProfileDir, type ThreadSummary } from './profile.js';
import { deltaOps, replacedGone, type DeltaSide } from './delta.js';
import { dbDeltaOps } from './db-delta.js';

const here = dirname(fileURLToPath(import.meta.url));
const TOP = resolve(here, '..', '..');
/**
 * The CLI under test: a snapshot of bin/ and dist/src/ taken at the start of the run, so that other people
 * rebuilding dist/ while the benchmark runs cannot change (or break) what is measured half-way.
 */
const SNAPSHOT = join(TOP, '.bench', 'cli');
const CLI = join(SNAPSHOT, 'bin', 'magebackup.js');

function snapshotCli(): void {
  rmSync(SNAPSHOT, { recursive: true, force: true });
  mkdirSync(join(SNAPSHOT, 'dist'), { recursive: true });
  execFileSync('cp', ['-a', join(TOP, 'bin'), join(SNAPSHOT, 'bin')]);
  execFileSync('cp', ['-a', join(TOP, 'dist', 'src'), join(SNAPSHOT, 'dist', 'src')]);
  execFileSync('cp', ['-a', join(TOP, 'package.json'), join(SNAPSHOT, 'package.json')]);
  symlinkSync(join(TOP, 'node_modules'), join(SNAPSHOT, 'node_modules'));
}
const RSS_LIMIT_MB = 200;

// --- options ----------------------------------------------------------------------------------------------------

interface Options {
  size: StoreSize;
  reps: number;
  only: string[] | undefined;
  profile: boolean;
  /** operations to run once more under strace (true: all) */
  strace: boolean | string[];
  write: boolean;
  keep: boolean;
  /** only generate (or find) the cached fixture */
  prepare: boolean;
  reuseCache: boolean;
  listCount: number;
}

function usage(msg?: string): never {
  if (msg) console.error(`bench: ${msg}`);
  console.error(
    'usage: npm run bench -- [--size small|medium|large] [--reps N] [--only op,op,...] [--profile] [--strace[=op,op]] [--no-write] [--keep] [--prepare] [--reuse-cache]\n' +
      `operations: ${OPS.map((o) => o.id).join(', ')}`,
  );
  process.exit(2);
}

/** `--only` token: an operation id, an id without its shape (`db-backup`), or a shape (`narrow`) */
function selects(token: string, op: Op): boolean {
  const [base, shape] = op.id.split(':');
  return op.id === token || base === token || shape === token;
}

function parseOptions(argv: string[]): Options {
  const o: Options = {
    size: 'small',
    reps: 3,
    only: undefined,
    profile: false,
    strace: false,
    write: true,
    keep: false,
    prepare: false,
    reuseCache: false,
    listCount: 1000,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.includes('=')
      ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
      : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) usage(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--size': {
        const v = value();
        if (!['tiny', 'small', 'medium', 'large'].includes(v))
          usage(`--size must be small, medium or large, not ${v}`);
        o.size = v as StoreSize;
        break;
      }
      case '--reps': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1) usage('--reps must be a positive integer');
        o.reps = n;
        break;
      }
      case '--only':
        o.only = value().split(',').filter(Boolean);
        for (const id of o.only) if (!OPS.some((op) => selects(id, op))) usage(`unknown operation ${id}`);
        break;
      case '--profile':
        o.profile = true;
        break;
      case '--strace':
        o.strace = inline === undefined ? true : inline.split(',').filter(Boolean);
        break;
      case '--no-write':
        o.write = false;
        break;
      case '--keep':
        o.keep = true;
        break;
      case '--reuse-cache':
        o.reuseCache = true;
        break;
      case '--prepare':
        o.prepare = true;
        break;
      case '--help':
      case '-h':
        usage();
        break;
      default:
        usage(`unknown option ${a}`);
    }
  }
  return o;
}

// --- the operations ---------------------------------------------------------------------------------------------

interface Ctx {
  opts: Options;
  work: string;
  store: string;
  out: string;
  listRoot: string;
  server: BenchServer;
  /** the two table shapes, each its own database: its name and the dumps produced along the way */
  dbs: Record<Shape, ShapeDb>;
  /** files produced along the way, used by later operations */
  codeBackup?: string;
  refCodeArchive?: string;
  log: (line: string) => void;
}

/** wide: the Magento-shaped, text-heavy tables; narrow: integers and dates (the employees sample's shape) */
type Shape = 'wide' | 'narrow';
const SHAPES: Shape[] = ['wide', 'narrow'];

interface ShapeDb {
  name: string;
  /** our last .sql of it (in the store's var/backups) */
  ours?: string;
  /** mariadb-dump's .sql of it */
  ref?: string;
}

interface Side {
  spec: (c: Ctx) => RunSpec;
  /** untimed, before each run */
  before?: (c: Ctx) => Promise<void> | void;
  /** untimed, after each run (also after a failure); `last` is true after the final repetition */
  after?: (c: Ctx, r: Measured, last: boolean) => Promise<void> | void;
  /** bytes of the produced output, for the table */
  outputBytes?: (c: Ctx, r: Measured) => number | undefined;
}

interface Op {
  id: string;
  title: string;
  refTitle: string;
  /** target for ours/reference; or, without a reference, a wall-time limit in ms */
  target: { ratio: number } | { wallMs: number };
  ours: Side;
  ref?: Side;
  minReps?: number;
  /** untimed preparation; throws when the operation cannot run */
  prepare?: (c: Ctx) => Promise<void> | void;
  /** skip the untimed warm-up (long operations whose input is already in the page cache) */
  noWarmup?: boolean;
}

function oursEnv(c: Ctx): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', MAGEBACKUP_DB_PASSWORD: c.server.password };
  delete env['MYSQL_PWD'];
  return env;
}

function dbFlags(c: Ctx, shape: Shape): string[] {
  // no --db-password: the password travels in MAGEBACKUP_DB_PASSWORD
  return [
    '--db-host',
    '127.0.0.1',
    '--db-port',
    String(c.server.port),
    '--db-name',
    c.dbs[shape].name,
    '--db-user',
    'root',
  ];
}

function ours(c: Ctx, args: string[]): RunSpec {
  return {
    cmd: process.execPath,
    args: [CLI, ...args, '--root', c.store, '--json'],
    env: oursEnv(c),
    events: true,
    timeoutMs: 3 * 3600_000,
  };
}

interface CliResult {
  parts?: { part: string; file: string; path: string; size: number }[];
}

function resultOf(r: Measured): CliResult | undefined {
  const line = r.stdout.trim().split('\n').pop();
  if (!line) return undefined;
  try {
    return JSON.parse(line) as CliResult;
  } catch {
    return undefined;
  }
}

/** the backup file of a successful `setup:backup --json` run */
function producedFile(r: Measured): string | undefined {
  return resultOf(r)?.parts?.[0]?.path;
}

function fileSize(p: string | undefined): number | undefined {
  if (!p) return undefined;
  try {
    return statSync(p).size;
  } catch {
    return undefined;
  }
}

/** Keeps the last backup of a kind for the rollback operations, removes the others. */
function backupSide(
  kind: 'code' | 'media' | 'db' | 'dbgz',
  args: (c: Ctx) => string[],
  shape: Shape = 'wide',
): Side {
  return {
    spec: (c) => ours(c, ['setup:backup', ...args(c), '--no-maintenance']),
    outputBytes: (_c, r) => fileSize(producedFile(r)),
    after: (c, r, last) => {
      const f = producedFile(r);
      if (!f) return;
      if (last && kind === 'code') c.codeBackup = f;
      else if (last && kind === 'db') {
        if (c.dbs[shape].ours) rmSync(c.dbs[shape].ours, { force: true });
        c.dbs[shape].ours = f;
      } else rmSync(f, { force: true });
    },
  };
}

const TAR_CODE_EXCLUDES = [
  './var',
  './pub/static',
  './pub/media',
  './update',
  'node_modules',
  '.git',
  '.idea',
  '.svn',
  '.grunt',
].map((p) => `--exclude=${p}`);

function refFile(c: Ctx, name: string): string {
  return join(c.out, name);
}

function dumpArgs(c: Ctx, shape: Shape): { args: string[]; env: NodeJS.ProcessEnv } {
  const { args, env } = c.server.clientArgs();
  return {
    args: [...args, '--single-transaction', '--routines', '--triggers', '--events', c.dbs[shape].name],
    env,
  };
}

/** mariadb-dump's .sql of the shape's database (made untimed when db-backup did not run). */
async function ensureRefDump(c: Ctx, shape: Shape): Promise<string> {
  const have = c.dbs[shape].ref;
  if (have) return have;
  const file = refFile(c, `db-ref-${shape}.sql`);
  const { args, env } = dumpArgs(c, shape);
  c.log(`  (no mariadb-dump file of the ${shape} tables yet: making one, untimed)`);
  const r = await runMeasured({ cmd: 'mariadb-dump', args, env, stdoutFile: file });
  if (!r.ok) throw new Error(`mariadb-dump failed:\n${r.stderrTail}`);
  return (c.dbs[shape].ref = file);
}

/** Our .sql of the shape's database (made untimed when db-backup did not run). */
async function ensureOurDump(c: Ctx, shape: Shape): Promise<string> {
  const have = c.dbs[shape].ours;
  if (have) return have;
  c.log(`  (no dump of ours of the ${shape} tables yet: making one, untimed)`);
  const r = await runMeasured(ours(c, ['setup:backup', '--db', '--no-maintenance', ...dbFlags(c, shape)]));
  const f = succeeded(r, true) ? producedFile(r) : undefined;
  if (!f) throw new Error(`could not make a dump to load:\n${r.stderrTail}`);
  return (c.dbs[shape].ours = f);
}

/** `mariadb <db> < file` into a freshly created, empty database. */
function stockLoadSide(file: (c: Ctx) => string | undefined): Side {
  return {
    before: (c) => recreateDb(c, REF_RESTORE_DB, true),
    spec: (c) => {
      const { args, env } = c.server.clientArgs();
      return { cmd: 'mariadb', args: [...args, REF_RESTORE_DB], env, stdinFile: file(c) ?? '' };
    },
    after: (c) => recreateDb(c, REF_RESTORE_DB, false),
  };
}

/** The database operations, for one table shape. */
function dbOps(shape: Shape): Op[] {
  const tag = `:${shape}`;
  const what = shape === 'wide' ? 'text-heavy tables' : 'narrow numeric tables';
  return [
    {
      id: `db-backup${tag}`,
      title: `db backup (.sql), ${what}`,
      refTitle: 'mariadb-dump --single-transaction --routines --triggers --events',
      target: { ratio: 1.0 },
      ours: backupSide('db', (c) => ['--db', ...dbFlags(c, shape)], shape),
      ref: {
        spec: (c) => {
          const { args, env } = dumpArgs(c, shape);
          return { cmd: 'mariadb-dump', args, env, stdoutFile: refFile(c, `db-ref-${shape}.sql`) };
        },
        outputBytes: (c) => fileSize(refFile(c, `db-ref-${shape}.sql`)),
        after: (c, r, last) => {
          if (last && r.ok) c.dbs[shape].ref = refFile(c, `db-ref-${shape}.sql`);
        },
      },
    },
    {
      id: `db-backup-gz${tag}`,
      title: `db backup (.sql.gz), ${what}`,
      refTitle: 'mariadb-dump … | gzip -6',
      target: { ratio: 0.7 },
      ours: backupSide('dbgz', (c) => ['--db', '--compress', ...dbFlags(c, shape)], shape),
      ref: {
        spec: (c) => {
          const { args, env } = dumpArgs(c, shape);
          return {
            cmd: 'bash',
            args: [
              '-c',
              'set -o pipefail; out="$1"; shift; "$@" | gzip -6 > "$out"',
              'bench-dump-gz',
              refFile(c, 'db-ref.sql.gz'),
              'mariadb-dump',
              ...args,
            ],
            env,
          };
        },
        outputBytes: (c) => fileSize(refFile(c, 'db-ref.sql.gz')),
        after: (c) => rmSync(refFile(c, 'db-ref.sql.gz'), { force: true }),
      },
    },
    {
      id: `db-load${tag}`,
      title: `stock client loads our .sql, ${what}`,
      refTitle: "mariadb db < mariadb-dump's .sql (same data, empty db)",
      target: { ratio: 1.0 },
      noWarmup: true,
      prepare: async (c) => {
        await ensureOurDump(c, shape);
        await ensureRefDump(c, shape);
      },
      ours: stockLoadSide((c) => c.dbs[shape].ours),
      ref: stockLoadSide((c) => c.dbs[shape].ref),
    },
    {
      id: `db-rollback${tag}`,
      title: `db rollback (verify + swap), ${what}`,
      refTitle: "mariadb db < mariadb-dump's .sql (same data, empty db)",
      target: { ratio: 0.8 },
      noWarmup: true,
      prepare: async (c) => {
        await ensureOurDump(c, shape);
        await ensureRefDump(c, shape);
      },
      ours: {
        spec: (c) =>
          ours(c, [
            'setup:rollback',
            '-d',
            basename(c.dbs[shape].ours),
            // every table: the selective path (issue 14) would keep them all, the live data being the backup's
            '--full',
            '--yes',
            '--no-maintenance',
            ...dbFlags(c, shape),
          ]),
      },
      ref: stockLoadSide((c) => c.dbs[shape].ref),
    },
  ];
}

async function recreateDb(c: Ctx, name: string, create: boolean): Promise<void> {
  const conn = await c.server.connect();
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
    if (create)
      await conn.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
  } finally {
    await conn.end();
  }
}

const REF_RESTORE_DB = 'bench_ref_restore';

async function ensureCodeBackup(c: Ctx): Promise<void> {
  if (c.codeBackup) return;
  c.log('  (no code backup from code-backup: making one, untimed)');
  const r = await runMeasured(ours(c, ['setup:backup', '--code', '--no-maintenance']));
  const f = producedFile(r);
  if (!f) throw new Error(`could not make a code backup to roll back:\n${r.stderrTail}`);
  c.codeBackup = f;
}

/** `tar -xzf` of the code backup into an empty directory: the reference of every code rollback */
const tarExtract: DeltaSide<Ctx> = {
  before: (c) => {
    rmSync(refFile(c, 'extract'), { recursive: true, force: true });
    mkdirSync(refFile(c, 'extract'));
  },
  spec: (c) => ({ cmd: 'tar', args: ['-xzf', c.codeBackup ?? '', '-C', refFile(c, 'extract')] }),
  after: (c) => rmSync(refFile(c, 'extract'), { recursive: true, force: true }),
};

const OPS: Op[] = [
  {
    id: 'code-backup',
    title: 'code backup (.tgz)',
    refTitle: 'tar -czf (GNU tar + gzip -6), same excludes',
    target: { ratio: 0.55 },
    ours: backupSide('code', () => ['--code']),
    ref: {
      spec: (c) => ({
        cmd: 'tar',
        args: ['-czf', refFile(c, 'code-ref.tgz'), ...TAR_CODE_EXCLUDES, '-C', c.store, '.'],
      }),
      outputBytes: (c) => fileSize(refFile(c, 'code-ref.tgz')),
      after: (c, r, last) => {
        if (last && r.ok) c.refCodeArchive = refFile(c, 'code-ref.tgz');
      },
    },
  },
  {
    id: 'media-backup',
    title: 'media backup (.tgz)',
    refTitle: 'tar -czf of pub/media',
    target: { ratio: 0.5 },
    ours: backupSide('media', () => ['--media']),
    ref: {
      spec: (c) => ({
        cmd: 'tar',
        args: ['-czf', refFile(c, 'media-ref.tgz'), '-C', join(c.store, 'pub'), 'media'],
      }),
      outputBytes: (c) => fileSize(refFile(c, 'media-ref.tgz')),
      after: (c) => rmSync(refFile(c, 'media-ref.tgz'), { force: true }),
    },
  },
  {
    id: 'code-rollback',
    title: 'code rollback (verify + swap)',
    refTitle: 'tar -xzf into an empty dir (same archive)',
    target: { ratio: 1.5 },
    prepare: ensureCodeBackup,
    ours: {
      spec: (c) =>
        ours(c, ['setup:rollback', '-c', basename(c.codeBackup), '--yes', '--no-maintenance', '--full']),
      after: replacedGone,
    },
    ref: tarExtract,
  },
  // issue 14: selective rollbacks and backups:diff (bench/delta.ts)
  ...deltaOps<Ctx>({ ours, ensureCodeBackup, tarExtract }),
  ...SHAPES.flatMap(dbOps),
  // issue 14: selective database rollbacks (bench/db-delta.ts)
  ...dbDeltaOps<Ctx>({
    ourRollback: (c) =>
      ours(c, [
        'setup:rollback',
        '-d',
        basename(c.dbs.wide.ours),
        '--yes',
        '--no-maintenance',
        ...dbFlags(c, 'wide'),
      ]),
    prepare: async (c) => {
      await ensureOurDump(c, 'wide');
      await ensureRefDump(c, 'wide');
    },
    stockLoad: stockLoadSide((c) => c.dbs.wide.ref),
  }),
  {
    id: 'list',
    title: 'info:backups:list, 1,000 backups',
    refTitle: '`node -e 0` (bare Node.js start, for scale only)',
    target: { wallMs: 300 },
    minReps: 5,
    ours: {
      spec: (c) => ({
        ...ours(c, ['info:backups:list']),
        args: [CLI, 'info:backups:list', '--root', c.listRoot, '--json'],
      }),
    },
    ref: { spec: () => ({ cmd: process.execPath, args: ['-e', '0'] }) },
  },
];

function basename(p: string | undefined): string {
  return p ? (p.split('/').pop() ?? p) : '';
}

// --- running ----------------------------------------------------------------------------------------------------

interface SideResult {
  runs: Measured[];
  failed?: string;
  wallMs?: number;
  maxRssKb?: number;
  cpuS?: number;
  outputBytes?: number;
  phases?: string;
}

interface OpResult {
  op: Op;
  ours: SideResult;
  ref?: SideResult;
  ratio?: number;
  met?: boolean;
  error?: string;
  profile?: ThreadSummary[];
  /** stall pressure while the operation ran */
  pressure?: string;
  /** `strace -f -c -w` summary of one more run of ours */
  syscalls?: string;
}

function failureText(r: Measured): string {
  const tail = r.stderrTail.trim().split('\n').slice(-6).join('\n');
  return `exit ${r.code ?? r.signal ?? '?'}: ${tail}`;
}

/** magebackup exits 3 when it completed with warnings (e.g. the fixture's dangling symlink): a success here */
function succeeded(r: Measured, isOurs: boolean): boolean {
  return r.ok || (isOurs && r.code === 3);
}

function phasesOf(events: TimedEvent[], wallMs: number): string {
  const parts: string[] = [];
  const first = events[0];
  if (first) parts.push(`start ${fmtMs(first.t)}`);
  const open = new Map<string, number>();
  let lastT = first?.t ?? 0;
  for (const { t, event } of events) {
    const key = `${String(event['part'])} ${String(event['operation'])}`;
    if (event['type'] === 'part-start') open.set(key, t);
    if (event['type'] === 'part-done') {
      const s = open.get(key);
      if (s !== undefined) parts.push(`${key} ${fmtMs(t - s)}`);
      open.delete(key);
    }
    lastT = t;
  }
  for (const [key, s] of open) parts.push(`${key} ${fmtMs(lastT - s)}+`);
  if (events.length) parts.push(`exit ${fmtMs(wallMs - lastT)}`);
  return parts.join(', ');
}

async function runSide(c: Ctx, side: Side, isOurs: boolean, last: boolean): Promise<Measured> {
  if (side.before) await side.before(c);
  settleDisk();
  const r = await runMeasured(side.spec(c));
  r.ok = succeeded(r, isOurs);
  // measured before `after` removes the output
  if (r.ok && side.outputBytes) r.outputBytes = sideBytes(c, side, r);
  if (side.after) await side.after(c, r, last);
  return r;
}

/**
 * Untimed, before every run of either side: `sync`, which returns once all dirty data is written and the
 * journal committed. This disk is mounted with `discard`: the trees deleted after the previous runs (ours in the
 * background, the reference's by rmSync) are discarded at the journal commits that follow, and a run started
 * meanwhile waited for them (a `tar -xzf` took 4.4 s on a settled disk and up to 43 s after a deletion).
 */
function settleDisk(): void {
  try {
    execFileSync('sync', [], { stdio: 'ignore', timeout: 600_000 });
  } catch {
    // no sync: nothing to wait for
  }
}

function summarize(c: Ctx, side: Side, runs: Measured[]): SideResult {
  const res: SideResult = { runs };
  const bad = runs.find((r) => !r.ok);
  if (bad) {
    res.failed = failureText(bad);
    return res;
  }
  if (!runs.length) return res;
  res.wallMs = median(runs.map((r) => r.wallMs));
  const rss = runs.map((r) => r.maxRssKb).filter((x): x is number => x !== undefined);
  if (rss.length) res.maxRssKb = Math.max(...rss);
  const cpu = runs.map((r) => (r.userS ?? NaN) + (r.sysS ?? NaN)).filter((x) => !Number.isNaN(x));
  if (cpu.length) res.cpuS = median(cpu);
  const sorted = [...runs].sort((a, b) => a.wallMs - b.wallMs);
  const mid = sorted[Math.floor((sorted.length - 1) / 2)] as Measured;
  if (mid.events.length) res.phases = phasesOf(mid.events, mid.wallMs);
  return res;
}

async function runOp(c: Ctx, op: Op): Promise<OpResult> {
  const reps = Math.max(c.opts.reps, op.minReps ?? 0);
  const result: OpResult = { op, ours: { runs: [] }, ...(op.ref ? { ref: { runs: [] } } : {}) };
  try {
    if (op.prepare) await op.prepare(c);
  } catch (err) {
    result.error = (err as Error).message;
    return result;
  }
  const sides: { name: 'ours' | 'ref'; side: Side }[] = [{ name: 'ours', side: op.ours }];
  if (op.ref) sides.push({ name: 'ref', side: op.ref });
  const runs: Record<'ours' | 'ref', Measured[]> = { ours: [], ref: [] };
  const dead = new Set<string>();
  // rep 0 is the untimed warm-up
  for (let rep = op.noWarmup ? 1 : 0; rep <= reps; rep++) {
    for (const { name, side } of sides) {
      if (dead.has(name)) continue;
      let r: Measured;
      try {
        r = await runSide(c, side, name === 'ours', rep === reps);
      } catch (err) {
        r = failedRun((err as Error).message);
      }
      c.log(
        `  ${rep === 0 ? 'warm-up' : `rep ${rep}`} ${name.padEnd(4)} ${r.ok ? fmtMs(r.wallMs).padStart(9) : 'FAILED'.padStart(9)}` +
          `  rss ${fmtRss(r.maxRssKb)}${r.ok ? '' : `\n${indent(failureText(r), 6)}`}`,
      );
      if (!r.ok) {
        dead.add(name);
        runs[name] = [r];
        continue;
      }
      if (rep > 0) runs[name].push(r);
    }
    if (dead.size === sides.length) break;
  }
  result.ours = summarize(c, op.ours, runs.ours);
  if (op.ref) result.ref = summarize(c, op.ref, runs.ref);
  const lastOurs = runs.ours[runs.ours.length - 1];
  if (lastOurs?.ok) result.ours.outputBytes = lastOurs.outputBytes;
  const lastRef = runs.ref[runs.ref.length - 1];
  if (lastRef?.ok && result.ref) result.ref.outputBytes = lastRef.outputBytes;
  if ('ratio' in op.target) {
    if (result.ours.wallMs !== undefined && result.ref?.wallMs !== undefined) {
      result.ratio = result.ours.wallMs / result.ref.wallMs;
      result.met = result.ratio <= op.target.ratio;
    }
  } else if (result.ours.wallMs !== undefined) {
    result.met = result.ours.wallMs < op.target.wallMs;
  }
  return result;
}

function sideBytes(c: Ctx, side: Side, r: Measured): number | undefined {
  try {
    return side.outputBytes?.(c, r);
  } catch {
    return undefined;
  }
}

function failedRun(message: string): Measured {
  return {
    ok: false,
    code: null,
    signal: null,
    wallMs: 0,
    maxRssKb: undefined,
    rssSource: 'gnu-time',
    userS: undefined,
    sysS: undefined,
    stdout: '',
    stderrTail: message,
    events: [],
  };
}

/** One more run of ours under `node --cpu-prof`, for the bottleneck section. */
async function profileOp(c: Ctx, op: Op, dir: string): Promise<ThreadSummary[]> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  if (op.ours.before) await op.ours.before(c);
  const spec = op.ours.spec(c);
  const r = await runMeasured({
    ...spec,
    args: ['--cpu-prof', `--cpu-prof-dir=${dir}`, ...spec.args],
  });
  r.ok = succeeded(r, true);
  if (op.ours.after) await op.ours.after(c, r, false);
  return summarizeProfileDir(dir);
}

/**
 * One more run of ours under `strace -f -c -w`: wall time spent inside each system call, summed over all
 * threads (so it can exceed the wall time) — shows time blocked in fsync/syncfs/open/unlink/wait4 that a CPU
 * profile only shows as idle.
 */
async function straceOp(c: Ctx, op: Op, file: string): Promise<string> {
  if (op.ours.before) await op.ours.before(c);
  const spec = op.ours.spec(c);
  const r = await runMeasured({
    ...spec,
    cmd: 'strace',
    args: ['-f', '-c', '-w', '-o', file, '--', spec.cmd, ...spec.args],
  });
  r.ok = succeeded(r, true);
  if (op.ours.after) await op.ours.after(c, r, false);
  const text = readFileSync(file, 'utf8').split('\n');
  // "% time     seconds  usecs/call     calls    errors syscall"
  const rows = text
    .map((l) => /^\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(\d*)\s*(\w+)\s*$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[6] !== 'total')
    .slice(0, 8)
    .map((m) => `${m[6] ?? ''} ${Number(m[2]).toFixed(2)} s/${m[4] ?? ''} calls`);
  return `${r.ok ? '' : '(run failed) '}wall ${fmtMs(r.wallMs)}; in syscalls (all threads): ${rows.join(', ')}`;
}

// --- formatting -------------------------------------------------------------------------------------------------

function fmtMs(ms: number): string {
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function fmtRss(kb: number | undefined): string {
  return kb === undefined ? '?' : `${(kb / 1024).toFixed(0)} MB`;
}

function fmtBytes(b: number | undefined): string {
  if (b === undefined) return '';
  if (b >= 1e9) return `${(b / 1e9).toFixed(2)} GB`;
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  return `${(b / 1e3).toFixed(0)} kB`;
}

function indent(s: string, n: number): string {
  return s
    .split('\n')
    .map((l) => ' '.repeat(n) + l)
    .join('\n');
}

function targetText(op: Op): string {
  return 'ratio' in op.target ? `≤ ${op.target.ratio}` : `< ${op.target.wallMs} ms wall`;
}

function verdict(r: OpResult): string {
  if (r.error || r.ours.failed || r.ref?.failed) return 'FAILED';
  const rssOk = r.ours.maxRssKb === undefined || r.ours.maxRssKb / 1024 <= RSS_LIMIT_MB;
  if (r.met === undefined) return '?';
  if (r.met && rssOk) return 'met';
  return r.met ? `RSS > ${RSS_LIMIT_MB} MB` : 'NOT met';
}

function markdownTable(results: OpResult[]): string {
  const rows = [
    '| operation | ours (median) | reference | reference (median) | ratio ours/ref | target | ours peak RSS | ref peak RSS | ours CPU (user+sys) | ref CPU | output ours / ref | result |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    const ours = r.error
      ? 'not run'
      : r.ours.failed
        ? 'FAILED'
        : r.ours.wallMs !== undefined
          ? fmtMs(r.ours.wallMs)
          : '';
    const ref = !r.op.ref
      ? '—'
      : r.ref?.failed
        ? 'FAILED'
        : r.ref?.wallMs !== undefined
          ? fmtMs(r.ref.wallMs)
          : '';
    const out =
      r.ours.outputBytes !== undefined || r.ref?.outputBytes !== undefined
        ? `${fmtBytes(r.ours.outputBytes)} / ${fmtBytes(r.ref?.outputBytes)}`
        : '';
    rows.push(
      `| ${r.op.title} | ${ours} | ${r.op.refTitle.replace(/\|/g, '\\|')} | ${ref} | ${r.ratio !== undefined ? r.ratio.toFixed(2) : ''} | ` +
        `${targetText(r.op)} | ${fmtRss(r.ours.maxRssKb)} | ${r.op.ref ? fmtRss(r.ref?.maxRssKb) : '—'} | ` +
        `${r.ours.cpuS !== undefined ? `${r.ours.cpuS.toFixed(1)} s` : ''} | ${r.ref?.cpuS !== undefined ? `${r.ref.cpuS.toFixed(1)} s` : ''} | ${out} | ${verdict(r)} |`,
    );
  }
  return rows.join('\n');
}

function consoleTable(results: OpResult[]): string {
  const head = ['operation', 'ours', 'ref', 'ratio', 'target', 'ours RSS', 'ref RSS', 'result'];
  const body = results.map((r) => [
    r.op.id,
    r.error ? 'not run' : r.ours.failed ? 'FAILED' : r.ours.wallMs !== undefined ? fmtMs(r.ours.wallMs) : '',
    !r.op.ref ? '—' : r.ref?.failed ? 'FAILED' : r.ref?.wallMs !== undefined ? fmtMs(r.ref.wallMs) : '',
    r.ratio !== undefined ? r.ratio.toFixed(2) : '',
    targetText(r.op),
    fmtRss(r.ours.maxRssKb),
    r.op.ref ? fmtRss(r.ref?.maxRssKb) : '—',
    verdict(r),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function version(cmd: string, args: string[] = ['--version']): string {
  try {
    return (
      execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split('\n')[0]
        ?.trim() ?? '?'
    );
  } catch {
    return 'not found';
  }
}

function gitHead(): string {
  try {
    const head = execFileSync('git', ['-C', TOP, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', TOP, 'status', '--porcelain', '--', 'src'], {
      encoding: 'utf8',
    }).trim();
    return dirty ? `${head} (src/ has uncommitted changes)` : head;
  } catch {
    return '?';
  }
}

/** Linux pressure-stall totals (µs): how much of the time tasks waited for CPU / I/O — the noise gauge. */
interface Pressure {
  at: number;
  cpu: number | undefined;
  io: number | undefined;
}

function readPressure(): Pressure {
  const some = (kind: string): number | undefined => {
    try {
      const m = /^some .*total=(\d+)/m.exec(readFileSync(`/proc/pressure/${kind}`, 'utf8'));
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  };
  return { at: Date.now(), cpu: some('cpu'), io: some('io') };
}

/** "cpu 95%, io 12%": share of wall time during which some task was stalled waiting for a CPU / for I/O */
function pressureSince(p: Pressure): string {
  const now = readPressure();
  const span = (now.at - p.at) * 1000;
  if (span <= 0 || now.cpu === undefined || p.cpu === undefined) return 'n/a';
  const pct = (a: number | undefined, b: number | undefined): string =>
    a === undefined || b === undefined ? '?' : `${Math.min(100, (100 * (a - b)) / span).toFixed(0)}%`;
  return `cpu ${pct(now.cpu, p.cpu)}, io ${pct(now.io, p.io)}`;
}

const pressureAtStart = readPressure();

const load = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' / ');
const loadAtStart = load();

function machine(serverVersion: string, measuredVersion: string): string[] {
  const cpus = os.cpus();
  let fsType = '?';
  try {
    fsType = execFileSync('df', ['-T', TOP], { encoding: 'utf8' }).split('\n')[1]?.split(/\s+/)[1] ?? '?';
  } catch {
    /* unknown */
  }
  return [
    `- machine: ${os.availableParallelism()} CPUs (${cpus[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
      `${os.type()} ${os.release()}, filesystem ${fsType}`,
    `- noise: load average (1/5/15 min) ${loadAtStart} at start, ${load()} at end; stall pressure over the run ` +
      `(share of time some task waited, /proc/pressure) ${pressureSince(pressureAtStart)}. The machine is shared: ` +
      'other processes ran during the benchmark, so compare ours with its reference of the same run only.',
    `- versions: node ${process.version}; ${version('tar')}; ${version('gzip')}; ${version('mariadb-dump')}; ` +
      `${version('mariadb')}; server ${serverVersion}`,
    `- magebackup measured: ${measuredVersion} (bin/ and dist/src/ copied at the start of the run)`,
    `- peak RSS: ${findGnuTime() ? 'GNU time %M (largest process of the tree)' : 'polled /proc VmRSS/VmHWM of the process tree every 50 ms'}`,
  ];
}

function fixtureLine(fx: Fixture, refDumpBytes: number | undefined, narrowBytes: number | undefined): string {
  const n = fx.meta.narrow;
  const t = fx.meta.tree;
  const db = fx.meta.db;
  return (
    `- store (\`--size ${fx.meta.size}\`, fixture ${fx.meta.key}${fx.meta.key === fixtureKey(TOP, fx.meta.size) ? '' : ', made by an older version of the generators (--reuse-cache)'}): ${t.files.toLocaleString('en')} files / ${fmtBytes(t.bytes)} outside pub/media, ` +
    `of which the code backup holds ${t.codeFiles.toLocaleString('en')} files / ${fmtBytes(t.codeBytes)}; ` +
    `media ${t.mediaFiles.toLocaleString('en')} files / ${fmtBytes(t.mediaBytes)}; database ` +
    `${db.tables !== undefined ? `${db.tables} tables, ` : ''}${db.rows !== undefined ? `${db.rows.toLocaleString('en')} rows, ` : ''}` +
    `${refDumpBytes !== undefined ? `${fmtBytes(refDumpBytes)} of SQL (mariadb-dump)` : 'SQL size unknown'}` +
    (n
      ? `; narrow database (employees shape: integers and dates) ${n.tables ?? '?'} tables, ${(n.rows ?? 0).toLocaleString('en')} rows` +
        `${narrowBytes !== undefined ? `, ${fmtBytes(narrowBytes)} of SQL (mariadb-dump)` : ''}`
      : '')
  );
}

function writeBenchmarksMd(size: StoreSize, section: string): void {
  const file = join(TOP, 'BENCHMARKS.md');
  const begin = `<!-- bench:${size}:begin -->`;
  const end = `<!-- bench:${size}:end -->`;
  const block = `${begin}\n${section.trim()}\n${end}`;
  let text = existsSync(file)
    ? readFileSync(file, 'utf8')
    : '# Benchmarks\n\n`npm run bench -- --size medium` refreshes the medium section below (`--size small` the small one);\neverything outside the marked sections is written by hand.\n\n';
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + block + text.slice(j + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
}

// --- main -------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const started = Date.now();
  const log = (line: string): void => console.error(line);
  if (!existsSync(join(TOP, 'dist', 'src', 'cli', 'main.js')))
    throw new Error('dist/src/cli/main.js missing: run npm run build');
  log(
    `bench: size ${opts.size}, ${opts.reps} repetitions (+1 warm-up each), RSS via ${findGnuTime() ? 'GNU time' : '/proc polling (no GNU time: apt-get install -y time)'}`,
  );

  const fx = await ensureFixture(TOP, opts.size, log, opts.reuseCache);
  snapshotCli();
  const measuredVersion = gitHead();
  if (fx.reused) log(`fixture: reusing .bench/cache/${opts.size}-${fx.meta.key}`);
  if (opts.prepare) return;
  const work = join(TOP, '.bench', 'run');
  log('copying the fixture to .bench/run (untimed)');
  const { storeDir, dataDir } = copyFixture(fx, work);
  const out = join(work, 'out');
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const listRoot = join(work, 'list-root');
  makeListRoot(listRoot, opts.listCount);

  const server = await startOnDataDir(dataDir, fx.meta.password, true);
  // Interrupted: pass the signal on (magebackup undoes its run on SIGINT), then stop the server and clean up.
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      log(`\nbench: ${sig}: stopping the running operation, the server, and removing .bench/run`);
      signalRunning('SIGINT');
      const deadline = Date.now() + 60_000;
      const wait = (): void => {
        if (runningCount() > 0 && Date.now() < deadline) {
          setTimeout(wait, 500);
          return;
        }
        void server.stop().finally(() => {
          rmSync(work, { recursive: true, force: true });
          process.exit(130);
        });
      };
      setTimeout(wait, 500);
    });
  }
  const results: OpResult[] = [];
  let serverVersion = '?';
  try {
    const conn = await server.connect();
    const [rows] = await conn.query('SELECT VERSION() AS v');
    serverVersion = String((rows as { v: string }[])[0]?.v ?? '?');
    await conn.end();
    const c: Ctx = {
      opts,
      work,
      store: storeDir,
      out,
      listRoot,
      server,
      dbs: {
        wide: { name: fx.meta.dbName },
        narrow: { name: fx.meta.narrowDbName ?? NARROW_DB },
      },
      log,
    };

    for (const op of OPS) {
      if (opts.only && !opts.only.some((t) => selects(t, op))) continue;
      log(`\n== ${op.id}: ${op.title} vs ${op.refTitle}`);
      const p0 = readPressure();
      const r = await runOp(c, op);
      r.pressure = pressureSince(p0);
      log(`  stall pressure during the operation: ${r.pressure}`);
      if (r.error) log(`  not run: ${r.error}`);
      if (r.ratio !== undefined) log(`  ratio ${r.ratio.toFixed(2)} (target ${targetText(op)})`);
      if (r.ours.phases) log(`  phases (median run): ${r.ours.phases}`);
      if (opts.profile && !r.error && !r.ours.failed) {
        log('  profiling one more run of ours (node --cpu-prof)');
        try {
          r.profile = await profileOp(c, op, join(TOP, '.bench', 'profiles', op.id));
          log(indent(formatProfile(r.profile), 4));
        } catch (err) {
          log(`  profile failed: ${(err as Error).message}`);
        }
      }
      const strace = opts.strace === true || (Array.isArray(opts.strace) && opts.strace.includes(op.id));
      if (strace && !r.error && !r.ours.failed) {
        try {
          mkdirSync(join(TOP, '.bench', 'strace'), { recursive: true });
          r.syscalls = await straceOp(c, op, join(TOP, '.bench', 'strace', `${op.id}.txt`));
          log(`  strace: ${r.syscalls}`);
        } catch (err) {
          log(`  strace failed: ${(err as Error).message}`);
        }
      }
      results.push(r);
    }

    const table = markdownTable(results);
    console.log(`\n${consoleTable(results)}\n`);
    const lines: string[] = [
      `## ${opts.size} (\`npm run bench -- --size ${opts.size}\`)`,
      '',
      `Run of ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}, ${opts.reps} repetitions after one untimed warm-up each, ` +
        `ours and reference interleaved; medians; whole run ${((Date.now() - started) / 60_000).toFixed(0)} min.`,
      '',
      ...machine(serverVersion, measuredVersion),
      fixtureLine(fx, fileSize(c.dbs.wide.ref), fileSize(c.dbs.narrow.ref)),
      '',
      table,
      '',
      `Peak RSS target: ≤ ${RSS_LIMIT_MB} MB for every operation of ours.`,
      '',
      "<details><summary>Phases of our median run (from the CLI's NDJSON events) and failures</summary>",
      '',
      '```',
    ];
    for (const r of results) {
      lines.push(`${r.op.id}: ${r.ours.phases ?? (r.error ? `not run: ${r.error}` : '')}`);
      if (r.pressure) lines.push(`  stall pressure while it ran: ${r.pressure}`);
      if (r.syscalls) lines.push(`  strace of one more run: ${r.syscalls}`);
      const reps = r.ours.runs.map((x) => fmtMs(x.wallMs)).join(', ');
      const refReps = r.ref?.runs.map((x) => fmtMs(x.wallMs)).join(', ');
      if (!r.ours.failed && reps) lines.push(`  ours runs: ${reps}`);
      if (!r.ref?.failed && refReps) lines.push(`  ref  runs: ${refReps}`);
      if (r.ours.failed) lines.push(indent(`ours FAILED ${r.ours.failed}`, 2));
      if (r.ref?.failed) lines.push(indent(`reference FAILED ${r.ref.failed}`, 2));
    }
    lines.push('```', '', '</details>');
    const profiled = results.filter((r) => r.profile?.length);
    if (profiled.length) {
      lines.push(
        '',
        '<details><summary>CPU profiles of ours (node --cpu-prof, self time)</summary>',
        '',
        '```',
      );
      for (const r of profiled) lines.push(`== ${r.op.id}`, formatProfile(r.profile ?? []), '');
      lines.push('```', '', '</details>');
    }
    if (opts.write) {
      writeBenchmarksMd(opts.size, lines.join('\n'));
      log(`BENCHMARKS.md: ${opts.size} section refreshed`);
    }
    writeFileSync(join(TOP, '.bench', `last-${opts.size}.md`), lines.join('\n') + '\n');
  } finally {
    await server.stop();
    if (!opts.keep) rmSync(work, { recursive: true, force: true });
  }
  const anyFailed = results.some((r) => verdict(r) === 'FAILED');
  process.exitCode = anyFailed ? 1 : 0;
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
});
