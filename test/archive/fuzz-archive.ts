/**
 * Fuzzing the archive reader: random and mutated tar/gzip streams (flipped bytes, truncation, bad checksums,
 * header fields rewritten with a valid checksum, huge sizes, long names, pax records, type flags, appended data).
 * Used by test/archive/fuzz.test.ts (fixed seed, a few seconds) and scripts/fuzz-archive.mjs (random seed, as
 * long as you like). What must hold for every input:
 * - no crash: the reader ends, or throws one of its own clean errors (TarFormatError, UnsafeEntryError,
 *   LimitError, a zlib error); extraction resolves or rejects with a CliError;
 * - no hang: every batch and every extraction ends within a timeout;
 * - no write outside the staging directory: a canary directory beside it, which the seed archives aim at
 *   (absolute links, '../canary' names), is unchanged; nothing else appears beside the staging directory, and
 *   no symlink restored leads out of it.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { TarReader, TarFormatError } from '../../src/archive/tar-read.js';
import { UnsafeEntryError } from '../../src/archive/extract-plan.js';
import { LimitError, Sink, type WorkerInput } from '../../src/archive/extract-worker.js';
import { extractArchive } from '../../src/archive/extract.js';
import { CliError } from '../../src/errors.js';
import { craftTar, magentoTar, type CraftEntry } from './extract-crafted.js';

export type Rng = () => number;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const int = (r: Rng, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, xs.length)]!;

/** Valid tar streams to mutate; several aim at `canary` (an absolute directory outside the destination). */
export function seedTars(canary: string): Buffer[] {
  const long = 'd'.repeat(120) + '/' + 'n'.repeat(130) + '.txt';
  const sets: CraftEntry[][] = [
    [
      { path: './', type: 'Directory' },
      { path: 'app/etc/', type: 'Directory', mode: 0o2775 },
      { path: 'app/etc/env.php', body: "<?php return ['db' => 'x'];\n", mode: 0o600 },
      { path: 'bin/magento', body: '#!/usr/bin/env php\n', mode: 0o4755 },
      { path: 'pub/media/', type: 'Directory', mode: 0o777 },
      { path: 'pub/index.php', body: 'x'.repeat(700) },
      { path: 'link', type: 'SymbolicLink', linkpath: 'app/etc/env.php' },
      { path: 'hard', type: 'Link', linkpath: 'bin/magento' },
    ],
    [
      { path: long, body: 'pax', pax: true },
      { path: long + '2', body: 'gnu', gnuLong: true },
      { path: 'x', type: 'SymbolicLink', linkpath: canary },
      { path: 'y/z', body: 'through?' },
      { path: 'up', type: 'SymbolicLink', linkpath: '../canary' },
      { path: 'ww', body: 'w', mode: 0o666 },
    ],
    [
      { path: 'pub/', type: 'Directory' },
      { path: 'pub/media/', type: 'Directory' },
      { path: 'pub/media/catalog/a.jpg', body: Buffer.alloc(1500, 7) },
      { path: 'pub/media/.magebackup-staging-1-media/journal.json', body: '{"liveDir":"/"}' },
      { path: 'pub/media/l', type: 'SymbolicLink', linkpath: '.' },
      { path: 'pub/media/m', type: 'SymbolicLink', linkpath: 'l/..' },
    ],
    [
      { path: 'a/', type: 'Directory' },
      { path: 'a/b', type: 'SymbolicLink', linkpath: canary },
      { path: 'c', body: 'c' },
      { path: 'fifo', type: 'FIFO' },
      { path: 'c', body: 'again' },
    ],
    [],
  ];
  const out = sets.map((s) => craftTar(s));
  out.push(
    magentoTar([
      { name: 'app/', type: 'dir' },
      { name: 'app/code/' + 'q'.repeat(110) + '.php', type: 'file', body: 'long' },
      { name: 'app/l', type: 'symlink', target: '../index.php', symlinkSize: 9000 },
      { name: 'index.php', type: 'file', body: '<?php' },
    ]),
  );
  return out;
}

