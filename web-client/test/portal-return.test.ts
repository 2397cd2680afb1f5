import assert from 'node:assert/strict';
import { test } from 'node:test';

import { portalReturn } from '../src/portal-return';

test('a portal page in ?next= is where the user goes back to, with its query', () => {
  assert.equal(portalReturn('?next=%2Fadmin%2Fusers%3Fq%3Ddora'), '/admin/users?q=dora');
  assert.equal(portalReturn('?next=/admin'), '/admin');
  assert.equal(portalReturn('?next=/admin/'), '/admin/');
});

test('anything but a path of this portal is ignored, so ?next= cannot send a user elsewhere', () => {
  for (const search of [
    '',
    '?other=1',
    '?next=',
    '?next=https://evil.example/admin',
    '?next=//evil.example/admin',
    '?next=/administrator',
    '?next=/admin/../api/me',
    '?next=/',
    '?next=javascript:alert(1)',
    '?next=/admin\\evil',
  ]) {
    const got = portalReturn(search);
    assert.ok(got === null || (got.startsWith('/admin/') && !got.includes('..')), `${search} → ${got}`);
  }
  assert.equal(portalReturn('?next=/admin/../api/me'), null);
  assert.equal(portalReturn('?next=//evil.example/admin'), null);
  assert.equal(portalReturn('?next=/administrator'), null);
});
