/**
 * Where the store's database is: app/etc/env.php (`db.connection.default`, `db.table_prefix`), read with a
 * real PHP parser, overridden by MAGEBACKUP_DB_* environment variables, overridden by command-line flags.
 */
import { promises as fsp, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Engine as PhpEngine } from 'php-parser';
import { CliError, UsageError, errnoCode } from '../errors.js';
import { WarningCode, type WarningCodeValue } from '../events.js';
import type { DbConnectionConfig } from './types.js';

export interface DbFlags {
  host?: string;
  port?: number;
  socket?: string;
  name?: string;
  user?: string;
  password?: string;
}

export interface ResolveDbConfigOptions {
  root: string;
  flags: DbFlags;
  env: NodeJS.ProcessEnv;
  onWarning?: (w: { code: WarningCodeValue; message: string }) => void;
}

/** Where PHP's mysql driver looks for the socket when the host is `localhost` (it never uses TCP then). */
export const DEFAULT_SOCKETS = [
  '/var/run/mysqld/mysqld.sock',
  '/run/mysqld/mysqld.sock',
  '/var/lib/mysql/mysql.sock',
  '/tmp/mysql.sock',
];

/** A value env.php computes at run time (a function call, a constant): kept as a marker, not evaluated. */
export class PhpExpression {
  constructor(readonly kind: string) {}
}

type PhpNode = { kind: string; [k: string]: unknown };

let phpEngine: typeof PhpEngine | undefined;

/**
 * php-parser, loaded when an env.php is first read (most commands never read one), from the single-file build
 * the package ships (dist/php-parser.min.js, built from the same sources): its src/ entry is ~150 modules to
 * resolve and compile, 145 ms of CPU at each start on the bench machine against 75 ms for the one file.
 * That build is a UMD bundle for browsers that passes the global `self` to its factory; Node has none, so it
 * is defined for the synchronous require only (no other code can run meanwhile) and removed again.
 */
function loadPhpParser(): typeof PhpEngine {
  if (phpEngine) return phpEngine;
  const g = globalThis as { self?: unknown };
  const shim = g.self === undefined;
  if (shim) g.self = globalThis;
  try {
    const loaded = createRequire(import.meta.url)('php-parser/dist/php-parser.min.js') as {
      Engine?: typeof PhpEngine;
    };
    if (typeof loaded.Engine !== 'function') throw new Error('php-parser: its bundle exports no Engine');
    phpEngine = loaded.Engine;
  } finally {
    if (shim) delete g.self;
  }
  return phpEngine;
}

function toJs(node: PhpNode, file: string): unknown {
  switch (node.kind) {
    case 'string':
      return node['value'];
    case 'number': {
      const raw = String(node['value']).replace(/_/g, '');
      const n = raw.startsWith('0x') || raw.startsWith('0X') ? parseInt(raw, 16) : Number(raw);
      return Number.isNaN(n) ? raw : n;
    }
    case 'boolean':
      return node['value'];
    case 'nullkeyword':
      return null;
    case 'unary': {
      const v = toJs(node['what'] as PhpNode, file);
      if (node['type'] === '-' && typeof v === 'number') return -v;
      if (node['type'] === '+' && typeof v === 'number') return v;
      if (node['type'] === '!') return !v;
      return new PhpExpression('unary');
    }
    case 'bin': {
      if (node['type'] === '.') {
        const l = toJs(node['left'] as PhpNode, file);
        const r = toJs(node['right'] as PhpNode, file);
        if (
          (typeof l === 'string' || typeof l === 'number') &&
          (typeof r === 'string' || typeof r === 'number')
        ) {
          return String(l) + String(r);
        }
      }
      return new PhpExpression('bin');
    }
    case 'array': {
      const items = node['items'] as (PhpNode | null)[];
      const entries: [string | number, unknown][] = [];
      let next = 0;
      for (const item of items) {
        if (!item) continue;
        if (item.kind === 'entry') {
          const keyNode = item['key'] as PhpNode | null;
          const value = toJs(item['value'] as PhpNode, file);
          if (keyNode === null) {
            entries.push([next++, value]);
          } else {
            const k = toJs(keyNode, file);
            if (typeof k === 'number' && Number.isInteger(k)) {
              entries.push([k, value]);
              if (k >= next) next = k + 1;
            } else {
              entries.push([String(k), value]);
            }
          }
        } else {
          entries.push([next++, toJs(item, file)]);
        }
      }
      const isList = entries.every(([k], i) => k === i);
      if (isList) return entries.map(([, v]) => v);
      const obj: Record<string, unknown> = {};
      for (const [k, v] of entries) obj[String(k)] = v;
      return obj;
    }
    default:
      return new PhpExpression(node.kind);
  }
}