/** 512-byte blocks that are tar headers (walking the seed as it was written). */
function headerOffsets(tar: Buffer): number[] {
  const out: number[] = [];
  let pos = 0;
  while (pos + 512 <= tar.length) {
    const block = tar.subarray(pos, pos + 512);
    if (block.every((b) => b === 0)) break;
    out.push(pos);
    const size = parseInt(block.toString('latin1', 124, 136).replace(/[^0-7]/g, '') || '0', 8);
    const type = String.fromCharCode(block[156]!);
    const body = type === '2' || type === '5' || type === '1' ? 0 : size;
    pos += 512 + Math.ceil(body / 512) * 512;
  }
  return out;
}

function fixChecksum(tar: Buffer, off: number): void {
  if (off + 512 > tar.length) return;
  tar.fill(0x20, off + 148, off + 156);
  let sum = 0;
  for (let i = off; i < off + 512; i++) sum += tar[i]!;
  tar.write(sum.toString(8).padStart(6, '0') + '\0 ', off + 148, 'latin1');
}

const NASTY_NAMES = (canary: string): string[] => [
  '../escape',
  '../canary/planted',
  canary + '/planted',
  '/etc/planted',
  '.magebackup-staging-9-code/journal.json',
  'pub',
  'pub/media/../../x',
  'a/./b/../../../c',
  '',
  '.',
  './',
  'x\0y',
  'é/名前',
  Array.from({ length: 200 }, () => 'd').join('/'),
  'n'.repeat(300),
  'link/through',
  'x/y',
];

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len)
    len = String(len).length + Buffer.byteLength(body);
  return Buffer.from(`${len}${body}`);
}

