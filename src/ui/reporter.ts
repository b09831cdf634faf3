import type { Writable } from 'node:stream';
import type { MagebackupEvent, Part, Operation } from '../events.js';
import { KIND_LABEL } from '../backup/backup-name.js';
import { formatBytes, formatCount } from './format.js';

export type ReporterMode = 'tty' | 'plain' | 'json';

/**
 * Renders domain events. stderr carries progress, warnings and errors; stdout carries results.
 * One reporter per run: ora on an interactive TTY, plain Magento-worded lines otherwise, NDJSON under --json.
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
  warnings: number;
}

export interface ReporterOptions {
  mode: ReporterMode;
  quiet: boolean;
  stdout: Writable;
  stderr: Writable;
  color: boolean;
}

const label = (part: Part) => KIND_LABEL[part];
const opWord: Record<Operation, string> = { backup: 'backup', rollback: 'rollback', verify: 'verification' };

function progressText(e: Extract<MagebackupEvent, { type: 'progress' }>): string {
  const parts: string[] = [];
  if (e.files !== undefined) {
    parts.push(
      e.totalFiles !== undefined
        ? `${formatCount(e.files)} / ${formatCount(e.totalFiles)} files`
        : `${formatCount(e.files)} files`,
    );
  }
  if (e.table !== undefined) parts.push(`table ${e.table}`);
  if (e.rows !== undefined) parts.push(`${formatCount(e.rows)} rows`);
  parts.push(e.totalBytes ? `${formatBytes(e.bytes)} / ${formatBytes(e.totalBytes)}` : formatBytes(e.bytes));
  if (e.totalBytes) parts.push(`${Math.min(100, Math.floor((e.bytes / e.totalBytes) * 100))}%`);
  return `${label(e.part)} ${opWord[e.operation]}: ${parts.join(', ')}`;
}

function doneStats(e: Extract<MagebackupEvent, { type: 'part-done' }>): string {
  const s: string[] = [];
  if (e.files !== undefined) s.push(`${formatCount(e.files)} files`);
  if (e.tables !== undefined) s.push(`${formatCount(e.tables)} tables`);
  if (e.rows !== undefined) s.push(`${formatCount(e.rows)} rows`);
  s.push(formatBytes(e.size));
  return s.join(', ');
}

/** The Magento wording of the non-progress events (BEHAVIOR.md). Returns [stderrLines, stdoutLines]. */
export function magentoLines(e: MagebackupEvent): [string[], string[]] {
  switch (e.type) {
    case 'maintenance':
      return [
        [
          {
            enabled: 'Enabling maintenance mode',
            'already-enabled': 'Maintenance mode already enabled',
            disabled: 'Disabling maintenance mode',
            'left-enabled': 'Skipped disabling maintenance mode',
          }[e.state],
        ],
        [],
      ];
    case 'part-start':
      if (e.operation === 'verify') return [[`Verifying ${e.file} ...`], []];
      return [[`${label(e.part)} ${e.operation} is starting...`], []];
    case 'part-done':
      if (e.operation === 'backup') {
        return [
          [],
          [
            `${label(e.part)} backup filename: ${e.file}`,
            `${label(e.part)} backup path: ${e.path}`,
            `[SUCCESS]: ${label(e.part)} backup completed successfully.`,
          ],
        ];
      }
      if (e.operation === 'verify') return [[`${e.file}: OK (${doneStats(e)})`], []];
      return [[], [`[SUCCESS]: ${label(e.part)} rollback completed successfully.`]];
    case 'warning':
      return [[e.path !== undefined ? `Warning: ${e.path}: ${e.message}` : `Warning: ${e.message}`], []];
    case 'info':
      return [[e.message], []];
    case 'progress':
      return [[progressText(e)], []];
  }
}

class TextReporter implements Reporter {
  readonly mode: ReporterMode;
  warnings = 0;
  private lastProgress = 0;
  constructor(private readonly o: ReporterOptions) {
    this.mode = o.mode;
  }
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
      const now = Date.now();
      if (now - this.lastProgress < 5000) return;
      this.lastProgress = now;
    }
    if (e.type === 'part-start') this.lastProgress = Date.now();
    const [errLines, outLines] = magentoLines(e);
    for (const l of errLines) this.err(l);
    if (!this.o.quiet || e.type === 'part-done') for (const l of outLines) this.out(l);
  }
  result(text: string): void {
    if (text) this.o.stdout.write(text.endsWith('\n') ? text : text + '\n');
  }
  error(message: string, _exitCode: number, stack?: string): void {
    const prefix = this.o.color ? '\x1b[31mError:\x1b[39m' : 'Error:';
    this.err(`${prefix} ${message}`);
    if (stack) this.err(stack);
  }
  close(): void {}
}

class JsonReporter implements Reporter {
  readonly mode = 'json' as const;
  warnings = 0;
  private lastProgress = 0;
  constructor(private readonly o: ReporterOptions) {}
  onEvent(e: MagebackupEvent): void {
    if (e.type === 'warning') this.warnings++;
    if (e.type === 'progress') {
      const now = Date.now();
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

export async function createReporter(o: ReporterOptions): Promise<Reporter> {
  if (o.mode === 'json') return new JsonReporter(o);
  if (o.mode === 'tty') {
    const { OraReporter } = await import('./ora-reporter.js');
    return new OraReporter(o);
  }
  return new TextReporter(o);
}

export { TextReporter, progressText, doneStats };
