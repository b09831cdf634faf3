/**
 * Redirecting a table statement of a dump to the restore's shadow tables (pure). A dump is hostile input:
 * every table a statement creates, changes or drops must be a shadow table, so anything this cannot
 * redirect with certainty is reported (`unredirected`, `refusal`) and the loader refuses it before the
 * swap. Only identifier tokens are replaced (never text inside literals or comments).
 */
import { quoteIdent } from './sql-values.js';
import { DEFAULT_LEXING, isWord, statementHead, tokenize, type Token } from './sql-tokens.js';

export interface TableRenames {
  /** the name to use for table `name` (of database `db`, when the statement qualifies it); undefined: keep */
  table(name: string, db: string | undefined): string | undefined;
  /** the name to use for foreign-key constraint `name` of table `table` (as the dump names it, when known) */
  constraint(name: string, table: string | undefined): string;
}

export interface Redirected {
  /**
   * the statement; an INSERT/REPLACE's in parts (its renamed head, then the dump's own bytes, not copied: a
   * megabyte of rows is sent from the buffer it was read into)
   */
  raw: Buffer | readonly Buffer[];
  /** the table the statement acts on, as the dump names it (its head), when it was redirected */
  target?: string;
  /** tables the statement writes (its head, DROP lists) that were not redirected */
  unredirected: string[];
  /** CREATE TABLE … LIKE: it needs the other table to exist first */
  copies?: boolean;
  /** the table keeps no rows of its own (MERGE, FEDERATED, …): rows written to it would go elsewhere */
  rowsElsewhere?: boolean;
  /** why the statement cannot be loaded into shadow tables at all (it would read or change others) */
  refusal?: string;
  /**
   * a plain `INSERT INTO t VALUES …` of whole rows (no IGNORE, DELAYED, column list, SET or ON DUPLICATE KEY
   * UPDATE): the table's rows end the same whatever the order such INSERTs of it run in
   */
  reorderable?: boolean;
}

/**
 * Rewrites the table names a table statement (CREATE/ALTER/DROP TABLE, INSERT, SETVAL, CREATE INDEX …)
 * names in its head, in `REFERENCES` and `LIKE` clauses, and the names of its foreign-key constraints. A
 * qualified `db`.`t` that is renamed loses its qualifier. A MERGE table's `UNION=(…)` is kept: it names
 * tables resolved when the table is opened (after the swap: the restored ones).
 */
