import { verifyBackups, verifyProblems } from '../../backup/verify-backups.js';
import { CliError, UsageError } from '../../errors.js';
import type { CommandRun } from '../context.js';
import { dbFlags, type BackupsVerifyOptions } from '../options.js';

export async function backupsVerify(
  run: CommandRun,
  ids: string[],
  opts: BackupsVerifyOptions,
): Promise<number> {
  if (opts.all && ids.length > 0)
    throw new UsageError('backups:verify: give snapshot ids or --all, not both');
  const result = await verifyBackups({
    root: run.root,
    ...(opts.all ? { ids: 'all' as const } : ids.length > 0 ? { ids } : {}),
    deep: !!opts.deep,
    db: { flags: dbFlags(opts), env: run.io.env },
    signal: run.signal,
    onEvent: (e) => run.reporter.onEvent(e),
  });
  const problems = verifyProblems(result);
  const lines = result.snapshots.map(
    (s) =>
      `${s.id}: ${s.ok ? 'OK' : 'FAILED'} (${s.status}; ${s.files.map((f) => `${f.file} ${f.ok ? 'ok' : 'BAD'}`).join(', ') || 'no files'})`,
  );
  run.reporter.result(lines.join('\n'), { type: 'result', command: 'backups:verify', ...result });
  if (!result.ok) {
    throw new CliError(`Verification failed: ${problems.join('; ')}`);
  }
  return 0;
}
