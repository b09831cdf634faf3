import ora, { type Ora } from 'ora';
import type { MagebackupEvent } from '../events.js';
import { KIND_LABEL } from '../store/backup-name.js';
import { PlainReporter } from './plain-reporter.js';
import { doneStats, magentoLines, progressText } from './wording.js';

/**
 * Interactive terminal: one spinner per part with live counts; warnings and results printed above it. Only made
 * for a terminal that src/cli/reporter.ts judged interactive, so ora is not asked to judge it again.
 */
export class OraReporter extends PlainReporter {
  override readonly mode = 'tty' as const;
  private spinner: Ora | null = null;
  private lastRender = 0;
  private above(fn: () => void): void {
    const s = this.spinner;
    if (s?.isSpinning) {
      s.clear();
      fn();
      s.render();
    } else fn();
  }
  protected override err(line: string): void {
    this.above(() => this.o.stderr.write(line + '\n'));
  }
  protected override out(line: string): void {
    this.above(() => this.o.stdout.write(line + '\n'));
  }
  override onEvent(e: MagebackupEvent): void {
    switch (e.type) {
      case 'part-start': {
        if (this.o.quiet) return;
        this.spinner?.stop();
        const verb =
          e.operation === 'verify' ? `Verifying ${e.file}` : `${KIND_LABEL[e.part]} ${e.operation}`;
        // discardStdin off: ora's discarder puts the terminal in raw mode, so Ctrl-C no longer raises SIGINT, and
        // (stdin never flowing) its own Ctrl-C handler never runs either: the run could not be interrupted.
        this.spinner = ora({
          text: verb,
          stream: this.o.stderr,
          color: this.o.color ? 'cyan' : false,
          discardStdin: false,
          isEnabled: true,
        }).start();
        return;
      }
      case 'progress': {
        if (!this.spinner) return;
        const now = this.now();
        if (now - this.lastRender < 100) return;
        this.lastRender = now;
        this.spinner.text = progressText(e);
        this.spinner.render();
        return;
      }
      case 'part-done': {
        const what =
          e.operation === 'verify'
            ? `${e.file}: OK`
            : `${KIND_LABEL[e.part]} ${e.operation} completed: ${e.file}`;
        if (this.spinner) {
          this.spinner.succeed(`${what} (${doneStats(e)})`);
          this.spinner = null;
        }
        // Results (file names, paths) on stdout, as in plain mode.
        for (const l of magentoLines(e)[1]) this.out(l);
        return;
      }
      default:
        super.onEvent(e);
    }
  }
  override error(message: string, exitCode: number, stack?: string): void {
    if (this.spinner) {
      this.spinner.fail();
      this.spinner = null;
    }
    super.error(message, exitCode, stack);
  }
  override close(): void {
    this.spinner?.stop();
    this.spinner = null;
  }
}