/** Parse a Magento config file (`<?php return [...];`) into plain JS. Throws CliError naming the file. */
export async function readEnvPhp(file: string): Promise<unknown> {
  let code: string;
  try {
    code = await fsp.readFile(file, 'utf8');
  } catch (err) {
    const c = errnoCode(err);
    const why = c === 'ENOENT' ? 'not found' : c === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new CliError(`Cannot read ${file}: ${why}`, { cause: err });
  }
  const Engine = loadPhpParser();
  const parser = new Engine({
    parser: { php8: true, suppressErrors: false, extractDoc: false },
    ast: { withPositions: false },
  });
  let program: { children: PhpNode[] };
  try {
    program = parser.parseCode(code, path.basename(file)) as unknown as { children: PhpNode[] };
  } catch (err) {
    // php-parser's message quotes the tokens around the error: in env.php that can be a piece of the password.
    // Only the line number is shown.
    const line = /\bline (\d+)/.exec((err as Error).message)?.[1];
    throw new CliError(
      `Cannot parse ${file}: PHP syntax error${line ? ` on line ${line}` : ''} (its content is not shown: it holds secrets)`,
    );
  }
  const ret = program.children.find((n) => n.kind === 'return');
  if (!ret || !ret['expr'])
    throw new CliError(`Cannot read ${file}: it does not return a configuration array`);
  return toJs(ret['expr'] as PhpNode, file);
}

function get(obj: unknown, ...keys: string[]): unknown {
  let cur = obj;
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function parsePort(value: string | number, where: string): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`${where}: not a port number 1-65535`);
  return n;
}

/**
 * Magento's `host` forms: `db`, `db:3307`, `127.0.0.1`, `[::1]:3307`, `/run/mysqld/mysqld.sock`,
 * `localhost:/tmp/mysql.sock`.
 */
export function parseHost(
  host: string,
  where: string,
): { host?: string; port?: number; socketPath?: string } {
  const h = host.trim();
  if (h === '') return {};
  if (h.startsWith('/')) return { socketPath: h };
  const m6 = /^\[([^\]]+)\](?::(.*))?$/.exec(h);
  if (m6) return { host: m6[1]!, ...(m6[2] !== undefined ? { port: parsePort(m6[2], where) } : {}) };
  const colon = h.indexOf(':');
  if (colon > 0 && h.indexOf(':', colon + 1) === -1) {
    const name = h.slice(0, colon);
    const rest = h.slice(colon + 1);
    if (rest.startsWith('/')) return { socketPath: rest };
    return { host: name, port: parsePort(rest, where) };
  }
  return { host: h };
}

function asString(v: unknown, file: string, key: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (v instanceof PhpExpression) {
    throw new CliError(
      `${file}: ${key} is computed at run time (${v.kind}); pass it with a flag or MAGEBACKUP_DB_* variable`,
    );
  }
  throw new CliError(`${file}: ${key} is not a string`);
}

