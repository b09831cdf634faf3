/**
 * Every way a run ends, through the built binary with real processes: the database server killed mid-dump,
 * SIGHUP, a closed output pipe, Ctrl-C on a real pseudo-terminal while the spinner runs. Each asserts the exit
 * code, the message, that nothing is left behind, and the maintenance state as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startMariaDB } from '../../fixtures/mariadb.js';
import { BIN, runCli } from '../helpers/cli.js';
import { minimalStore, tempDir } from '../helpers/tmp.js';
import {
  assertNoLeftovers,
  backupsOf,
  bigCodeStore,
  faultMidWrite,
  flagOf,
  lockPid,
  signalPending,
  stopProcess,
  spawnCli,
  spawnOnPty,
  waitFor,
} from './fault-helpers.js';

void test('the database server killed mid-dump: exit 1, one line, nothing left, maintenance as it was', async () => {
  // A server of its own, since this test kills it.
  const server = await startMariaDB();
  try {
    const db = await server.createDatabase('killed');
    const conn = await server.connect(db);
    try {
      await conn.query('CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(200))');
      await conn.query("INSERT INTO big SELECT seq, REPEAT('x', 200) FROM seq_1_to_300000");
    } finally {
      await conn.end();
    }
    const serverPid = Number(readFileSync(join(dirname(server.socketPath), 'mysqld.pid'), 'utf8'));
    const store = (wasOn: boolean) => {
      const root = minimalStore({
        'app/etc/env.php': `<?php return ['db' => ['connection' => ['default' => ['host' => '127.0.0.1:${server.port}', 'dbname' => '${db}', 'username' => 'root', 'password' => '${server.password}']]]];\n`,
      });
      if (wasOn) writeFileSync(flagOf(root), '');
      return root;
    };
    // --json, maintenance off before: killed while rows stream.
    const root = store(false);
    const run = spawnCli(['setup:backup', '--db', '--root', root, '--json']);
    await faultMidWrite(
      root,
      () => run.child.pid,
      () => void process.kill(serverPid, 'SIGKILL'),
    );
    const r = await run.done;
    assert.equal(r.code, 1, r.stderr);
    const last = JSON.parse(r.stderr.trim().split('\n').pop()!) as {
      type: string;
      code: number;
      message: string;
    };
    assert.deepEqual([last.type, last.code], ['error', 1]);
    assert.match(
      last.message,
      /^Database dump of `killed_\w+` on 127\.0\.0\.1:\d+ failed: the connection to the server was lost/,
    );
    assert.equal(r.stdout, '', 'no result object for a failed run');
    assert.deepEqual(assertNoLeftovers(root), []);
    assert.equal(existsSync(flagOf(root)), false, 'maintenance off again');

    // Plain, maintenance on before: the server is gone now, the run fails before it changes anything.
    const root2 = store(true);
    const r2 = await runCli(['setup:backup', '--db', '--root', root2]);
    assert.equal(r2.code, 1, r2.stderr);
    assert.match(
      r2.stderr,
      /^Error: Cannot reach the database server at 127\.0\.0\.1:\d+: connection refused/m,
    );
    assert.doesNotMatch(r2.stderr, /Internal error|    at /);
    assertNoLeftovers(root2);
    assert.equal(existsSync(flagOf(root2)), true, 'maintenance still on, as before');
  } finally {
    await server.stop();
  }
});

for (const full of [true, false]) {
  void test(`the database server killed mid-rollback (code + database${full ? ', --full' : ', selective: the load overlaps the comparison'}): exit 1, one true line, no lock, trees old`, async () => {
    // Found by hand: the loader waited for ever on a statement of a destroyed connection, and the run ended in
    // "stopped making progress" with a stack trace, its lock and the maintenance flag left on.
    const server = await startMariaDB();
    try {
      const db = await server.createDatabase('killedrb');
      const conn = await server.connect(db);
      try {
        await conn.query('CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(200))');
        await conn.query("INSERT INTO big SELECT seq, REPEAT('x', 200) FROM seq_1_to_300000");
        await conn.query('CREATE TABLE other LIKE big');
        await conn.query('INSERT INTO other SELECT * FROM big');
      } finally {
        await conn.end();
      }
      const serverPid = Number(readFileSync(join(dirname(server.socketPath), 'mysqld.pid'), 'utf8'));
      const root = minimalStore({
        'app/etc/env.php': `<?php return ['db' => ['connection' => ['default' => ['host' => '127.0.0.1:${server.port}', 'dbname' => '${db}', 'username' => 'root', 'password' => '${server.password}']]]];\n`,
        'app/code/Acme/A.php': '<?php // old\n',
      });
      const b = await runCli(['setup:backup', '--code', '--db', '--root', root]);
      assert.equal(b.code, 0, b.stderr);
      const [code, dump] = ['_filesystem.tgz', '_db.sql'].map((end) =>
        readdirSync(backupsOf(root)).find((n) => n.endsWith(end))!,
      );
      writeFileSync(join(root, 'app/code/Acme/A.php'), '<?php // new\n');
      const watcher = await server.connect();
      await watcher.query(`UPDATE \`${db}\`.big SET v = 'changed' WHERE id = 1`);
      let shadows = 0;
      try {
        const run = spawnCli([
          'setup:rollback',
          '-c',
          code!,
          '-d',
          dump!,
          ...(full ? ['--full'] : []),
          '-n',
          '--root',
          root,
        ]);
        // killed while the dump loads into shadow tables (the trees are staged by then)
        shadows = await waitFor('shadow tables', async () => {
          const [r] = await watcher.query(
            `SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE '\\_\\_mbk%'`,
            [db],
          );
          const n = Number((r as Array<{ n: number }>)[0]!.n);
          return n > 1 ? n : undefined;
        });
        process.kill(serverPid, 'SIGKILL');
        const r = await run.done;
        assert.equal(r.code, 1, r.stderr);
        assert.doesNotMatch(r.stderr, /Internal error|stopped making progress|    at /);
        assert.match(
          r.stderr,
          /^Error: The database server went away during the rollback \(.*\): database killedrb_\w+ was not changed: nothing was changed; left behind: the shadow tables __mbk_\w+_\* in database killedrb_\w+ \(the next run removes them\)$/m,
        );
      } finally {
        watcher.destroy();
      }
      assert.ok(shadows > 1);
      assertNoLeftovers(root, (n) => [code, dump].includes(n) || n.endsWith('_manifest.json'));
      assert.equal(existsSync(flagOf(root)), false, 'maintenance off again');
      assert.equal(
        readFileSync(join(root, 'app/code/Acme/A.php'), 'utf8'),
        '<?php // new\n',
        'the code tree as before',
      );
    } finally {
      await server.stop();
    }
  });
}

for (const wasOn of [false, true]) {
  void test(`SIGHUP mid-backup (an SSH session drops): exit 129, undone, maintenance ${wasOn ? 'still on' : 'off'}`, async () => {
    const root = bigCodeStore(32);
    if (wasOn) writeFileSync(flagOf(root), '');
    const run = spawnCli(['setup:backup', '--code', '--root', root]);
    await faultMidWrite(
      root,
      () => run.child.pid,
      () => void run.child.kill('SIGHUP'),
    );
    const r = await run.done;
    assert.equal(r.code, 129, r.stderr);
    assert.match(r.stderr, /^Error: Interrupted by SIGHUP: nothing was changed; nothing was left behind$/m);
    assert.deepEqual(assertNoLeftovers(root), []);
    assert.equal(existsSync(flagOf(root)), wasOn);
  });
}

void test('a closed output pipe (`2>&1 | head -1`, `| head -1`) neither crashes nor stops the run', async () => {
  const root = bigCodeStore(24);
  const rcFile = join(tempDir('mbk-rc-'), 'rc');
  for (const [redirect, json] of [
    ['2>&1', false],
    ['', false],
    ['2>&1', true],
  ] as const) {
    // head exits after the first line: every later write of magebackup meets a closed pipe (EPIPE).
    await promisify(execFile)('bash', [
      '-c',
      `'${process.execPath}' '${BIN}' setup:backup --code --root '${root}' ${json ? '--json' : ''} ${redirect} | head -1 >/dev/null; echo "\${PIPESTATUS[0]}" > '${rcFile}'`,
    ]);
    assert.equal(readFileSync(rcFile, 'utf8').trim(), '0', `exit code with ${redirect || 'stdout'} closed`);
  }
  // Three complete backups (manifest each), nothing else: no lock, no partial, no marker; maintenance off.
  const names = assertNoLeftovers(root, (n) => /^\d+_(filesystem\.tgz|manifest\.json)$/.test(n));
  assert.equal(names.filter((n) => n.endsWith('_manifest.json')).length, 3, names.join(', '));
  assert.equal(existsSync(flagOf(root)), false);
});

/** Ctrl-C typed on the terminal while the run is frozen mid-write: the terminal turns it into SIGINT. */
async function ctrlCOnPty(root: string, args: string[], midway: () => boolean) {
  const pty = spawnOnPty(args);
  await waitFor('the spinner', () =>
    /\u280b|\u2819|\u2839|\u2838|\u283c|\u2834|\u2826|\u2827|\u2807|\u280f/.test(pty.output()),
  );
  const pid = await waitFor('the run holding the lock', () => lockPid(root));
  await waitFor('the run to be mid-way', midway);
  await stopProcess(pid);
  try {
    assert.ok(midway(), 'still mid-way when frozen');
    pty.type('\x03');
    // The terminal's line discipline raises SIGINT (2) for the foreground job; in raw mode it would not.
    await waitFor('SIGINT pending', () => signalPending(pid, 2), 10_000).catch((err: unknown) => {
      const why = execSync(
        `stty -a < /proc/${pid}/fd/2 | grep -o -- '-\\?isig'; ps -o pid,pgid,tpgid,stat,cmd -p ${pid}; grep Pnd /proc/${pid}/status`,
      ).toString();
      throw new Error(
        `${(err as Error).message}; output so far: ${JSON.stringify(pty.output().slice(-300))}; ${why}`,
      );
    });
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  return pty.done;
}

/**
 * The terminal goes away under a run (an SSH session drops, a window is closed): Node, as it exits, puts back the
 * terminal's settings and aborted (exit 134, a native stack trace) when the terminal was gone.
 */
void test('the terminal closes under a run: its own exit code (129 when hung up, 0 when it completes), not 134', async () => {
  for (const hangup of [true, false]) {
    const root = bigCodeStore(32);
    const dir = tempDir('mbk-pty-');
    const [rcFile, script] = [join(dir, 'rc'), join(dir, 'run.sh')];
    const quoted = [process.execPath, BIN, 'setup:backup', '--code', '--root', root]
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    // The shell ignores SIGHUP so that it outlives the terminal and records the exit code (Node resets it). It
    // must be the session's leader (`exec`): a leader that dies of the hangup, as `sh -c` does where $SHELL is dash,
    // takes the foreground group, our run included, with it (SIGHUP, 129).
    writeFileSync(script, `trap '' HUP\n${quoted} &\nwait $!\necho $? > ${rcFile}\n`);
    const pty = spawn('script', ['-qec', `exec bash ${script}`, '/dev/null'], {
      stdio: ['pipe', 'ignore', 'ignore'],
      env: { ...process.env, CI: '', TERM: 'xterm', NO_COLOR: '1' },
    });
    const pid = await waitFor('the run holding the lock', () => lockPid(root));
    await waitFor('the run to be mid-way', () => !!partialName(root));
    pty.kill('SIGKILL'); // the terminal's master side closes with it
    if (hangup) process.kill(pid, 'SIGHUP'); // what the session's shell sends its jobs as it goes
    const rc = await waitFor(
      'the exit code',
      () => existsSync(rcFile) && readFileSync(rcFile, 'utf8').trim(),
    );
    assert.equal(rc, hangup ? '129' : '0', `exit code, ${hangup ? 'hung up' : 'left to complete'}`);
    const left = assertNoLeftovers(root, (n) => /^\d+_(filesystem\.tgz|manifest\.json)$/.test(n));
    assert.equal(left.length, hangup ? 0 : 2, left.join(', '));
    assert.equal(existsSync(flagOf(root)), false);
  }
});

void test('Ctrl-C on a real terminal while the spinner runs interrupts setup:backup: exit 130, nothing left', async () => {
  const root = bigCodeStore(32);
  const r = await ctrlCOnPty(root, ['setup:backup', '--code', '--root', root], () => !!partialName(root));
  assert.equal(r.code, 130, r.output);
  assert.match(r.output, /Interrupted by SIGINT: nothing was changed; nothing was left behind/);
  assert.deepEqual(assertNoLeftovers(root), []);
  assert.equal(existsSync(flagOf(root)), false);
});

void test('Ctrl-C on a real terminal during setup:rollback --yes verification: nothing is swapped', async () => {
  const root = bigCodeStore(32);
  const made = await runCli(['setup:backup', '--code', '--root', root, '--json']);
  assert.equal(made.code, 0, made.stderr);
  const { parts } = JSON.parse(made.stdout) as { parts: Array<{ file: string }> };
  // A file made after the backup: a rollback that went ahead would remove it.
  writeFileSync(join(root, 'after-backup.txt'), 'new');
  const staging = () => readdirSync(root).some((n) => n.startsWith('.magebackup-'));
  const r = await ctrlCOnPty(
    root,
    ['setup:rollback', '--yes', '-c', parts[0]!.file, '--root', root],
    staging,
  );
  assert.equal(r.code, 130, r.output);
  assert.match(r.output, /Interrupted by SIGINT/);
  assert.equal(readFileSync(join(root, 'after-backup.txt'), 'utf8'), 'new', 'the live tree was not touched');
  assert.equal(staging(), false, 'staging removed');
  assertNoLeftovers(root, (n) => /^\d+_(filesystem\.tgz|manifest\.json)$/.test(n));
  assert.equal(existsSync(flagOf(root)), false);
});

function partialName(root: string): string | undefined {
  const dir = backupsOf(root);
  if (!existsSync(dir)) return undefined;
  return readdirSync(dir).find((n) => n.endsWith('.partial'));
}

void test('--root that does not exist: exit 1 naming it, for every command', async () => {
  const missing = join(tempDir('mbk-noroot-'), 'no', 'such', 'dir');
  for (const args of [
    ['info:backups:list'],
    ['snapshot:list'],
    ['backups:verify'],
    ['backups:prune'],
    ['maintenance:status'],
    ['setup:backup', '--code'],
    ['setup:rollback', '--yes', '-c', '1_filesystem.tgz'],
    ['snapshot:restore', '--yes', '1'],
  ]) {
    const r = await runCli([...args, '--root', missing]);
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.match(
      r.stderr,
      new RegExp(`^Error: Magento root ${missing} does not exist \\(see --root\\)$`, 'm'),
      args[0],
    );
    assert.equal(r.stdout, '', args[0]);
  }
  assert.equal(existsSync(missing), false, 'nothing was created');
});

void test('the parts of a run that did not complete: marked in info:backups:list, refused by setup:rollback', async () => {
  const root = minimalStore();
  const made = await runCli(['setup:backup', '--code', '--root', root, '--json']);
  assert.equal(made.code, 0, made.stderr);
  const done = (JSON.parse(made.stdout) as { timestamp: number }).timestamp;
  // What a killed run leaves: a finished part and its run marker, no manifest.
  const killed = done + 100;
  const dir = backupsOf(root);
  writeFileSync(join(dir, `${killed}_filesystem.tgz`), readFileSync(join(dir, `${done}_filesystem.tgz`)));
  writeFileSync(
    join(dir, `${killed}_manifest.json.running`),
    JSON.stringify({ pid: 999999, host: 'gone', command: 'setup:backup', started: '' }),
  );
  const list = await runCli(['info:backups:list', '--root', root]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`\\| ${killed}_filesystem\\.tgz +\\| code \\(incomplete\\) +\\|`));
  assert.match(list.stdout, new RegExp(`\\| ${done}_filesystem\\.tgz +\\| code +\\|`));
  const json = JSON.parse((await runCli(['info:backups:list', '--root', root, '--json'])).stdout) as {
    backups: Array<{ name: string; incomplete: boolean }>;
  };
  assert.deepEqual(
    json.backups.map((b) => [b.name, b.incomplete]),
    [
      [`${killed}_filesystem.tgz`, true],
      [`${done}_filesystem.tgz`, false],
    ],
  );
  writeFileSync(join(root, 'after.txt'), 'new');
  const r = await runCli(['setup:rollback', '--yes', '-c', `${killed}_filesystem.tgz`, '--root', root]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^Error: Backup file \S+ belongs to a run that did not complete/m);
  assert.equal(readFileSync(join(root, 'after.txt'), 'utf8'), 'new');
  assert.equal(existsSync(flagOf(root)), false);
});

