import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { PickedFile } from '../src/engine/engine';
import { type HandinHost, Handins, collectionCsv, receiptText, submissionProblem } from '../src/engine/handins';
import { type Handin, type Peer, SignalingError, decodeHandin, decodeIncoming, decodeReceipt } from '../src/engine/protocol';
import type { TransferSnapshot, TransferState } from '../src/engine/transfer';
import { countdownWords } from '../src/ui/handin-panel';
import { localInputValue, parseExtensions } from '../src/ui/handin-collect';

const HANDIN: Handin = {
  handinId: 'h1',
  lab: 'Lab 2',
  title: 'Week 3',
  deadline: 2_000_000_000,
  instructions: '',
  extensions: ['py', 'txt'],
  maxBytes: 100,
  allowLate: false,
  collector: 'Tom Teacher',
  collecting: false,
};

const peer = (username: string, role = 'student'): Peer => ({ peerId: `p-${username}`, userId: username.length, username, displayName: username.toUpperCase(), role, lab: 'Lab 2', device: '' });

function snapshot(id: string, from: Peer, state: TransferState, direction: 'send' | 'receive' = 'receive', bytes = 0): TransferSnapshot {
  return {
    id,
    direction,
    peer: from,
    state,
    awaitingAnswer: state === 'requested',
    files: [{ name: 'a.py', size: 10, mime: '', bytes, state: state === 'completed' ? 'done' : 'waiting', sha256: state === 'completed' ? 'ab'.repeat(32) : null }],
    totalBytes: 10,
    bytes,
    bytesPerSecond: null,
    etaSeconds: null,
    path: null,
    problem: state === 'cancelled' ? { code: 'peer_left', message: 'gone' } : state === 'failed' ? { code: 'hash_mismatch', message: 'damaged' } : null,
    setupMs: null,
    durationMs: null,
    createdAt: Date.now(),
    paused: false,
    needsFiles: false,
    wireBytes: 0,
    resumes: 0,
    part: null,
    text: null,
    handin: { handinId: 'h1', late: false },
  };
}

