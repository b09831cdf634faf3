/**
 * The commander layer in process: main() with fake streams (exitOverride and configureOutput are main's), so a
 * usage error, --help and --version are checked without spawning the binary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { main } from '../../src/cli/main.js';
import { STRIP_GROUP_NAMES } from '../../src/cli/options.js';
import { toolVersion } from '../../src/store/manifest.js';
import { STRIP_GROUPS } from '../../src/db/strip.js';
import { argv, fakeIo } from '../helpers/fake-io.js';
import { minimalStore } from '../helpers/tmp.js';

async function run(...args: string[]) {
  const io = fakeIo();
  const code = await main(argv(...args), io);
  return { code, stdout: io.stdout.text, stderr: io.stderr.text, errLines: io.stderr.lines() };
}

const COMMANDS = [
  'setup:backup',
  'setup:rollback',
  'info:backups:list',
  'snapshot:create',
  'snapshot:list',
  'snapshot:restore',
  'backups:verify',
  'backups:prune',
  'maintenance:status',
  'maintenance:enable',
  'maintenance:disable',
];

void test('usage errors: exit 2, one line on stderr naming the option or command, nothing on stdout', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['setup:backup', '--bogus'], /^error: unknown option '--bogus'/],
    [['setup:backpu'], /^error: unknown command 'setup:backpu'.*setup:backup/],
    [
      ['backups:prune', '--keep-within', 'soon'],
      /^error: option '--keep-within <duration>' argument 'soon' is invalid/,
    ],
    [['backups:prune', '--keep-last', '-1'], /^error: option '--keep-last <n>' argument '-1' is invalid/],
    [['backups:prune', '--keep-daily', '2.5'], /^error: option '--keep-daily <n>' argument '2.5' is invalid/],
    [
      ['setup:backup', '--db', '--db-port', '70000'],
      /^error: option '--db-port <port>' argument '70000' is invalid/,
    ],
    [['snapshot:restore'], /^error: missing required argument 'id'/],
    [['setup:rollback', '-c'], /^error: option '-c, --code-file <name>' argument missing/],
  ];
  for (const [args, expected] of cases) {
    const r = await run(...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.errLines.length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.errLines[0]!, expected);
    assert.match(r.errLines[0]!, /\(run with --help for usage\)$/);
    assert.equal(r.stdout, '');
  }
});

void test('usage errors found by a command (not by commander) are one "Error:" line and exit 2 too', async () => {
  const root = minimalStore();
  for (const args of [
    ['setup:backup', '--root', root],
    ['setup:backup', '--code', '--keep-last', '2', '--root', root],
    ['snapshot:create', '--keep-within', '2d', '--root', root],
  ]) {
    const r = await run(...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.errLines.length, 1, r.stderr);
    assert.match(r.errLines[0]!, /^Error: /);
  }
  assert.equal(existsSync(path.join(root, 'var', 'backups')), false, 'nothing written');
});

void test('--json: a usage error is one JSON line with code 2', async () => {
  const r = await run('backups:prune', '--keep-last', 'x', '--json');
  assert.equal(r.code, 2);
  assert.equal(r.errLines.length, 1);
  const e = JSON.parse(r.errLines[0]!) as { type: string; code: number; message: string };
  assert.deepEqual([e.type, e.code], ['error', 2]);
  assert.match(e.message, /^option '--keep-last <n>' argument 'x' is invalid/);
});

void test('no command: the help on stderr, exit 2', async () => {
  const r = await run();
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^Usage: magebackup/);
  assert.equal(r.stdout, '');
});

void test('--help of the program: every command and the exit codes, on stdout, exit 0', async () => {
  const r = await run('--help');
  assert.equal(r.code, 0);
  assert.equal(r.stderr, '');
  for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c}\\b`, 'm'), c);
  assert.match(r.stdout, /^Exit codes:$/m);
  for (const code of [0, 1, 2, 3, 11, 12, 129, 130])
    assert.match(r.stdout, new RegExp(`^  ${code} +\\S`, 'm'));
});

void test('--help of every command shows the global options and the exit codes', async () => {
  for (const c of COMMANDS) {
    const r = await run(c, '--help');
    assert.equal(r.code, 0, c);
    assert.match(r.stdout, new RegExp(`^Usage: magebackup ${c}`), c);
    const global = r.stdout.split(/^Global Options:$/m)[1];
    assert.ok(global, `${c}: a Global Options section`);
    for (const o of ['--root <dir>', '--json', '-q, --quiet', '-y, --yes', '-n, --no-interaction'])
      assert.ok(global.includes(o), `${c}: ${o} under Global Options`);
    assert.match(r.stdout, /^Exit codes:$/m, c);
    assert.match(r.stdout, /^  130 +interrupted/m, c);
  }
});

void test("the --strip groups in --help and in the README are the dumper's (src/db/strip.ts)", async () => {
  const groups = Object.keys(STRIP_GROUPS).map((g) => `@${g}`);
  assert.deepEqual(STRIP_GROUP_NAMES, groups);
  for (const c of ['setup:backup', 'snapshot:create']) {
    const help = (await run(c, '--help')).stdout.replace(/\s+/g, ' ');
    assert.ok(help.includes(`groups ${groups.join(' ')},`), `${c} --help lists ${groups.join(' ')}`);
  }
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');
  const listed = /`--strip GROUPS` — [^(]*\(`([^`]*)`\)/.exec(readme)?.[1];
  assert.equal(listed, groups.join(' '), 'README.md lists the same groups in the same order');
});

void test('--version prints the package version', async () => {
  const r = await run('--version');
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${toolVersion()}\n`);
  assert.match(toolVersion(), /^\d+\.\d+\.\d+/);
});

void test('typed options reach the command: --no-maintenance, repeatable --exclude, --json', async () => {
  const root = minimalStore({ 'skip/a.txt': 'a', 'keep/b.txt': 'b', 'x.log': 'l' });
  const io = fakeIo();
  const code = await main(
    argv(
      'setup:backup',
      '--code',
      '--no-maintenance',
      '--exclude',
      'skip/',
      '--exclude',
      '*.log',
      '--root',
      root,
      '--json',
    ),
    io,
  );
  assert.equal(code, 0, io.stderr.text);
  const result = JSON.parse(io.stdout.text) as { parts: Array<{ part: string; excludes?: string[] }> };
  const events = io.stderr.lines().map((l) => JSON.parse(l) as { type: string });
  assert.ok(!events.some((e) => e.type === 'maintenance'), 'no maintenance event with --no-maintenance');
  assert.ok(result.parts.length === 1 && result.parts[0]!.part === 'code');
  const manifestName = readdirManifest(root);
  const manifest = readFileSync(path.join(root, 'var', 'backups', manifestName), 'utf8');
  assert.match(manifest, /"skip\/"/);
  assert.match(manifest, /"\*\.log"/);
});

function readdirManifest(root: string): string {
  const m = readdirSync(path.join(root, 'var', 'backups')).find((n) => n.endsWith('_manifest.json'));
  assert.ok(m, 'a manifest');
  return m;
}
