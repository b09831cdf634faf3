#!/usr/bin/env node
// `npm test`: starts ONE throwaway MariaDB for the whole run, runs node's test runner on the built tests, stops
// the server, and ends with a line `N passed, N failed`. Run after `npm run build` (the pretest script does it).
//
//   npm test                               all of dist/test/
//   npm test -- dist/test/archive/         a subset (directories or files; test/x is read as dist/test/x)
//   npm test -- --test-name-pattern=dump   options starting with -- go to `node --test`
//
// MAGEBACKUP_TEST_CONCURRENCY overrides the number of test files run at once.
//
// The tests run with TMPDIR set to a fresh directory of their own; whatever is left in it at the end was not
// cleaned up by a test: it is listed (with its size), removed, and counts as one more failure. The directory is
// named after this runner's pid; a run killed before its clean-up (SIGKILL) leaves its directory behind, and the
// next run removes every such directory whose runner is gone.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const harnessPath = join(root, 'dist', 'fixtures', 'mariadb.js');

function fail(message) {
  process.stderr.write(`run-tests: ${message}\n`);
  process.stdout.write('0 passed, 1 failed\n');
  process.exit(1);
}

/** Maps a user-given path to the built test tree: test/x → dist/test/x, x.ts → x.js. */
function toBuilt(arg) {
  const abs = resolve(arg.replace(/\.ts$/, '.js'));
  const rel = relative(root, abs);
  if (!rel.startsWith('..') && !rel.startsWith('dist') && existsSync(join(root, 'dist', rel))) {
    return join(root, 'dist', rel);
  }
  return abs;
}

function collectTests(path, out) {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) fail(`no such test file or directory: ${relative(process.cwd(), path) || path}`);
  if (st.isFile()) {
    out.push(path);
    return;
  }
  for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) collectTests(child, out);
    else if (entry.isFile() && /\.test\.(c|m)?js$/.test(entry.name)) out.push(child);
  }
}

const nodeOptions = [];
const paths = [];
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith('-')) nodeOptions.push(arg);
  else paths.push(toBuilt(arg));
}
if (paths.length === 0) paths.push(join(root, 'dist', 'test'));
if (!existsSync(harnessPath)) fail(`${relative(root, harnessPath)} is missing: run \`npm run build\` first`);

const files = [];
for (const p of paths) collectTests(p, files);
if (files.length === 0) fail(`no *.test.js files under ${paths.map((p) => relative(root, p)).join(', ')}`);

// Test files mostly wait on the database and the disk, so run a few more than there are cores.
const concurrency = Number(process.env.MAGEBACKUP_TEST_CONCURRENCY) || Math.max(2, availableParallelism());

const {
  startMariaDB,
  ensureServerInstalled,
  ENV_HOST,
  ENV_PORT,
  ENV_SOCKET,
  ENV_PASSWORD,
  ENV_ERROR,
  INSTALL_HINT,
} = await import(harnessPath);

const env = { ...process.env };
let server;
let serverFailed = false;
try {
  // No server binary: installed with apt-get when running as root, else an error naming the command to run.
  ensureServerInstalled('run-tests');
  const t0 = Date.now();
  server = await startMariaDB();
  env[ENV_HOST] = server.host;
  env[ENV_PORT] = String(server.port);
  env[ENV_SOCKET] = server.socketPath;
  env[ENV_PASSWORD] = server.password;
  delete env[ENV_ERROR];
  process.stderr.write(
    `run-tests: MariaDB test server on ${server.host}:${server.port} (${Date.now() - t0} ms)\n`,
  );
} catch (err) {
  serverFailed = true;
  const message = `The test database server could not be started: ${err instanceof Error ? err.message : String(err)}`;
  env[ENV_ERROR] = message;
  process.stderr.write(`run-tests: ${message}\nrun-tests: database tests will fail.\n`);
}
// The web interface's browser test drives Debian's chromium: installed like the server when it is missing and this
// run is root with apt-get; otherwise that test fails naming the command to run.
if (files.some((f) => /[\\/]web[\\/]browser\.test\.js$/.test(f))) {
  const { ensureChromiumInstalled } = await import(join(dirname(harnessPath), 'chromium.js'));
  try {
    ensureChromiumInstalled('run-tests');
  } catch (err) {
    process.stderr.write(
      `run-tests: ${err instanceof Error ? err.message : String(err)}\nrun-tests: the browser test will fail.\n`,
    );
  }
}
if (process.stdout.isTTY && env.NO_COLOR === undefined) env.FORCE_COLOR ??= '1';

