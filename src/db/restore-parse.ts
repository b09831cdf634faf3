/**
 * What a dump statement does, read from its first bytes: which table it belongs to (so that one table's
 * statements go to one connection, in order), whether it sets session state (sent to every connection),
 * defines a view/trigger/routine/event (deferred until the tables are in place), or is a client-side
 * statement the restore skips (USE, CREATE DATABASE, LOCK/UNLOCK TABLES, COMMIT).
 */

export type StatementKind =
  | { kind: 'skip'; why: 'use' | 'create-database' | 'lock' | 'transaction'; database?: string }
  /** session state: SET ... (sent to every loading connection, in order) */
  | { kind: 'session' }
  /** belongs to one table (or sequence) */
  | { kind: 'table'; table: string; database?: string; create?: boolean; drop?: boolean }
  /** view, trigger, routine, event or database-attribute definition: created once the tables are in place */
  | { kind: 'definition'; object: DefinitionObject }
  /** anything else: runs alone, after everything before it */
  | { kind: 'barrier' };

export type DefinitionObject =
  'view' | 'trigger' | 'procedure' | 'function' | 'event' | 'package' | 'package body' | 'database';

const HEAD_BYTES = 768;

/**
 * The statement's first bytes as text, without comments and with executable-comment markers (`/*!50001`,
 * `/*M!100100`, `*\/`) removed, whitespace collapsed.
 */
