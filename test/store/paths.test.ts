import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { assertMagentoRoot } from '../../src/store/paths.js';
import { CliError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';

void test('a --root that cannot be read is one CliError naming it, never an internal error', async () => {
  const dir = tempDir('mbk-root-');
  const loop = path.join(dir, 'loop');
  fs.symlinkSync(loop, loop); // stat fails with ELOOP, whoever runs the test
  await assert.rejects(assertMagentoRoot(loop), (err: unknown) => {
    assert.ok(err instanceof CliError, String(err));
    assert.equal(err.message, `Magento root ${loop} cannot be read (ELOOP; see --root)`);
    return true;
  });
  const file = path.join(dir, 'file');
  fs.writeFileSync(file, '');
  await assert.rejects(
    assertMagentoRoot(path.join(file, 'below')),
    /Magento root .* does not exist \(see --root\)$/,
  );
});
