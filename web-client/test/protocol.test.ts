import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeIceServers, decodeTransferRecord } from '../src/api';
import { SignalingError, checkAck, decodeIncoming, decodePeer } from '../src/engine/protocol';

const peer = { peerId: 'p1', userId: 3, username: 'alice', displayName: '', role: 'student', lab: '', device: 'PC 1' };

test('a peer decodes with sensible defaults; junk is dropped', () => {
  assert.deepEqual(decodePeer(peer), { ...peer, displayName: 'alice', lab: 'Other' });
  assert.equal(decodePeer({ peerId: 1 }), null);
  assert.equal(decodePeer('x'), null);
});

test('an incoming request decodes; totalBytes falls back to the sum', () => {
  const r = decodeIncoming({ transferId: 't', from: peer, files: [{ name: 'a', size: 2 }, { name: 'b/c', size: 3, mime: 'x/y' }] });
  assert.equal(r?.totalBytes, 5);
  assert.equal(r?.files[1]?.mime, 'x/y');
  assert.equal(decodeIncoming({ transferId: 't', from: peer, files: [{ name: 'a', size: -1 }] }), null);
});

test("an incoming request's expiry is counted from its arrival, by this computer's clock", () => {
  const base = { transferId: 't', from: peer, files: [{ name: 'a', size: 2 }] };
  assert.equal(decodeIncoming({ ...base, expiresInSecs: 120 }, 1_000_000)?.expiresAt, 1_120_000);
  assert.equal(decodeIncoming(base, 1_000_000)?.expiresAt, null, 'an older server does not say');
  assert.equal(decodeIncoming({ ...base, expiresInSecs: -5 }, 1_000_000)?.expiresAt, null);
  assert.equal(decodeIncoming({ ...base, expiresInSecs: '60' }, 1_000_000)?.expiresAt, null);
});

test('acks: ok passes, error throws its code and message', () => {
  assert.deepEqual(checkAck({ ok: true, transferId: 'x' }), { ok: true, transferId: 'x' });
  assert.throws(() => checkAck({ error: { code: 'peer_offline', message: 'gone' } }), (e: unknown) => e instanceof SignalingError && e.code === 'peer_offline' && e.message === 'gone');
  assert.throws(() => checkAck(undefined), /cannot read/);
});

test('ICE servers: urls as string or list, credentials kept, junk skipped', () => {
  const v = decodeIceServers({
    iceServers: [
      { urls: 'stun:h:3478' },
      { urls: ['turn:h:3478?transport=udp', 'turn:h:3478?transport=tcp'], username: '1:2', credential: 'c' },
      { urls: [] },
      'junk',
    ],
    ttl: 600,
  });
  assert.deepEqual(v, {
    iceServers: [{ urls: ['stun:h:3478'] }, { urls: ['turn:h:3478?transport=udp', 'turn:h:3478?transport=tcp'], username: '1:2', credential: 'c' }],
    ttl: 600,
  });
});

test('a history row decodes from the server’s snake_case', () => {
  const r = decodeTransferRecord({ id: 'x', sender_username: 'a', receiver_username: 'b', files: [{ name: 'f', size: 1 }], file_count: 1, total_bytes: 1, bytes: 1, status: 'completed', path: 'direct', requested_at: 5, duration_ms: 7, failure_reason: '' });
  assert.equal(r?.senderUsername, 'a');
  assert.equal(r?.durationMs, 7);
  assert.equal(decodeTransferRecord({}), null);
});

test('relay mode keeps only TURN URLs, of one transport when asked', async () => {
  const { relayServers } = await import('../src/engine/ice');
  const servers = [
    { urls: ['stun:h:3478'] },
    { urls: ['turn:h:3478?transport=udp', 'turn:h:3478?transport=tcp', 'turn:h:3478'], username: 'u', credential: 'c' },
  ];
  assert.deepEqual(relayServers(servers, 'any'), [{ urls: ['turn:h:3478?transport=udp', 'turn:h:3478?transport=tcp', 'turn:h:3478'], username: 'u', credential: 'c' }]);
  assert.deepEqual(relayServers(servers, 'tcp')[0]?.urls, ['turn:h:3478?transport=tcp']);
  assert.deepEqual(relayServers(servers, 'udp')[0]?.urls, ['turn:h:3478?transport=udp', 'turn:h:3478']);
});