export function statementHead(raw: Buffer, max = HEAD_BYTES): string {
  const text = raw.subarray(0, max).toString('utf8');
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n && out.length < 400) {
    const c = text[i]!;
    if (c === '/' && text[i + 1] === '*') {
      const m = /^\/\*M?!\d*/.exec(text.slice(i, i + 16));
      if (m) {
        i += m[0].length;
        out += ' ';
        continue;
      }
      const e = text.indexOf('*/', i + 2);
      i = e < 0 ? n : e + 2;
      out += ' ';
      continue;
    }
    if (c === '*' && text[i + 1] === '/') {
      i += 2;
      out += ' ';
      continue;
    }
    if (c === '#' || (c === '-' && text[i + 1] === '-' && (text[i + 2] ?? ' ') <= ' ')) {
      const e = text.indexOf('\n', i);
      i = e < 0 ? n : e + 1;
      out += ' ';
      continue;
    }
    if (c === '`' || c === "'" || c === '"') {
      // copy quoted text verbatim (identifiers may hold anything)
      let j = i + 1;
      while (j < n) {
        if (text[j] === '\\' && c !== '`') {
          j += 2;
          continue;
        }
        if (text[j] === c) {
          if (text[j + 1] === c) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (!out.endsWith(' ')) out += ' ';
      i++;
      continue;
    }
    out += c;
    i++;
  }
  return out.replace(/\s+/g, ' ').trim();
}

const IDENT = String.raw`(?:\`(?:[^\`]|\`\`)+\`|[\w$\u0080-\uffff]+)`;
const QUALIFIED = String.raw`(${IDENT})(?:\s*\.\s*(${IDENT}))?`;

export function unquoteIdent(id: string): string {
  if (id.startsWith('`') && id.endsWith('`') && id.length >= 2) return id.slice(1, -1).replace(/``/g, '`');
  return id;
}

/** `db`.`t` → t (and its database); `t` → t. */
function tableOf(m: RegExpExecArray, first: number): { table: string; database?: string } {
  const a = m[first];
  const b = m[first + 1];
  if (b !== undefined && a !== undefined) return { table: unquoteIdent(b), database: unquoteIdent(a) };
  return { table: unquoteIdent(a ?? '') };
}

const RE = {
  use: new RegExp(String.raw`^USE\s+(${IDENT})`, 'i'),
  createDb: new RegExp(
    String.raw`^CREATE\s+(?:OR\s+REPLACE\s+)?(?:DATABASE|SCHEMA)\s+(?:IF\s+NOT\s+EXISTS\s+)?(${IDENT})`,
    'i',
  ),
  lock: /^(?:LOCK|UNLOCK)\s+TABLES?\b/i,
  tx: /^(?:COMMIT|START\s+TRANSACTION|BEGIN|ROLLBACK)\b/i,
  set: /^SET\b/i,
  executeImmediate: /^EXECUTE\s+IMMEDIATE\s+(?:'|")([\s\S]*)$/i,
  /** our dumper's form for a NO_BACKSLASH_ESCAPES body with a carriage return: `_charset 0x<hex>` */
  executeImmediateHex: /^EXECUTE\s+IMMEDIATE\s+(?:_\w+\s*)?0x((?:[0-9a-f]{2})+)/i,
  dropTable: new RegExp(
    String.raw`^DROP\s+(?:TEMPORARY\s+)?(?:TABLE|SEQUENCE)\s+(?:IF\s+EXISTS\s+)?${QUALIFIED}\s*(,)?`,
    'i',
  ),
  createTable: new RegExp(
    String.raw`^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?(?:TABLE|SEQUENCE)\s+(?:IF\s+NOT\s+EXISTS\s+)?${QUALIFIED}`,
    'i',
  ),
  alterTable: new RegExp(
    String.raw`^(?:ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?(?:TABLE|SEQUENCE)|TRUNCATE(?:\s+TABLE)?)\s+(?:IF\s+EXISTS\s+)?${QUALIFIED}`,
    'i',
  ),
  insert: new RegExp(
    String.raw`^(?:INSERT|REPLACE)\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:INTO\s+)?${QUALIFIED}`,
    'i',
  ),
  setval: new RegExp(String.raw`^(?:SELECT|DO)\s+SETVAL\s*\(\s*${QUALIFIED}`, 'i'),
  definitionDrop: /^DROP\s+(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|PACKAGE\s+BODY|PACKAGE)\b/i,
  alterDefinition:
    /^ALTER\s+(?:ALGORITHM\s*=\s*\w+\s+)?(?:DEFINER\s*=\s*\S+\s+)?(?:SQL\s+SECURITY\s+\w+\s+)?(VIEW|EVENT|PROCEDURE|FUNCTION)\b/i,
  alterDatabase: /^ALTER\s+(?:DATABASE|SCHEMA)\b/i,
  create: /^CREATE\b/i,
  createKind:
    /\b(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|PACKAGE\s+BODY|PACKAGE|TABLE|SEQUENCE|INDEX|DATABASE|SCHEMA|USER|ROLE|SERVER)\b/i,
};

const OBJECTS: Record<string, DefinitionObject> = {
  VIEW: 'view',
  TRIGGER: 'trigger',
  PROCEDURE: 'procedure',
  FUNCTION: 'function',
  EVENT: 'event',
  PACKAGE: 'package',
  'PACKAGE BODY': 'package body',
};

function objectOf(word: string): DefinitionObject {
  const w = word.toUpperCase().replace(/\s+/g, ' ');
  return OBJECTS[w] ?? 'database';
}

/**
 * The object a definition statement creates or drops: `{object, name, drop}`, read from its head; undefined for
 * anything else (session statements, ALTER DATABASE, unreadable heads).
 */
export function definitionTarget(
  head: string,
): { object: Exclude<DefinitionObject, 'database'>; name: string; drop: boolean } | undefined {
  let text = head;
  const ei = RE.executeImmediate.exec(text);
  if (ei) text = (ei[1] ?? '').replace(/\\(.)/g, '$1').replace(/''/g, "'").trim();
  const drop = new RegExp(
    String.raw`^DROP\s+(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|PACKAGE\s+BODY|PACKAGE)\s+(?:IF\s+EXISTS\s+)?${QUALIFIED}`,
    'i',
  ).exec(text);
  if (drop) {
    const o = objectOf(drop[1]!);
    if (o === 'database') return undefined;
    return { object: o, name: tableOf(drop, 2).table, drop: true };
  }
  if (!RE.create.test(text)) return undefined;
  const bare = text.replace(/DEFINER\s*=\s*(?:'[^']*'|`[^`]*`|[^\s@]+)(?:@(?:'[^']*'|`[^`]*`|\S+))?/i, '');
  const m = new RegExp(
    String.raw`\b(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|PACKAGE\s+BODY|PACKAGE)\s+(?:IF\s+NOT\s+EXISTS\s+)?${QUALIFIED}`,
    'i',
  ).exec(bare);
  if (!m) return undefined;
  const o = objectOf(m[1]!);
  if (o === 'database') return undefined;
  return { object: o, name: tableOf(m, 2).table, drop: false };
}

/** Classifies one statement by its head (see statementHead). */
export function classifyStatement(head: string): StatementKind {
  let m: RegExpExecArray | null;
  if ((m = RE.use.exec(head))) return { kind: 'skip', why: 'use', database: unquoteIdent(m[1] ?? '') };
  if ((m = RE.createDb.exec(head)))
    return { kind: 'skip', why: 'create-database', database: unquoteIdent(m[1] ?? '') };
  if (RE.lock.test(head)) return { kind: 'skip', why: 'lock' };
  if (RE.tx.test(head)) return { kind: 'skip', why: 'transaction' };
  if (RE.set.test(head)) return { kind: 'session' };
  if ((m = RE.executeImmediate.exec(head))) {
    // a definition whose text cannot sit in a DELIMITER block (our dumper writes some this way)
    const inner = classifyStatement((m[1] ?? '').replace(/\\(.)/g, '$1').replace(/''/g, "'").trim());
    return inner.kind === 'definition' ? inner : { kind: 'barrier' };
  }
  if ((m = RE.executeImmediateHex.exec(head))) {
    const inner = classifyStatement(Buffer.from(m[1]!, 'hex').toString('latin1').trim());
    return inner.kind === 'definition' ? inner : { kind: 'barrier' };
  }
  if ((m = RE.insert.exec(head))) return { kind: 'table', ...tableOf(m, 1) };
  if ((m = RE.dropTable.exec(head))) {
    if (m[3] === ',') return { kind: 'barrier' };
    return { kind: 'table', ...tableOf(m, 1), drop: true };
  }
  if ((m = RE.definitionDrop.exec(head))) return { kind: 'definition', object: objectOf(m[1]!) };
  if ((m = RE.createTable.exec(head))) return { kind: 'table', ...tableOf(m, 1), create: true };
  if ((m = RE.alterTable.exec(head))) return { kind: 'table', ...tableOf(m, 1) };
  if ((m = RE.setval.exec(head))) return { kind: 'table', ...tableOf(m, 1) };
  if ((m = RE.alterDefinition.exec(head)))
    return { kind: 'definition', object: m[1]!.toLowerCase() as 'view' };
  if (RE.alterDatabase.test(head)) return { kind: 'definition', object: 'database' };
  if (RE.create.test(head)) {
    // CREATE [OR REPLACE] [ALGORITHM=..] [DEFINER=..] [SQL SECURITY ..] [AGGREGATE] VIEW|TRIGGER|...
    const k = RE.createKind.exec(
      head.replace(/DEFINER\s*=\s*(?:'[^']*'|`[^`]*`|[^\s@]+)(?:@(?:'[^']*'|`[^`]*`|\S+))?/i, ''),
    );
    const what = k?.[1] !== undefined ? objectOf(k[1]) : undefined;
    if (what !== undefined && what !== 'database') return { kind: 'definition', object: what };
    if (k?.[1] !== undefined && /^INDEX$/i.test(k[1])) {
      const on = new RegExp(String.raw`\bON\s+${QUALIFIED}`, 'i').exec(head);
      if (on) return { kind: 'table', ...tableOf(on, 1) };
    }
  }
  return { kind: 'barrier' };
}

/** Escape an identifier with backticks. */
export function quoteIdent(id: string): string {
  return '`' + id.replace(/`/g, '``') + '`';
}

/** First ~80 characters of a statement, on one line, for error messages. */
export function statementExcerpt(raw: Buffer, max = 80): string {
  const text = raw
    .subarray(0, max * 4)
    .toString('utf8')
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

// ---------------------------------------------------------------------------------------------------------
// renaming the tables of a table statement (shadow loads)

interface Token {
  /** 'id': a bare word or a `quoted` identifier; 'str': a string literal; 'p': one punctuation character */
  t: 'id' | 'str' | 'p';
  start: number;
  end: number;
  /** identifier text (unquoted, decoded from utf8) or the punctuation character */
  v: string;
  quoted: boolean;
}

function decodeLatin1(s: string): string {
  return Buffer.from(s, 'latin1').toString('utf8');
}

/**
 * Tokens of a statement held as a latin1 string (one char per byte). Comments are skipped; the markers of
 * executable comments are skipped and their content read. `limit` stops early (token count).
 */
function tokenize(s: string, limit = Infinity): Token[] {
  const out: Token[] = [];
  const n = s.length;
  let i = 0;
  while (i < n && out.length < limit) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
      i++;
      continue;
    }
    if (c === '/' && s[i + 1] === '*') {
      const m = /^\/\*M?!\d*/.exec(s.slice(i, i + 16));
      if (m) {
        i += m[0].length;
        continue;
      }
      const e = s.indexOf('*/', i + 2);
      i = e < 0 ? n : e + 2;
      continue;
    }
    if (c === '*' && s[i + 1] === '/') {
      i += 2;
      continue;
    }
    if (c === '#' || (c === '-' && s[i + 1] === '-' && (s[i + 2] ?? ' ') <= ' ')) {
      const e = s.indexOf('\n', i);
      i = e < 0 ? n : e + 1;
      continue;
    }
    if (c === '`' || c === "'" || c === '"') {
      let j = i + 1;
      let v = '';
      while (j < n) {
        const d = s[j]!;
        if (d === '\\' && c !== '`') {
          v += d + (s[j + 1] ?? '');
          j += 2;
          continue;
        }
        if (d === c) {
          if (s[j + 1] === c) {
            v += c;
            j += 2;
            continue;
          }
          break;
        }
        v += d;
        j++;
      }
      out.push({
        t: c === '`' ? 'id' : 'str',
        start: i,
        end: Math.min(j + 1, n),
        v: decodeLatin1(v),
        quoted: true,
      });
      i = j + 1;
      continue;
    }
    if (/[A-Za-z0-9_$\x80-\xff]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$\x80-\xff]/.test(s[j]!)) j++;
      out.push({ t: 'id', start: i, end: j, v: decodeLatin1(s.slice(i, j)), quoted: false });
      i = j;
      continue;
    }
    out.push({ t: 'p', start: i, end: i + 1, v: c, quoted: false });
    i++;
  }
  return out;
}

