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
  /** owner ids stored in the header (default: the running user's) */
  uid?: number;
  gid?: number;
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
      uid: e.uid ?? process.getuid?.() ?? 0,
      gid: e.gid ?? process.getgid?.() ?? 0,
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

export interface MagentoEntry {
  /** as Magento writes it: relative, directories with a trailing '/' */
  name: string;
  type: 'file' | 'dir' | 'symlink';
  body?: string;
  target?: string;
  mode?: number;
  mtime?: number;
  /** what Magento puts in a symlink's size field: filesize() of the link TARGET (no body follows) */
  symlinkSize?: number;
}

/** A tar stream byte for byte as Magento's Framework\Archive\Tar::_composeHeader writes one (GNU magic, 'L' long names, 12 zero blocks). */
export function magentoTar(entries: MagentoEntry[]): Buffer {
  const field = (s: string | Buffer, len: number): Buffer => {
    const b = Buffer.alloc(len);
    Buffer.from(s).copy(b, 0, 0, len);
    return b;
  };
  const header = (name: string, long: boolean, e?: MagentoEntry, size = 0): Buffer => {
    const mode = long
      ? '       '
      : (e!.mode ?? (e!.type === 'dir' ? 0o755 : 0o644)).toString(8).slice(-4).padStart(6, '0');
    const parts = [
      field(long ? '././@LongLink' : name.slice(0, 100), 100),
      field(mode, 8),
      field('\0\0\0\0\0\0\0', 8),
      field('\0\0\0\0\0\0\0', 8),
      field(size.toString(8).padStart(11, '0'), 12),
      field(long ? '00000000000' : (e!.mtime ?? 1_600_000_000).toString(8).padStart(11, '0'), 12),
      field('        ', 8),
      field(long ? 'L' : e!.type === 'symlink' ? '2' : e!.type === 'dir' ? '5' : '0', 1),
      field(e?.type === 'symlink' && !long ? e.target! : '', 100),
      field('ustar ', 6),
      field(' ', 2),
      field('root', 32),
      field('root', 32),
      field('', 8),
      field('', 8),
      field('', 155),
      field('', 12),
    ];
    const h = Buffer.concat(parts);
    let sum = 0;
    for (const b of h) sum += b;
    Buffer.from(sum.toString(8).padStart(7, '0') + '\0').copy(h, 148);
    return h;
  };
  const out: Buffer[] = [];
  for (const e of entries) {
    if (e.name.length > 100) {
      out.push(header(e.name, true, undefined, e.name.length));
      out.push(pad(Buffer.from(e.name)));
    }
    const body = e.type === 'file' ? Buffer.from(e.body ?? '') : Buffer.alloc(0);
    const size = e.type === 'file' ? body.length : e.type === 'symlink' ? (e.symlinkSize ?? 4096) : 0;
    out.push(header(e.name, false, e, size));
    if (body.length) out.push(pad(body));
  }
  out.push(Buffer.alloc(512 * 12));
  return Buffer.concat(out);
}
