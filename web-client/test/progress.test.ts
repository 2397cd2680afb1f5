import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RateMeter, spreadOverFiles } from '../src/engine/progress';

test('a steady 10 MB/s is measured as such and gives a sensible ETA', () => {
  const m = new RateMeter(1000);
  for (let t = 0; t <= 5000; t += 250) m.sample(t * 10_000, t);
  assert.ok(Math.abs((m.bytesPerSecond ?? 0) - 10_000_000) < 1, String(m.bytesPerSecond));
  assert.equal(m.etaSeconds(50_000_000), 5);
});

test('no rate before two samples', () => {
  const m = new RateMeter();
  m.sample(100, 0);
  assert.equal(m.bytesPerSecond, null);
  assert.equal(m.etaSeconds(10), null);
});

test('bytes are spread over files in order', () => {
  assert.deepEqual(spreadOverFiles(15, [10, 10, 10]), [10, 5, 0]);
  assert.deepEqual(spreadOverFiles(0, [0, 3]), [0, 0]);
  assert.deepEqual(spreadOverFiles(99, [1, 2]), [1, 2]);
});
