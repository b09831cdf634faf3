/**
 * The journal of a rollback operation (operation.ts) and what its recovery needs from it. Kept apart from
 * operation.ts, which imports the tree swap and the extraction code: every command runs the recovery
 * (operation-recover.ts), and mostly there is nothing to recover (those modules then stay unloaded).
 */
import { CliError } from '../errors.js';
import type { TreeJournal } from './tree-swap.js';

export type Phase = 'staging' | 'committing' | 'aborting' | 'committed';

export interface OpJournal {
  version: 2;
  id: string;
  root: string;
  rootDev: number;
  rootIno: number;
  pid: number;
  started: string;
  phase: Phase;
  /** staging directories made (or about to be) before their plan is known */
  staging: Array<{ target: 'code' | 'media'; dir: string }>;
  trees: TreeJournal[];
  /** the prepared database restore (its id names it for recoverInterruptedRestores' decide) */
  db: { id: string } | null;
  /**
   * 'committed' only: the detached process deleting the replaced content (deleteInBackground); the next run's
   * recovery waits for it if it still runs, removes what is left, then the journal
   */
  deleter?: { pid: number; dirs: string[] };
}

export const OP_PREFIX = 'op-';

/** The swap could not be undone either: live data is mixed; maintenance must stay on. */
export class OperationIncompleteError extends CliError {}
