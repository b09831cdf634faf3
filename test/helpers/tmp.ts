import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';

const made = new Set<string>();
let exitHook = false;

function removeAll(): void {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
  made.clear();
}

/**
 * A temp directory removed after the test file finishes. `after()` alone is not enough: called inside a test after
 * an `await`, node:test (20) attaches it to the root, whose hooks never ran, and the stores stayed in $TMPDIR; so
 * the directory is also removed when the test process exits.
 */
export function tempDir(prefix = 'mbk-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.add(dir);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', removeAll);
  }
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    made.delete(dir);
  });
  return dir;
}

/** A minimal Magento-shaped store: enough for commands that check app/etc. */
export function minimalStore(files: Record<string, string> = {}): string {
  const root = tempDir('mbk-store-');
  const all: Record<string, string> = {
    'app/etc/env.php':
      "<?php\nreturn ['db' => ['connection' => ['default' => ['host' => 'localhost', 'dbname' => 'magento', 'username' => 'u', 'password' => 'p']]]];\n",
    'app/etc/config.php': "<?php\nreturn ['modules' => []];\n",
    'index.php': '<?php // index\n',
    'pub/index.php': '<?php // pub index\n',
    'pub/media/catalog/a.jpg': 'JPEGDATA',
    'var/log/system.log': 'log line\n',
    ...files,
  };
  for (const [rel, content] of Object.entries(all)) {
    const p = path.join(root, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
  return root;
}
