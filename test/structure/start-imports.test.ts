/**
 * What every run loads before it knows its command: the static import graph of what bin/magebackup.js imports
 * (cli/main.js, cli/io.js), read from the built JavaScript (what Node really loads: type-only imports are gone).
 * The heavy packages and the recovery's rarely needed code are loaded by the code that needs them (`import()`),
 * not by every command: mysql2 (~90 modules) by the first connection, php-parser by the first env.php read, the
 * tree swap and the extraction code by a recovery that has something to do, the archiver by a code or media
 * backup.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// dist/test/structure/ → dist/src/
const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** The modules (files under dist/src, and package names) that `entries` load statically, entries included. */
function staticGraph(entries: string[]): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(path.join(SRC, file), 'utf8');
    for (const m of text.matchAll(
      /^\s*(?:import\s+(?:[^'";]*?\bfrom\s+)?|export\s+[^'";]*?\bfrom\s+)'([^']+)'/gm,
    )) {
      const spec = m[1]!;
      if (spec.startsWith('.'))
        visit(path.relative(SRC, path.resolve(path.dirname(path.join(SRC, file)), spec)));
      else if (!spec.startsWith('node:')) packages.add(spec.split('/')[0]!);
    }
  };
  for (const e of entries) visit(e);
  return { files, packages };
}

void test('what every command loads at its start holds neither mysql2, php-parser nor the recovery swap code', () => {
  const g = staticGraph(['cli/main.js', 'cli/io.js']);
  // the graph is read correctly: what main.js visibly imports is in it
  assert.ok(g.packages.has('commander'), [...g.packages].join(' '));
  assert.ok(g.files.has('restore/operation-recover.js'), [...g.files].join(' '));
  for (const pkg of ['mysql2', 'php-parser', 'ora'])
    assert.ok(!g.packages.has(pkg), `${pkg} is loaded at the start`);
  for (const file of [
    'restore/operation.js',
    'restore/tree-swap.js',
    'archive/extract.js',
    'db/restore.js',
  ]) {
    assert.ok(!g.files.has(file), `${file} is loaded at the start`);
  }
});

void test('a database backup does not load the archiver', () => {
  const g = staticGraph(['cli/commands/setup-backup.js']);
  assert.ok(g.files.has('db/dump.js'), [...g.files].join(' '));
  assert.ok(!g.files.has('archive/create.js'), 'archive/create.js is loaded by every setup:backup');
});
