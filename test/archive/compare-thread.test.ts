import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { LiveComparer, type EntryComparer, type TreeChanges } from '../../src/archive/extract-compare.js';
import { RemoteComparer } from '../../src/archive/compare-thread.js';

const MiB = 1024 * 1024;

/** What the archive "has": entries driven into a comparer the way the extraction's sink drives it. */
function drive(c: EntryComparer, root: string, big: Buffer): void {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const st = (rel: string): fs.Stats => fs.lstatSync(path.join(root, rel));
  const file = (rel: string, body: Buffer, mtime = Math.floor(st(rel).mtimeMs / 1000)): void => {
    const mode = fs.existsSync(path.join(root, rel)) ? st(rel).mode & 0o7777 : 0o644;
    if (c.startFile(rel, { size: body.length, mtime }, { mode, uid, gid }, '', () => -1, 'diff')) {
      // in pieces, as the tar reader hands them over (a diverging piece ends the comparison)
      for (let off = 0; off < body.length; off += 100_000) {
        if (c.data(body.subarray(off, Math.min(body.length, off + 100_000))) !== undefined) return;
      }
      c.end();
    }
  };
  c.dir('app');
  c.dir('app/dé');
  file('app/equal.php', Buffer.from('<?php // equal\n'));
  file('app/big-equal.bin', big);
  const lastByte = Buffer.from(big);
  lastByte[lastByte.length - 1] = (big.at(-1) ?? 0) ^ 1;
  file('app/big-last-byte.bin', lastByte);
  file('app/same-size-and-mtime.php', Buffer.from('<?php // AAAA\n'));
  file(`app/dé/${'n'.repeat(200)}-✓.php`, Buffer.from('long name'));
  file('app/gone.php', Buffer.from('removed since'), 0);
  file('app/empty.txt', Buffer.alloc(0));
  c.symlink('app/link', 'equal.php', uid, gid);
  c.symlink('app/retargeted', 'equal.php', uid, gid);
  c.hardlink('app/hard', 'app/equal.php');
}

function liveTree(big: Buffer): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'compare-thread-'));
  const w = (rel: string, body: string | Buffer): void => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), body);
  };
  w('app/equal.php', '<?php // equal\n');
  w('app/big-equal.bin', big);
  w('app/big-last-byte.bin', big);
  w('app/same-size-and-mtime.php', '<?php // BBBB\n');
  w(`app/dé/${'n'.repeat(200)}-✓.php`, 'long name');
  w('app/empty.txt', '');
  fs.symlinkSync('equal.php', path.join(root, 'app/link'));
  fs.symlinkSync('big-equal.bin', path.join(root, 'app/retargeted'));
  fs.linkSync(path.join(root, 'app/equal.php'), path.join(root, 'app/hard'));
  return root;
}

const sorted = (c: TreeChanges): TreeChanges => ({
  added: [...c.added].sort(),
  removed: [...c.removed].sort(),
  modified: [...c.modified].sort(),
});

void test('the comparison on its own thread finds what the comparison in place finds (bodies over many batches)', async () => {
  const big = Buffer.alloc(3 * MiB + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const root = liveTree(big);
  try {
    const local = new LiveComparer({ liveDir: root, link: false, filter: 'code' });
    drive(local, root, big);
    const remote = new RemoteComparer(root, 'code');
    drive(remote, root, big);
    const changes: TreeChanges = { added: [], removed: [], modified: [] };
    await remote.finish(changes);
    assert.deepEqual(sorted(changes), sorted(local.changes));
    assert.deepEqual(sorted(changes), {
      added: [],
      removed: ['app/gone.php'],
      // the hard link: the live app/equal.php has two names, so it is not the same single file
      modified: ['app/big-last-byte.bin', 'app/equal.php', 'app/retargeted', 'app/same-size-and-mtime.php'],
    });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
