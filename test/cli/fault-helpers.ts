/**
 * Faults at a known moment, without timing: the run is frozen (SIGSTOP) once it is provably mid-way (its
 * `.partial` exists), the fault is set up while it cannot move, and it is thawed (SIGCONT). A signal sent to a
 * stopped process stays pending and is handled on SIGCONT.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BIN, type CliResult } from '../helpers/cli.js';
import { minimalStore } from '../helpers/tmp.js';
import { isHistoryFile } from '../../src/history/history.js';

export const flagOf = (root: string) => path.join(root, 'var', '.maintenance.flag');
export const backupsOf = (root: string) => path.join(root, 'var', 'backups');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 5 ms; throws naming `what` after `ms`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A store whose code backup takes a while: `mb` MiB of incompressible files. */
export function bigCodeStore(mb: number, files: Record<string, string> = {}): string {
  const root = minimalStore(files);
  const chunk = 4;
  for (let i = 0; i * chunk < mb; i++)
    writeFileSync(path.join(root, `blob${i}.bin`), randomBytes(chunk << 20));
  return root;
}

/** The `.partial` a run is writing in var/backups, once it has bytes. */
export function partialIn(root: string): string | undefined {
  const dir = backupsOf(root);
  if (!existsSync(dir)) return undefined;
  const p = readdirSync(dir).find((n) => n.endsWith('.partial'));
  if (!p) return undefined;
  try {
    return statSync(path.join(dir, p)).size > 0 ? p : undefined;
  } catch {
    return undefined;
  }
}

/** pid of the magebackup run holding the store's lock. */
export function lockPid(root: string): number | undefined {
  try {
    const pid = (JSON.parse(readFileSync(path.join(backupsOf(root), '.lock'), 'utf8')) as { pid?: number })
      .pid;
    return typeof pid === 'number' ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `signal` (number) is pending for a stopped process (from /proc: ShdPnd is the process-wide set). */
export function signalPending(pid: number, signo: number): boolean {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mask = (name: string) =>
    BigInt('0x' + (new RegExp(`^${name}:\\s*([0-9a-f]+)`, 'm').exec(status)?.[1] ?? '0'));
  const bit = 1n << BigInt(signo - 1);
  return ((mask('ShdPnd') | mask('SigPnd')) & bit) !== 0n;
}

/** SIGSTOP takes effect when each thread next runs: wait until every thread of `pid` is stopped. */
export async function stopProcess(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  await waitFor(`pid ${pid} to stop`, () =>
    readdirSync(`/proc/${pid}/task`).every((t) => {
      try {
        return /^T/m.test(
          /^State:\s*(\S)/m.exec(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8'))?.[1] ?? '',
        );
      } catch {
        return true; // the thread ended
      }
    }),
  );
}

/** Freeze `pid` once `root` has a growing `.partial`, run `fault`, thaw it. Returns the partial's name. */
export async function faultMidWrite(
  root: string,
  pid: () => number | undefined,
  fault: () => Promise<void> | void,
) {
  const partial = await waitFor('a .partial file with data', () => partialIn(root));
  const p = await waitFor('the pid', pid);
  await stopProcess(p);
  try {
    // Frozen: it is still mid-write (the run would have renamed its .partial when done).
    if (!existsSync(path.join(backupsOf(root), partial)))
      throw new Error('the run finished before it could be stopped: make its work bigger');
    await fault();
  } finally {
    process.kill(p, 'SIGCONT');
  }
  return partial;
}

export interface Spawned {
  child: ChildProcess;
  done: Promise<CliResult>;
}

/** Spawns the built binary (stdin ignored, stdout/stderr collected). */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

/**
 * Runs the binary on a pseudo-terminal (util-linux `script`), with a terminal size so the ora spinner is used.
 * `output()` is what the terminal showed so far; `type(s)` types on its keyboard. magebackup runs under a bash
 * that waits for it, not as script's own child: script stops itself when its child is stopped (and resumes it),
 * which would undo the freeze of the tests.
 */
function withoutCi(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { CI: _ci, ...rest } = env;
  return rest;
}

export function spawnOnPty(args: string[]) {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn(
    'script',
    ['-qec', `bash -c "stty cols 120 rows 40; ${quoted}; rc=\\$?; exit \\$rc"`, '/dev/null'],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      // CI=true (as in .ci/run) turns the spinner off: this is a person's terminal, so CI is unset here.
      env: { ...withoutCi(process.env), TERM: 'xterm', NO_COLOR: '1' },
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output: out }));
  });
  return { child, done, output: () => out, type: (s: string) => child.stdin.write(s) };
}

/** Nothing a run leaves behind may be in var/backups: no lock, no .partial, no run marker, no staging. */
export function assertNoLeftovers(root: string, allowed: (name: string) => boolean = () => false): string[] {
  const dir = backupsOf(root);
  if (!existsSync(dir)) return [];
  const left = readdirSync(dir).filter(
    (n) =>
      !isHistoryFile(n) &&
      (n === '.lock' ||
        n.endsWith('.partial') ||
        n.endsWith('.running') ||
        n.startsWith('.magebackup-') ||
        !allowed(n)),
  );
  if (left.length > 0) throw new Error(`left behind in ${dir}: ${left.join(', ')}`);
  return readdirSync(dir).filter((n) => !isHistoryFile(n));
}
