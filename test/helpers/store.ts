// A generated Magento store (tree and database) on the shared test server, and the small tools the store-level
// tests share: what of a tree counts as code, and a same-size edit of a file.
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import type mysql from 'mysql2/promise';
import { describeDatabase, type DbSnapshot } from '../../fixtures/db-compare.js';
import { getTestServer, type TestServer } from '../../fixtures/mariadb.js';
import { generateStore } from '../../fixtures/store.js';
import { generateStoreDatabase } from '../../fixtures/store-db.js';
import { tempDir } from './tmp.js';
import { describeTree, type TreeEntry } from './tree.js';

/** What a code backup leaves out (setup:backup --code's excludes), for comparing code trees. */
export const CODE_SKIP = (rel: string): boolean =>
  /^(var|pub\/static|pub\/media|update)(\/|$)/.test(rel) ||
  /(^|\/)(node_modules|\.git|\.idea|\.svn|\.grunt)(\/|$)/.test(rel);

export interface StoreState {
  code: Map<string, TreeEntry>;
  media: Map<string, TreeEntry>;
  db: DbSnapshot;
}

export interface TestStore {
  server: TestServer;
  dbname: string;
  /** a connection to the store's database, open until the caller ends it */
  conn: mysql.Connection;
  /** the store's root (env.php points at `dbname` on the test server as its root user) */
  root: string;
  /** its var/backups */
  dir: string;
  /** code (CODE_SKIP, plus `skip`), media and database as they are now */
  state: (skip?: (rel: string) => boolean) => Promise<StoreState>;
}

/**
 * A tiny generated store in a temp dir (removed after the test file) whose database `<name>_…` on the shared
 * test server holds the generated Magento tables.
 */
export async function tinyStoreOnServer(name: string): Promise<TestStore> {
  const server = await getTestServer();
  const dbname = await server.createDatabase(name);
  const conn = await server.connect(dbname);
  await generateStoreDatabase(conn, { size: 'tiny' });
  const root = path.join(tempDir(`mbk-${name}-`), 'store');
  await generateStore({
    dir: root,
    size: 'tiny',
    db: { host: server.host, port: server.port, user: server.user, password: server.password, dbname },
  });
  const state = async (skip?: (rel: string) => boolean): Promise<StoreState> => ({
    code: describeTree(root, (rel) => CODE_SKIP(rel) || (skip?.(rel) ?? false)),
    media: describeTree(path.join(root, 'pub/media')),
    db: await describeDatabase(conn, dbname),
  });
  return { server, dbname, conn, root, dir: path.join(root, 'var/backups'), state };
}

/** Flips one byte in the middle of a file: same size, different content. */
export function flipByte(file: string): void {
  const fd = openSync(file, 'r+');
  try {
    const at = Math.floor(statSync(file).size / 2);
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}
