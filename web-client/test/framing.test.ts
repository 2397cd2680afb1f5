import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeControl, encodeControl } from '../src/engine/framing';

const SHA = 'a'.repeat(64);

test('every control message survives encoding', () => {
  for (const m of [
    { t: 'file', index: 2, name: 'dir/a b.txt', size: 10, offset: 0 },
    { t: 'eof', index: 2, sha256: SHA },
    { t: 'verified', index: 0, ok: false, sha256: SHA },
    { t: 'cancel', reason: 'cancelled by the user' },
  ] as const) {
    assert.deepEqual(decodeControl(encodeControl(m)), m);
  }
});

test('malformed or hostile control messages are refused', () => {
  for (const text of [
    'not json',
    'null',
    '[]',
    '{"t":"file","index":-1,"name":"a","size":1,"offset":0}',
    '{"t":"file","index":0,"name":"a","size":1.5,"offset":0}',
    '{"t":"file","index":0,"name":"a","size":1,"offset":2}',
    '{"t":"eof","index":0,"sha256":"ABC"}',
    '{"t":"verified","index":0,"ok":"yes","sha256":""}',
    '{"t":"what"}',
  ]) {
    assert.equal(decodeControl(text), null, text);
  }
});

test('a cancel reason is cut to 500 characters', () => {
  const m = decodeControl(JSON.stringify({ t: 'cancel', reason: 'x'.repeat(2000) }));
  assert.ok(m !== null && m.t === 'cancel' && m.reason.length === 500);
});
