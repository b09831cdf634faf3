/**
 * Child process of restore-kill.test.ts: restores a dump and, at the named step, prints `at <step>` and waits
 * to be SIGKILLed. `mid-load` prints at the first progress event and keeps loading (a kill at a random point).
 * Usage: node restore-kill-child.js <step> <dump file> [<content hashes JSON file>]; the connection config (with
 * its password) comes in the MBK_KILL_CFG environment variable, never on argv. With the content hashes the
 * restore is selective, as a rollback makes it: the live tables are compared first, the equal ones kept.
 * Step `early-load`: the selective load overlapped with the comparison (selective-load.ts) whose check of the dump
 * never ends; `at early-load` is printed once a table that differs has a shadow table (the load began, nothing is
 * verified yet).
 */
import { promises as fsp } from 'node:fs';
import { compareLiveDatabase, keptTables } from '../../src/db/delta.js';
import { restoreDatabase } from '../../src/db/restore.js';
import { openConnection } from '../../src/db/connect.js';
import { compareAndLoad } from '../../src/db/selective-load.js';
import type { DbContentHashes } from '../../src/db/table-hash.js';
import type { DbConnectionConfig } from '../../src/db/types.js';

const step = process.argv[2] ?? '';
const file = process.argv[3] ?? '';
const hashesFile = process.argv[4];
const config = JSON.parse(process.env.MBK_KILL_CFG ?? '{}') as DbConnectionConfig;
if (step === 'early-load') {
  const hashes = JSON.parse(await fsp.readFile(hashesFile ?? '', 'utf8')) as DbContentHashes;
  const conn = await openConnection(config);
  await compareAndLoad({
    restore: { config, file, concurrency: 3 },
    hashes,
    check: async () => {
      // a shadow table: the load of a table that differs is under way
      for (;;) {
        const [r] = (await conn.query(
          `SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
             AND TABLE_NAME LIKE '\\_\\_mbk\\_%\\_n%'`,
        )) as unknown as [unknown[]];
        if (r.length > 0) break;
        await new Promise((res) => setTimeout(res, 20));
      }
      process.stdout.write('at early-load\n');
      setInterval(() => {}, 1000);
      return new Promise<never>(() => {});
    },
  });
  throw new Error('the load ended without its check');
}
const keep = hashesFile
  ? keptTables(
      await compareLiveDatabase({
        config,
        backup: JSON.parse(await fsp.readFile(hashesFile, 'utf8')) as DbContentHashes,
      }),
    )
  : undefined;
if (hashesFile && (keep?.length ?? 0) === 0) throw new Error('the selective restore would keep no table');
let said = false;
const say = (s: string): void => {
  if (said) return;
  said = true;
  process.stdout.write(`at ${s}\n`);
};

await restoreDatabase({
  config,
  file,
  concurrency: 3,
  ...(keep ? { keep } : {}),
  onEvent: (e) => {
    if (step === 'mid-load' && e.type === 'progress') say('mid-load');
  },
  onStep: async (s) => {
    if (s !== step) return;
    say(s);
    // keep the process alive until the parent kills it
    setInterval(() => {}, 1000);
    await new Promise(() => {});
  },
});
process.stdout.write('done\n');
process.exit(0);
