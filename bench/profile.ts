/**
 * Summaries of V8 CPU profiles (`node --cpu-prof`): where each thread spent its time, by self time.
 * One .cpuprofile is written per thread (main thread and each worker thread).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ThreadSummary {
  file: string;
  /** ms covered by the profile */
  totalMs: number;
  /** ms not idle */
  busyMs: number;
  top: { name: string; ms: number; pct: number }[];
  /** self time grouped by source area (src/archive, node:zlib, node_modules/mysql2, (gc), ...) */
  areas: { area: string; ms: number; pct: number }[];
}

function frameName(cf: ProfileNode['callFrame']): string {
  const fn = cf.functionName || '(anonymous)';
  if (!cf.url) return fn;
  const url = cf.url.replace(/^file:\/\//, '');
  const short = url.includes('/dist/')
    ? url.slice(url.indexOf('/dist/') + 6)
    : url.includes('/node_modules/')
      ? url.slice(url.lastIndexOf('/node_modules/') + 14)
      : basename(url);
  return `${fn} ${short}:${cf.lineNumber + 1}`;
}

function area(cf: ProfileNode['callFrame']): string {
  const fn = cf.functionName;
  if (!cf.url) {
    if (fn.startsWith('(')) return fn; // (garbage collector), (program), (idle), (root)
    return '(native/builtin)';
  }
  const url = cf.url.replace(/^file:\/\//, '');
  if (url.startsWith('node:'))
    return url
      .replace(/^node:(internal\/)?/, 'node:')
      .split('/')
      .slice(0, 2)
      .join('/');
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    return `node_modules/${rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? '')}`;
  }
  const d = url.indexOf('/dist/');
  if (d >= 0) {
    const rel = url.slice(d + 6);
    return rel.split('/').slice(0, 3).join('/');
  }
  return basename(url);
}

export function summarizeProfile(file: string, topN = 12): ThreadSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  // timeDeltas[i] is the time before sample i; attribute it to the sample (as Chrome DevTools does, roughly)
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] as number;
    const dt = deltas[i + 1] ?? 0;
    self.set(id, (self.get(id) ?? 0) + Math.max(0, dt));
  }
  const byName = new Map<string, number>();
  const byArea = new Map<string, number>();
  let idle = 0;
  let total = 0;
  for (const [id, us] of self) {
    const node = byId.get(id);
    if (!node) continue;
    total += us;
    if (node.callFrame.functionName === '(idle)') idle += us;
    const name = frameName(node.callFrame);
    byName.set(name, (byName.get(name) ?? 0) + us);
    const a = area(node.callFrame);
    byArea.set(a, (byArea.get(a) ?? 0) + us);
  }
  const totalMs = (p.endTime - p.startTime) / 1000;
  const sorted = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, us]) => ({ k, ms: us / 1000, pct: total > 0 ? (100 * us) / total : 0 }));
  return {
    file: basename(file),
    totalMs,
    busyMs: (total - idle) / 1000,
    top: sorted(byName)
      .filter((x) => x.k !== '(idle)')
      .slice(0, topN)
      .map((x) => ({ name: x.k, ms: x.ms, pct: x.pct })),
    areas: sorted(byArea)
      .slice(0, 10)
      .map((x) => ({ area: x.k, ms: x.ms, pct: x.pct })),
  };
}

export function summarizeProfileDir(dir: string, topN = 12): ThreadSummary[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return [];
  }
  return files
    .sort()
    .map((f) => summarizeProfile(join(dir, f), topN))
    .sort((a, b) => b.busyMs - a.busyMs);
}

export function formatProfile(threads: ThreadSummary[]): string {
  const out: string[] = [];
  for (const t of threads) {
    if (t.busyMs < 50) continue;
    out.push(
      `thread ${t.file}: ${(t.totalMs / 1000).toFixed(2)} s profiled, ${(t.busyMs / 1000).toFixed(2)} s busy`,
    );
    out.push(`  by area: ${t.areas.map((a) => `${a.area} ${a.pct.toFixed(0)}%`).join(', ')}`);
    for (const f of t.top)
      out.push(`  ${f.pct.toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}`);
  }
  return out.join('\n');
}
