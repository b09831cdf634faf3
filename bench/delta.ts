/**
 * Issue 14's scenarios (a rollback costs what changed), added to bench.ts's operations:
 *
 * - code-rollback-1pct: the live code tree has 1 % of its files changed (untimed, before each run), then
 *   `setup:rollback -c` (selective: equal files are staged as hard links) against `tar -xzf` of the same archive
 *   into an empty directory;
 * - code-rollback-all: every file changed, the same two;
 * - diff: `backups:diff` of the code backup (the live tree equal to it: every byte compared) against our own full
 *   code rollback (`setup:rollback --full`);
 * - code-rollback-1pct-vs-full, code-rollback-all-vs-full: the selective rollback against `--full` after the same
 *   change, in the same run (the evidence for which should be the default; no warm-up: the fixture and the
 *   archive are in the page cache from the scenarios before).
 *
 * The replaced files are deleted by a detached process after our rollback returns: each run of ours waits (untimed)
 * until it is done, so that it never slows the reference run that follows.
 */
import { appendFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Measured, RunSpec } from './measure.js';

/** What this file needs of bench.ts's context (structurally: bench.ts's Ctx has these). */
export interface DeltaCtx {
  store: string;
  out: string;
  codeBackup?: string;
  log: (line: string) => void;
}

export interface DeltaSide<C extends DeltaCtx> {
  spec: (c: C) => RunSpec;
  before?: (c: C) => Promise<void> | void;
  after?: (c: C, r: Measured, last: boolean) => Promise<void> | void;
}

export interface DeltaOp<C extends DeltaCtx> {
  id: string;
  title: string;
  refTitle: string;
  target: { ratio: number };
  ours: DeltaSide<C>;
  ref: DeltaSide<C>;
  prepare?: (c: C) => Promise<void> | void;
  noWarmup?: boolean;
}

/** bench.ts's helpers this file uses */
export interface DeltaHelpers<C extends DeltaCtx> {
  /** our CLI with `--root <store> --json` */
  ours: (c: C, args: string[]) => RunSpec;
  /** makes c.codeBackup when code-backup did not run */
  ensureCodeBackup: (c: C) => Promise<void>;
  /** the reference: `tar -xzf` of c.codeBackup into an empty directory */
  tarExtract: DeltaSide<C>;
}

/** The code files (what a code backup holds), found once per store. */
const codeFiles = new Map<string, string[]>();

const EXCLUDED_ROOT = new Set(['var', 'update']);
const EXCLUDED_ANY = new Set(['node_modules', '.git', '.idea', '.svn', '.grunt']);

function listCode(root: string): string[] {
  const cached = codeFiles.get(root);
  if (cached) return cached;
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const d of readdirSync(join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (rel === '' && EXCLUDED_ROOT.has(d.name)) continue;
      if (r === 'pub/media' || r === 'pub/static') continue;
      if (EXCLUDED_ANY.has(d.name) || d.name.startsWith('.magebackup-')) continue;
      if (d.isDirectory()) walk(r);
      else if (d.isFile()) out.push(r);
    }
  };
  walk('');
  out.sort();
  codeFiles.set(root, out);
  return out;
}

/** A deploy's worth of change: every `every`-th code file gets a line more (content, size and mtime change). */
function changeFiles(c: DeltaCtx, every: number): void {
  const files = listCode(c.store);
  let n = 0;
  for (let i = 0; i < files.length; i += every) {
    appendFileSync(join(c.store, files[i]!), '\n// changed by the benchmark\n');
    n++;
  }
  c.log(`  (changed ${n} of ${files.length} code files, untimed)`);
}

/** Waits (untimed) until the background deletion of the replaced files is over. */
export async function replacedGone(c: DeltaCtx): Promise<void> {
  const busy = (): boolean => readdirSync(c.store).some((n) => n.startsWith('.magebackup-staging-'));
  while (busy()) await new Promise((r) => setTimeout(r, 100));
}

export function deltaOps<C extends DeltaCtx>(h: DeltaHelpers<C>): DeltaOp<C>[] {
  const file = (c: C): string => (c.codeBackup ?? '').split('/').pop() ?? '';
  const rollback = (every: number, full = false): DeltaSide<C> => ({
    before: (c) => changeFiles(c, every),
    spec: (c) =>
      h.ours(c, ['setup:rollback', '-c', file(c), '--yes', '--no-maintenance', ...(full ? ['--full'] : [])]),
    after: (c) => replacedGone(c),
  });
  const vsFull = (id: string, what: string, every: number): DeltaOp<C> => ({
    id,
    title: `code rollback, ${what} changed (selective)`,
    refTitle: 'our own --full code rollback after the same change',
    target: { ratio: 1 },
    noWarmup: true,
    prepare: (c) => h.ensureCodeBackup(c),
    ours: rollback(every),
    ref: rollback(every, true),
  });
  const selective = (id: string, what: string, every: number, ratio: number): DeltaOp<C> => ({
    id,
    title: `code rollback, ${what} changed`,
    refTitle: 'tar -xzf into an empty dir (same archive)',
    target: { ratio },
    prepare: (c) => h.ensureCodeBackup(c),
    ours: rollback(every),
    ref: h.tarExtract,
  });
  return [
    selective('code-rollback-1pct', '1 % of the files', 100, 0.25),
    selective('code-rollback-all', 'every file', 1, 1.3),
    vsFull('code-rollback-1pct-vs-full', '1 % of the files', 100),
    vsFull('code-rollback-all-vs-full', 'every file', 1),
    {
      id: 'diff',
      title: 'backups:diff of the code backup',
      refTitle: 'our full code rollback (setup:rollback --full)',
      target: { ratio: 0.3 },
      prepare: async (c) => {
        await h.ensureCodeBackup(c);
        if (!existsSync(join(c.store, 'var', 'backups'))) throw new Error('no var/backups in the store');
      },
      ours: { spec: (c) => h.ours(c, ['backups:diff']) },
      ref: {
        spec: (c) => h.ours(c, ['setup:rollback', '-c', file(c), '--full', '--yes', '--no-maintenance']),
        after: (c) => replacedGone(c),
      },
    },
  ];
}
