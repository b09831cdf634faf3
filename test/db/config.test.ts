import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseHost, readEnvPhp, resolveDbConfig, PhpExpression } from '../../src/db/config.js';
import { openConnection, describeServer } from '../../src/db/connect.js';
import { CliError, DbAuthError, ExitCode, UsageError } from '../../src/errors.js';
import { getTestServer } from '../../fixtures/mariadb.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function store(envPhp: string | null): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mbk-config-'));
  dirs.push(root);
  if (envPhp !== null) {
    mkdirSync(path.join(root, 'app', 'etc'), { recursive: true });
    writeFileSync(path.join(root, 'app', 'etc', 'env.php'), envPhp);
  }
  return root;
}

const ENV_PHP = `<?php
// a Magento 2 env.php
return [
    'backend' => ['frontName' => 'admin_x'],
    'crypt' => ['key' => 'abc'],
    'db' => [
        'table_prefix' => 'mg_',
        'connection' => [
            'default' => [
                'host' => 'db.internal:3307',
                'dbname' => "magento",
                'username' => 'mage',
                'password' => 'p\\'a"s$s',
                'model' => 'mysql4',
                'engine' => 'innodb',
                'initStatements' => 'SET NAMES utf8;',
                'active' => '1',
                'driver_options' => [1014 => false],
            ],
        ],
    ],
    'cache_types' => array('config' => 1, 'layout' => 1),
    'install' => ['date' => 'Mon, 01 Jan 2024 00:00:00 +0000'],
];
`;

void test('readEnvPhp returns the PHP array as plain JS', async () => {
  const root = store(ENV_PHP);
  type Tree = { [k: string]: Tree } & Record<string, unknown>;
  const conf = (await readEnvPhp(path.join(root, 'app/etc/env.php'))) as Tree;
  const def = conf['db']!['connection']!['default']!;
  assert.equal(def['password'], 'p\'a"s$s');
  assert.equal(conf['db']!['table_prefix'], 'mg_');
  assert.deepEqual(conf['cache_types'], { config: 1, layout: 1 });
  assert.deepEqual(def['driver_options'], { '1014': false });
});

void test('readEnvPhp: lists, negative numbers, null, concatenation, computed values', async () => {
  const root = store(
    `<?php return ['l' => [1, 2, 'x'], 'n' => -5, 'z' => null, 'c' => 'a' . 'b', 'f' => getenv('X')];`,
  );
  const conf = (await readEnvPhp(path.join(root, 'app/etc/env.php'))) as Record<string, unknown>;
  assert.deepEqual(conf['l'], [1, 2, 'x']);
  assert.equal(conf['n'], -5);
  assert.equal(conf['z'], null);
  assert.equal(conf['c'], 'ab');
  assert.ok(conf['f'] instanceof PhpExpression);
});

void test('env.php values are used, with host:port and the table prefix', async () => {
  const cfg = await resolveDbConfig({ root: store(ENV_PHP), flags: {}, env: {} });
  assert.deepEqual(cfg, {
    host: 'db.internal',
    port: 3307,
    user: 'mage',
    password: 'p\'a"s$s',
    database: 'magento',
    tablePrefix: 'mg_',
  });
});

void test('host forms: socket path, localhost:/socket, [ipv6]:port, plain host', () => {
  assert.deepEqual(parseHost('/run/mysqld/mysqld.sock', 'x'), { socketPath: '/run/mysqld/mysqld.sock' });
  assert.deepEqual(parseHost('localhost:/tmp/mysql.sock', 'x'), { socketPath: '/tmp/mysql.sock' });
  assert.deepEqual(parseHost('[::1]:3308', 'x'), { host: '::1', port: 3308 });
  assert.deepEqual(parseHost('db', 'x'), { host: 'db' });
  assert.deepEqual(parseHost('127.0.0.1:3306', 'x'), { host: '127.0.0.1', port: 3306 });
  assert.throws(
    () => parseHost('db:abc', 'env.php: host'),
    (e: unknown) => e instanceof UsageError && /env\.php: host/.test(e.message),
  );
});

void test('a socket host in env.php', async () => {
  const php = ENV_PHP.replace("'db.internal:3307'", "'localhost:/var/run/custom.sock'");
  const cfg = await resolveDbConfig({ root: store(php), flags: {}, env: {} });
  assert.equal(cfg.socketPath, '/var/run/custom.sock');
  assert.equal(cfg.host, undefined);
});

void test('environment variables override env.php; flags override both', async () => {
  const root = store(ENV_PHP);
  const env = {
    MAGEBACKUP_DB_HOST: 'envhost',
    MAGEBACKUP_DB_PORT: '3310',
    MAGEBACKUP_DB_NAME: 'envdb',
    MAGEBACKUP_DB_USER: 'envuser',
    MAGEBACKUP_DB_PASSWORD: 'envpw',
  };
  const byEnv = await resolveDbConfig({ root, flags: {}, env });
  assert.deepEqual(byEnv, {
    host: 'envhost',
    port: 3310,
    user: 'envuser',
    password: 'envpw',
    database: 'envdb',
    tablePrefix: 'mg_',
  });
  const warnings: { code: string; message: string }[] = [];
  const byFlags = await resolveDbConfig({
    root,
    flags: { host: 'flaghost', port: 3320, name: 'flagdb', user: 'flaguser', password: 'flagpw' },
    env,
    onWarning: (w) => warnings.push(w),
  });
  assert.deepEqual(byFlags, {
    host: 'flaghost',
    port: 3320,
    user: 'flaguser',
    password: 'flagpw',
    database: 'flagdb',
    tablePrefix: 'mg_',
  });
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.code, 'PASSWORD_ON_CLI');
  assert.ok(!warnings[0]!.message.includes('flagpw'), 'the warning never shows the password');
  const bySocket = await resolveDbConfig({ root, flags: { socket: '/tmp/x.sock' }, env: {} });
  assert.equal(bySocket.socketPath, '/tmp/x.sock');
  assert.equal(bySocket.host, undefined);
});