function metaEntry(type: 'x' | 'g' | 'L' | 'K', body: Buffer): Buffer {
  const h = Buffer.alloc(512);
  h.write(type === 'x' || type === 'g' ? 'PaxHeader/x' : '././@LongLink', 0, 'latin1');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(body.length.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h[156] = type.charCodeAt(0);
  h.write('ustar\x0000', 257, 'latin1');
  fixChecksum(h, 0);
  const pad = (512 - (body.length % 512)) % 512;
  return Buffer.concat([h, body, Buffer.alloc(pad)]);
}

/** One mutation of a tar stream. */
function mutateTar(r: Rng, input: Buffer, canary: string, seeds: Buffer[]): Buffer {
  let tar = Buffer.from(input);
  const heads = headerOffsets(tar);
  const head = (): number => (heads.length ? pick(r, heads) : 512 * int(r, Math.max(1, tar.length / 512)));
  switch (int(r, 12)) {
    case 0: // flip random bytes
      for (let i = int(r, 8) + 1; i > 0 && tar.length; i--) {
        const at = int(r, tar.length);
        tar[at] = tar[at]! ^ (1 << int(r, 8));
      }
      break;
    case 1: // truncate
      tar = tar.subarray(0, int(r, tar.length + 1));
      break;
    case 2: {
      // rewrite a header field with a valid checksum: reaches the code past the checksum gate
      const off = head();
      if (off + 512 > tar.length) break;
      const field = pick(r, [
        [0, 100],
        [100, 8],
        [108, 16],
        [124, 12],
        [136, 12],
        [156, 1],
        [157, 100],
        [257, 8],
        [345, 155],
      ] as const);
      for (let i = 0; i < field[1]; i++) if (r() < 0.3) tar[off + field[0] + i] = int(r, 256);
      fixChecksum(tar, off);
      break;
    }
    case 3: {
      // huge or odd sizes
      const off = head();
      if (off + 512 > tar.length) break;
      const v = pick(r, [
        '77777777777\0',
        '00000001000\0',
        '7777777777 ',
        '\x80\0\0\0\0\0\0\x01\0\0\0\0',
        '\xff'.repeat(12),
        '           ',
      ]);
      tar.write(v, off + 124, 'latin1');
      fixChecksum(tar, off);
      break;
    }
    case 4: {
      // bad checksum
      const off = head();
      if (off + 512 <= tar.length)
        tar.write(pick(r, ['0000000\0', 'zzzzzzz\0', '        ']), off + 148, 'latin1');
      break;
    }
    case 5: {
      // a long or nasty name through pax or GNU L before some header
      const name = pick(r, NASTY_NAMES(canary));
      const meta =
        r() < 0.5 ? metaEntry('x', paxRecord('path', name)) : metaEntry('L', Buffer.from(name + '\0'));
      const off = head();
      tar = Buffer.concat([tar.subarray(0, off), meta, tar.subarray(off)]);
      break;
    }
    case 6: {
      // pax records with odd values
      const recs = [
        paxRecord('size', pick(r, ['99999999999999', '-1', '1e9', '513', 'abc'])),
        paxRecord('linkpath', pick(r, [canary, '../..', '/etc/shadow', 'a/../..'])),
        paxRecord('mtime', pick(r, ['NaN', '1.5', '-99999999999', '1e400'])),
        paxRecord(pick(r, ['uid', 'gid']), pick(r, ['4294967296', '-5', '0'])),
        paxRecord('GNU.sparse.size', '10'),
        Buffer.from('99999 path=x\n'),
        Buffer.from('3 =\n'),
      ];
      const body = Buffer.concat(Array.from({ length: int(r, 3) + 1 }, () => pick(r, recs)));
      const off = head();
      tar = Buffer.concat([tar.subarray(0, off), metaEntry(r() < 0.8 ? 'x' : 'g', body), tar.subarray(off)]);
      break;
    }
    case 7: {
      // type flags
      const off = head();
      if (off + 512 > tar.length) break;
      tar[off + 156] = pick(
        r,
        [...'0123456789xgLKSVADNXI', '\0', 'Z'].map((c) => c.charCodeAt(0)),
      );
      fixChecksum(tar, off);
      break;
    }
    case 8: {
      // duplicate a run of blocks elsewhere
      const blocks = Math.floor(tar.length / 512);
      if (blocks < 2) break;
      const from = int(r, blocks) * 512;
      const len = (int(r, 4) + 1) * 512;
      const to = int(r, blocks) * 512;
      tar = Buffer.concat([tar.subarray(0, to), tar.subarray(from, from + len), tar.subarray(to)]);
      break;
    }
    case 9: // append data or another archive after the end
      tar = Buffer.concat([tar, r() < 0.5 ? pick(r, seeds) : Buffer.from(randomBytes(r, int(r, 2000)))]);
      break;
    case 10: // random bytes
      tar = Buffer.from(randomBytes(r, int(r, 4096)));
      break;
    default: {
      // splice a header from another seed in
      const other = pick(r, seeds);
      const oh = headerOffsets(other);
      if (!oh.length) break;
      const o = pick(r, oh);
      const off = head();
      tar = Buffer.concat([
        tar.subarray(0, off),
        other.subarray(o, o + 512 * (int(r, 3) + 1)),
        tar.subarray(off),
      ]);
    }
  }
  return tar;
}

function randomBytes(r: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 256);
  return b;
}

/** One fuzz input: a .tgz (or something that is not quite one). */
export function makeCase(r: Rng, canary: string, seeds: Buffer[]): Buffer {
  let tar = pick(r, seeds);
  // some inputs stay valid tar streams (only their gzip layer may be damaged): the paths that extract
  const mutations = r() < 0.25 ? 0 : int(r, 3) + 1;
  for (let i = mutations; i > 0; i--) tar = mutateTar(r, tar, canary, seeds);
  let gz = zlib.gzipSync(tar, { level: 1 });
  if (r() < 0.25) {
    gz = Buffer.from(gz);
    switch (int(r, 5)) {
      case 0:
        {
          const at = int(r, gz.length);
          gz[at] = gz[at]! ^ (1 << int(r, 8));
        }
        break;
      case 1:
        gz = gz.subarray(0, int(r, gz.length));
        break;
      case 2:
        gz = Buffer.concat([gz, zlib.gzipSync(pick(r, seeds))]);
        break;
      case 3:
        gz = Buffer.concat([gz, Buffer.from([0]), Buffer.from(randomBytes(r, int(r, 64)))]);
        break;
      default:
        gz = Buffer.concat([
          zlib.gzipSync(tar.subarray(0, tar.length >> 1)),
          zlib.gzipSync(tar.subarray(tar.length >> 1)),
        ]);
    }
  }
  return gz;
}

