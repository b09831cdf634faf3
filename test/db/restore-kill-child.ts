/**
 * Child process of restore-kill.test.ts: restores a dump and, at the named step, prints `at <step>` and waits
 * to be SIGKILLed. `mid-load` prints at the first progress event and keeps loading (a kill at a random point).
 * Usage: node restore-kill-child.js <step> <dump file> [<content hashes JSON file>]; the connection config (with
 * its password) comes in the MBK_KILL_CFG environment variable, never on argv. With the content hashes the
 * restore is selective, as a rollback makes it: the live tables are compared first, the equal ones kept.
 */
import { promises as fsp } from 'node:fs';
import { compareLiveDatabase, keptTables } from '../../src/db/delta.js';
import { restoreDatabase } from '../../src/db/restore.js';
import type { DbContentHashes } from '../../src/db/table-hash.js';
import type { DbConnectionConfig } from '../../src/db/types.js';

const step = process.argv[2] ?? '';
const file = process.argv[3] ?? '';
const hashesFile = process.argv[4];
const config = JSON.parse(process.env.MBK_KILL_CFG ?? '{}') as DbConnectionConfig;
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
