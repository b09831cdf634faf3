import { createSnapshot } from '../../backup/snapshot-create.js';
import { ExitCode } from '../../errors.js';
import type { CommandRun } from '../context.js';
import { dbFlags, prunePolicyOf, splitList, type BackupOptions } from '../options.js';
import { pruneSummary } from '../prune-summary.js';

export async function snapshotCreate(run: CommandRun, opts: BackupOptions): Promise<number> {
  const prune = prunePolicyOf(opts);
  const result = await createSnapshot({
    root: run.root,
    excludes: opts.exclude ?? [],
    maintenance: opts.maintenance !== false,
    compress: !!opts.compress,
    strip: splitList(opts.strip),
    stripDefiners: opts.stripDefiners !== false,
    db: { flags: dbFlags(opts), env: run.io.env },
    ...(prune ? { prune } : {}),
    signal: run.signal,
    onEvent: (e) => run.reporter.onEvent(e),
    command: 'snapshot:create',
  });
  const lines = [`Snapshot ${result.id} created (${result.parts.map((p) => p.file).join(', ')})`];
  if (result.pruned) lines.push(pruneSummary(result.pruned));
  run.reporter.result(lines.join('\n'), { type: 'result', command: 'snapshot:create', ...result });
  return result.warnings > 0 ? ExitCode.WARNINGS : ExitCode.OK;
}
