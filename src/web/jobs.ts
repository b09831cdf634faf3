/**
 * The operation the web interface runs (one at a time per server): its events are the domain's own (the ones
 * `--json` prints), kept so that a page opened or reloaded mid-run sees everything so far, and broadcast to the
 * pages listening (server-sent events). Each finished operation is recorded in the history log (origin web).
 */
import { EventEmitter } from 'node:events';
import { CliError, ExitCode, InternalError } from '../errors.js';
import { WarningCode, type MagebackupEvent, type Part } from '../events.js';
import { describeOutcome } from '../ui/wording.js';
import { appendHistory, resultOfExitCode, type HistoryResult } from '../history/history.js';
import { historyEntry } from '../history/summary.js';

const MAX_EVENTS = 500;

export type JobStatus = 'running' | HistoryResult;

export interface JobState {
  id: number;
  /** the CLI command it is the equivalent of */
  command: string;
  /** the snapshot it concerns */
  snapshot?: string;
  started: string;
  ended?: string;
  status: JobStatus;
  exitCode?: number;
  /** the result line, or the error */
  message?: string;
  /** every event but progress (bounded: the newest MAX_EVENTS) */
  events: MagebackupEvent[];
  /** the latest progress of each part */
  progress: Partial<Record<Part, Extract<MagebackupEvent, { type: 'progress' }>>>;
  warnings: number;
}

export interface JobRun {
  signal: AbortSignal;
  onEvent: (e: MagebackupEvent) => void;
}

export type JobMessage =
  | { type: 'job'; job: JobState }
  | { type: 'event'; jobId: number; event: MagebackupEvent }
  | { type: 'end'; job: JobState };

/** An error's message as the CLI would print it: with the state it left the store in when that matters. */
export function errorMessage(err: unknown): { message: string; exitCode: number } {
  if (err instanceof CliError && !(err instanceof InternalError)) {
    const o = err.outcome;
    const plain = !o || (o.live === 'unchanged' && o.maintenance === 'as-before' && !o.leftovers.length);
    return { message: plain ? err.message : `${err.message}: ${describeOutcome(o)}`, exitCode: err.exitCode };
  }
  const e = err instanceof InternalError && err.cause instanceof Error ? err.cause : err;
  return {
    message: `Internal error (a bug in magebackup, please report it): ${e instanceof Error ? e.message : String(e)}`,
    exitCode: ExitCode.FAILURE,
  };
}

export class Jobs extends EventEmitter<{ message: [JobMessage] }> {
  current: JobState | null = null;
  last: JobState | null = null;
  private seq = 0;
  private controller: AbortController | null = null;
  private done: Promise<void> = Promise.resolve();

  constructor(private readonly root: string) {
    super();
    this.setMaxListeners(100);
  }

  get busy(): boolean {
    return this.current !== null;
  }

  /** The state to show: the running job, else the last one. */
  view(): JobState | null {
    return this.current ?? this.last;
  }

  /**
   * Starts `work` unless a job runs. `work` returns the result object (the one --json prints) and its exit code.
   * Returns the job, or null when busy.
   */
  start(
    command: string,
    snapshot: string | undefined,
    work: (run: JobRun) => Promise<{ data: unknown; exitCode: number }>,
  ): JobState | null {
    if (this.current) return null;
    const job: JobState = {
      id: ++this.seq,
      command,
      ...(snapshot !== undefined ? { snapshot } : {}),
      started: new Date().toISOString(),
      status: 'running',
      events: [],
      progress: {},
      warnings: 0,
    };
    this.current = job;
    const controller = new AbortController();
    this.controller = controller;
    let lastProgress = 0;
    const onEvent = (event: MagebackupEvent) => {
      if (event.type === 'progress') {
        job.progress[event.part] = event;
        // a page needs a few updates a second, not one per file
        const now = Date.now();
        if (now - lastProgress < 200) return;
        lastProgress = now;
      } else {
        if (event.type === 'warning') job.warnings++;
        job.events.push(event);
        if (job.events.length > MAX_EVENTS) job.events.splice(0, job.events.length - MAX_EVENTS);
      }
      this.emit('message', { type: 'event', jobId: job.id, event });
    };
    this.emit('message', { type: 'job', job });
    this.done = (async () => {
      let data: unknown;
      let error: string | undefined;
      let exitCode: number;
      try {
        ({ data, exitCode } = await work({ signal: controller.signal, onEvent }));
        if (exitCode === ExitCode.OK && job.warnings > 0) exitCode = ExitCode.WARNINGS;
      } catch (err) {
        ({ message: error, exitCode } = errorMessage(err));
      }
      const entry = historyEntry({
        origin: 'web',
        command,
        exitCode,
        ...(error === undefined ? { data } : { error }),
        ...(snapshot !== undefined ? { id: snapshot } : {}),
      });
      try {
        await appendHistory(this.root, entry);
      } catch (err) {
        onEvent({
          type: 'warning',
          code: WarningCode.HISTORY,
          message: `Could not record this run in the history log: ${err instanceof Error ? err.message : String(err)}`,
        });
      }
      job.ended = entry.time;
      job.status = resultOfExitCode(exitCode);
      job.exitCode = exitCode;
      job.message = entry.message;
      this.current = null;
      this.controller = null;
      this.last = job;
      this.emit('message', { type: 'end', job });
    })();
    return job;
  }

  /** Stops the running job (its cleanup runs, as on SIGINT) and waits for it to end. */
  async stop(reason = 'SIGINT'): Promise<void> {
    this.controller?.abort(reason);
    await this.done;
  }
}
