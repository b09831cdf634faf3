import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  size?: number;
  sha?: string;
  target?: string;
  mtime?: number;
}

/**
 * Every entry below `dir` with type, mode, content hash, link target and (files) mtime in whole seconds,
 * leaving out paths for which `skip(rel)` is true.
 */
export function describeTree(
  dir: string,
  skip: (rel: string) => boolean = () => false,
): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const abs = path.join(dir, r);
      const st = lstatSync(abs);
      const mode = st.mode & 0o7777;
      if (st.isSymbolicLink()) out.set(r, { type: 'symlink', mode: 0, target: readlinkSync(abs) });
      else if (st.isDirectory()) {
        out.set(r, { type: 'dir', mode });
        walk(r);
      } else {
        out.set(r, {
          type: 'file',
          mode,
          size: st.size,
          sha: createHash('sha256').update(readFileSync(abs)).digest('hex'),
          mtime: Math.floor(st.mtimeMs / 1000),
        });
      }
    }
  };
  walk('');
  return out;
}

/** Human-readable differences between two tree descriptions ([] when equal). */
export function diffTrees(a: Map<string, TreeEntry>, b: Map<string, TreeEntry>): string[] {
  const diffs: string[] = [];
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w) diffs.push(`only in first: ${k}`);
    else if (JSON.stringify(v) !== JSON.stringify(w))
      diffs.push(`differs: ${k} ${JSON.stringify(v)} vs ${JSON.stringify(w)}`);
  }
  for (const k of b.keys()) if (!a.has(k)) diffs.push(`only in second: ${k}`);
  return diffs;
}
