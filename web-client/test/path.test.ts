import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describePath, pathFromStats } from '../src/engine/path';

const stats = (localType: string, extra: Record<string, unknown> = {}) => [
  { id: 'T1', type: 'transport', selectedCandidatePairId: 'P1' },
  { id: 'P0', type: 'candidate-pair', localCandidateId: 'L0', remoteCandidateId: 'R0', state: 'failed' },
  { id: 'P1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', state: 'succeeded', currentRoundTripTime: 0.004 },
  { id: 'L0', type: 'local-candidate', candidateType: 'host', protocol: 'udp' },
  { id: 'L1', type: 'local-candidate', candidateType: localType, protocol: 'udp', ...extra },
  { id: 'R1', type: 'remote-candidate', candidateType: 'host', protocol: 'udp' },
];

test('a host-to-host pair is direct UDP', () => {
  const p = pathFromStats(stats('host'));
  assert.deepEqual(p, { kind: 'direct', protocol: 'udp', localType: 'host', remoteType: 'host', rttMs: 4 });
  assert.equal(describePath(p!), 'direct (UDP)');
});

test('a relay candidate means relay, with the protocol used to reach the relay', () => {
  const p = pathFromStats(stats('relay', { relayProtocol: 'tcp' }));
  assert.equal(p?.kind, 'relay');
  assert.equal(p?.protocol, 'tcp');
  assert.equal(describePath(p!), 'through the relay (TCP)');
});

test('without selectedCandidatePairId the nominated succeeded pair is used', () => {
  const list = stats('srflx').filter((s) => s.type !== 'transport');
  (list.find((s) => s.id === 'P1') as Record<string, unknown>)['nominated'] = true;
  assert.equal(pathFromStats(list)?.kind, 'direct');
});

test('no selected pair yet gives null', () => {
  assert.equal(pathFromStats([{ id: 'T', type: 'transport' }]), null);
});
