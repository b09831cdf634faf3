// Child process of one-outcome.test.ts: a combined code + media + database rollback that SIGKILLs itself at one
// named point. argv: root codeFile mediaFile dbFile killAt ('never' prints every point it passed, as JSON).
import { runRollback } from '../../src/restore/run-rollback.js';
import { setOperationTestHook } from '../../src/restore/operation.js';
import { setSwapTestHook } from '../../src/restore/tree-swap.js';

const [root, codeFile, mediaFile, dbFile, killAt] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const seen: string[] = [];
const at = (point: string): void => {
  seen.push(point);
  if (point === killAt) process.kill(process.pid, 'SIGKILL');
};
setOperationTestHook((step) => at(`op:${step}`));
setSwapTestHook((n) => at(`rename:${n}`));
await runRollback({
  root,
  codeFile,
  mediaFile,
  dbFile,
  dropExtraTables: true,
  db: { flags: {}, env: {} },
  onStep: (step) => at(`db:${step}`),
});
process.stdout.write(JSON.stringify(seen) + '\n');
