import type { Writable } from 'node:stream';
import type { MagebackupEvent } from '../events.js';

export type ReporterMode = 'tty' | 'plain' | 'json';

/**
 * Renders domain events. stderr carries progress, warnings and errors; stdout carries results.
 * One reporter per run (src/cli/reporter.ts picks it): ora on an interactive TTY (ora-reporter.ts), plain
 * Magento-worded lines otherwise (plain-reporter.ts), NDJSON under --json (json-reporter.ts).
 */
export interface Reporter {
  readonly mode: ReporterMode;
  onEvent(event: MagebackupEvent): void;
  /** a command's result: `text` in the text modes, `data` as one JSON line in json mode */
  result(text: string, data: unknown): void;
  /** a fatal error (already mapped to an exit code) */
  error(message: string, exitCode: number, stack?: string): void;
  /** stop spinners; call once at the end */
  close(): void;
  /** warnings reported so far (a run with warnings exits 3) */
  readonly warnings: number;
}

export interface ReporterOptions {
  /** --quiet: results, warnings and errors only */
  quiet: boolean;
  stdout: Writable;
  stderr: Writable;
  /** ANSI colour (only ever on a TTY, and never with NO_COLOR) */
  color: boolean;
}
