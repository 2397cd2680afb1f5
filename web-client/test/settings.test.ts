import assert from 'node:assert/strict';
import { test } from 'node:test';

import { storedDeviceName } from '../src/ui/settings';

test("the browser's own name, stored by earlier versions, counts as no name", () => {
  assert.equal(storedDeviceName('Chrome on Linux', 'Chrome on Linux'), '');
  assert.equal(storedDeviceName('  Chrome on Linux ', 'Chrome on Linux'), '');
  assert.equal(storedDeviceName('', 'Chrome on Linux'), '');
});

test('a name the user gave is kept, trimmed and cut to 64 characters', () => {
  assert.equal(storedDeviceName(' PC 14 ', 'Chrome on Linux'), 'PC 14');
  assert.equal(storedDeviceName('Chrome on Linux (back row)', 'Chrome on Linux'), 'Chrome on Linux (back row)');
  assert.equal(storedDeviceName('x'.repeat(80), 'Firefox on Windows').length, 64);
});
