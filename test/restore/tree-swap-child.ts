// Child process for the crash tests of tree-swap.test.ts: stages and commits one tree as an operation, and
// SIGKILLs itself at a chosen point. argv: root target archive killAt ('stage' = while staging, N = right after
// the N-th rename, 'never').
import { RollbackOperation } from '../../src/restore/operation.js';
import { storePaths } from '../../src/store/paths.js';

const [root, target, archive, killAt] = process.argv.slice(2) as [string, 'code' | 'media', string, string];
let renames = 0;
const op = await RollbackOperation.begin(storePaths(root), {
  afterRename: () => {
    renames++;
    if (String(renames) === killAt) process.kill(process.pid, 'SIGKILL');
  },
});
await op.stage({
  root,
  target,
  archive,
  onProgress: () => {
    if (killAt === 'stage') process.kill(process.pid, 'SIGKILL');
  },
});
const r = await op.commit();
await r.cleanup();
process.stdout.write(JSON.stringify({ renames }) + '\n');
