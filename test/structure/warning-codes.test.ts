// Warning codes are a closed union (src/events.ts): scripts match on them, so a typo must not compile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WarningCode, type MagebackupEvent } from '../../src/events.js';

void test('a warning code must be declared in WarningCode; each code is its own name', () => {
  // @ts-expect-error an undeclared warning code does not compile (the build fails if this line compiles)
  const undeclared: MagebackupEvent = { type: 'warning', code: 'NO_SUCH_CODE', message: 'x' };
  const declared: MagebackupEvent = { type: 'warning', code: WarningCode.KEPT_PATH, message: 'x' };
  assert.notEqual(
    undeclared.type === 'warning' && undeclared.code,
    declared.type === 'warning' && declared.code,
  );
  for (const [name, code] of Object.entries(WarningCode)) assert.equal(code, name);
});
