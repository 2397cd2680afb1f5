import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type LabPolicyState, decodeLabPolicy } from '../src/engine/protocol';
import { examConfirmText, nextRefreshMs, scheduleWords } from '../src/ui/lab-policy-panel';

test('a lab’s policies are decoded strictly; an unknown visibility reads as the default', () => {
  assert.deepEqual(decodeLabPolicy({ lab: 'Lab 2', exam: true, visibility: 'own' }), { lab: 'Lab 2', exam: true, visibility: 'own', schedule: null });
  assert.deepEqual(decodeLabPolicy({ lab: 'Lab 2', exam: false, visibility: 'all', schedule: { from: 100, until: 200 }, ok: true }), {
    lab: 'Lab 2',
    exam: false,
    visibility: 'all',
    schedule: { from: 100, until: 200 },
  });
  assert.equal(decodeLabPolicy({ lab: 'Lab 2', exam: false, visibility: 'lab' })?.visibility, 'default');
  assert.equal(decodeLabPolicy({ lab: 'Lab 2', exam: false, visibility: 'own', schedule: { from: 200, until: 100 } })?.schedule, null);
  for (const bad of [null, 'Lab 2', {}, { lab: '', exam: true }, { lab: 'Lab 2' }, { lab: 'Lab 2', exam: 'on' }, { exam: true }]) {
    assert.equal(decodeLabPolicy(bad), null, JSON.stringify(bad));
  }
});

test('starting exam mode asks first, about that lab’s students', () => {
  const words = examConfirmText('Lab 2');
  assert.match(words, /^Students in Lab 2 will no longer be able to send files to each other/);
  assert.match(words, /Start exam mode\?$/);
});

test('the list is read again shortly after the next start or end of a window', () => {
  const lab = (schedule: LabPolicyState['schedule']): LabPolicyState => ({ lab: 'L', exam: false, visibility: 'default', schedule });
  const now = 1_000_000_000;
  assert.equal(nextRefreshMs([lab(null)], now), null);
  assert.equal(nextRefreshMs([lab({ from: 1_000_060, until: 1_000_120 })], now), 62_000, 'its start, plus 2 s');
  assert.equal(nextRefreshMs([lab({ from: 999_000, until: 1_000_030 }), lab({ from: 1_000_060, until: 1_000_120 })], now), 32_000, 'the nearest: an end');
  assert.equal(nextRefreshMs([lab({ from: 999_000, until: 999_500 })], now), null, 'a window that ended');
  assert.equal(nextRefreshMs([lab({ from: 1_000_000 + 86_400, until: 1_000_000 + 90_000 })], now), 6 * 3600 * 1000, 'at most 6 h');
});

test('an exam window is shown in local time, the end’s date only when it is another day', () => {
  const day: Intl.DateTimeFormatOptions = { weekday: 'short', day: 'numeric', month: 'short' };
  const at = (d: number, h: number, m: number) => new Date(2026, 11, d, h, m).getTime() / 1000;
  const date = (d: number) => new Date(2026, 11, d).toLocaleDateString('en-GB', day);
  assert.equal(scheduleWords(at(3, 10, 15), at(3, 12, 15), 'en-GB'), `Exam window: ${date(3)}, 10:15–12:15`);
  assert.equal(scheduleWords(at(3, 22, 0), at(4, 2, 0), 'en-GB'), `Exam window: ${date(3)}, 22:00–${date(4)}, 02:00`);
});
