import { describePolicy, type PruneResult } from '../backup/prune.js';
import { formatBytes } from '../ui/format.js';

/** What backups:prune, and the --prune of setup:backup and snapshot:create, print. */
export function pruneSummary(r: PruneResult): string {
  const what = r.dryRun ? 'Would remove' : 'Removed';
  const lines = [
    `${what} ${r.removed.length} snapshot(s)${r.strayPartials.length ? ` and ${r.strayPartials.length} partial file(s)` : ''}, ${formatBytes(r.freed)}; kept ${r.kept.length} (${describePolicy(r.policy)})`,
  ];
  for (const d of r.removed) lines.push(`  - ${d.id} (${d.status}): ${d.reasons.join(', ')}`);
  for (const n of r.strayPartials) lines.push(`  - ${n}`);
  return lines.join('\n');
}
