import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';

/** A temp directory removed after the test file finishes. */
export function tempDir(prefix = 'mbk-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
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
