import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ByteSink,
  ESCAPES,
  LONG_VALUE,
  quoteIdent,
  quoteString,
  sqlLiteral,
  bytesLiteralLength,
  countEscapes,
  escapeInto,
  viewOf,
  writeBytes,
  valueKindFor,
  writeHex,
  writeQuoted,
  writeRaw,
} from '../../src/db/sql-values.js';

const lit = (kind: 'number' | 'string' | 'hex' | 'bytes', v: Buffer | string | null): string =>
  sqlLiteral(kind, v);

void test('strings: the seven mysql_real_escape_string bytes are escaped, nothing else', () => {
  assert.equal(lit('string', "it's"), "'it\\'s'");
  assert.equal(lit('string', 'say "hi"'), '\'say \\"hi\\"\'');
  assert.equal(lit('string', 'back\\slash'), "'back\\\\slash'");
  assert.equal(lit('string', 'a\nb\rc'), "'a\\nb\\rc'");
  assert.equal(lit('string', 'nul\0z\x1a'), "'nul\\0z\\Z'");
  assert.equal(lit('string', 'tab\there ; -- /* */ `x` $$'), "'tab\there ; -- /* */ `x` $$'");
  assert.equal(lit('string', ''), "''");
  assert.equal(lit('string', '😀 中文 é'), "'😀 中文 é'");
});

void test('NULL is the keyword; the string NULL is quoted', () => {
  assert.equal(lit('string', null), 'NULL');
  assert.equal(lit('hex', null), 'NULL');
  assert.equal(lit('number', null), 'NULL');
  assert.equal(lit('string', 'NULL'), "'NULL'");
});

void test('binary values are hex literals; empty is an empty string literal', () => {
  assert.equal(lit('hex', Buffer.from([0, 1, 0xab, 0xff])), '0x0001abff');
  assert.equal(lit('hex', Buffer.alloc(0)), "''");
  const big = Buffer.alloc(10000, 0x5a);
  assert.equal(lit('hex', big), '0x' + big.toString('hex'));
});

void test('numbers are copied as the server wrote them', () => {
  assert.equal(lit('number', '18446744073709551615'), '18446744073709551615');
  assert.equal(
    lit('number', '-99999999999999999999999999999999999.999999999999999999999999999999'),
    '-99999999999999999999999999999999999.999999999999999999999999999999',
  );
  assert.equal(lit('number', '1.7976931348623157e308'), '1.7976931348623157e308');
});

void test('range writers work on a slice of a larger buffer and grow the sink', () => {
  const src = Buffer.from("xx'ab\\cyy");
  const sink = new ByteSink(4);
  writeQuoted(sink, src, 2, 7);
  sink.byte(0x2c);
  writeHex(sink, src, 0, 2);
  sink.byte(0x2c);
  writeRaw(sink, Buffer.from('12345'), 1, 4);
  assert.equal(sink.buf.toString('utf8', 0, sink.len), "'\\'ab\\\\c',0x7878,234");
  const long = Buffer.alloc(200, 0x41);
  writeRaw(sink, long);
  assert.equal(sink.len, "'\\'ab\\\\c',0x7878,234".length + 200);
});

void test('every byte value round-trips through the escaping rules', () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const out = lit('string', all);
  // undo the escaping the way the server parses it
  const body = Buffer.from(out, 'utf8');
  assert.equal(body[0], 0x27);
  const unescaped: number[] = [];
  const map: Record<number, number> = {
    0x30: 0,
    0x6e: 10,
    0x72: 13,
    0x5a: 0x1a,
    0x22: 0x22,
    0x27: 0x27,
    0x5c: 0x5c,
  };
  for (let i = 1; i < body.length - 1; i++) {
    if (body[i] === 0x5c) {
      i++;
      unescaped.push(map[body[i]!]!);
    } else unescaped.push(body[i]!);
  }
  // the input is not valid UTF-8, so compare the raw path instead of the string one
  const sink = new ByteSink(8);
  writeQuoted(sink, all);
  const raw = sink.buf.subarray(1, sink.len - 1);
  const back: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c) {
      i++;
      back.push(map[raw[i]!]!);
    } else back.push(raw[i]!);
  }
  assert.deepEqual(Buffer.from(back), all);
  assert.ok(unescaped.length > 0);
});

void test('ByteSink.take hands over the bytes and starts a fresh buffer', () => {
  const sink = new ByteSink(16);
  sink.ascii('hello');
  const a = sink.take(16);
  sink.ascii('world');
  assert.equal(a.toString(), 'hello');
  assert.equal(sink.take().toString(), 'world');
});

void test('identifiers and kinds', () => {
  assert.equal(quoteIdent('we`ird name'), '`we``ird name`');
  assert.equal(quoteString("a'b"), "'a\\'b'");
  for (const t of ['int', 'bigint', 'decimal', 'double', 'float', 'tinyint'])
    assert.equal(valueKindFor(t), 'number');
  for (const t of ['varbinary', 'blob', 'longblob', 'binary', 'tinyblob', 'mediumblob'])
    assert.equal(valueKindFor(t), 'bytes');
  for (const t of ['bit', 'geometry', 'point']) assert.equal(valueKindFor(t), 'hex');
  for (const t of [
    'varchar',
    'text',
    'enum',
    'set',
    'json',
    'date',
    'datetime',
    'timestamp',
    'time',
    'year',
    'longtext',
  ]) {
    assert.equal(valueKindFor(t), 'string');
  }
});

