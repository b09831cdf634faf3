/**
 * A synchronous, incremental tar parser: feed it decompressed bytes in chunks of any size, it calls a sink for
 * every file-system entry and its body. Reads ustar, pax ('x'/'g') and GNU ('L'/'K' long names) archives, as
 * written by magebackup, GNU tar, node-tar and Magento's Archive\Tar.
 *
 * It is strict on purpose (it is the verification pass of a rollback): a bad header checksum, a truncated body,
 * absurd metadata or a missing end-of-archive marker throw a TarFormatError. Path safety is not checked here
 * (see extract-plan.ts); this module only decodes.
 */

import {
  TarFormatError,
  checksumOk,
  cString,
  decodeName,
  decodeString,
  isUstar,
  isZeroBlock,
  parsePax,
  readNumber,
  type PaxFields,
} from './tar-fields.js';

export { TarFormatError, parsePax } from './tar-fields.js';

export interface TarEntry {
  /** raw path as stored (pax/GNU long names applied); not normalized */
  path: string;
  /** typeflag: '0' file, '1' hard link, '2' symlink, '3'/'4' devices, '5' dir, '6' fifo, '7' contiguous file */
  type: string;
  mode: number;
  uid: number;
  gid: number;
  /** body size in bytes (0 for directories and links) */
  size: number;
  /** seconds since the epoch (may be fractional, from pax) */
  mtime: number;
  linkpath: string;
}

export interface TarSink {
  entry(e: TarEntry): void;
  /** a piece of the current entry's body; the buffer is only valid during the call */
  data(chunk: Buffer): void;
  /** the current entry's body is complete */
  endEntry(): void;
}

export interface TarLimits {
  /** longest pax / GNU long-name body accepted (bytes) */
  maxMetaSize: number;
}

const DEFAULT_LIMITS: TarLimits = { maxMetaSize: 1024 * 1024 };

const BLOCK = 512;
/** Zero padding accepted after the end marker: GNU tar's record is 10 KiB (20 blocks); `-b 2048` makes 1 MiB. */
const MAX_TRAILING_ZEROS = 8 << 20;

const enum State {
  Header,
  Body,
  Meta,
  Skip,
  Pad,
  Done,
}

/** Types that are file-system entries (everything else is metadata). */
const FS_TYPES = new Set(['0', '1', '2', '3', '4', '5', '6', '7', 'D']);

export class TarReader {
  private state = State.Header;
  private readonly hdr = Buffer.alloc(BLOCK);
  private hdrFill = 0;
  /** body bytes still to come for the current entry / meta block */
  private remaining = 0;
  private pad = 0;
  private metaType = '';
  private metaChunks: Buffer[] = [];
  private ex: PaxFields = {};
  private gex: PaxFields = {};
  private zeroBlocks = 0;
  private current = '';
  /** uncompressed bytes consumed so far */
  bytes = 0;
  /** zero bytes seen after the end-of-archive marker */
  private trailing = 0;
  private readonly limits: TarLimits;

