// Resumable transfers with the real socket.io-client against the real binary: a transfer
// outlives its devices' sockets (paused, then re-claimed by the same device), only the same
// user on the same device may re-claim it, ended ones are refused, a restarted server lets
// both devices re-claim it from its transfer log, and a paused one ends after the grace period.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { arrives, call, next, startServer } from './harness.mjs';

const FILES = [{ name: 'big.iso', size: 200 * 1024 * 1024, mime: 'application/octet-stream' }];
const DEV_A = 'device-of-alice-0001';
const DEV_B = 'device-of-bob-000002';

/** alice (device A) sends to bob (device B), bob accepts; resolves with the sockets and the id. */
async function accepted(s, alice, bob) {
  const sa = await s.connect({ token: alice.token, device: 'PC A', deviceId: DEV_A });
  const sb = await s.connect({ token: bob.token, device: 'PC B', deviceId: DEV_B });
  const snapB = await sb.snapshot;
  const snapA = await sa.snapshot;
  assert.equal(typeof snapA.resumeGraceSecs, 'number');
  const incoming = next(sb, 'transfer:incoming');
  const ack = await call(sa, 'transfer:request', { to: snapB.self.peerId, files: FILES });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  const { transferId } = await incoming;
  const acceptedEv = next(sa, 'transfer:accepted');
  assert.equal((await call(sb, 'transfer:respond', { transferId, accept: true })).ok, true);
  await acceptedEv;
  return { sa, sb, transferId, peerA: snapA.self.peerId, peerB: snapB.self.peerId };
}

describe('resuming transfers', () => {
  let s;
  let alice;
  let bob;
  let mallory;
  before(async () => {
    s = await startServer();
    alice = await s.user('alice');
    bob = await s.user('bob');
    mallory = await s.user('mallory');
  });
  after(() => s.stop());

  test('a bad device id is refused at connect', async () => {
    const err = await s.connect({ token: alice.token, deviceId: 'bad id' }).then(
      () => assert.fail('connected'),
      (e) => e,
    );
    assert.equal(err.message, 'invalid_device_id');
  });

  test('a dropped receiver pauses the transfer; its new socket re-claims it and signaling flows again', async () => {
    const { sa, sb, transferId, peerB } = await accepted(s, alice, bob);
    const paused = next(sa, 'transfer:paused');
    sb.close();
    assert.deepEqual(await paused, { transferId, peerId: peerB });
    // Nothing reaches the away side meanwhile.
    const refused = await call(sa, 'signal', { transferId, to: peerB, data: { sdp: 'x' } });
    assert.equal(refused.error.code, 'peer_offline');

    const sb2 = await s.connect({ token: bob.token, device: 'PC B', deviceId: DEV_B });
    const snap = await sb2.snapshot;
    const resumedA = next(sa, 'transfer:resumed');
    const resumedB = next(sb2, 'transfer:resumed');
    const ack = await call(sb2, 'transfer:resume', { transferId });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.role, 'receiver');
    assert.equal(ack.totalBytes, FILES[0].size);
    assert.deepEqual(ack.files, FILES);
    assert.equal(ack.peer.username, 'alice');
    assert.equal((await resumedA).peer.peerId, snap.self.peerId);
    assert.equal((await resumedB).peer.username, 'alice');

    const signal = next(sb2, 'signal');
    assert.equal((await call(sa, 'signal', { transferId, to: snap.self.peerId, data: { s: 2, sdp: 'offer' } })).ok, true);
    assert.deepEqual((await signal).data, { s: 2, sdp: 'offer' });
    // The old socket id is no party any more.
    assert.equal((await call(sa, 'signal', { transferId, to: peerB, data: {} })).error.code, 'not_party');
  });

  test('only the same user on the same device may re-claim; ended and unknown transfers are refused', async () => {
    const { sa, sb, transferId } = await accepted(s, alice, bob);
    sb.close();
    await next(sa, 'transfer:paused');

    // Another user, even with bob's device id.
    const sm = await s.connect({ token: mallory.token, deviceId: DEV_B });
    assert.equal((await call(sm, 'transfer:resume', { transferId })).error.code, 'not_party');
    // Bob on another device.
    const other = await s.connect({ token: bob.token, deviceId: 'another-device-of-bob' });
    assert.equal((await call(other, 'transfer:resume', { transferId })).error.code, 'not_party');
    // Bob's device without a device id.
    const noId = await s.connect({ token: bob.token });
    assert.equal((await call(noId, 'transfer:resume', { transferId })).error.code, 'not_party');
    // The right device claiming the wrong side.
    const sb2 = await s.connect({ token: bob.token, deviceId: DEV_B });
    assert.equal((await call(sb2, 'transfer:resume', { transferId, role: 'sender' })).error.code, 'not_party');
    // Bad payloads.
    assert.equal((await call(sb2, 'transfer:resume', { transferId: 'no spaces!' })).error.code, 'invalid_payload');
    assert.equal((await call(sb2, 'transfer:resume', { transferId, extra: 1 })).error.code, 'invalid_payload');
    assert.equal((await call(sb2, 'transfer:resume', { transferId: 'f'.repeat(24) })).error.code, 'unknown_transfer');

    assert.equal((await call(sb2, 'transfer:resume', { transferId, role: 'receiver' })).ok, true);
    // Both report: the transfer ends, and cannot be resumed any more.
    const sha = 'a'.repeat(64);
    const report = { transferId, status: 'completed', bytes: FILES[0].size, sha256: sha, path: 'direct', durationMs: 5 };
    assert.equal((await call(sa, 'transfer:finish', report)).ok, true);
    assert.equal((await call(sb2, 'transfer:finish', report)).ok, true);
    const ended = await call(sb2, 'transfer:resume', { transferId });
    assert.equal(ended.error.code, 'transfer_ended');
    assert.match(ended.error.message, /completed/);
    // Mallory cannot even learn that it ended.
    assert.equal((await call(sm, 'transfer:resume', { transferId })).error.code, 'not_party');
  });

  test('a request not yet accepted cannot be resumed, and is cancelled when its sender leaves', async () => {
    const sa = await s.connect({ token: alice.token, deviceId: DEV_A });
    const sb = await s.connect({ token: bob.token, deviceId: DEV_B });
    const snapB = await sb.snapshot;
    const incoming = next(sb, 'transfer:incoming');
    const { transferId } = await call(sa, 'transfer:request', { to: snapB.self.peerId, files: FILES });
    await incoming;
    assert.equal((await call(sb, 'transfer:resume', { transferId })).error.code, 'wrong_state');
    const cancelled = next(sb, 'transfer:cancelled');
    sa.close();
    assert.equal((await cancelled).reason, 'peer_left');
  });

  test('a new socket of the same device takes a side over from an old one the server still holds', async () => {
    const { sa, sb, transferId } = await accepted(s, alice, bob);
    // The old socket is still connected (as after a network drop the server did not notice yet).
    const sb2 = await s.connect({ token: bob.token, deviceId: DEV_B });
    const snap = await sb2.snapshot;
    const resumed = next(sa, 'transfer:resumed');
    assert.equal((await call(sb2, 'transfer:resume', { transferId })).ok, true);
    assert.equal((await resumed).peer.peerId, snap.self.peerId);
    // When the old socket finally goes, nothing is paused.
    const paused = arrives(sa, 'transfer:paused', 800);
    sb.close();
    assert.equal(await paused, false);
  });
});