function isCleanError(err: unknown): boolean {
  if (err instanceof TarFormatError || err instanceof UnsafeEntryError || err instanceof LimitError)
    return true;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('Z_') || code === 'ERR_BUFFER_TOO_LARGE');
}

/**
 * Reads one input in process with the extraction's own sink in verify mode (no writes), fed in random chunk
 * sizes. Returns 'ok' or 'refused'; throws (a crash) on any other error.
 */
export function readerCase(r: Rng, gz: Buffer): 'ok' | 'refused' {
  const input: WorkerInput = {
    mode: 'verify',
    file: 'fuzz.tgz',
    abort: new SharedArrayBuffer(4),
    filter: pick(r, ['none', 'code', 'media'] as const),
    chown: false,
    keepModes: r() < 0.5,
    allowOutsideLinks: r() < 0.5,
    limit: { dir: '/' },
    umask: 0o022,
  };
  try {
    const tar = zlib.gunzipSync(gz, { maxOutputLength: 64 << 20 });
    const sink = new Sink(input, () => {}, { bytes: 32 << 20, inodes: 10_000, what: 'fuzz', dir: '/' }, 4096);
    const reader = new TarReader(sink);
    let off = 0;
    while (off < tar.length) {
      const n = Math.min(tar.length - off, pick(r, [1, 7, 512, 513, 4096, 1 << 16]));
      reader.write(tar.subarray(off, off + n));
      off += n;
    }
    reader.end();
    sink.checkEnd();
    return 'ok';
  } catch (err) {
    if (isCleanError(err)) return 'refused';
    throw err;
  }
}

export interface BatchResult {
  cases: number;
  ok: number;
  refused: number;
}

