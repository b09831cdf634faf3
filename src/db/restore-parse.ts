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
  | { kind: 'definition'; object: 'view' | 'trigger' | 'procedure' | 'function' | 'event' | 'database' }
  /** anything else: runs alone, after everything before it */
  | { kind: 'barrier' };

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
  definitionDrop: /^DROP\s+(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT)\b/i,
  alterDefinition:
    /^ALTER\s+(?:ALGORITHM\s*=\s*\w+\s+)?(?:DEFINER\s*=\s*\S+\s+)?(?:SQL\s+SECURITY\s+\w+\s+)?(VIEW|EVENT|PROCEDURE|FUNCTION)\b/i,
  alterDatabase: /^ALTER\s+(?:DATABASE|SCHEMA)\b/i,
  create: /^CREATE\b/i,
  createKind:
    /\b(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|TABLE|SEQUENCE|INDEX|DATABASE|SCHEMA|USER|ROLE|SERVER)\b/i,
};

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
  if ((m = RE.insert.exec(head))) return { kind: 'table', ...tableOf(m, 1) };
  if ((m = RE.dropTable.exec(head))) {
    if (m[3] === ',') return { kind: 'barrier' };
    return { kind: 'table', ...tableOf(m, 1), drop: true };
  }
  if ((m = RE.definitionDrop.exec(head)))
    return { kind: 'definition', object: m[1]!.toLowerCase() as 'view' };
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
    const what = k?.[1]?.toLowerCase();
    if (
      what === 'view' ||
      what === 'trigger' ||
      what === 'procedure' ||
      what === 'function' ||
      what === 'event'
    ) {
      return { kind: 'definition', object: what };
    }
  }
  return { kind: 'barrier' };
}

/** Escape an identifier with backticks. */
export function quoteIdent(id: string): string {
  return '`' + id.replace(/`/g, '``') + '`';
}

/**
 * Makes a statement that names the dumped database name the target instead: every `` `from`. `` (a qualified
 * name) and, in ALTER DATABASE, the database itself. Works on bytes, so the rest of the statement is untouched.
 */
export function retargetDatabase(raw: Buffer, from: string | undefined, to: string, head?: string): Buffer {
  if (from === undefined || from === to) return raw;
  const fromQ = Buffer.from(quoteIdent(from), 'utf8');
  const toQ = Buffer.from(quoteIdent(to), 'utf8');
  const isAlterDb = head !== undefined && RE.alterDatabase.test(head);
  const parts: Buffer[] = [];
  let p = 0;
  let changed = false;
  for (;;) {
    const j = raw.indexOf(fromQ, p);
    if (j < 0) break;
    const after = raw[j + fromQ.length];
    const qualified = after === 0x2e; // '.'
    if (qualified || isAlterDb) {
      parts.push(raw.subarray(p, j), toQ);
      changed = true;
    } else {
      parts.push(raw.subarray(p, j + fromQ.length));
    }
    p = j + fromQ.length;
  }
  if (!changed) return raw;
  parts.push(raw.subarray(p));
  return Buffer.concat(parts);
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
