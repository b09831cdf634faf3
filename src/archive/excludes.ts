import { UsageError } from '../errors.js';

/**
 * Magento's code-backup excludes, matched as whole path components (Magento matches substrings, which also drops
 * `.gitignore` and `.github`; we keep those). The one source of these rules: extraction (extract-filter.ts) and the
 * fixtures derive theirs from it, and test/archive/exclude-agreement.test.ts checks that they agree.
 */
export const CODE_EXCLUDES: readonly string[] = Object.freeze([
  '/var',
  '/pub/static',
  '/pub/media',
  '/update',
  'node_modules',
  '.git',
  '.idea',
  '.svn',
  '.grunt',
]);

/** magebackup's own entries (staging directories, journals, state): never backed up, never restored. */
export const INTERNAL_PREFIX = '.magebackup-';
export const INTERNAL_EXCLUDES: readonly string[] = Object.freeze([`${INTERNAL_PREFIX}*`]);

export type ExcludeFn = (relPath: string, isDir: boolean) => boolean;

/** Two regexes over a whole relative path: one for files, one for directories (dir-only patterns included). */
export interface ExcludeMatcher {
  file: RegExp | null;
  dir: RegExp | null;
}

// Lets createArchive ship the patterns (not the closure) to its worker thread.
const patternsOfFn = new WeakMap<ExcludeFn, readonly string[]>();

/** The patterns an exclude function was compiled from, or undefined if it is not from compileExcludes. */
export function excludePatternsOf(fn: ExcludeFn): readonly string[] | undefined {
  return patternsOfFn.get(fn);
}

/**
 * gitignore-style patterns: a leading '/' (or any '/' inside) anchors to the root, a trailing '/' matches
 * directories only, '*' and '?' do not cross '/', '**' does, '[...]' classes, '\' escapes. No negation.
 * A directory that matches excludes everything below it, so `fn('var/log/x', false)` is true for '/var'.
 * Throws UsageError naming a malformed pattern.
 */
export function compileExcludes(patterns: readonly string[]): ExcludeFn {
  const list = Object.freeze([...patterns]);
  const m = compileExcludeMatcher(list);
  const fn: ExcludeFn = (relPath, isDir) => {
    if (m.dir === null) return false;
    const p = normalizeRel(relPath);
    if (p === '') return false;
    // A match on any ancestor directory excludes the path.
    for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) {
      if (m.dir.test(p.slice(0, i))) return true;
    }
    return matchLeaf(m, p, isDir);
  };
  patternsOfFn.set(fn, list);
  return fn;
}

/** Test only the path itself (its ancestors are known not to match, as in a pruning tree walk). */
export function matchLeaf(m: ExcludeMatcher, relPath: string, isDir: boolean): boolean {
  const re = isDir ? m.dir : m.file;
  return re !== null && re.test(relPath);
}

export function compileExcludeMatcher(patterns: readonly string[]): ExcludeMatcher {
  const dirParts: string[] = [];
  const fileParts: string[] = [];
  for (const pat of patterns) {
    const { source, dirOnly } = patternToRegexSource(pat);
    dirParts.push(source);
    if (!dirOnly) fileParts.push(source);
  }
  const join = (parts: string[]): RegExp | null =>
    parts.length === 0 ? null : new RegExp(parts.join('|'), 's');
  return { dir: join(dirParts), file: join(fileParts) };
}

function normalizeRel(p: string): string {
  let s = p;
  while (s.startsWith('./')) s = s.slice(2);
  while (s.startsWith('/')) s = s.slice(1);
  while (s.endsWith('/')) s = s.slice(0, -1);
  return s;
}

function bad(pat: string, why: string): UsageError {
  return new UsageError(`Invalid exclude pattern ${JSON.stringify(pat)}: ${why}`);
}

const REGEX_SPECIAL = /[\\^$.*+?()[\]{}|/]/;

function patternToRegexSource(pat: string): { source: string; dirOnly: boolean } {
  if (typeof pat !== 'string' || pat === '') throw bad(String(pat), 'empty pattern');
  if (pat.includes('\0')) throw bad(pat, 'contains a NUL byte');
  if (pat.startsWith('!')) throw bad(pat, "negation ('!') is not supported");
  let p = pat;
  let dirOnly = false;
  while (p.endsWith('/') && !p.endsWith('\\/')) {
    dirOnly = true;
    p = p.slice(0, -1);
  }
  while (p.startsWith('./')) p = p.slice(2);
  let anchored = false;
  if (p.startsWith('/')) {
    anchored = true;
    p = p.replace(/^\/+/, '');
  }
  if (p === '') throw bad(pat, 'matches nothing (only slashes)');
  if (p.includes('/')) anchored = true;
  const segs = p.split('/');
  if (segs.some((s) => s === '')) throw bad(pat, "contains '//'");
  let body = '';
  for (let si = 0; si < segs.length; si++) {
    const seg = segs[si] as string;
    const last = si === segs.length - 1;
    if (seg === '**') {
      // '**/' = zero or more directories; a trailing '/**' = everything inside.
      body += last ? (si === 0 ? '.*' : '.+') : '(?:[^/]*/)*';
      continue;
    }
    body += segmentToRegex(seg, pat);
    if (!last) body += '/';
  }
  // '/**' at the end already ends in '.+' after a '/', nothing to fix; a leading '**/' makes it unanchored.
  const source = anchored ? `^(?:${body})$` : `(?:^|/)(?:${body})$`;
  return { source, dirOnly };
}

function segmentToRegex(seg: string, pat: string): string {
  let out = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i] as string;
    if (c === '\\') {
      const n = seg[i + 1];
      if (n === undefined) throw bad(pat, 'ends with a lone backslash');
      out += escapeChar(n);
      i++;
    } else if (c === '*') {
      while (seg[i + 1] === '*') i++;
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = findClassEnd(seg, i);
      if (close === -1) throw bad(pat, "unclosed '['");
      let cls = seg.slice(i + 1, close);
      let neg = false;
      if (cls.startsWith('!') || cls.startsWith('^')) {
        neg = true;
        cls = cls.slice(1);
      }
      const inner = cls.replace(/\\(.)/g, '$1').replace(/[\\\]^]/g, '\\$&');
      out += neg ? `[^/${inner}]` : `[${inner}]`;
      i = close;
    } else {
      out += escapeChar(c);
    }
  }
  return out;
}

function findClassEnd(seg: string, open: number): number {
  let i = open + 1;
  if (seg[i] === '!' || seg[i] === '^') i++;
  if (seg[i] === ']') i++; // a leading ']' is literal
  for (; i < seg.length; i++) {
    if (seg[i] === '\\') i++;
    else if (seg[i] === ']') return i;
  }
  return -1;
}

function escapeChar(c: string): string {
  return REGEX_SPECIAL.test(c) ? '\\' + c : c;
}