/** A host that records what the hand-in module asks of the engine. */
function fakeHost(answers: Record<string, (payload: unknown) => Record<string, unknown>>, concurrency = 2) {
  const handlers = new Map<string, (v: unknown) => void>();
  const accepted: string[] = [];
  const started: string[] = [];
  const calls: string[] = [];
  const host: HandinHost = {
    call: (event, payload) => {
      calls.push(event);
      const answer = answers[event];
      if (answer === undefined) return Promise.reject(new SignalingError('not_connected', 'not connected'));
      try {
        return Promise.resolve(answer(payload));
      } catch (error) {
        return Promise.reject(error);
      }
    },
    listen: (event, handler) => handlers.set(event, handler),
    startDelivery: (id) => started.push(id),
    accept: (id) => {
      accepted.push(id);
      return Promise.resolve();
    },
    dismiss: () => Promise.resolve(),
    connected: () => true,
    peers: () => [peer('ann'), peer('bea'), peer('cid'), peer('tom', 'instructor')],
    concurrency: () => concurrency,
  };
  const emit = (event: string, v: unknown): void => handlers.get(event)?.(v);
  return { host, emit, accepted, started, calls };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

test('what a hand-in refuses is said before asking: file types, size, deadline', () => {
  assert.equal(submissionProblem(HANDIN, [{ name: 'src/main.py', size: 10 }, { name: 'NOTES.TXT', size: 5 }], 1_000), null);
  assert.equal(submissionProblem(HANDIN, [{ name: 'essay.pdf', size: 10 }], 1_000)?.code, 'extension_not_allowed');
  assert.equal(submissionProblem(HANDIN, [{ name: 'py', size: 10 }], 1_000)?.code, 'extension_not_allowed', 'a name without a dot has no extension');
  assert.match(submissionProblem(HANDIN, [{ name: 'a.py', size: 101 }], 1_000)?.message ?? '', /at most 100 bytes per student/);
  assert.equal(submissionProblem(HANDIN, [{ name: 'a.py', size: 1 }], HANDIN.deadline + 1)?.code, 'deadline_passed');
  assert.equal(submissionProblem({ ...HANDIN, allowLate: true }, [{ name: 'a.py', size: 1 }], HANDIN.deadline + 1), null);
});

test('hand-in events decode strictly, and a delivery is marked on its request', () => {
  assert.deepEqual(decodeHandin({ ...HANDIN, maxBytes: undefined, extensions: ['py', 3] }), { ...HANDIN, maxBytes: null, extensions: ['py'] });
  assert.equal(decodeHandin({ handinId: 'x' }), null);
  const r = decodeReceipt({ handinId: 'h1', transferId: 't1', version: 2, files: [{ name: 'a', size: 1, sha256: 'ff' }], totalBytes: 1, receivedAt: 5, late: true });
  assert.equal(r?.version, 2);
  assert.equal(decodeReceipt({ handinId: 'h1', transferId: 't1', version: 2, files: [{ name: 'a' }] }), null);
  const incoming = decodeIncoming({ transferId: 't', from: peer('ann'), files: [], handin: { handinId: 'h1', late: true } });
  assert.deepEqual(incoming?.handin, { handinId: 'h1', late: true });
  assert.equal(decodeIncoming({ transferId: 't', from: peer('ann'), files: [] })?.handin, null);
});

test('the collecting browser takes deliveries a few at a time; the others wait their turn', async () => {
  const { host, emit, accepted } = fakeHost({ 'handin:receipts': () => ({ ok: true, receipts: [] }) }, 2);
  const handins = new Handins(host);
  emit('handin:opened', { ...HANDIN, collecting: true });
  const [ann, bea, cid] = [peer('ann'), peer('bea'), peer('cid')];
  handins.delivery(snapshot('t-ann', ann, 'requested'));
  handins.delivery(snapshot('t-bea', bea, 'requested'));
  handins.delivery(snapshot('t-cid', cid, 'requested'));
  assert.deepEqual(accepted, ['t-ann', 't-bea'], 'two at once');
  handins.transfer(snapshot('t-ann', ann, 'receiving', 'receive', 5));
  handins.transfer(snapshot('t-bea', bea, 'receiving', 'receive', 2));
  let c = handins.collections()[0];
  assert.equal(c?.queued, 1);
  assert.deepEqual(
    c?.rows.map((r) => [r.username, r.status]),
    [
      ['ann', 'sending'],
      ['bea', 'sending'],
      ['cid', 'queued'],
    ],
    'the instructor is never "not started"',
  );
  // Ann's delivery fails: Cid goes next, and Ann's row says why.
  handins.transfer(snapshot('t-ann', ann, 'failed'));
  assert.deepEqual(accepted, ['t-ann', 't-bea', 't-cid']);
  c = handins.collections()[0];
  assert.equal(c?.rows.find((r) => r.username === 'ann')?.status, 'failed');
  assert.equal(c?.rows.find((r) => r.username === 'ann')?.problem?.message, 'damaged');
  handins.stop();
});

test('a student page waits for the instructor’s browser and sends by itself when it is back', async () => {
  let offline = true;
  const { host, emit, started, calls } = fakeHost({
    'handin:submit': () => {
      if (offline) throw new SignalingError('collector_offline', 'away');
      return { ok: true, transferId: 't9', collector: peer('tom', 'instructor') };
    },
  });
  const handins = new Handins(host);
  emit('handin:opened', HANDIN);
  const file: PickedFile = { name: 'a.py', blob: new Blob(['print(1)']), mime: '' };
  await handins.handIn('h1', [file]);
  assert.equal(handins.student()[0]?.submission?.phase, 'waiting');
  assert.match(handins.student()[0]?.submission?.problem?.message ?? '', /Waiting for Tom Teacher’s browser/);
  // The collecting browser connects again: the server tells the lab, and the page tries.
  offline = false;
  emit('handin:opened', HANDIN);
  await new Promise((resolve) => setTimeout(resolve, 700));
  assert.deepEqual(started, ['t9']);
  assert.equal(calls.filter((c) => c === 'handin:submit').length, 2);
  assert.equal(handins.student()[0]?.submission?.phase, 'queued');
  // Its request is cancelled because the collecting browser left again: back to waiting.
  handins.transfer(snapshot('t9', peer('tom'), 'cancelled', 'send'));
  assert.equal(handins.student()[0]?.submission?.phase, 'waiting');
  // A receipt for another delivery does not end this one; the one for it does.
  emit('handin:received', { handinId: 'h1', transferId: 'other', version: 1, files: [], totalBytes: 0, receivedAt: 1, late: false });
  assert.notEqual(handins.student()[0]?.submission, null);
  await tick();
  handins.stop();
});

test('a refusal the page cannot wait out is shown, not retried', async () => {
  const { host, emit, calls } = fakeHost({
    'handin:submit': () => {
      throw new SignalingError('not_in_lab', 'This hand-in is for the PCs of Lab 2.');
    },
  });
  const handins = new Handins(host);
  emit('handin:opened', HANDIN);
  await handins.handIn('h1', [{ name: 'a.py', blob: new Blob(['x']), mime: '' }]);
  const s = handins.student()[0]?.submission;
  assert.equal(s?.phase, 'failed');
  assert.equal(s?.problem?.code, 'not_in_lab');
  await assert.rejects(handins.handIn('h1', [{ name: 'a.pdf', blob: new Blob(['x']), mime: '' }]), /takes only \.py, \.txt/);
  assert.equal(calls.length, 1);
  handins.stop();
});

test('the table as CSV and the receipt as text name what was verified', () => {
  const receipt = { handinId: 'h1', transferId: 't1', version: 2, files: [{ name: 'src/a.py', size: 10, sha256: 'ab'.repeat(32) }], totalBytes: 10, receivedAt: 1_700_000_000, late: true };
  const csv = collectionCsv({
    handin: HANDIN,
    closed: false,
    queued: 0,
    receiving: 0,
    rows: [
      { username: 'ann', displayName: 'Ann, "A"', status: 'handed-in', bytes: 10, totalBytes: 10, versions: [receipt], kept: true, problem: null, late: true },
      { username: 'bea', displayName: '=cmd()', status: 'not-started', bytes: 0, totalBytes: 0, versions: [], kept: false, problem: null, late: false },
    ],
  });
  const lines = csv.trimEnd().split('\r\n');
  assert.equal(lines[0], 'username,name,status,version,late,files,bytes,received_at,problem,files_sha256');
  assert.equal(lines[1], `ann,"Ann, ""A""",handed in,2,yes,1,10,2023-11-14T22:13:20.000Z,,src/a.py:${'ab'.repeat(32)}`);
  assert.equal(lines[2], `bea,"'=cmd()",not started,,,,,,,`, 'a formula is not run by a spreadsheet');
  const text = receiptText(HANDIN, receipt, 'Ann (ann)');
  assert.match(text, /Version: {3}2 \(the current one/);
  assert.match(text, /\(late\)/);
  assert.ok(text.includes(`${'ab'.repeat(32)}            10  src/a.py`));
});

test('the deadline countdown, the form’s deadline and file types read as people write them', () => {
  assert.equal(countdownWords(1000, 1000 - 42), 'in 42 s');
  assert.equal(countdownWords(1000, 1000 - 3900), 'in 1 h 05 min');
  assert.equal(countdownWords(1000, 1000 + 125), '2 min 05 s ago');
  assert.deepEqual(parseExtensions(' .PDF, py;txt  .tar.gz'), ['pdf', 'py', 'txt', 'tar.gz']);
  assert.match(localInputValue(Date.now()), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/);
});
