/** Shared by the restore tests (and the SIGKILL child): dumps with the stock client, configs, leftovers. */
import type { Connection, RowDataPacket } from 'mysql2/promise';

export { rootConfig as configFor, stockDump } from '../../fixtures/db-clients.js';

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
