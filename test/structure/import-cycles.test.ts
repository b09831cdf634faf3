/**
 * No import circles in src/: neither between modules nor between folders (the folders are the layers that
 * ARCHITECTURE.md describes). Reads the TypeScript sources, so type-only imports count too: a circle through
 * types still ties two modules together.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// dist/test/structure/ → the repository root
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SRC = path.join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Static `import … from './x.js'` and `export … from './x.js'` (lazy `import()` is how the CLI loads commands). */
export function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^'";]*?\bfrom\s+'(\.{1,2}\/[^']+)'/gm)) {
    out.push(path.resolve(path.dirname(file), m[1]!).replace(/\.js$/, '.ts'));
  }
  return out;
}

/** Every circle found by a depth-first search, each as the list of nodes from its first to itself again. */
export function findCycles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (node: string) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return cycles;
}

function moduleGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    graph.set(
      path.relative(SRC, file),
      importsOf(file, readFileSync(file, 'utf8')).map((f) => path.relative(SRC, f)),
    );
  }
  return graph;
}

/** A folder of src/ (a top-level file such as errors.ts is its own node). */
const folderOf = (rel: string) => rel.split(path.sep)[0]!;

void test('the import-circle finder finds a circle and accepts a tree', () => {
  const circle = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
  ]);
  assert.deepEqual(findCycles(circle), [['a', 'b', 'c', 'a']]);
  const tree = new Map([
    ['a', ['b', 'c']],
    ['b', ['c']],
    ['c', []],
  ]);
  assert.deepEqual(findCycles(tree), []);
  assert.deepEqual(
    importsOf('/s/a/x.ts', "import type { T } from '../b/y.js';\nexport { z } from './z.js';\n"),
    ['/s/b/y.ts', '/s/a/z.ts'],
  );
});

void test('no module of src/ imports itself through others', () => {
  const graph = moduleGraph();
  assert.ok(graph.size > 20, `found only ${graph.size} modules under ${SRC}`);
  assert.deepEqual(
    findCycles(graph).map((c) => c.join(' → ')),
    [],
  );
});

void test('the folders of src/ import each other without a circle', () => {
  const folders = new Map<string, Set<string>>();
  for (const [file, deps] of moduleGraph()) {
    const from = folderOf(file);
    const set = folders.get(from) ?? new Set<string>();
    folders.set(from, set);
    for (const dep of deps) if (folderOf(dep) !== from) set.add(folderOf(dep));
  }
  const graph = new Map([...folders].map(([k, v]) => [k, [...v]]));
  assert.deepEqual(
    findCycles(graph).map((c) => c.join(' → ')),
    [],
  );
});
