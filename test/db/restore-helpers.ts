/** Shared by the restore tests (and the SIGKILL child): dumps with the stock client, configs, leftovers. */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { TestServer } from '../../fixtures/mariadb.js';
import type { DbConnectionConfig } from '../../src/db/types.js';

export function configFor(
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

/** `mariadb-dump --routines --triggers --events --single-transaction <db> > file` with the stock client. */
export async function stockDump(
  server: TestServer,
  db: string,
  file: string,
  extra: string[] = [],
): Promise<void> {
  const { args, env } = server.clientArgs();
  const child = spawn(
    'mariadb-dump',
    [...args, '--routines', '--triggers', '--events', '--single-transaction', ...extra, db],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const out = createWriteStream(file, { mode: 0o600 });
  child.stdout.pipe(out);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  await new Promise<void>((resolve) => (out.closed ? resolve() : out.on('close', () => resolve())));
  if (code !== 0) throw new Error(`mariadb-dump ${db} failed (${code}): ${stderr}`);
}

/** Databases whose name starts with `prefix` (e.g. the live name, to find shadow/old leftovers). */
export async function databasesLike(conn: Connection, prefix: string): Promise<string[]> {
  const [r] = await conn.query<RowDataPacket[]>(
    'SELECT SCHEMA_NAME AS n FROM information_schema.SCHEMATA ORDER BY 1',
  );
  return r.map((x) => String(x.n)).filter((n) => n.startsWith(prefix));
}

export async function queryRows(
  conn: Connection,
  sql: string,
  values: unknown[] = [],
): Promise<RowDataPacket[]> {
  const [r] = await conn.query<RowDataPacket[]>({ sql, values });
  return r;
}