/** Case i of a run uses its own generator, so any case can be replayed alone from (seed, i). */
export function caseRng(seed: number, i: number): Rng {
  return rng((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
}

export function readerBatch(seed: number, from: number, count: number, canary: string): BatchResult {
  const seeds = seedTars(canary);
  const res: BatchResult = { cases: 0, ok: 0, refused: 0 };
  for (let i = from; i < from + count; i++) {
    const r = caseRng(seed, i);
    const gz = makeCase(r, canary, seeds);
    let outcome: 'ok' | 'refused';
    try {
      outcome = readerCase(r, gz);
    } catch (err) {
      throw Object.assign(
        new Error(`reader crashed on case ${i} of seed ${seed}: ${(err as Error).stack ?? String(err)}`),
        {
          input: gz,
        },
      );
    }
    res.cases++;
    res[outcome]++;
  }
  return res;
}

/** readerBatch in a worker thread, so that a hang (a loop that never ends) is a timeout, not a stuck run. */
export function readerBatchInWorker(
  seed: number,
  from: number,
  count: number,
  canary: string,
  timeoutMs: number,
): Promise<BatchResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), {
      workerData: { fuzzReader: { seed, from, count, canary } },
    });
    const timer = setTimeout(() => {
      void w.terminate();
      reject(
        new Error(
          `reader hung: cases ${from}..${from + count - 1} of seed ${seed} did not end within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    w.on(
      'message',
      (m: { ok: true; res: BatchResult } | { ok: false; message: string; input: Uint8Array }) => {
        clearTimeout(timer);
        void w.terminate();
        if (m.ok) resolve(m.res);
        else reject(Object.assign(new Error(m.message), { input: Buffer.from(m.input) }));
      },
    );
    w.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

if (!isMainThread && parentPort && (workerData as { fuzzReader?: unknown } | null)?.fuzzReader) {
  const { seed, from, count, canary } = (
    workerData as { fuzzReader: { seed: number; from: number; count: number; canary: string } }
  ).fuzzReader;
  try {
    parentPort.postMessage({ ok: true, res: readerBatch(seed, from, count, canary) });
  } catch (err) {
    parentPort.postMessage({
      ok: false,
      message: (err as Error).message,
      input: (err as { input?: Buffer }).input ?? new Uint8Array(),
    });
  }
}

// ---- through the real extraction worker, writing to disk

export interface Sandbox {
  base: string;
  canary: string;
  stage: string;
}

/** `<base>/canary` (files, a subdirectory) and `<base>/stage`, the only place anything may be written. */
export function makeSandbox(base: string): Sandbox {
  const canary = path.join(base, 'canary');
  fs.mkdirSync(path.join(canary, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(canary, 'secret'), 'canary');
  fs.writeFileSync(path.join(canary, 'sub', 'f'), 'canary');
  const stage = path.join(base, 'stage');
  fs.mkdirSync(stage);
  return { base, canary, stage };
}

function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(dir, r));
      out.push(`${r} ${st.mode} ${st.size} ${st.mtimeMs} ${st.uid}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out.join('\n');
}

/**
 * Extracts one input into `<stage>/dest` with a timeout. Returns 'ok' or 'refused'; throws on a crash (an error
 * that is not a CliError), a hang, a change to the canary, anything left beside the stage, or a restored
 * symlink that leads out of the destination.
 */
export async function extractCase(
  r: Rng,
  gz: Buffer,
  box: Sandbox,
  timeoutMs: number,
): Promise<'ok' | 'refused'> {
  const canaryBefore = snapshot(box.canary);
  const file = path.join(box.base, 'case.tgz');
  fs.writeFileSync(file, gz);
  const dest = path.join(box.stage, 'dest');
  fs.mkdirSync(dest);
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort('fuzz timeout');
      reject(new Error(`extraction hung (no result within ${timeoutMs} ms)`));
    }, timeoutMs);
  });
  let outcome: 'ok' | 'refused';
  try {
    await Promise.race([
      extractArchive({
        file,
        destDir: dest,
        filter: pick(r, ['none', 'code', 'media'] as const),
        keepModes: r() < 0.5,
        maxBytes: 32 << 20,
        signal: ac.signal,
      }),
      timeout,
    ]);
    outcome = 'ok';
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    outcome = 'refused';
  } finally {
    clearTimeout(timer);
  }
  if (snapshot(box.canary) !== canaryBefore) throw new Error('the canary directory changed');
  const beside = fs.readdirSync(box.base).sort().join(',');
  if (beside !== 'canary,case.tgz,stage')
    throw new Error(`something was written beside the stage: ${beside}`);
  const inStage = fs.readdirSync(box.stage).join(',');
  if (inStage !== (outcome === 'ok' ? 'dest' : '')) throw new Error(`unexpected in the stage: ${inStage}`);
  if (outcome === 'ok') {
    checkLinksInside(dest);
    fs.rmSync(dest, { recursive: true, force: true });
  }
  return outcome;
}

function checkLinksInside(dest: string): void {
  const real = fs.realpathSync(dest);
  const walk = (dir: string): void => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, d.name);
      if (d.isSymbolicLink()) {
        const target = fs.readlinkSync(p);
        if (path.isAbsolute(target))
          throw new Error(`a symlink to the absolute path ${target} was restored: ${p}`);
        let resolved: string;
        try {
          resolved = fs.realpathSync(p);
        } catch {
          continue; // dangling or a loop: leads nowhere
        }
        if (resolved !== real && !resolved.startsWith(real + path.sep)) {
          throw new Error(
            `the restored symlink ${p} -> ${target} leads out of the destination (${resolved})`,
          );
        }
      } else if (d.isDirectory()) walk(p);
    }
  };
  walk(dest);
}
