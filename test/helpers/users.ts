import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tempDir } from './tmp.js';

/**
 * The second user of the two-user tests: root runs magebackup, this unprivileged user owns `var/` and
 * `pub/media`, as www-data does on a real host. Not root: the test fails with an instruction (never skips).
 */
export function webUser(): { name: string; uid: number; gid: number } {
  if (process.getuid?.() !== 0) {
    assert.fail(
      'this test needs two real users: run the suite as root (sudo npm test), as CI does; it then uses `nobody` ' +
        '(or creates it with useradd) as the web server user',
    );
  }
  const name = 'nobody';
  try {
    execFileSync('id', ['-u', name], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name]);
  }
  const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
  return { name, uid, gid };
}

/** Run a command as the web server user (what an attacker with www-data can do). */
export function asWebUser(cmd: string, args: string[]): void {
  execFileSync('runuser', ['-u', webUser().name, '--', cmd, ...args], { stdio: 'pipe' });
}

/** Give the web user `var/` and `pub/media` (and a way through the store's 0700 temp parent). */
export function handToWebUser(root: string, rels: string[] = ['var', 'pub/media']): void {
  const u = webUser();
  // the temp directories above the store are 0700: let the web user through, as a real docroot does
  for (let d = root; d.startsWith(path.join(os.tmpdir(), 'mbk-')); d = path.dirname(d)) {
    fs.chmodSync(d, (fs.statSync(d).mode & 0o7777) | 0o055);
  }
  for (const rel of rels) {
    const p = path.join(root, rel);
    fs.mkdirSync(p, { recursive: true });
    execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, p]);
  }
}

/** A root-owned directory outside the store with private content: nothing a run does may change it. */
export function canary(): { dir: string; file: string; snapshot: () => string } {
  const dir = tempDir('mbk-canary-');
  fs.mkdirSync(path.join(dir, 'sub'), { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'secret'), 'root only\n', { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'sub', 'x'), 'x\n', { mode: 0o644 });
  fs.chmodSync(dir, 0o711);
  const snapshot = (): string => {
    const lines: string[] = [];
    const walk = (p: string, rel: string): void => {
      const st = fs.lstatSync(p);
      let what = '';
      if (st.isDirectory()) what = 'dir';
      else if (st.isSymbolicLink()) what = `link ${fs.readlinkSync(p)}`;
      else what = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
      lines.push(`${rel} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${what}`);
      if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n), `${rel}/${n}`);
    };
    walk(dir, '.');
    return lines.join('\n');
  };
  return { dir, file: path.join(dir, 'secret'), snapshot };
}
