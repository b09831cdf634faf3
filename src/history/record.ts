/**
 * The CLI's side of the history log: watches a run's reporter for its result or its error, then appends one entry
 * (origin `cli`). A log that cannot be written is a warning after a run that did its work (silent after a failed
 * run, whose error stays its one line), never a change of the run's exit code.
 */
import { assertMagentoRoot } from '../store/paths.js';
import { ExitCode } from '../errors.js';
import { WarningCode } from '../events.js';
import type { Reporter } from '../ui/reporter.js';
import { appendHistory, type HistoryOrigin } from './history.js';
import { historyEntry } from './summary.js';

export interface HistoryRecorder {
  /** append the entry of the run that ended with `exitCode` (usage errors are not actions: not recorded) */
  finish(root: string, exitCode: number): Promise<void>;
}

export function recordRun(
  reporter: Reporter,
  command: string,
  origin: HistoryOrigin = 'cli',
  id?: string,
): HistoryRecorder {
  let data: unknown;
  let error: string | undefined;
  const result = reporter.result.bind(reporter);
  const fail = reporter.error.bind(reporter);
  reporter.result = (text, d) => {
    data = d;
    result(text, d);
  };
  reporter.error = (message, code, stack) => {
    error = message;
    fail(message, code, stack);
  };
  return {
    async finish(root, exitCode) {
      if (exitCode === ExitCode.USAGE) return;
      // no store there (a wrong --root): nothing to record, and nothing may be created
      if (
        !(await assertMagentoRoot(root).then(
          () => true,
          () => false,
        ))
      )
        return;
      try {
        await appendHistory(
          root,
          historyEntry({
            origin,
            command,
            exitCode,
            ...(data !== undefined && error === undefined ? { data } : {}),
            ...(error !== undefined ? { error } : {}),
            ...(id !== undefined ? { id } : {}),
          }),
        );
      } catch (err) {
        // A failed run ends with one line, its error (often var/backups itself refused, the same cause): a second
        // line about the log would break that rule. A run that did its work is told the log missed it.
        if (error !== undefined) return;
        reporter.onEvent({
          type: 'warning',
          code: WarningCode.HISTORY,
          message: `Could not record this run in the history log: ${err instanceof Error ? err.message : String(err)}`,
        });
      }
    },
  };
}
