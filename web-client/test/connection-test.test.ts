import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type ConnectionPaths, explain, relayAddress } from '../src/engine/connection-test';

const SERVERS: RTCIceServer[] = [
  { urls: ['stun:lab.example:3478'] },
  { urls: ['turn:lab.example:3478?transport=udp', 'turn:lab.example:3478?transport=tcp', 'turns:lab.example:5349?transport=tcp'], username: 'u', credential: 'c' },
];

const paths = (udp: ConnectionPaths['relay_udp'], tcp: ConnectionPaths['relay_tcp'], tls: ConnectionPaths['relay_tls'], direct: ConnectionPaths['direct'] = 'ok'): ConnectionPaths => ({
  direct,
  stun: udp,
  relay_udp: udp,
  relay_tcp: tcp,
  relay_tls: tls,
});

test('the relay address is read from the turn: URLs', () => {
  assert.deepEqual(relayAddress(SERVERS), { host: 'lab.example', port: '3478', tlsPort: '5349' });
  assert.deepEqual(relayAddress([{ urls: 'turn:[fd00::2]:3479?transport=udp' }]), { host: '[fd00::2]', port: '3479', tlsPort: '5349' });
  assert.equal(relayAddress([{ urls: 'stun:lab.example:3478' }]), null);
});

test('each outcome is explained with what to open', () => {
  const relay = relayAddress(SERVERS);
  const udpBlocked = explain(paths('failed', 'ok', 'ok'), relay);
  assert.equal(udpBlocked.code, 'relay_tcp_tls_only');
  assert.match(udpBlocked.headline, /^Relay over TCP\/TLS only/);
  assert.match(udpBlocked.advice, /open UDP 3478 .* to lab\.example/);
  assert.match(explain(paths('failed', 'ok', 'failed'), relay).advice, /certificate/);
  const none = explain(paths('failed', 'failed', 'failed'), relay);
  assert.equal(none.code, 'no_relay');
  assert.match(none.advice, /TCP 3478 or 5349/);
  assert.equal(explain(paths('ok', 'ok', 'ok'), relay).code, 'all');
  assert.equal(explain(paths('ok', 'ok', 'not_offered'), relay).headline, 'Everything works from this PC: direct connections and the relay over UDP/TCP.');
  assert.equal(explain(paths('ok', 'ok', 'failed'), relay).code, 'relay_partial');
  assert.equal(explain(paths('ok', 'ok', 'ok', 'failed'), relay).code, 'relay_only');
  assert.equal(explain(paths('not_offered', 'not_offered', 'not_offered'), null).code, 'relay_off');
});