export function redirectTableStatement(
  raw: Buffer,
  r: TableRenames,
  lex = DEFAULT_LEXING,
  /** the splitter saw an INSERT's values to be literals only (RawStatement.literalValues): not read again */
  literalValues = false,
): Redirected {
  // an INSERT's table is in its first few tokens: do not copy or tokenize megabytes of values
  const head = statementHead(raw, 64, lex).toUpperCase();
  const isInsert = /^(INSERT|REPLACE)\b/.test(head);
  const s = (isInsert ? raw.subarray(0, 4096) : raw).toString('latin1');
  const toks = tokenize(s, isInsert ? 24 : Infinity, lex);
  const edits: Edit[] = [];
  const out: Redirected = { raw, unredirected: [] };
  /** the (possibly qualified) name at token k: renames it, returns the index after it */
  const nameAt = (k: number, role: 'target' | 'write' | 'read'): number => {
    const a = toks[k];
    if (!a || a.t !== 'id') {
      if (role !== 'read') out.unredirected.push(a?.v ?? '(none)');
      return k;
    }
    const dot = toks[k + 1];
    const b = toks[k + 2];
    const qualified = dot?.t === 'p' && dot.v === '.' && b?.t === 'id';
    const name = qualified ? b.v : a.v;
    const to = r.table(name, qualified ? a.v : undefined);
    if (to !== undefined) {
      edits.push({ start: a.start, end: (qualified ? b : a).end, text: quoteIdent(to) });
      if (role === 'target') out.target = name;
    } else if (role !== 'read') {
      out.unredirected.push(qualified ? `${a.v}.${name}` : name);
    }
    return qualified ? k + 3 : k + 1;
  };
  const done = (): Redirected => ({ ...out, raw: apply(raw, edits, isInsert) });
  let k = 0;
  const skipWords = (...words: string[]): void => {
    while (isWord(toks[k], ...words)) k++;
  };
  const first = toks[0];
  if (isWord(first, 'INSERT', 'REPLACE')) {
    k = 1;
    const plain = isWord(first, 'INSERT') && isWord(toks[k], 'INTO');
    skipWords('LOW_PRIORITY', 'DELAYED', 'HIGH_PRIORITY', 'IGNORE', 'INTO');
    const after = nameAt(k, 'target');
    const name = toks[after - 1];
    if (name) {
      const seen = { duplicate: false };
      const what = literalValues ? undefined : valuesRefusal(raw, name.end, lex, seen);
      if (what !== undefined) {
        out.refusal = `${isWord(first, 'REPLACE') ? 'REPLACE' : 'INSERT'} into table ${out.target ?? name.v} ${what}, which could read or change live tables before the swap`;
      } else if (plain && k === 2 && isWord(toks[after], 'VALUES', 'VALUE') && !seen.duplicate) {
        out.reorderable = true;
      }
    }
    return done();
  }
  if (isWord(first, 'SELECT', 'DO')) {
    // SELECT SETVAL(`s`, …)
    if (isWord(toks[1], 'SETVAL') && toks[2]?.v === '(') nameAt(3, 'target');
    return done();
  }
  if (isWord(first, 'TRUNCATE')) {
    k = 1;
    skipWords('TABLE');
    nameAt(k, 'target');
    return done();
  }
  if (isWord(first, 'DROP')) {
    k = 1;
    skipWords('TEMPORARY');
    if (!isWord(toks[k], 'TABLE', 'TABLES', 'SEQUENCE')) return out;
    k++;
    if (isWord(toks[k], 'IF') && isWord(toks[k + 1], 'EXISTS')) k += 2;
    let role: 'target' | 'write' = 'target';
    for (;;) {
      k = nameAt(k, role);
      role = 'write';
      if (toks[k]?.v !== ',') break;
      k++;
    }
    return done();
  }
  // CREATE … TABLE|SEQUENCE|INDEX, ALTER … TABLE|SEQUENCE: the name, then clauses anywhere in the statement
  const create = isWord(first, 'CREATE');
  let i = 1;
  while (i < toks.length && !isWord(toks[i], 'TABLE', 'SEQUENCE', 'INDEX')) i++;
  const kindTok = toks[i];
  if (!kindTok) return out;
  k = i + 1;
  if (isWord(kindTok, 'INDEX')) {
    while (k < toks.length && !isWord(toks[k], 'ON')) k++;
    nameAt(k + 1, 'target');
    return done();
  }
  if (isWord(toks[k], 'IF')) k += isWord(toks[k + 1], 'NOT') ? 3 : 2;
  k = nameAt(k, 'target');
  // CREATE TABLE t LIKE u / CREATE TABLE t (LIKE u)
  const like = isWord(toks[k], 'LIKE')
    ? k + 1
    : toks[k]?.v === '(' && isWord(toks[k + 1], 'LIKE')
      ? k + 2
      : -1;
  if (like >= 0) {
    out.copies = true;
    k = nameAt(like, 'read');
  }
  for (; k < toks.length; k++) {
    const t = toks[k]!;
    if (isWord(t, 'REFERENCES')) {
      k = nameAt(k + 1, 'read') - 1;
      continue;
    }
    if (isWord(t, 'SELECT', 'TABLE')) {
      // CREATE TABLE … [AS] SELECT would read (and call functions of) the live database before the swap;
      // ALTER TABLE … EXCHANGE PARTITION … WITH TABLE / CONVERT … TABLE would move rows of another table
      out.refusal ??= create
        ? `CREATE TABLE … ${t.v.toUpperCase()} would read the live database before the swap`
        : `ALTER TABLE … ${t.v.toUpperCase()} would act on another table`;
      continue;
    }
    if (!create && isWord(t, 'RENAME') && !isWord(toks[k + 1], 'COLUMN', 'INDEX', 'KEY')) {
      out.refusal ??= 'ALTER TABLE … RENAME would give a table a name outside the restore';
      continue;
    }
    if (!create && isWord(t, 'EXCHANGE', 'CONVERT') && isWord(toks[k + 1], 'PARTITION', 'TABLE')) {
      out.refusal ??= `ALTER TABLE … ${t.v.toUpperCase()} ${toks[k + 1]!.v.toUpperCase()} would move rows of another table`;
      continue;
    }
    if (
      isWord(t, 'UNION') ||
      (isWord(t, 'ENGINE') && isElsewhere(toks[k + 1]?.v === '=' ? toks[k + 2] : toks[k + 1]))
    ) {
      // MERGE, FEDERATED, CONNECT, SPIDER: the rows are another table's (its names are resolved when it is
      // opened, so they stay as dumped); the loader must not write rows through it
      out.rowsElsewhere = true;
      continue;
    }
    if (isWord(t, 'CONSTRAINT')) {
      const name = toks[k + 1];
      if (name && name.t === 'id' && !isWord(name, 'FOREIGN', 'CHECK', 'PRIMARY', 'UNIQUE')) {
        if (isWord(toks[k + 2], 'FOREIGN')) {
          edits.push({
            start: name.start,
            end: name.end,
            text: quoteIdent(r.constraint(name.v, out.target)),
          });
        }
      }
      continue;
    }
    if (isWord(t, 'DROP') && isWord(toks[k + 1], 'FOREIGN') && isWord(toks[k + 2], 'KEY')) {
      let j = k + 3;
      if (isWord(toks[j], 'IF') && isWord(toks[j + 1], 'EXISTS')) j += 2;
      const name = toks[j];
      if (name && name.t === 'id') {
        edits.push({ start: name.start, end: name.end, text: quoteIdent(r.constraint(name.v, out.target)) });
      }
      k = j;
    }
  }
  return done();
}

