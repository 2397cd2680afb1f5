// A text or link sent to a person (`transfer:request` with `text`, docs/PROTOCOL.md): the
// server sees only its size and length, passes them on with the one text file it travels as,
// and applies every rule of a transfer (visibility, exam mode, rate and pending limits, a
// disabled receiver, signaling only between the two sides once accepted). The log row and the
// portal say "Text, N characters", never the text. Bad texts get clear error acks.

import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';

import { call, droppedWithin, next, startServer } from './harness.mjs';

// "Read https://x.edu/ — now": 27 bytes of UTF-8, 25 characters (— is 3 bytes).
const TEXT = { bytes: 27, chars: 25 };
const TEXT_FILE = { name: 'text.txt', size: 27, mime: 'text/plain;charset=utf-8' };
const SHA = 'ab'.repeat(32);
// Lab T holds 127.0.0.80 to .83 (exam mode goes on there), Lab U 127.0.0.84 to .87.
const [T1, T2, U1] = ['127.0.0.80', '127.0.0.81', '127.0.0.84'];

/** An error ack: `{error:{code,message}}` with a message, and nothing else. */
function refusal(ack, code) {
  assert.equal(ack.ok, undefined, JSON.stringify(ack));
  assert.equal(ack.error?.code, code, JSON.stringify(ack));
  assert.ok(typeof ack.error.message === 'string' && ack.error.message.length > 10, JSON.stringify(ack));
  return ack.error.message;
}