describe('a server restart', () => {
  let s;
  before(async () => {
    s = await startServer();
  });
  after(() => s.stop());

  test('both devices re-claim an accepted transfer from the transfer log; unanswered requests are expired', async () => {
    const alice = await s.user('alice');
    const bob = await s.user('bob');
    const { transferId } = await accepted(s, alice, bob);
    // A second request that nobody answers before the crash.
    const sa0 = await s.connect({ token: alice.token, deviceId: DEV_A });
    const sb0 = await s.connect({ token: bob.token, deviceId: 'bob-second-device-01' });
    const { transferId: unanswered } = await call(sa0, 'transfer:request', { to: (await sb0.snapshot).self.peerId, files: FILES });
    assert.ok(unanswered);

    await s.restart();

    const sa = await s.connect({ token: alice.token, deviceId: DEV_A });
    const sb = await s.connect({ token: bob.token, deviceId: DEV_B });
    const snapA = await sa.snapshot;
    const snapB = await sb.snapshot;
    // Alice first: bob is not back yet, so no peer and no `transfer:resumed`.
    const early = arrives(sa, 'transfer:resumed', 300);
    const ackA = await call(sa, 'transfer:resume', { transferId });
    assert.equal(ackA.ok, true, JSON.stringify(ackA));
    assert.equal(ackA.role, 'sender');
    assert.equal(ackA.peer, null);
    assert.equal(await early, false);
    // Signaling waits for the other side.
    assert.equal((await call(sa, 'signal', { transferId, to: snapB.self.peerId, data: {} })).error.code, 'not_party');
    const resumedA = next(sa, 'transfer:resumed');
    const ackB = await call(sb, 'transfer:resume', { transferId });
    assert.equal(ackB.ok, true, JSON.stringify(ackB));
    assert.equal(ackB.peer.peerId, snapA.self.peerId);
    assert.equal((await resumedA).peer.peerId, snapB.self.peerId);
    assert.equal((await call(sa, 'signal', { transferId, to: snapB.self.peerId, data: { s: 2 } })).ok, true);

    // The unanswered request is logged as expired and cannot be resumed.
    const gone = await call(sa, 'transfer:resume', { transferId: unanswered });
    assert.equal(gone.error.code, 'transfer_ended');
    const { token } = await s.login('alice');
    const rows = (await s.request('GET', '/api/transfers', { token })).body.transfers;
    assert.equal(rows.find((t) => t.id === unanswered).status, 'expired');
    assert.equal(rows.find((t) => t.id === transferId).status, 'accepted');
  });
});

describe('the resume grace period', () => {
  let s;
  before(async () => {
    s = await startServer();
    s.cli(['setting', 'set', 'transfer.resume_grace_secs', '30']);
  });
  after(() => s.stop());

  test('a side that stays away longer ends the transfer: resume_expired for the other, failed in the log', async () => {
    const alice = await s.user('alice');
    const bob = await s.user('bob');
    const { sa, sb, transferId } = await accepted(s, alice, bob);
    assert.equal((await sa.snapshot).resumeGraceSecs, 30);
    sb.close();
    await next(sa, 'transfer:paused');
    const cancelled = await next(sa, 'transfer:cancelled', 40_000);
    assert.equal(cancelled.transferId, transferId);
    assert.equal(cancelled.reason, 'resume_expired');
    const sb2 = await s.connect({ token: bob.token, deviceId: DEV_B });
    const late = await call(sb2, 'transfer:resume', { transferId });
    assert.equal(late.error.code, 'transfer_ended');
    const { token } = await s.login('alice');
    const row = (await s.request('GET', '/api/transfers', { token })).body.transfers.find((t) => t.id === transferId);
    assert.equal(row.status, 'failed');
    assert.match(row.failure_reason ?? row.failureReason ?? '', /resume_expired/);
  });
});