// what a byte is, outside quotes and comments, for valuesRefusal
const C_OTHER = 0;
const C_WORD = 1;
const C_SPACE = 2;
const CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const ch = String.fromCharCode(c);
  CLASS[c] = /[A-Za-z0-9_$]/.test(ch) || c >= 0x80 ? C_WORD : /[ \t\n\r\f\v]/.test(ch) ? C_SPACE : C_OTHER;
}
/** words that may stand before `(` in an INSERT's tail: the row list, `VALUES(col)` in ON DUPLICATE KEY UPDATE */
const PAREN_WORDS = new Set(['VALUES', 'VALUE', 'PARTITION']);

/**
 * What in an INSERT's tail (from byte `from`: after its table name) could run code: a function call (a word
 * before `(`, through comments and executable comments as the server reads them) or a subquery (SELECT), in
 * the values, a SET list or ON DUPLICATE KEY UPDATE. A dump's values are literals only; a stored function
 * there would run, with the loader's rights, before the swap. Undefined when there is none. One pass over the
 * bytes: strings are skipped with indexOf.
 */
export function valuesRefusal(
  raw: Buffer,
  from: number,
  lex = DEFAULT_LEXING,
  /** set when the word DUPLICATE stands outside quotes (ON DUPLICATE KEY UPDATE) */
  seen?: { duplicate: boolean },
): string | undefined {
  const n = raw.length;
  const backslash = !lex.noBackslashEscapes;
  /** the last significant token was a word (or quoted identifier) starting at wordAt, ending at wordEnd */
  let wordAt = -1;
  let wordEnd = -1;
  let i = from;
  while (i < n) {
    const c = raw[i]!;
    const cls = CLASS[c];
    if (cls === C_SPACE) {
      i++;
      continue;
    }
    if (cls === C_WORD) {
      let j = i + 1;
      while (j < n && CLASS[raw[j]!] === C_WORD) j++;
      if (j - i === 6 && raw.toString('latin1', i, j).toUpperCase() === 'SELECT')
        return 'with a subquery (SELECT)';
      if (j - i === 9 && seen && raw.toString('latin1', i, j).toUpperCase() === 'DUPLICATE')
        seen.duplicate = true;
      wordAt = i;
      wordEnd = j;
      i = j;
      continue;
    }
    if (c === 0x27 || c === 0x22 || c === 0x60) {
      // a string, or a quoted identifier (`…`, "…" under ANSI_QUOTES): find its end
      const esc = backslash && c !== 0x60 && !(c === 0x22 && lex.ansiQuotes);
      let j = i + 1;
      for (;;) {
        const q: number = raw.indexOf(c, j);
        if (q < 0) return undefined; // unterminated: the server refuses the statement
        if (esc) {
          let b = q - 1;
          while (b >= j && raw[b] === 0x5c) b--;
          if ((q - 1 - b) % 2 === 1) {
            j = q + 1;
            continue;
          }
        }
        if (raw[q + 1] === c) {
          j = q + 2;
          continue;
        }
        j = q + 1;
        break;
      }
      if (c === 0x60 || (c === 0x22 && lex.ansiQuotes)) {
        wordAt = i;
        wordEnd = j;
      } else wordAt = -1;
      i = j;
      continue;
    }
    if (c === 0x2f && raw[i + 1] === 0x2a) {
      // /*!NNNNN … */ and /*M!NNNNNN … */: code on servers of at least that version. Read as code whatever
      // the version (refusing a call that would not run is safe; the server's 5-or-6-digit rule need not match)
      let j = i + 2;
      if (raw[j] === 0x4d && raw[j + 1] === 0x21) j += 2;
      else if (raw[j] === 0x21) j += 1;
      else j = -1;
      if (j > 0) {
        while (raw[j]! >= 0x30 && raw[j]! <= 0x39) j++;
        i = j;
        continue;
      }
      const e = raw.indexOf('*/', i + 2, 'latin1');
      i = e < 0 ? n : e + 2;
      continue;
    }
    if (c === 0x2a && raw[i + 1] === 0x2f) {
      i += 2; // the end of an executable comment
      continue;
    }
    if (c === 0x23 || (c === 0x2d && raw[i + 1] === 0x2d && (i + 2 >= n || raw[i + 2]! <= 0x20))) {
      const e = raw.indexOf(0x0a, i);
      i = e < 0 ? n : e + 1;
      continue;
    }
    if (c === 0x28 && wordAt >= 0) {
      const word = raw.toString('utf8', wordAt, wordEnd);
      if (!PAREN_WORDS.has(word.toUpperCase())) return `calls ${word}(…)`;
    }
    wordAt = -1;
    i++;
  }
  return undefined;
}