void test('an empty password from the environment is a valid override', async () => {
  const cfg = await resolveDbConfig({ root: store(ENV_PHP), flags: {}, env: { MAGEBACKUP_DB_PASSWORD: '' } });
  assert.equal(cfg.password, '');
});

void test('missing env.php: one line naming the file, unless flags give everything', async () => {
  const root = store(null);
  await assert.rejects(
    resolveDbConfig({ root, flags: {}, env: {} }),
    (e: unknown) =>
      e instanceof CliError &&
      e.message.includes(path.join(root, 'app', 'etc', 'env.php')) &&
      /not found/.test(e.message),
  );
  const cfg = await resolveDbConfig({
    root,
    flags: { host: '127.0.0.1', port: 3306, name: 'm', user: 'u' },
    env: {},
  });
  assert.equal(cfg.database, 'm');
  assert.equal(cfg.tablePrefix, '');
});

void test('unparsable env.php: one line naming the file and the line', async () => {
  const root = store("<?php\nreturn [\n  'db' => [\n    'connection' => ,\n];\n");
  await assert.rejects(resolveDbConfig({ root, flags: {}, env: {} }), (e: unknown) => {
    assert.ok(e instanceof CliError);
    assert.ok(e.message.includes('env.php'), e.message);
    assert.ok(/line 4/.test(e.message), e.message);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
});

void test('env.php without a database connection, or without dbname', async () => {
  await assert.rejects(
    resolveDbConfig({ root: store("<?php return ['backend' => []];"), flags: {}, env: {} }),
    (e: unknown) => e instanceof CliError && /db\.connection\.default/.test(e.message),
  );
  await assert.rejects(
    resolveDbConfig({
      root: store(
        "<?php return ['db' => ['connection' => ['default' => ['host' => 'h', 'username' => 'u']]]];",
      ),
      flags: {},
      env: {},
    }),
    (e: unknown) => e instanceof CliError && /dbname/.test(e.message),
  );
  await assert.rejects(
    resolveDbConfig({
      root: store(
        "<?php return ['db' => ['connection' => ['default' => ['host' => getenv('H'), 'dbname' => 'd', 'username' => 'u']]]];",
      ),
      flags: {},
      env: {},
    }),
    (e: unknown) => e instanceof CliError && /host is computed at run time/.test(e.message),
  );
});

void test('connection errors: refused login (exit 12), unknown database, unreachable server — password never shown', async () => {
  const server = await getTestServer();
  const good = {
    host: server.host,
    port: server.port,
    user: 'root',
    password: server.password,
    database: 'mysql',
    tablePrefix: '',
  };
  const ok = await openConnection(good);
  await ok.end();

  const secret = 'Sup3rSecretPw!';
  await assert.rejects(openConnection({ ...good, password: secret }), (e: unknown) => {
    assert.ok(e instanceof DbAuthError, String(e));
    assert.equal(e.exitCode, ExitCode.DB_AUTH);
    assert.ok(e.message.includes(`${server.host}:${server.port}`), e.message);
    assert.ok(!e.message.includes(secret));
    assert.ok(!e.message.includes('\n'));
    return true;
  });

  await assert.rejects(openConnection({ ...good, database: 'no_such_db_xyz' }), (e: unknown) => {
    assert.ok(e instanceof CliError && !(e instanceof DbAuthError), String(e));
    assert.ok(e.message.includes("'no_such_db_xyz'"), e.message);
    return true;
  });

  // a port nothing listens on: bind-free port 1 on loopback refuses
  await assert.rejects(openConnection({ ...good, port: 1 }), (e: unknown) => {
    assert.ok(e instanceof CliError, String(e));
    assert.ok(e.message.includes(`${server.host}:1`), e.message);
    assert.ok(/connection refused/.test(e.message), e.message);
    return true;
  });

  await assert.rejects(
    openConnection({ ...good, host: undefined, port: undefined, socketPath: '/nonexistent/mysqld.sock' }),
    (e: unknown) => {
      assert.ok(e instanceof CliError, String(e));
      assert.ok(e.message.includes('/nonexistent/mysqld.sock'), e.message);
      return true;
    },
  );
  assert.equal(describeServer({ ...good, host: '::1', port: 3306 }), '[::1]:3306');
});

void test('the parser is loaded from its single-file build without leaving a global `self` behind', async () => {
  assert.equal((globalThis as { self?: unknown }).self, undefined);
  const conf = await readEnvPhp(path.join(store(ENV_PHP), 'app', 'etc', 'env.php'));
  assert.equal(typeof conf, 'object');
  assert.equal((globalThis as { self?: unknown }).self, undefined);
  assert.equal('self' in globalThis, false);
});
