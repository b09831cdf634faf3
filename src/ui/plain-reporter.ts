import type { MagebackupEvent } from '../events.js';
import type { Reporter, ReporterMode, ReporterOptions } from './reporter.js';
import { magentoLines } from './wording.js';

/** Plain lines in Magento's wording, no ANSI (logs, cron, pipes). The ora reporter builds on it. */
export class PlainReporter implements Reporter {
  readonly mode: ReporterMode = 'plain';
  warnings = 0;
  private lastProgress = 0;
  constructor(
    protected readonly o: ReporterOptions,
    /** the clock of the progress throttle (tests pass their own) */
    protected readonly now: () => number = Date.now,
  ) {}
  protected err(line: string): void {
    this.o.stderr.write(line + '\n');
  }
  protected out(line: string): void {
    this.o.stdout.write(line + '\n');
  }
  onEvent(e: MagebackupEvent): void {
    if (e.type === 'warning') this.warnings++;
    if (this.o.quiet && e.type !== 'warning' && e.type !== 'part-done') return;
    if (e.type === 'progress') {
      // Plain mode: a line every 5 s at most, enough for a log without flooding it.
      const now = this.now();
      if (now - this.lastProgress < 5000) return;
      this.lastProgress = now;
    }
    if (e.type === 'part-start') this.lastProgress = this.now();
    const [errLines, outLines] = magentoLines(e);
    for (const l of errLines) this.err(l);
    if (!this.o.quiet || e.type === 'part-done') for (const l of outLines) this.out(l);
  }
  result(text: string, _data?: unknown): void {
    if (text) this.o.stdout.write(text.endsWith('\n') ? text : text + '\n');
  }
  error(message: string, _exitCode: number, stack?: string): void {
    const prefix = this.o.color ? '\x1b[31mError:\x1b[39m' : 'Error:';
    this.err(`${prefix} ${message}`);
    if (stack) this.err(stack);
  }
  close(): void {}
}
