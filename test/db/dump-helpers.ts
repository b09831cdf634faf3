/** Shared by the dumper tests: dump a database to a file, load a file with the stock client. */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { TestServer } from '../../fixtures/mariadb.js';
import { dumpDatabase, type DumpOptions, type DumpResult } from '../../src/db/dump.js';
import type { DbConnectionConfig } from '../../src/db/types.js';
import type { MagebackupEvent } from '../../src/events.js';
import { writeAtomic } from '../../src/fs/atomic.js';

export function dumpConfig(
  server: Pick<TestServer, 'host' | 'port' | 'password'>,
  database: string,
): DbConnectionConfig {
  return {
    host: server.host,
    port: server.port,
    user: 'root',
    password: server.password,
    database,
    tablePrefix: '',
  };
}

let counter = 0;

/** Our dump of `database` into a new file in `dir`. */
export async function dumpTo(
  server: TestServer,
  dir: string,
  database: string,
  o: Partial<DumpOptions> = {},
): Promise<{ file: string; result: DumpResult; events: MagebackupEvent[] }> {
  const file = path.join(dir, `dump-${process.pid}-${++counter}.sql${o.compress ? '.gz' : ''}`);
  const events: MagebackupEvent[] = [];
  const result = await writeAtomic(file, (outFile) =>
    dumpDatabase({
      config: dumpConfig(server, database),
      outFile,
      compress: false,
      onEvent: (e) => events.push(e),
      ...o,
    }),
  );
  return { file, result, events };
}

/** `mariadb [extra] db < file` with the stock client: its exit code, stdout and stderr. */
export async function stockLoad(
  server: TestServer,
  file: string,
  db: string,
  extra: string[] = [],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { args, env } = server.clientArgs();
  const child = spawn('mariadb', [...args, ...extra, db], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stdin.on('error', () => {}); // the exit code tells
  createReadStream(file).pipe(child.stdin);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  return { code, stdout, stderr };
}

/** SQL identifier quoting for test statements. */
export const qi = (name: string): string => '`' + name.replace(/`/g, '``') + '`';
