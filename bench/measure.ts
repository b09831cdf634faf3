/**
 * Runs one child process and measures it: wall time, peak RSS, CPU time, and (for magebackup --json) the
 * arrival time of each NDJSON event on stderr, so a run can be split into phases.
 *
 * Peak RSS comes from GNU time (`/usr/bin/time -f ...`, the max RSS of the largest process of the tree, exact)
 * when it is installed; otherwise from polling /proc/<pid>/status of the child and its descendants (the sum of
 * their VmRSS at each sample, and each one's VmHWM), which can miss a short spike.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, closeSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunSpec {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** file that receives the child's stdout (else it is captured) */
  stdoutFile?: string;
  /** file fed to the child's stdin */
  stdinFile?: string;
  /** parse stderr as NDJSON events and timestamp them */
  events?: boolean;
  timeoutMs?: number;
}

export interface TimedEvent {
  /** ms since the child was spawned */
  t: number;
  event: Record<string, unknown>;
}

export interface Measured {
  ok: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  wallMs: number;
  /** KiB; undefined when it could not be measured */
  maxRssKb: number | undefined;
  rssSource: 'gnu-time' | 'proc-poll';
  userS: number | undefined;
  sysS: number | undefined;
  stdout: string;
  stderrTail: string;
  events: TimedEvent[];
  /** size of the operation's output file, when the caller measured it */
  outputBytes?: number;
}

let gnuTime: string | undefined | null = null;

/** /usr/bin/time if it is GNU time (BusyBox/BSD time lack -f %M), else undefined. Never installs anything. */
export function findGnuTime(): string | undefined {
  if (gnuTime !== null) return gnuTime;
  gnuTime = undefined;
  for (const p of ['/usr/bin/time', '/bin/time', '/usr/local/bin/time']) {
    if (!existsSync(p)) continue;
    try {
      // `time --version` prints "time (GNU Time) 1.9" on stdout or stderr depending on the version
      const r = spawnSync(p, ['--version'], { encoding: 'utf8', timeout: 5000 });
      const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
      if (/GNU/i.test(out)) {
        gnuTime = p;
        break;
      }
    } catch {
      /* not usable */
    }
  }
  return gnuTime;
}

const TAIL = 4000;

const running = new Set<import('node:child_process').ChildProcess>();

/** Passes a signal on to the measured children still running (the benchmark itself was interrupted). */
export function signalRunning(signal: NodeJS.Signals): number {
  for (const child of running) child.kill(signal);
  return running.size;
}

export function runningCount(): number {
  return running.size;
}

export function runMeasured(spec: RunSpec): Promise<Measured> {
  const time = findGnuTime();
  const timeFile = time
    ? join(tmpdir(), `magebackup-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`)
    : '';
  const cmd = time ?? spec.cmd;
  const args = time ? ['-f', '%M %U %S', '-o', timeFile, '--', spec.cmd, ...spec.args] : spec.args;

  const stdinFd = spec.stdinFile ? openSync(spec.stdinFile, 'r') : undefined;
  const stdoutFd = spec.stdoutFile ? openSync(spec.stdoutFile, 'w', 0o600) : undefined;
  const started = process.hrtime.bigint();
  const ms = (): number => Number(process.hrtime.bigint() - started) / 1e6;

  return new Promise<Measured>((resolve) => {
    const child = spawn(cmd, args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: [stdinFd ?? 'ignore', stdoutFd ?? 'pipe', 'pipe'],
    });
    running.add(child);
    child.on('exit', () => running.delete(child));
    if (stdinFd !== undefined) closeSync(stdinFd);
    if (stdoutFd !== undefined) closeSync(stdoutFd);

    let stdout = '';
    let stderrTail = '';
    const events: TimedEvent[] = [];
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 1_000_000) stdout += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      const t = ms();
      stderrTail = (stderrTail + d).slice(-TAIL);
      if (!spec.events) return;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        try {
          const event = JSON.parse(line) as Record<string, unknown>;
          // progress events can be thousands: keep the first and the latest of each part/operation
          if (event['type'] === 'progress') {
            const last = events[events.length - 1];
            if (
              last &&
              last.event['type'] === 'progress' &&
              last.event['part'] === event['part'] &&
              last.event['operation'] === event['operation'] &&
              events.length >= 2 &&
              events[events.length - 2]?.event['type'] === 'progress'
            ) {
              events[events.length - 1] = { t, event };
              continue;
            }
          }
          events.push({ t, event });
        } catch {
          /* not JSON */
        }
      }
    });

    // RSS fallback: poll the process tree
    let pollPeak = 0;
    const hwm = new Map<number, number>();
    const poll =
      time || child.pid === undefined
        ? undefined
        : setInterval(() => {
            const pids = treePids(child.pid as number);
            let sum = 0;
            for (const pid of pids) {
              const st = procStatus(pid);
              if (!st) continue;
              sum += st.rss;
              hwm.set(pid, Math.max(hwm.get(pid) ?? 0, st.hwm));
            }
            pollPeak = Math.max(pollPeak, sum);
          }, 50);

    const timer = spec.timeoutMs
      ? setTimeout(() => {
          child.kill('SIGKILL');
        }, spec.timeoutMs)
      : undefined;

    const finish = (code: number | null, signal: NodeJS.Signals | null, err?: Error): void => {
      const wallMs = ms();
      if (poll) clearInterval(poll);
      if (timer) clearTimeout(timer);
      let maxRssKb: number | undefined;
      let userS: number | undefined;
      let sysS: number | undefined;
      let exitCode = code;
      if (time) {
        try {
          const lines = readFileSync(timeFile, 'utf8').trim().split('\n');
          const m = /^(\d+) ([\d.]+) ([\d.]+)$/.exec(lines[lines.length - 1] ?? '');
          if (m) {
            maxRssKb = Number(m[1]);
            userS = Number(m[2]);
            sysS = Number(m[3]);
          }
          // GNU time exits with the child's status; a signal shows up as "Command terminated by signal N"
          const sig = /terminated by signal (\d+)/.exec(lines.join('\n'));
          if (sig) exitCode = 128 + Number(sig[1]);
        } catch {
          /* no measurement */
        }
        rmSync(timeFile, { force: true });
      } else {
        const hwmSum = [...hwm.values()].reduce((a, b) => a + b, 0);
        const best = Math.max(pollPeak, ...hwm.values(), 0);
        maxRssKb = best > 0 ? Math.min(best, hwmSum || best) : undefined;
        if (hwm.size === 1) maxRssKb = [...hwm.values()][0];
      }
      resolve({
        ok: !err && exitCode === 0,
        code: exitCode,
        signal,
        wallMs,
        maxRssKb,
        rssSource: time ? 'gnu-time' : 'proc-poll',
        userS,
        sysS,
        stdout,
        stderrTail: err ? `${stderrTail}\n${err.message}` : stderrTail,
        events,
      });
    };
    child.on('error', (err) => finish(null, null, err));
    child.on('close', (code, signal) => finish(code, signal));
  });
}

function procStatus(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)/.exec(s);
    const hwm = /VmHWM:\s+(\d+)/.exec(s);
    return { rss: Number(rss?.[1] ?? 0), hwm: Number(hwm?.[1] ?? 0) };
  } catch {
    return undefined;
  }
}

/** pid and all its descendants, from /proc/<pid>/stat parent links */
function treePids(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [root];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop() as number;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  const mid = Math.floor(n / 2);
  return n % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