  constructor(
    private readonly sink: TarSink,
    limits: Partial<TarLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  get done(): boolean {
    return this.state === State.Done;
  }

  write(chunk: Buffer): void {
    let off = 0;
    const len = chunk.length;
    this.bytes += len;
    while (off < len) {
      switch (this.state) {
        case State.Header: {
          if (this.hdrFill === 0 && len - off >= BLOCK) {
            this.header(chunk, off);
            off += BLOCK;
          } else {
            const n = Math.min(BLOCK - this.hdrFill, len - off);
            chunk.copy(this.hdr, this.hdrFill, off, off + n);
            this.hdrFill += n;
            off += n;
            if (this.hdrFill === BLOCK) {
              this.hdrFill = 0;
              this.header(this.hdr, 0);
            }
          }
          break;
        }
        case State.Body: {
          const n = Math.min(this.remaining, len - off);
          this.sink.data(chunk.subarray(off, off + n));
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.finishBody();
          break;
        }
        case State.Meta: {
          const n = Math.min(this.remaining, len - off);
          this.metaChunks.push(Buffer.from(chunk.subarray(off, off + n)));
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.finishMeta();
          break;
        }
        case State.Skip: {
          const n = Math.min(this.remaining, len - off);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.toPad();
          break;
        }
        case State.Pad: {
          const n = Math.min(this.pad, len - off);
          off += n;
          this.pad -= n;
          if (this.pad === 0) this.state = State.Header;
          break;
        }
        case State.Done: {
          // GNU tar pads the archive to a 10 KiB record with zeros. Anything else after the end marker (data,
          // a second archive appended, a second gzip member) is content another reader might extract but we
          // would not: refused, never ignored.
          for (let i = off; i < len; i++) {
            if (chunk[i] !== 0) {
              throw new TarFormatError(
                'data after the end-of-archive marker (a second archive appended, or damage)',
              );
            }
          }
          this.trailing += len - off;
          if (this.trailing > MAX_TRAILING_ZEROS) {
            throw new TarFormatError(
              `more than ${MAX_TRAILING_ZEROS >> 20} MiB of padding after the end-of-archive marker`,
            );
          }
          return;
        }
      }
    }
  }

  /** The input ended: throws unless the archive was complete. */
  end(): void {
    if (this.state === State.Done) return;
    // A lone zero block at the very end: GNU tar accepts it ("A lone zero block"), so do we.
    if (this.state === State.Header && this.hdrFill === 0 && this.zeroBlocks === 1) {
      this.state = State.Done;
      return;
    }
    if (this.state === State.Header && this.hdrFill === 0 && this.zeroBlocks === 0) {
      throw new TarFormatError(
        'unexpected end of archive: the end-of-archive marker is missing (truncated?)',
      );
    }
    throw new TarFormatError(
      'unexpected end of archive (truncated?)',
      this.state === State.Body || this.state === State.Pad ? this.current : undefined,
    );
  }

  private toPad(): void {
    if (this.pad > 0) this.state = State.Pad;
    else this.state = State.Header;
  }

  private finishBody(): void {
    this.sink.endEntry();
    this.toPad();
  }

  private header(buf: Buffer, off: number): void {
    if (isZeroBlock(buf, off)) {
      this.zeroBlocks++;
      if (this.zeroBlocks >= 2) this.state = State.Done;
      return;
    }
    if (this.zeroBlocks > 0) {
      throw new TarFormatError('data after a zero block (corrupt archive)');
    }
    if (!checksumOk(buf, off)) {
      throw new TarFormatError(
        'bad header checksum (corrupt or not a tar archive)',
        this.current || undefined,
      );
    }
    const type = buf[off + 156] === 0 ? '0' : String.fromCharCode(buf[off + 156]!);
    const size = readNumber(buf, off + 124, 12, 'size');
    this.pad = (BLOCK - (size % BLOCK)) % BLOCK;

    if (type === 'x' || type === 'g' || type === 'L' || type === 'K' || type === 'X' || type === 'N') {
      if (size > this.limits.maxMetaSize) {
        throw new TarFormatError(`extended header of ${size} bytes is too large`);
      }
      this.metaType = type;
      this.metaChunks = [];
      this.remaining = size;
      if (size === 0) this.finishMeta();
      else this.state = State.Meta;
      return;
    }

    const isFs = FS_TYPES.has(type);
    if (!isFs) {
      if (type === 'V' || type === 'A' || type === 'I') {
        // volume label / Solaris ACL / inode metadata: nothing to extract
        this.ex = {};
        this.skip(size);
        return;
      }
      if (type === 'S') throw new TarFormatError('GNU sparse files are not supported', decodeName(buf, off));
      throw new TarFormatError(`unsupported entry type '${type}'`, decodeName(buf, off));
    }

    const ex = this.ex;
    const gex = this.gex;
    this.ex = {};
    let path = ex.path ?? gex.path;
    if (path === undefined) {
      path = decodeString(buf, off, 100);
      if (isUstar(buf, off)) {
        const prefix = decodeString(buf, off + 345, 155);
        if (prefix) path = prefix + '/' + path;
      }
    }
    const linkpath = ex.linkpath ?? gex.linkpath ?? decodeString(buf, off + 157, 100);
    let bodySize = ex.size ?? gex.size ?? size;
    const bodiless = type === '2' || type === '3' || type === '4' || type === '5' || type === '6';
    if (bodiless) bodySize = 0;
    const entry: TarEntry = {
      path,
      type: type === '7' ? '0' : type,
      mode: ex.mode ?? gex.mode ?? readNumber(buf, off + 100, 8, 'mode'),
      uid: ex.uid ?? gex.uid ?? readNumber(buf, off + 108, 8, 'uid'),
      gid: ex.gid ?? gex.gid ?? readNumber(buf, off + 116, 8, 'gid'),
      size: bodySize,
      mtime: ex.mtime ?? gex.mtime ?? readNumber(buf, off + 136, 12, 'mtime'),
      linkpath,
    };
    if (bodySize !== size) this.pad = (BLOCK - (bodySize % BLOCK)) % BLOCK;
    this.current = path;
    const hasBody = type === '0' || type === '7';
    this.sink.entry(entry);
    if (hasBody) {
      this.remaining = bodySize;
      if (bodySize === 0) this.finishBody();
      else this.state = State.Body;
    } else {
      // POSIX: symlinks, devices, dirs and FIFOs have no body whatever their size field says (Magento's
      // Archive\Tar stores filesize() of a symlink's TARGET there, and writes no body). Hard links (pax allows
      // data) and GNU dumpdirs have one: it is skipped.
      this.sink.endEntry();
      this.skip(type === '1' || type === 'D' ? bodySize : 0);
    }
  }

  private skip(size: number): void {
    this.remaining = size;
    if (size === 0) this.toPad();
    else this.state = State.Skip;
  }

  private finishMeta(): void {
    const body = Buffer.concat(this.metaChunks);
    this.metaChunks = [];
    switch (this.metaType) {
      case 'L':
      case 'N':
        this.ex.path = cString(body);
        break;
      case 'K':
        this.ex.linkpath = cString(body);
        break;
      case 'x':
      case 'X':
        Object.assign(this.ex, parsePax(body));
        break;
      case 'g':
        this.gex = { ...this.gex, ...parsePax(body) };
        delete this.gex.path;
        delete this.gex.linkpath;
        delete this.gex.size;
        break;
    }
    this.toPad();
  }
}
