/**
 * Which paths a code rollback never touches, matched on whole path components (Magento matched substrings):
 * `var`, `pub/static`, `pub/media`, `update` at the root; `node_modules`, `.git`, `.idea`, `.svn`, `.grunt` at
 * any depth; and magebackup's own `.magebackup-*` entries (staging directories, journals) at any depth.
 *
 * The rules are CODE_EXCLUDES of src/archive/excludes.ts (the backup side), split here into root-anchored and
 * anywhere names, because extraction and the tree swap need "which excluded ancestor", not a yes/no per path.
 */
import { CODE_EXCLUDES, INTERNAL_PREFIX } from './excludes.js';

export { INTERNAL_PREFIX };
export const ROOT_EXCLUDES: readonly string[] = Object.freeze(
  CODE_EXCLUDES.filter((p) => p.startsWith('/')).map((p) => p.slice(1)),
);
export const ANYWHERE_EXCLUDES: ReadonlySet<string> = new Set(
  CODE_EXCLUDES.filter((p) => !p.startsWith('/')),
);

/** The excluded path that is `rel` or one of its ancestors, or undefined when `rel` is part of the code. */
export function codeExcludedPrefix(rel: string): string | undefined {
  if (rel === '') return undefined;
  for (const r of ROOT_EXCLUDES) {
    if (rel === r || (rel.startsWith(r) && rel.charCodeAt(r.length) === 0x2f)) return r;
  }
  if (!mayHoldExcludedName(rel)) return undefined;
  let start = 0;
  for (;;) {
    const slash = rel.indexOf('/', start);
    const name = slash === -1 ? rel.slice(start) : rel.slice(start, slash);
    if (ANYWHERE_EXCLUDES.has(name) || name.startsWith(INTERNAL_PREFIX)) {
      return slash === -1 ? rel : rel.slice(0, slash);
    }
    if (slash === -1) return undefined;
    start = slash + 1;
  }
}

const ANYWHERE_LIST: readonly string[] = [...ANYWHERE_EXCLUDES];

/**
 * A quick no (no allocation) for the usual path: none of the anywhere-excluded names, nor the internal prefix, is
 * in it at all. Every excluded name starts a component, so a substring search can only err on the side of yes.
 */
function mayHoldExcludedName(rel: string): boolean {
  if (rel.includes(INTERNAL_PREFIX)) return true;
  for (const n of ANYWHERE_LIST) if (rel.includes(n)) return true;
  return false;
}

/** True when `rel` is itself excluded (its ancestors are not looked at). */
export function isCodeExcludedName(rel: string, name: string): boolean {
  return ROOT_EXCLUDES.includes(rel) || ANYWHERE_EXCLUDES.has(name) || name.startsWith(INTERNAL_PREFIX);
}
