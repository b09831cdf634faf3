import {
  DEFAULT_POLICY,
  describePolicy,
  parseCount,
  parseDuration,
  pruneBackups,
  type PruneResult,
  type RetentionPolicy,
} from '../../backup/prune.js';
import { UsageError } from '../../errors.js';
import { formatBytes } from '../../ui/format.js';
import type { CommandRun } from '../context.js';

export interface PolicyCliOptions {
  keepWithin?: string;
  keepLast?: string;
  keepDaily?: string;
  keepWeekly?: string;
}

export function hasPolicyOptions(o: PolicyCliOptions): boolean {
  return [o.keepWithin, o.keepLast, o.keepDaily, o.keepWeekly].some((v) => v !== undefined);
}

/** The --keep-* options as a policy; none given → the default (keep everything made in the last 14 days). */
export function policyFromOptions(o: PolicyCliOptions): RetentionPolicy {
  if (!hasPolicyOptions(o)) return { ...DEFAULT_POLICY };
  const p: RetentionPolicy = {};
  if (o.keepWithin !== undefined) p.keepWithin = parseDuration(o.keepWithin, '--keep-within');
  if (o.keepLast !== undefined) p.keepLast = parseCount(o.keepLast, '--keep-last');
  if (o.keepDaily !== undefined) p.keepDaily = parseCount(o.keepDaily, '--keep-daily');
  if (o.keepWeekly !== undefined) p.keepWeekly = parseCount(o.keepWeekly, '--keep-weekly');
  return p;
}

/** For setup:backup / snapshot:create: the policy of --prune, or undefined. --keep-* without --prune is a mistake. */
export function prunePolicyOf(o: PolicyCliOptions & { prune?: boolean }): RetentionPolicy | undefined {
  if (!o.prune) {
    if (hasPolicyOptions(o))
      throw new UsageError('--keep-within/--keep-last/--keep-daily/--keep-weekly apply only with --prune');
    return undefined;
  }
  return policyFromOptions(o);
}

export function pruneSummary(r: PruneResult): string {
  const what = r.dryRun ? 'Would remove' : 'Removed';
  const lines = [
    `${what} ${r.removed.length} snapshot(s)${r.strayPartials.length ? ` and ${r.strayPartials.length} partial file(s)` : ''}, ${formatBytes(r.freed)}; kept ${r.kept.length} (${describePolicy(r.policy)})`,
  ];
  for (const d of r.removed) lines.push(`  - ${d.id} (${d.status}): ${d.reasons.join(', ')}`);
  for (const n of r.strayPartials) lines.push(`  - ${n}`);
  return lines.join('\n');
}

export async function backupsPrune(
  run: CommandRun,
  opts: PolicyCliOptions & { dryRun?: boolean },
): Promise<number> {
  const policy = policyFromOptions(opts);
  const result = await pruneBackups({
    root: run.root,
    policy,
    dryRun: !!opts.dryRun,
    signal: run.signal,
    onEvent: (e) => run.reporter.onEvent(e),
    command: 'backups:prune',
  });
  run.reporter.result(pruneSummary(result), { type: 'result', command: 'backups:prune', ...result });
  return 0;
}
