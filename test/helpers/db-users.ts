/** The usual Magento database user for tests: `ALL ON <db>.*` and nothing else (no CREATE DATABASE, no SUPER). */
import type { Connection } from 'mysql2/promise';

export interface MagentoUser {
  user: string;
  password: string;
  /** drops the user (every host) */
  drop: () => Promise<void>;
}

const HOSTS = ['%', 'localhost', '127.0.0.1'];

/** Creates `name` (default: a unique one) on every host the tests connect from, granted `ALL ON <db>.*` only. */
export async function magentoUser(
  conn: Connection,
  db: string,
  o: { name?: string; password?: string } = {},
): Promise<MagentoUser> {
  const user = o.name ?? `mbk_u_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
  const password = o.password ?? 'Magento-Pw-1';
  for (const host of HOSTS) {
    await conn.query('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', [user, host, password]);
    await conn.query(`GRANT ALL ON \`${db.replace(/`/g, '``')}\`.* TO ?@?`, [user, host]);
  }
  return {
    user,
    password,
    drop: async () => {
      for (const host of HOSTS) await conn.query('DROP USER IF EXISTS ?@?', [user, host]);
    },
  };
}