void test('a malformed env.php: one line naming the file and line, never a piece of its content', async () => {
  const root = minimalStore({
    'app/etc/env.php':
      "<?php\nreturn ['db' => ['connection' => ['default' => [\n  'dbname' => 'magento',\n  'password' => 'Xq'Sup3rS3cretPw',\n]]]];\n",
  });
  const r = await runCli(['setup:backup', '--db', '--root', root]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /^Error: Cannot parse \S+env\.php: PHP syntax error on line 4 \(its content is not shown/m,
  );
  assert.doesNotMatch(r.stderr, /Sup3r|S3cret|Xq/);
  assert.equal(existsSync(flagOf(root)), false);
  assertNoLeftovers(root);
});

void test('a stop signal while the program still loads: the run starts interrupted (exit 130/129), nothing made', async () => {
  // Module hooks send the signal while bin/ imports the CLI: deterministic, however fast the machine is. Without
  // the held signals, Node's default action killed the process (143, no message) in the first ~0.5 s.
  const dir = tempDir('mbk-hooks-');
  writeFileSync(
    join(dir, 'hooks.mjs'),
    `export async function resolve(specifier, context, next) {
  if (specifier.endsWith('/cli/main.js')) for (const s of process.env.MBK_TEST_SIGNALS.split(',')) process.kill(process.pid, s);
  return next(specifier, context);
}\n`,
  );
  writeFileSync(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n`,
  );
  const nodeArgs = ['--import', join(dir, 'register.mjs')];
  const root = minimalStore();
  for (const [signal, code] of [
    ['SIGTERM', 130],
    ['SIGHUP', 129],
  ] as const) {
    const r = await runCli(['setup:backup', '--code', '--root', root], {
      nodeArgs,
      env: { MBK_TEST_SIGNALS: signal },
    });
    assert.equal(r.signal, null, `${signal}: not killed by it`);
    assert.equal(r.code, code, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^Error: Interrupted by ${signal}: nothing was changed; nothing was left behind$`, 'm'),
    );
    assert.deepEqual(assertNoLeftovers(root), [], 'no backup, nothing left');
  }
  // A command that never listens (the version) still exits with the signal's code.
  const v = await runCli(['--version'], { nodeArgs, env: { MBK_TEST_SIGNALS: 'SIGINT' } });
  assert.deepEqual([v.signal, v.code], [null, 130], v.stderr);
});