/** A portal page as `who` (cookie session). */
function portalPage(s, who, pathname) {
  return new Promise((resolve, reject) => {
    const req = https.request(`${s.base}${pathname}`, { ca: s.ca, headers: { cookie: `labbeam_session=${who.token}` } }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('sending a text', () => {
  let s;
  let ann;
  let bea;
  let cal;
  let sockA;
  let sockB;
  let peerB;
  before(async () => {
    s = await startServer();
    s.cli(['lab', 'add', 'Lab T', '--cidr', '127.0.0.80/30']);
    s.cli(['lab', 'add', 'Lab U', '--cidr', '127.0.0.84/30']);
    ann = await s.user('ann');
    bea = await s.user('bea');
    cal = await s.user('cal');
    sockA = await s.connect({ token: ann.token, localAddress: T1, device: 'PC 1' });
    await sockA.snapshot;
    sockB = await s.connect({ token: bea.token, localAddress: T2 });
    peerB = (await sockB.snapshot).self.peerId;
  });
  after(() => s.stop());

  test('reaches the receiver as one text file with its length; the log and the portal keep only the length', async () => {
    const incoming = next(sockB, 'transfer:incoming');
    const asked = await call(sockA, 'transfer:request', { to: peerB, text: TEXT });
    assert.equal(asked.ok, true, JSON.stringify(asked));
    const got = await incoming;
    assert.equal(got.transferId, asked.transferId);
    assert.deepEqual(got.files, [TEXT_FILE]);
    assert.equal(got.totalBytes, 27);
    assert.deepEqual(got.text, TEXT);
    assert.equal(got.from.username, 'ann');
    assert.equal(got.from.device, 'PC 1', 'the receiver sees the sender’s device');

    // From here it is a transfer: signaling only once accepted, only between its two sides.
    const early = await call(sockA, 'signal', { transferId: asked.transferId, to: peerB, data: { sdp: { type: 'offer', sdp: 'v=0' } } });
    refusal(early, 'wrong_state');
    const accepted = next(sockA, 'transfer:accepted');
    assert.equal((await call(sockB, 'transfer:respond', { transferId: asked.transferId, accept: true })).ok, true);
    await accepted;
    const relayed = next(sockB, 'signal');
    assert.equal((await call(sockA, 'signal', { transferId: asked.transferId, to: peerB, data: { candidate: 'c' } })).ok, true);
    assert.deepEqual((await relayed).data, { candidate: 'c' });
    const report = { transferId: asked.transferId, status: 'completed', bytes: 27, sha256: SHA, path: 'direct', durationMs: 5 };
    assert.equal((await call(sockB, 'transfer:finish', report)).ok, true);
    assert.equal((await call(sockA, 'transfer:finish', report)).ok, true);

    const r = await s.request('GET', '/api/transfers', { token: ann.token });
    const row = r.body.transfers.find((t) => t.id === asked.transferId);
    assert.equal(row.status, 'completed');
    assert.equal(row.text_chars, 25);
    assert.equal(row.file_count, 1);
    assert.deepEqual(row.files, [TEXT_FILE]);
    assert.equal(row.receiver_username, 'bea');
    const files = (await s.request('GET', '/api/transfers', { token: bea.token })).body.transfers;
    assert.equal(files.find((t) => t.id === asked.transferId).text_chars, 25, 'the receiver’s history too');

    const admin = await s.admin();
    const page = await portalPage(s, admin, '/admin/transfers');
    assert.equal(page.status, 200);
    assert.match(page.text, /Text, 25 characters/);
    const csv = await portalPage(s, admin, '/admin/transfers.csv');
    assert.match(csv.text, /Text, 25 characters/);
  });

  test('a transfer of files says nothing of a text', async () => {
    const incoming = next(sockB, 'transfer:incoming');
    const asked = await call(sockA, 'transfer:request', { to: peerB, files: [{ name: 'a.txt', size: 3, mime: 'text/plain' }] });
    assert.equal(asked.ok, true, JSON.stringify(asked));
    assert.equal('text' in (await incoming), false);
    await call(sockB, 'transfer:respond', { transferId: asked.transferId, accept: false });
    const row = (await s.request('GET', '/api/transfers', { token: ann.token })).body.transfers.find((t) => t.id === asked.transferId);
    assert.equal(row.text_chars, null);
  });

  test('bad texts get clear errors, and the text itself is never a field', async () => {
    const ask = (payload) => call(sockA, 'transfer:request', { to: peerB, ...payload });
    const tooLong = refusal(await ask({ text: { bytes: 65537, chars: 65537 } }), 'text_too_long');
    assert.match(tooLong, /65537 bytes.*at most 65536 bytes \(64 KiB\)/);
    assert.equal((await ask({ text: { bytes: 65536, chars: 65536 } })).ok, true, 'exactly 64 KiB is allowed');
    refusal(await ask({ text: { bytes: 0, chars: 0 } }), 'invalid_payload');
    refusal(await ask({ text: { bytes: 3, chars: 4 } }), 'invalid_payload');
    refusal(await ask({ text: { bytes: 9, chars: 2 } }), 'invalid_payload');
    refusal(await ask({ text: { bytes: -1, chars: 1 } }), 'invalid_payload');
    refusal(await ask({ text: 'hello' }), 'invalid_payload');
    refusal(await ask({ text: { bytes: 5, chars: 5, body: 'hello' } }), 'invalid_payload');
    const both = refusal(await ask({ text: TEXT, files: [{ name: 'a.txt', size: 1, mime: '' }] }), 'invalid_payload');
    assert.match(both, /files or a text, not both/);
    const part = { batch: 'b1', index: 1, count: 2, totalFiles: 2, totalBytes: 54 };
    refusal(await ask({ text: TEXT, part }), 'invalid_payload');
    refusal(await ask({}), 'invalid_payload');
  });

  test('the rules of a transfer apply: visibility, pending and rate limits, a disabled receiver, exam mode', async () => {
    // Another lab's student is out of sight.
    const sockC = await s.connect({ token: cal.token, localAddress: U1 });
    await sockC.snapshot;
    const peerC = (await sockC.snapshot).self.peerId;
    refusal(await call(sockA, 'transfer:request', { to: peerC, text: TEXT }), 'peer_offline');

    // Pending and per-minute limits count texts like any request.
    s.cli(['setting', 'set', 'transfer.max_pending', '1']);
    s.cli(['setting', 'set', 'transfer.requests_per_minute', '100']);
    const dan = await s.user('dan');
    const eve = await s.user('eve');
    const sockD = await s.connect({ token: dan.token, localAddress: T1 });
    await sockD.snapshot;
    const sockE = await s.connect({ token: eve.token, localAddress: T1 });
    const peerE = (await sockE.snapshot).self.peerId;
    const first = await call(sockD, 'transfer:request', { to: peerE, text: TEXT });
    assert.equal(first.ok, true, JSON.stringify(first));
    refusal(await call(sockD, 'transfer:request', { to: peerE, text: TEXT }), 'too_many_pending');
    await call(sockE, 'transfer:respond', { transferId: first.transferId, accept: false });
    s.cli(['setting', 'set', 'transfer.max_pending', '10']);
    s.cli(['setting', 'set', 'transfer.requests_per_minute', '2']);
    // Settings reach the hub on the next request.
    const second = await call(sockD, 'transfer:request', { to: peerE, text: TEXT });
    assert.equal(second.ok, true, JSON.stringify(second));
    refusal(await call(sockD, 'transfer:request', { to: peerE, text: TEXT }), 'rate_limited');
    s.cli(['setting', 'set', 'transfer.requests_per_minute', '30']);

    // A disabled receiver is dropped, and texts to it go nowhere.
    const dropped = droppedWithin(sockE, 4000);
    s.cli(['user', 'disable', 'eve']);
    await dropped;
    refusal(await call(sockD, 'transfer:request', { to: peerE, text: TEXT }), 'peer_offline');

    // Exam mode keeps the two students of Lab T apart, texts included.
    const droppedA = droppedWithin(sockA, 3000);
    s.cli(['lab', 'policy', 'Lab T', '--exam', 'on']);
    await droppedA;
    const examA = await s.connect({ token: ann.token, localAddress: T1 });
    await examA.snapshot;
    const examB = await s.connect({ token: bea.token, localAddress: T2 });
    const peerExamB = (await examB.snapshot).self.peerId;
    const why = refusal(await call(examA, 'transfer:request', { to: peerExamB, text: TEXT }), 'exam_mode');
    assert.match(why, /exam mode/);
    s.cli(['lab', 'policy', 'Lab T', '--exam', 'off']);
  });
});