void test('binary values: the shorter of 0x... and _binary escaped', () => {
  assert.equal(lit('bytes', Buffer.alloc(0)), "''");
  assert.equal(lit('bytes', Buffer.from([0, 0x27])), '0x0027');
  assert.equal(lit('bytes', Buffer.from('abcdefghij')), "_binary'abcdefghij'");
  const mixed = Buffer.from('it\'s\0\n\r\x1a\\"x\xff\x80more bytes here', 'latin1');
  const sink = new ByteSink(16);
  writeBytes(sink, mixed);
  assert.equal(
    sink.buf.toString('latin1', 0, sink.len),
    "_binary'it\\'s\\0\\n\\r\\Z\\\\\\\"x\xff\x80more bytes here'",
  );
  // all specials: hex is shorter
  assert.equal(lit('bytes', Buffer.alloc(100, 0x27)), '0x' + '27'.repeat(100));
  assert.equal(bytesLiteralLength(100, 100), 202);
  assert.equal(bytesLiteralLength(100, 3), 112);
  assert.equal(countEscapes(mixed), 7);
});

void test('long values (the regular-expression path) are escaped byte for byte as the byte loop escapes short ones', () => {
  // the reference: the byte loop, written out here
  const loop = (v: Uint8Array): Buffer => {
    const o: number[] = [0x27];
    for (const c of v) {
      if (ESCAPES[c] === 0) o.push(c);
      else o.push(0x5c, ESCAPES[c]!);
    }
    o.push(0x27);
    return Buffer.from(o);
  };
  const specials = [0x00, 0x0a, 0x0d, 0x1a, 0x22, 0x27, 0x5c];
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (const len of [3, 4, 5, 7, 8, 9, LONG_VALUE - 1, LONG_VALUE, LONG_VALUE + 1, 1000, 5000, 70000]) {
    for (const density of [0, 1, 20, 1000]) {
      const v = Buffer.alloc(len);
      for (let i = 0; i < len; i++)
        v[i] = density > 0 && rnd(density) === 0 ? specials[rnd(specials.length)]! : rnd(256);
      // escapes at both ends and side by side
      if (len > 4 && density > 0) {
        v.set([0x27, 0x5c, 0x00], 0);
        v.set([0x0a, 0x0d], len - 2);
      }
      // a slice of a larger buffer, and the same bytes in a plain Uint8Array
      const big = Buffer.concat([Buffer.from('xx'), v, Buffer.from('yy')]);
      for (const [src, start] of [
        [big, 2],
        [new Uint8Array(v), 0],
      ] as const) {
        const sink = new ByteSink(16);
        sink.ascii('(');
        writeQuoted(sink, src, start, start + len);
        assert.deepEqual(sink.buf.subarray(1, sink.len), loop(v), `length ${len}, density ${density}`);
      }
    }
  }
});

void test('escapeInto (four bytes at a time) escapes exactly as the byte loop: every byte, at every place in a word', () => {
  const ref = (v: Uint8Array): Buffer => {
    const o: number[] = [];
    for (const c of v) {
      if (ESCAPES[c] === 0) o.push(c);
      else o.push(0x5c, ESCAPES[c]!);
    }
    return Buffer.from(o);
  };
  const run = (src: Buffer, start: number, end: number, outAt: number): Buffer => {
    const out = Buffer.alloc(outAt + 2 * (end - start) + 8, 0xee);
    const o = escapeInto(out, viewOf(out), outAt, src, viewOf(src), start, end);
    // nothing written past the escaped bytes (the room of twice the value is all it may use)
    assert.ok(out.subarray(o).every((b) => b === 0xee));
    return out.subarray(outAt, o);
  };
  // fillers around the byte: plain, the bit tricks' edge values (below/at 0x20, 0x80 and 0xff for borrows), neighbours
  const fillers = [0x61, 0x20, 0x1f, 0x21, 0x01, 0x80, 0xff, 0x7f, 0x23, 0x26, 0x28, 0x5b, 0x5d];
  for (let b = 0; b < 256; b++) {
    for (const f of fillers) {
      for (let at = 0; at < 8; at++) {
        const v = Buffer.alloc(11, f);
        v[at] = b;
        for (const lead of [0, 1, 2, 3]) {
          const src = Buffer.concat([Buffer.alloc(lead, 0x5c), v, Buffer.from([0x27, 0x27])]);
          const got = run(src, lead, lead + v.length, lead);
          assert.deepEqual(got, ref(v), `byte ${b} at ${at} among ${f}, lead ${lead}`);
        }
      }
    }
  }
  // random words of the bytes around the thresholds, several specials in one word
  const pool = [
    0x00, 0x0a, 0x0d, 0x1a, 0x22, 0x27, 0x5c, 0x09, 0x1f, 0x20, 0x21, 0x23, 0x26, 0x28, 0x5b, 0x5d, 0x7f,
    0x80, 0xa2, 0xdc, 0xff,
  ];
  let seed = 11;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let i = 0; i < 20000; i++) {
    const v = Buffer.alloc(rnd(24));
    for (let j = 0; j < v.length; j++) v[j] = rnd(3) === 0 ? rnd(256) : pool[rnd(pool.length)]!;
    const lead = rnd(4);
    const src = Buffer.concat([Buffer.alloc(lead), v]);
    assert.deepEqual(run(src, lead, lead + v.length, rnd(4)), ref(v));
  }
});