const ELSEWHERE = new Set(['MRG_MYISAM', 'MERGE', 'FEDERATED', 'FEDERATEDX', 'CONNECT', 'SPIDER']);
const isElsewhere = (t: Token | undefined): boolean =>
  !!t && t.t === 'id' && ELSEWHERE.has(t.v.toUpperCase());

/** redirectTableStatement's statement only (the names it could not redirect are left as they are). */
export function renameTables(raw: Buffer, r: TableRenames): Buffer {
  const out = redirectTableStatement(raw, r).raw;
  return Buffer.isBuffer(out) ? out : Buffer.concat(out);
}

interface Edit {
  start: number;
  end: number;
  text: string;
}

/** Offsets are byte offsets (the statement was read as latin1, one char per byte); `parts`: not joined. */
function apply(raw: Buffer, edits: Edit[], parts = false): Buffer | Buffer[] {
  if (edits.length === 0) return raw;
  edits.sort((a, b) => a.start - b.start);
  const list: Buffer[] = [];
  let p = 0;
  for (const e of edits) {
    list.push(raw.subarray(p, e.start), Buffer.from(e.text, 'utf8'));
    p = e.end;
  }
  list.push(raw.subarray(p));
  return parts ? list : Buffer.concat(list);
}

/** Functions a dump's SET statements use (mysqldump's own headers): none of them reads or changes a table. */
const SET_FUNCTIONS = new Set(['IF', 'IFNULL', 'COALESCE', 'NULLIF', 'CONCAT', 'CONCAT_WS']);

/**
 * Why a session statement (SET …) of a dump may not run on the loading connections before the swap, or
 * undefined: `SET STATEMENT … FOR` runs any statement, `SET GLOBAL`/`PASSWORD`/`ROLE` change the server or
 * the account, and a subquery or a stored function could read or change live tables.
 */
export function sessionRefusal(raw: Buffer, lex = DEFAULT_LEXING): string | undefined {
  const toks = tokenize(raw.toString('latin1'), Infinity, lex);
  if (isWord(toks[1], 'STATEMENT', 'PASSWORD', 'ROLE', 'DEFAULT')) {
    return `SET ${toks[1]!.v.toUpperCase()} is not a session setting`;
  }
  for (let k = 1; k < toks.length; k++) {
    const t = toks[k]!;
    if (isWord(t, 'GLOBAL', 'SELECT')) return `SET … ${t.v.toUpperCase()} is not a session setting`;
    if (t.t === 'id' && toks[k + 1]?.v === '(' && !(!t.quoted && SET_FUNCTIONS.has(t.v.toUpperCase()))) {
      return `SET … ${t.v}(…) could call a stored function`;
    }
  }
  return undefined;
}
