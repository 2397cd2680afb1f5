import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeExamState } from '../src/engine/protocol';
import { examWords } from '../src/ui/exam-words';

test('the indicator speaks to a bound student, to the lab’s staff, and is gone when the lab is not in exam mode', () => {
  assert.equal(
    examWords({ lab: 'Lab 2', on: true, bound: true }),
    'Exam mode: you cannot send to or receive from other students; broadcasts and hand-ins still work.',
  );
  assert.match(examWords({ lab: 'Lab 2', on: true, bound: false }) ?? '', /^Exam mode in Lab 2: its students cannot send/);
  assert.equal(examWords({ lab: 'Lab 2', on: false, bound: false }), null);
  assert.equal(examWords(null), null);
});

test('an exam state is decoded strictly: a device is never bound while its lab is not in exam mode', () => {
  assert.deepEqual(decodeExamState({ lab: 'Lab 2', on: true, bound: true }), { lab: 'Lab 2', on: true, bound: true });
  assert.deepEqual(decodeExamState({ lab: 'Lab 2', on: false, bound: true }), { lab: 'Lab 2', on: false, bound: false });
  assert.deepEqual(decodeExamState({ on: true }), { lab: '', on: true, bound: false });
  for (const bad of [null, undefined, 'on', {}, { on: 'yes' }]) assert.equal(decodeExamState(bad), null, JSON.stringify(bad));
});
