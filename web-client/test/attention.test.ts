import assert from 'node:assert/strict';
import { test } from 'node:test';

import { badgedTitle, countdownText, secondsLeft } from '../src/ui/attention';

test('the title carries one badge while requests wait, and none after', () => {
  assert.equal(badgedTitle('Send files · LabBeam', 1), '(1) Send files · LabBeam');
  assert.equal(badgedTitle('(1) Send files · LabBeam', 3), '(3) Send files · LabBeam');
  assert.equal(badgedTitle('(3) Send files · LabBeam', 0), 'Send files · LabBeam');
  assert.equal(badgedTitle('LabBeam', 0), 'LabBeam');
  assert.equal(badgedTitle('(draft) notes', 0), '(draft) notes', 'only a badge of digits is taken off');
});

test('the countdown shows minutes and seconds and never goes below zero', () => {
  assert.equal(countdownText(42), '0:42');
  assert.equal(countdownText(125), '2:05');
  assert.equal(countdownText(0), '0:00');
  assert.equal(countdownText(-3), '0:00');
  assert.equal(secondsLeft(10_000, 0), 10);
  assert.equal(secondsLeft(10_000, 9_001), 1, 'a started second still counts');
  assert.equal(secondsLeft(10_000, 12_000), 0);
});
