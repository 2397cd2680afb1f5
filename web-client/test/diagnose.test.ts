import assert from 'node:assert/strict';
import { test } from 'node:test';

import { IceRecorder, candidateType, diagnose, serverKind } from '../src/engine/diagnose';

const ICE: RTCConfiguration = {
  iceServers: [
    { urls: ['stun:10.0.0.2:3478'] },
    {
      urls: ['turn:10.0.0.2:3478?transport=udp', 'turn:10.0.0.2:3478?transport=tcp', 'turns:10.0.0.2:5349?transport=tcp'],
      username: 'u',
      credential: 'c',
    },
  ],
};
const OFFER = { sdp: { type: 'offer', sdp: 'v=0\r\na=candidate:1 1 udp 2122260223 192.168.1.2 50000 typ host generation 0\r\n' } };
const cand = (typ: string) => ({ candidate: { candidate: `candidate:2 1 udp 1 10.0.0.9 40000 typ ${typ} raddr 0.0.0.0 rport 0` } });

function recorder(config = ICE): IceRecorder {
  return new IceRecorder(config);
}

test('URL kinds and candidate types are read', () => {
  assert.equal(serverKind('stun:h:3478'), 'stun');
  assert.equal(serverKind('turn:h:3478?transport=udp'), 'udp');
  assert.equal(serverKind('turn:h:3478'), 'udp');
  assert.equal(serverKind('turn:h:3478?transport=tcp'), 'tcp');
  assert.equal(serverKind('turns:h:5349?transport=tcp'), 'tls');
  assert.equal(serverKind('https://h/'), null);
  assert.equal(candidateType('candidate:1 1 udp 5 1.2.3.4 5 typ srflx raddr 0.0.0.0 rport 0'), 'srflx');
  assert.equal(candidateType('nonsense'), null);
});

test('no answer at all from the other browser: peer offline', () => {
  const r = recorder();
  r.localCandidate('host', null);
  r.localCandidate('relay', 'udp');
  const d = diagnose(r.evidence(), 'Bob');
  assert.equal(d.code, 'peer_offline');
  assert.match(d.message, /Bob’s computer did not answer/);
  assert.match(d.message, /offline/);
});

test('only host candidates here and every relay transport unreachable: UDP blocked and TURN/TLS unreachable', () => {
  const r = recorder();
  r.localCandidate('host', null);
  r.serverError('stun:10.0.0.2:3478', 701);
  r.serverError('turn:10.0.0.2:3478?transport=udp', 701);
  r.serverError('turn:10.0.0.2:3478?transport=tcp', 701);
  r.serverError('turns:10.0.0.2:5349?transport=tcp', 701);
  r.remoteSignal(OFFER);
  const d = diagnose(r.evidence(), 'Bob');
  assert.equal(d.code, 'relay_unreachable');
  assert.match(d.message, /UDP blocked, TURN\/TCP unreachable and TURN\/TLS unreachable/);
  assert.match(d.message, /certificate/);
});

test('a relay that answers with 401 is named as refusing the credentials, not as unreachable', () => {
  const r = recorder();
  r.localCandidate('host', null);
  r.localCandidate('srflx', null);
  for (const u of ['turn:10.0.0.2:3478?transport=udp', 'turn:10.0.0.2:3478?transport=tcp', 'turns:10.0.0.2:5349?transport=tcp']) r.serverError(u, 401);
  r.remoteSignal(OFFER);
  const d = diagnose(r.evidence(), 'Bob');
  assert.equal(d.code, 'relay_unreachable');
  assert.match(d.message, /refused this computer’s credentials/);
  assert.doesNotMatch(d.message, /UDP blocked|unreachable\)/);
});

test('UDP blocked but TURN/TCP reached: the local side is fine, the other side is blamed when it offers no relay', () => {
  const r = recorder();
  r.localCandidate('host', null);
  r.localCandidate('relay', 'tcp');
  r.remoteSignal(OFFER);
  r.remoteSignal(cand('host'));
  const d = diagnose(r.evidence(), 'Bob');
  assert.equal(d.code, 'peer_network');
  assert.match(d.message, /Bob’s computer: its network lets nothing through/);
  assert.match(d.message, /only local addresses/);
});

test('relay protocol comes from the candidate or from the server URL', () => {
  const r = recorder();
  r.localCandidate('relay', 'tls');
  const e = r.evidence();
  assert.ok(e.local.has('relay-tls'));
  assert.equal(e.servers.get('tls')?.status, 'ok');
  assert.equal(e.servers.get('udp')?.status, 'unknown');
  // A later error from a server that already gave a candidate changes nothing.
  r.serverError('turns:10.0.0.2:5349?transport=tcp', 701);
  assert.equal(r.evidence().servers.get('tls')?.status, 'ok');
});

test('both sides reached the relay: the path between them failed', () => {
  const r = recorder();
  r.localCandidate('relay', 'udp');
  r.remoteSignal(OFFER);
  r.remoteSignal(cand('relay'));
  assert.equal(diagnose(r.evidence(), 'Bob').code, 'relay_path_failed');
  const forced = recorder({ ...ICE, iceTransportPolicy: 'relay' });
  forced.localCandidate('relay', 'udp');
  forced.remoteSignal(cand('relay'));
  assert.match(diagnose(forced.evidence(), 'Bob').message, /Always use the relay/);
});

test('no relay offered: direct only', () => {
  const r = recorder({ iceServers: [] });
  r.localCandidate('host', null);
  r.remoteSignal(cand('host'));
  const d = diagnose(r.evidence(), 'Bob');
  assert.equal(d.code, 'no_direct_path');
  assert.match(d.message, /offers no relay/);
});
