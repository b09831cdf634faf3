import type { MagebackupEvent } from '../events.js';
import type { Reporter, ReporterOptions } from './reporter.js';

/** --json: each event one JSON line on stderr, the result one JSON line on stdout. */
export class JsonReporter implements Reporter {
  readonly mode = 'json' as const;
  warnings = 0;
  private lastProgress = 0;
  constructor(
    private readonly o: ReporterOptions,
    /** the clock of the progress throttle (tests pass their own) */
    private readonly now: () => number = Date.now,
  ) {}
  onEvent(e: MagebackupEvent): void {
    if (e.type === 'warning') this.warnings++;
    if (e.type === 'progress') {
      const now = this.now();
      if (now - this.lastProgress < 1000) return;
      this.lastProgress = now;
    }
    if (this.o.quiet && e.type !== 'warning') return;
    this.o.stderr.write(JSON.stringify(e) + '\n');
  }
  result(_text: string, data: unknown): void {
    this.o.stdout.write(JSON.stringify(data) + '\n');
  }
  error(message: string, exitCode: number, stack?: string): void {
    this.o.stderr.write(
      JSON.stringify({ type: 'error', code: exitCode, message, ...(stack ? { stack } : {}) }) + '\n',
    );
  }
  close(): void {}
}