function isWord(tok: Token | undefined, ...words: string[]): boolean {
  return !!tok && tok.t === 'id' && !tok.quoted && words.includes(tok.v.toUpperCase());
}

export interface TableRenames {
  /** the name to use for table `name` (of database `db`, when the statement qualifies it); undefined: keep */
  table(name: string, db: string | undefined): string | undefined;
  /** the name to use for foreign-key constraint `name` */
  constraint(name: string): string;
}

/**
 * Rewrites the table names a table statement (CREATE/ALTER/DROP TABLE, INSERT, SETVAL, CREATE INDEX …)
 * names in its head, in `REFERENCES` and `LIKE` clauses, and the names of its foreign-key constraints.
 * Only identifier tokens are replaced (never text inside literals or comments); the rest of the bytes
 * are left as they are. A qualified `db`.`t` that is renamed loses its qualifier.
 */
export function renameTables(raw: Buffer, r: TableRenames): Buffer {
  // an INSERT's table is in its first few tokens: do not copy or tokenize megabytes of values
  const head = statementHead(raw, 64).toUpperCase();
  const isInsert = /^(INSERT|REPLACE)\b/.test(head);
  const s = (isInsert ? raw.subarray(0, 4096) : raw).toString('latin1');
  const toks = tokenize(s, isInsert ? 24 : Infinity);
  const edits: { start: number; end: number; text: string }[] = [];
  const q = (id: string): string => quoteIdent(id);
  /** the (possibly qualified) name starting at token k: renames it, returns the index after it */
  const nameAt = (k: number): number => {
    const a = toks[k];
    if (!a || a.t !== 'id') return k;
    const dot = toks[k + 1];
    const b = toks[k + 2];
    if (dot?.t === 'p' && dot.v === '.' && b?.t === 'id') {
      const to = r.table(b.v, a.v);
      if (to !== undefined) edits.push({ start: a.start, end: b.end, text: q(to) });
      return k + 3;
    }
    const to = r.table(a.v, undefined);
    if (to !== undefined) edits.push({ start: a.start, end: a.end, text: q(to) });
    return k + 1;
  };
  let k = 0;
  const skipWords = (...words: string[]): void => {
    while (isWord(toks[k], ...words)) k++;
  };
  const first = toks[0];
  if (isWord(first, 'INSERT', 'REPLACE')) {
    k = 1;
    skipWords('LOW_PRIORITY', 'DELAYED', 'HIGH_PRIORITY', 'IGNORE', 'INTO');
    nameAt(k);
    return apply(raw, edits);
  }
  if (isWord(first, 'SELECT', 'DO')) {
    // SELECT SETVAL(`s`, …)
    if (isWord(toks[1], 'SETVAL') && toks[2]?.v === '(') nameAt(3);
    return apply(raw, edits);
  }
  if (isWord(first, 'TRUNCATE')) {
    k = 1;
    skipWords('TABLE');
    nameAt(k);
    return apply(raw, edits);
  }
  if (isWord(first, 'DROP')) {
    k = 1;
    skipWords('TEMPORARY');
    if (!isWord(toks[k], 'TABLE', 'TABLES', 'SEQUENCE')) return raw;
    k++;
    if (isWord(toks[k], 'IF') && isWord(toks[k + 1], 'EXISTS')) k += 2;
    for (;;) {
      k = nameAt(k);
      if (toks[k]?.v !== ',') break;
      k++;
    }
    return apply(raw, edits);
  }
  // CREATE … TABLE|SEQUENCE|INDEX, ALTER … TABLE|SEQUENCE: the name, then clauses anywhere in the statement
  let i = 1;
  while (i < toks.length && !isWord(toks[i], 'TABLE', 'SEQUENCE', 'INDEX')) i++;
  const kindTok = toks[i];
  if (!kindTok) return raw;
  k = i + 1;
  if (isWord(kindTok, 'INDEX')) {
    while (k < toks.length && !isWord(toks[k], 'ON')) k++;
    nameAt(k + 1);
    return apply(raw, edits);
  }
  if (isWord(toks[k], 'IF')) k += isWord(toks[k + 1], 'NOT') ? 3 : 2;
  k = nameAt(k);
  for (; k < toks.length; k++) {
    const t = toks[k]!;
    if (isWord(t, 'REFERENCES') || (isWord(t, 'LIKE') && (toks[k - 1]?.v === '(' || k === i + 2))) {
      k = nameAt(k + 1) - 1;
      continue;
    }
    if (isWord(t, 'CONSTRAINT')) {
      const name = toks[k + 1];
      if (name && name.t === 'id' && !isWord(name, 'FOREIGN', 'CHECK', 'PRIMARY', 'UNIQUE')) {
        if (isWord(toks[k + 2], 'FOREIGN')) {
          edits.push({ start: name.start, end: name.end, text: q(r.constraint(name.v)) });
        }
      }
      continue;
    }
    if (isWord(t, 'DROP') && isWord(toks[k + 1], 'FOREIGN') && isWord(toks[k + 2], 'KEY')) {
      let j = k + 3;
      if (isWord(toks[j], 'IF') && isWord(toks[j + 1], 'EXISTS')) j += 2;
      const name = toks[j];
      if (name && name.t === 'id') {
        edits.push({ start: name.start, end: name.end, text: q(r.constraint(name.v)) });
      }
      k = j;
    }
  }
  return apply(raw, edits);
}

/** Offsets are byte offsets (the statement was read as latin1, one char per byte). */
function apply(raw: Buffer, edits: { start: number; end: number; text: string }[]): Buffer {
  if (edits.length === 0) return raw;
  edits.sort((a, b) => a.start - b.start);
  const parts: Buffer[] = [];
  let p = 0;
  for (const e of edits) {
    parts.push(raw.subarray(p, e.start), Buffer.from(e.text, 'utf8'));
    p = e.end;
  }
  parts.push(raw.subarray(p));
  return Buffer.concat(parts);
}
