// Child process of one-outcome.test.ts: a combined code + media + database rollback that SIGKILLs itself at one
// named point. argv: root codeFile mediaFile dbFile killAt ('never' prints every point it passed, as JSON).
import { runRollback } from '../../src/restore/run-rollback.js';

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
let renames = 0;
await runRollback({
  root,
  codeFile,
  mediaFile,
  dbFile,
  dropExtraTables: true,
  db: { flags: {}, env: {} },
  onStep: (step) => at(`db:${step}`),
  hooks: {
    onCommitStep: (step) => at(`op:${step}`),
    afterRename: () => at(`rename:${++renames}`),
  },
});
process.stdout.write(JSON.stringify(seen) + '\n');
