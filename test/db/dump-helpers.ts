/** Shared by the dumper tests: dump a database to a file, load a file with the stock client. */
import path from 'node:path';
import type { TestServer } from '../../fixtures/mariadb.js';
import { dumpDatabase, type DumpOptions, type DumpResult } from '../../src/db/dump.js';
import type { MagebackupEvent } from '../../src/events.js';
import { writeAtomic } from '../../src/fs/atomic.js';
import { rootConfig } from '../../fixtures/db-clients.js';

export { qi, rootConfig as dumpConfig, stockLoad } from '../../fixtures/db-clients.js';

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
      config: rootConfig(server, database),
      outFile,
      compress: false,
      onEvent: (e) => events.push(e),
      ...o,
    }),
  );
  return { file, result, events };
}
