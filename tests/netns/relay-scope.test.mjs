// What the TURN relay reaches on a campus network: a student with valid TURN credentials
// (coturn's own client, turnutils_uclient) asks the relay to send to a campus host's UDP
// service (turnutils_peer, an echo). On a fresh install, with no lab configured, the relay
// refuses (403, nothing reaches the host); once a lab's range holds the host, or the admin
// lists its range in `turn.allowed_peer_ranges`, the echo comes back. Every address lives in
// network namespaces this test makes.
//
// Root only (namespaces); skipped with the reason otherwise. Needs coturn's client tools.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';

import { Net, cleanupStale, startAppliance, unsupported } from './netns.mjs';

const PASSWORD = 'correct horse battery staple';
const PEER = '10.77.0.53';
const PEER_PORT = 3480;

function whyNot() {
  const why = unsupported();
  if (why) return why;
  for (const tool of ['turnutils_uclient', 'turnutils_peer']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `no ${tool} (install coturn)`;
  }
  return null;
}

/** uclient from the student's namespace to the peer through `app`; returns its counts and text. */
function probe(net, app, userId) {
  const r = spawnSync(
    'ip',
    ['netns', 'exec', net.ns('student'), 'turnutils_uclient', ...(process.env.UCLIENT_VERBOSE ? ['-v'] : []), '-c', '-n', '5', '-m', '1', '-l', '100', '-z', '5',
      '-u', String(userId), '-W', app.turnSecret(), '-p', '3478', '-e', PEER, '-r', String(PEER_PORT), app.ip],
    { encoding: 'utf8', timeout: 60_000 },
  );
  const text = `${r.stdout}\n${r.stderr}`;
  const after = (key) => {
    const line = text.split('\n').reverse().find((l) => l.includes(key));
    return line ? Number(line.slice(line.indexOf(key) + key.length).match(/^\d+/)?.[0] ?? NaN) : NaN;
  };
  return { sent: after('tot_send_msgs='), received: after('tot_recv_msgs='), text };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const why = whyNot();

describe('what the TURN relay reaches on the campus network', { skip: why ?? false, timeout: 300_000 }, () => {
  let net;
  before(() => {
    cleanupStale();
    net = new Net();
    net.addSegment('campus');
    net.addHost('app', 'campus', '10.77.0.2/24');
    net.addHost('app2', 'campus', '10.77.0.3/24');
    net.addHost('student', 'campus', '10.77.0.21/24');
    net.addHost('dns', 'campus', `${PEER}/24`);
    // A campus UDP service: echoes every datagram back to its sender.
    net.track(spawn('ip', ['netns', 'exec', net.ns('dns'), 'turnutils_peer', '-L', PEER, '-p', String(PEER_PORT)], { stdio: 'ignore' }));
  });
  after(async () => {
    await net?.down();
  });

  test('a fresh install refuses; a lab range or an allowed range opens exactly that host', async () => {
    const app = await startAppliance(net, 'app', '10.77.0.2');
    app.addUser('kim', 'student', PASSWORD);
    await sleep(1000); // the relay learns of the new user at its next look at the store
    assert.match(app.banner.join('\n'), /TURN reaches: .*no lab range is configured/);
    // The admin account is user 1 on a new data directory; kim is user 2.
    const refused = probe(net, app, 2);
    // uclient stops at the refused binding: no datagram reached the host, none came back.
    assert.match(refused.text, /error 403/, `${refused.text}\n${app.log()}`);
    assert.ok(!(refused.received > 0), refused.text);

    app.addLab('Lab 2.14', `${PEER}/32`);
    await sleep(1000);
    const opened = probe(net, app, 2);
    assert.equal(opened.sent, 5, opened.text);
    assert.equal(opened.received, 5, `every datagram echoed through the relay: ${opened.text}`);

    const app2 = await startAppliance(net, 'app2', '10.77.0.3', { config: `allowed_peer_ranges = ["${PEER}/32"]\n` });
    app2.addUser('kim', 'student', PASSWORD);
    await sleep(1000);
    assert.match(app2.banner.join('\n'), /TURN reaches: .*turn\.allowed_peer_ranges \(10\.77\.0\.53\/32\)/);
    const allowed = probe(net, app2, 2);
    assert.equal(allowed.received, 5, allowed.text);
  });
});
