import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type TransferSnapshot, canSendAgain } from '../src/engine/transfer';

const base: TransferSnapshot = {
  id: 't1',
  direction: 'send',
  peer: { peerId: 'p', userId: 2, username: 'kim', displayName: 'Kim', role: 'student', lab: 'Lab 2', device: 'PC-14' },
  state: 'cancelled',
  awaitingAnswer: false,
  files: [],
  totalBytes: 0,
  bytes: 0,
  bytesPerSecond: null,
  etaSeconds: null,
  path: null,
  problem: { code: 'declined', message: 'Kim declined the transfer.' },
  setupMs: null,
  durationMs: null,
  createdAt: 0,
  paused: false,
  needsFiles: false,
  wireBytes: 0,
  resumes: 0,
  part: null,
};

test('a declined or expired request of this page can be sent again', () => {
  assert.equal(canSendAgain(base), true);
  assert.equal(canSendAgain({ ...base, problem: { code: 'expired', message: '' } }), true);
});

test('nothing else offers "Send again"', () => {
  assert.equal(canSendAgain({ ...base, direction: 'receive' }), false, 'the receiver');
  assert.equal(canSendAgain({ ...base, problem: { code: 'remote_cancelled', message: '' } }), false, 'cancelled later');
  assert.equal(canSendAgain({ ...base, state: 'failed' }), false, 'failed: Retry is the button');
  assert.equal(canSendAgain({ ...base, state: 'completed', problem: null }), false);
  const part = { batch: 'b', index: 1, count: 3, totalFiles: 250, totalBytes: 9 };
  assert.equal(canSendAgain({ ...base, part }), false, 'one part of a larger send');
});
