/**
 * The session sql_mode a dump sets, as far as quoting goes: the statement splitter and the restore's lexer
 * must read quotes and backslashes exactly as the server will.
 */

export const ANSI_QUOTES_MODES = /(^|,)(ANSI_QUOTES|ANSI|ORACLE|POSTGRESQL|MSSQL|DB2|MAXDB)(,|$)/i;
export const NBE_MODE = /(^|,)NO_BACKSLASH_ESCAPES(,|$)/i;

/**
 * The session sql_mode as a dump sets it, as far as the quoting rules go: `SET [SESSION] sql_mode = '...'`,
 * `SET @saved = @@sql_mode` and `SET sql_mode = @saved` (mariadb-dump's and our per-object pattern), also
 * inside `/*!NNNNN ... *\/`. The stock client follows the server's status flags for the same purpose.
 */
export class SqlModeTracker {
  /** the current mode as far as known ('' = the session's initial mode) */
  mode = '';
  private saved = new Map<string, string>();

  get noBackslashEscapes(): boolean {
    return NBE_MODE.test(this.mode);
  }
  get ansiQuotes(): boolean {
    return ANSI_QUOTES_MODES.test(this.mode);
  }

  /**
   * Looks at one statement (its text); changes the mode if it is a SET that assigns sql_mode. False when it
   * assigns sql_mode a value that cannot be known from the text (an expression, DEFAULT, an unknown variable).
   */
  apply(sql: string): boolean {
    let t = sql.trim();
    const cond = /^\/\*M?!\d*\s*([\s\S]*?)\s*\*\/$/.exec(t);
    if (cond) t = cond[1]!;
    if (!/^SET\s/i.test(t) || !/sql_mode/i.test(t)) return true;
    let exact = true;
    for (const part of splitTopLevel(t.slice(3))) {
      const m =
        /^\s*((?:SESSION|LOCAL|GLOBAL)\s+)?(@@(?:(session|local|global)\.)?)?(@?[`'"]?[\w$.]+[`'"]?)\s*:?=\s*([\s\S]*?)\s*$/i.exec(
          part,
        );
      if (!m) {
        if (/sql_mode/i.test(part)) exact = false;
        continue;
      }
      const global = /global/i.test(m[1] ?? '') || /global/i.test(m[3] ?? '');
      const lhs = m[4]!;
      const rhs = m[5]!;
      if (lhs.startsWith('@')) {
        const name = lhs
          .slice(1)
          .replace(/^[`'"]|[`'"]$/g, '')
          .toLowerCase();
        if (/^@@(?:session\.|local\.)?sql_mode$/i.test(rhs)) this.saved.set(name, this.mode);
        else this.saved.delete(name);
        continue;
      }
      if (global || lhs.toLowerCase() !== 'sql_mode') continue;
      const mode = this.evaluate(rhs);
      if (mode === undefined) exact = false;
      this.mode = mode ?? '';
    }
    return exact;
  }

  /** undefined: not known from the text */
  private evaluate(rhs: string): string | undefined {
    const lit = /^(?:_\w+\s*)?'((?:[^'\\]|''|\\.)*)'$/s.exec(rhs) ?? /^"((?:[^"\\]|""|\\.)*)"$/s.exec(rhs);
    if (lit) return lit[1]!.replace(/''/g, "'").replace(/\\(.)/g, '$1');
    const v = /^@([`'"]?)([\w$.]+)\1$/.exec(rhs);
    if (v && !rhs.startsWith('@@')) return this.saved.get(v[2]!.toLowerCase());
    if (/^@@(?:session\.|local\.)?sql_mode$/i.test(rhs)) return this.mode;
    // DEFAULT, expressions: not known (a dump writes literals and saved values)
    return /^\w+$/.test(rhs) && !/^default$/i.test(rhs) ? rhs : undefined;
  }
}

/** Splits `a = 1, b = 'x,y', c = f(1, 2)` at its top-level commas. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let q = '';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (q !== '') {
      if (c === '\\' && q !== '`') i++;
      else if (c === q) q = '';
      continue;
    }
    if (c === "'" || c === '"' || c === '`') q = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}
