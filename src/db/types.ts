/** Where and how to reach the store's database: resolved from app/etc/env.php, flags and environment. */
export interface DbConnectionConfig {
  /** TCP host; absent when a socket is used */
  host?: string;
  port?: number;
  /** unix socket path (env.php host may be `/path.sock` or `localhost:/path.sock`) */
  socketPath?: string;
  user: string;
  /** never printed, never logged, never on a child process's argv */
  password: string;
  database: string;
  /** Magento's db.table_prefix ('' when none) */
  tablePrefix: string;
}