/** Removes `dir` whatever a test chmod'ed inside it. */
function removeTree(dir) {
  spawnSync('chmod', ['-R', 'u+rwx', dir], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
}

/** The TMPDIRs of earlier runs that were killed before their clean-up (their runner's pid is gone). */
function sweepKilledRuns() {
  for (const name of readdirSync(tmpdir())) {
    const m = /^mbk-tests-(\d+)$/.exec(name);
    if (!m) continue;
    const dir = join(tmpdir(), name);
    const st = lstatSync(dir, { throwIfNoEntry: false });
    if (!st?.isDirectory() || st.uid !== process.getuid?.()) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // that runner still runs
    } catch (err) {
      if (err?.code === 'EPERM') continue;
    }
    process.stderr.write(`run-tests: removing ${dir}, left by a killed run\n`);
    removeTree(dir);
  }
}
sweepKilledRuns();

// The tests' own TMPDIR (see the top of this file). Created after the shared server, which lives outside it.
// Short (tests put its path into names with a 64-character limit) and unique among the runs alive; one with our
// pid can only be a dead run's (the pid was reused).
const testTmp = join(tmpdir(), `mbk-tests-${process.pid}`);
if (existsSync(testTmp)) removeTree(testTmp);
mkdirSync(testTmp, { mode: 0o700 });
// Like /tmp (1777): tests that run as an unprivileged user must reach their files in it.
chmodSync(testTmp, 0o1777);
env.TMPDIR = testTmp;
env.TMP = testTmp;
env.TEMP = testTmp;

// A hung test must not eat CI's 90 minutes: after 10 minutes it is cancelled (and counted as failed).
const timeout = nodeOptions.some((o) => o.startsWith('--test-timeout')) ? [] : ['--test-timeout=600000'];
const args = [
  '--test',
  '--test-reporter=spec',
  `--test-concurrency=${concurrency}`,
  ...timeout,
  ...nodeOptions,
  ...files,
];
const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });

const counts = { pass: undefined, fail: undefined, cancelled: 0 };
let pending = '';
const ansi = /\x1b\[[0-9;]*m/g;
function scan(line) {
  const m = /^\s*ℹ (pass|fail|cancelled) (\d+)\s*$/.exec(line.replace(ansi, ''));
  if (m) counts[m[1]] = Number(m[2]);
}
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  pending += chunk;
  const lines = pending.split('\n');
  pending = lines.pop() ?? '';
  lines.forEach(scan);
});

let interrupted;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    interrupted ??= sig;
    child.kill(sig);
  });
}

const code = await new Promise((resolveExit) => {
  child.on('error', (err) => {
    process.stderr.write(`run-tests: could not run node --test: ${err.message}\n`);
    resolveExit(1);
  });
  child.on('close', (c, signal) => resolveExit(c ?? (signal ? 128 : 1)));
});
scan(pending);

if (server) await server.stop();

/** Bytes under `path` (not following links); 0 for what vanished meanwhile. */
function sizeOf(path) {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let total = 0;
  let entries = [];
  try {
    entries = readdirSync(path);
  } catch {
    // unreadable (a test's chmod 000): counted as empty
  }
  for (const e of entries) total += sizeOf(join(path, e));
  return total;
}
let leftovers = [];
try {
  leftovers = readdirSync(testTmp).sort();
} catch {
  // removed by someone else: nothing to report
}
for (const name of leftovers) {
  const mb = (sizeOf(join(testTmp, name)) / 1e6).toFixed(1);
  process.stderr.write(`run-tests: left behind in TMPDIR by a test: ${name} (${mb} MB)\n`);
}
// chmod'ed-away directories (tests of unreadable trees) must not stop the clean-up
removeTree(testTmp);
if (leftovers.length > 0)
  process.stderr.write(
    `run-tests: ${leftovers.length} temp entr${leftovers.length === 1 ? 'y' : 'ies'} left behind (removed now); tests must clean up after themselves (t.after / try-finally)\n`,
  );

const passed = counts.pass ?? 0;
// A runner that died before printing its summary, or cancelled tests (timeouts, crashes), count as failures;
// a run that left temp files behind counts as one more failure.
const leaked = leftovers.length > 0;
const failed = (counts.fail ?? 0) + counts.cancelled + (leaked ? 1 : 0);
if (counts.pass === undefined)
  process.stderr.write(`run-tests: node --test ended (code ${code}) without a summary\n`);
if (serverFailed)
  process.stderr.write(`run-tests: the database server could not be started. ${INSTALL_HINT}\n`);
process.stdout.write(`${passed} passed, ${failed} failed\n`);
const ok = failed === 0 && code === 0 && counts.pass !== undefined && !serverFailed && !leaked;
process.exit(interrupted ? 130 : ok ? 0 : 1);
