/**
 * A MariaDB server on an EXISTING datadir (a copy of the cached, generated benchmark database).
 *
 * fixtures/mariadb.ts always initialises a fresh datadir, so re-running the benchmark on a cached database needs
 * its own small starter. Same server settings as the harness (so the numbers match a test server) and the
 * harness's WATCHDOG: mariadbd dies, and its run dir is removed, when our end of the watchdog's stdin closes —
 * also when this process is killed.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { WATCHDOG, findServerBinaries, freePort } from '../fixtures/mariadb.js';

export interface BenchServer {
  host: string;
  port: number;
  user: 'root';
  password: string;
  connect(database?: string): Promise<mysql.Connection>;
  /** argv (no password) + env (MYSQL_PWD) for the stock clients */
  clientArgs(): { args: string[]; env: NodeJS.ProcessEnv };
  stop(): Promise<void>;
}

export function serverSettings(): string[] {
  return [
    '--innodb-buffer-pool-size=256M',
    '--innodb-log-file-size=256M',
    '--innodb-flush-log-at-trx-commit=2',
    '--innodb-doublewrite=0',
    '--skip-name-resolve',
    '--max-allowed-packet=64M',
    '--max-connections=500',
    '--event-scheduler=OFF',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
    '--performance-schema=OFF',
    '--skip-log-bin',
  ];
}

export async function startOnDataDir(
  dataDir: string,
  password: string,
  throwaway: boolean,
): Promise<BenchServer> {
  const bins = findServerBinaries();
  const runDir = mkdtempSync(join(tmpdir().length <= 60 ? tmpdir() : '/tmp', 'magebackup-bench-db-'));
  const socket = join(runDir, 'mysqld.sock');
  const errorLog = join(runDir, 'error.log');
  const port = await freePort();
  const args = [
    '--no-defaults',
    `--datadir=${dataDir}`,
    `--socket=${socket}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--pid-file=${join(runDir, 'mysqld.pid')}`,
    `--log-error=${errorLog}`,
    ...serverSettings(),
    ...(throwaway ? ['--innodb-fast-shutdown=2'] : []),
    ...(process.getuid?.() === 0 ? ['--user=root'] : []),
  ];
  const child = spawn('/bin/sh', ['-c', WATCHDOG, 'magebackup-bench-db', runDir, bins.server, ...args], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.on('exit', () => {
      exited = true;
      resolve();
    });
    child.on('error', () => {
      exited = true;
      resolve();
    });
  });
  const log = (): string => {
    try {
      return readFileSync(errorLog, 'utf8').trimEnd().split('\n').slice(-15).join('\n');
    } catch {
      return '(no error log)';
    }
  };
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.stdin?.end();
      await exit;
    }
    rmSync(runDir, { recursive: true, force: true });
  };
  const connect = (database?: string): Promise<mysql.Connection> =>
    mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: 'root',
      password,
      ...(database !== undefined ? { database } : {}),
      charset: 'utf8mb4_general_ci',
    });

  const deadline = Date.now() + 180_000;
  for (;;) {
    if (exited) throw new Error(`${bins.server} exited during startup on ${dataDir}:\n${log()}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${bins.server} did not accept connections within 180 s:\n${log()}`);
    }
    if (existsSync(socket)) {
      try {
        const c = await connect();
        await c.end();
        break;
      } catch (err) {
        if (/Access denied/i.test((err as Error).message)) {
          await stop();
          throw new Error(`cached database at ${dataDir} refused the saved root password`, { cause: err });
        }
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host: '127.0.0.1',
    port,
    user: 'root',
    password,
    connect,
    clientArgs: () => ({
      args: ['--no-defaults', '--protocol=TCP', '--host=127.0.0.1', `--port=${port}`, '--user=root'],
      env: { ...process.env, MYSQL_PWD: password },
    }),
    stop,
  };
}
