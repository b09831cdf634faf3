/**
 * The lexical layer of the restore's statement reading: a statement's head as text (for classification),
 * its tokens (for renaming tables), string-literal decoding and one-line excerpts for messages. Pure.
 */

/** Whitespace between tokens as the server's lexer sees it (ASCII only: U+00A0 may be part of a name). */
export function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
}

export function unquoteIdent(id: string): string {
  if (id.startsWith('`') && id.endsWith('`') && id.length >= 2) return id.slice(1, -1).replace(/``/g, '`');
  // only ever given a "name" where ANSI_QUOTES makes it an identifier (restore-parse.ts)
  if (id.startsWith('"') && id.endsWith('"') && id.length >= 2) return id.slice(1, -1).replace(/""/g, '"');
  return id;
}

const HEAD_BYTES = 768;

/** `/*!50001 …`, `/*M!100100 …`: code for a server of at least that version, a comment for older ones */
const EXECUTABLE = /^\/\*M?!(\d*)/;

/**
 * How the server will read a statement: its version (which executable comments run) and the session's
 * quoting rules. The restore must read a statement exactly as the server will, or a name hidden in a comment
 * the server skips (or in a string it ends earlier) would be renamed while the one it runs would not.
 */
export interface Lexing {
  /** major*10000 + minor*100 + patch */
  serverVersion: number;
  /** NO_BACKSLASH_ESCAPES: a backslash in a string is an ordinary character */
  noBackslashEscapes: boolean;
  /** ANSI_QUOTES: "…" is an identifier */
  ansiQuotes: boolean;
}

export const DEFAULT_LEXING: Lexing = {
  serverVersion: Infinity,
  noBackslashEscapes: false,
  ansiQuotes: false,
};

function runs(m: RegExpExecArray, lex: Lexing): boolean {
  const v = m[1] ?? '';
  return v === '' || Number(v) <= lex.serverVersion;
}

/** Whether a backslash escapes the next character inside text quoted with `quote`. */
function escapes(quote: string, lex: Lexing): boolean {
  return quote !== '`' && !lex.noBackslashEscapes && !(quote === '"' && lex.ansiQuotes);
}

/**
 * The statement's first bytes as text, without comments and with executable-comment markers (`/*!50001`,
 * `/*M!100100`, `*\/`) removed, whitespace collapsed.
 */
export function statementHead(raw: Buffer, max = HEAD_BYTES, lex = DEFAULT_LEXING): string {
  const text = raw.subarray(0, max).toString('utf8');
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n && out.length < 400) {
    const c = text[i]!;
    if (c === '/' && text[i + 1] === '*') {
      const m = EXECUTABLE.exec(text.slice(i, i + 16));
      if (m && runs(m, lex)) {
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
        if (text[j] === '\\' && escapes(c, lex)) {
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
    if (isSpace(c)) {
      if (!out.endsWith(' ')) out += ' ';
      i++;
      continue;
    }
    out += c;
    i++;
  }
  // whitespace inside quoted text is part of a name or value: only the whitespace between tokens is collapsed
  return out.trim();
}

const ESCAPES: Record<string, string> = { '0': '\0', b: '\b', n: '\n', r: '\r', t: '\t', Z: '\x1a' };

/**
 * The text of a string literal that starts at `s[0]` (a quote), as the server reads it without
 * NO_BACKSLASH_ESCAPES: `\n`, `\t`, `\0`, … decoded, a doubled quote is one quote; `\%` and `\_` keep their
 * backslash. Stops at the closing quote (or the end of `s`).
 */
export function decodeStringLiteral(s: string, noBackslashEscapes = false): string {
  const quote = s[0];
  let out = '';
  for (let i = 1; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && !noBackslashEscapes && i + 1 < s.length) {
      const d = s[++i]!;
      out += ESCAPES[d] ?? (d === '%' || d === '_' ? '\\' + d : d);
      continue;
    }
    if (c === quote) {
      if (s[i + 1] !== quote) break;
      i++;
    }
    out += c;
  }
  return out;
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

export interface Token {
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
export function tokenize(s: string, limit = Infinity, lex = DEFAULT_LEXING): Token[] {
  const out: Token[] = [];
  const n = s.length;
  let i = 0;
  while (i < n && out.length < limit) {
    const c = s[i]!;
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c === '/' && s[i + 1] === '*') {
      const m = EXECUTABLE.exec(s.slice(i, i + 16));
      if (m && runs(m, lex)) {
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
        if (d === '\\' && escapes(c, lex)) {
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
        t: c === '`' || (c === '"' && lex.ansiQuotes) ? 'id' : 'str',
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

export function isWord(tok: Token | undefined, ...words: string[]): boolean {
  return !!tok && tok.t === 'id' && !tok.quoted && words.includes(tok.v.toUpperCase());
}