export async function resolveDbConfig(o: ResolveDbConfigOptions): Promise<DbConnectionConfig> {
  const file = path.join(o.root, 'app', 'etc', 'env.php');
  const env = o.env;
  const f = o.flags;
  const pick = (flag: string | undefined, envName: string): string | undefined =>
    flag !== undefined && flag !== ''
      ? flag
      : env[envName] !== undefined && env[envName] !== ''
        ? env[envName]
        : undefined;

  const hostOverride = pick(f.host, 'MAGEBACKUP_DB_HOST');
  const portOverride = f.port !== undefined ? String(f.port) : pick(undefined, 'MAGEBACKUP_DB_PORT');
  const socketOverride = pick(f.socket, 'MAGEBACKUP_DB_SOCKET');
  const nameOverride = pick(f.name, 'MAGEBACKUP_DB_NAME');
  const userOverride = pick(f.user, 'MAGEBACKUP_DB_USER');
  // an empty password is a valid override (a passwordless user), so only undefined means "not given"
  const passwordOverride = f.password !== undefined ? f.password : env['MAGEBACKUP_DB_PASSWORD'];
  if (f.password !== undefined) {
    o.onWarning?.({
      code: WarningCode.PASSWORD_ON_CLI,
      message:
        'A password given on the command line is visible to other users of this machine (ps, shell history); prefer MAGEBACKUP_DB_PASSWORD or app/etc/env.php',
    });
  }

  const overridesComplete = nameOverride !== undefined && userOverride !== undefined;
  let conf: unknown = undefined;
  if (!overridesComplete || existsSync(file)) {
    conf = await readEnvPhp(file);
  }
  const conn = conf === undefined ? undefined : get(conf, 'db', 'connection', 'default');
  if (
    conf !== undefined &&
    (conn === undefined || conn === null || typeof conn !== 'object') &&
    !overridesComplete
  ) {
    throw new CliError(`${file}: no database connection (db.connection.default) is configured`);
  }
  const fromFile = (key: string): string | undefined =>
    conn === undefined ? undefined : asString(get(conn, key), file, `db.connection.default.${key}`);

  const cfg: DbConnectionConfig = { user: '', password: '', database: '', tablePrefix: '' };

  // host / port / socket: flags and env replace the file's host as a whole
  let where: { host?: string; port?: number; socketPath?: string };
  if (socketOverride !== undefined) {
    where = { socketPath: socketOverride };
  } else if (hostOverride !== undefined) {
    where = parseHost(hostOverride, f.host !== undefined ? '--db-host' : 'MAGEBACKUP_DB_HOST');
  } else {
    const fileHost = fromFile('host') ?? 'localhost';
    where = parseHost(fileHost, `${file}: db.connection.default.host`);
    const filePort = conn === undefined ? undefined : get(conn, 'port');
    if (
      filePort !== undefined &&
      filePort !== null &&
      where.port === undefined &&
      where.socketPath === undefined
    ) {
      where.port = parsePort(filePort as string | number, `${file}: db.connection.default.port`);
    }
  }
  if (portOverride !== undefined) {
    where.port = parsePort(portOverride, f.port !== undefined ? '--db-port' : 'MAGEBACKUP_DB_PORT');
    if (socketOverride === undefined && where.socketPath !== undefined) {
      // a port makes sense only over TCP: the socket came from env.php, the user asks for TCP
      delete where.socketPath;
      where.host = 'localhost';
    }
  }
  if (
    where.socketPath === undefined &&
    (where.host === undefined || where.host === 'localhost') &&
    where.port === undefined
  ) {
    // PHP connects to `localhost` through the default socket; do the same when one exists
    const sock = DEFAULT_SOCKETS.find((s) => existsSync(s));
    if (sock !== undefined) where = { socketPath: sock };
    else where = { host: 'localhost', port: 3306 };
  }
  if (where.socketPath !== undefined) cfg.socketPath = where.socketPath;
  else {
    cfg.host = where.host ?? 'localhost';
    cfg.port = where.port ?? 3306;
  }

  const database = nameOverride ?? fromFile('dbname');
  if (database === undefined || database === '') {
    throw new CliError(`${file}: db.connection.default.dbname is not set (or pass --db-name)`);
  }
  const user = userOverride ?? fromFile('username');
  if (user === undefined || user === '') {
    throw new CliError(`${file}: db.connection.default.username is not set (or pass --db-user)`);
  }
  cfg.database = database;
  cfg.user = user;
  cfg.password = passwordOverride ?? fromFile('password') ?? '';
  const prefix = conf === undefined ? undefined : get(conf, 'db', 'table_prefix');
  cfg.tablePrefix =
    prefix === undefined || prefix === null ? '' : (asString(prefix, file, 'db.table_prefix') ?? '');
  return cfg;
}
