// Helpers for extract/verify/tree-swap tests: hand-crafted tar archives and exact tree descriptions.
import { gzipSync } from 'node:zlib';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Header, Pax } from 'tar';

export interface CraftEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'BlockDevice' | 'FIFO';
  body?: string | Buffer;
  linkpath?: string;
  mode?: number;
  mtime?: number;
  /** write a pax header carrying the path (for names over 100 bytes) */
  pax?: boolean;
  /** write a GNU 'L' long-name entry carrying the path */
  gnuLong?: boolean;
}

function pad(b: Buffer): Buffer {
  const rem = b.length % 512;
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(512 - rem)]);
}

/** An uncompressed tar stream (with the two zero blocks unless `noEnd`). */
export function craftTar(entries: CraftEntry[], o: { noEnd?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? (e.path.endsWith('/') ? 'Directory' : 'File');
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
    if (e.pax) {
      parts.push(new Pax({ path: e.path, ...(e.linkpath ? { linkpath: e.linkpath } : {}) }).encode());
    }
    if (e.gnuLong) {
      const name = Buffer.from(e.path + '\0');
      const h = new Header({
        path: '././@LongLink',
        mode: 0o644,
        size: name.length,
        type: 'NextFileHasLongPath',
        mtime: new Date(0),
      });
      h.encode();
      parts.push(h.block!, pad(name));
    }
    const h = new Header({
      path: e.pax || e.gnuLong ? e.path.slice(0, 99) : e.path,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      size: type === 'File' ? body.length : 0,
      mtime: new Date((e.mtime ?? 1_600_000_000) * 1000),
      type,
      ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {}),
    });
    h.encode();
    parts.push(h.block!);
    if (type === 'File' && body.length) parts.push(pad(body));
  }
  if (!o.noEnd) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function craftTgz(entries: CraftEntry[], o: { noEnd?: boolean } = {}): Buffer {
  return gzipSync(craftTar(entries, o));
}

export interface Described {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  mtime: number;
  sha?: string;
  target?: string;
  ino?: number;
}

/** Every entry below dir: type, mode, mtime (whole seconds, dirs and symlinks too), content hash, link target. */
export function describe(
  dir: string,
  skip: (rel: string) => boolean = () => false,
): Record<string, Described> {
  const out: Record<string, Described> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const abs = path.join(dir, r);
      const st = lstatSync(abs);
      const base = { mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000) };
      if (st.isSymbolicLink()) out[r] = { type: 'symlink', ...base, mode: 0, target: readlinkSync(abs) };
      else if (st.isDirectory()) {
        out[r] = { type: 'dir', ...base };
        walk(r);
      } else {
        out[r] = { type: 'file', ...base, sha: createHash('sha256').update(readFileSync(abs)).digest('hex') };
      }
    }
  };
  walk('');
  return out;
}
