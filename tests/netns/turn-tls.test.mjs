// TURN over TLS (`turns:`) in Chromium: what it takes for Chromium to gather a relay
// candidate from the appliance's TLS port. Chromium checks the TURN server's certificate like
// a web page's (its own verifier, plus the trust anchors of the user's NSS database,
// $HOME/.pki/nssdb), for the host in the `turns:` URL, and gives up silently on failure
// (icecandidateerror 701, no candidate) — the page's "ignore certificate errors" does not
// extend to it.
//
// A lab PC (a namespace with its own Chromium and $HOME) probes the URLs of GET
// /api/ice-servers one at a time with iceTransportPolicy 'relay'. Root only; the NSS
// variants need certutil (libnss3-tools), the CA variants openssl.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { gotoSettled, launch } from '../browser/lib.mjs';
import { Net, certutilAvailable, chromiumIn, cleanupStale, homeTrusting, startAppliance, unsupported } from './netns.mjs';

const PASSWORD = 'correct horse battery staple';
const why =
  unsupported() ??
  (certutilAvailable() ? null : 'needs certutil (Debian: libnss3-tools)') ??
  (spawnSync('sh', ['-c', 'command -v openssl']).status === 0 ? null : 'needs openssl');

function openssl(args, cwd) {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA (ca.pem) and a server certificate signed by it for `san` (server.pem, server.key). */
function campusCa(dir, san) {
  mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
    '-subj', '/CN=Campus test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', 'ca.key', '-out', 'ca.pem'], dir);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=labbeam',
    '-keyout', 'server.key', '-out', 'server.csr'], dir);
  const ext = path.join(dir, 'ext.cnf');
  spawnSync('sh', ['-c', `printf 'subjectAltName=${san}\\nextendedKeyUsage=serverAuth\\n' > ${JSON.stringify(ext)}`]);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30',
    '-extfile', ext, '-out', 'server.pem'], dir);
  return { ca: readFileSync(path.join(dir, 'ca.pem'), 'utf8'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
}

/**
 * Candidates Chromium (in `pc`, with `home`) gathers from each TURN URL `server` offers:
 * { url: { relay: [relayProtocol…], errors: ['701 …'] } }.
 */
async function probe(net, pc, server, home, args = []) {
  const browser = await launch({ executablePath: chromiumIn(net, pc, { home }), args });
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await gotoSettled(page, `${server.base}/`);
    return await page.evaluate(async (password) => {
      const login = await fetch('/api/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'probe', password }),
      });
      const { token } = await login.json();
      const ice = await (await fetch('/api/ice-servers', { headers: { authorization: `Bearer ${token}` } })).json();
      const turn = ice.iceServers.find((e) => e.username);
      const out = {};
      for (const url of turn.urls) {
        const pc = new RTCPeerConnection({ iceServers: [{ urls: [url], username: turn.username, credential: turn.credential }], iceTransportPolicy: 'relay' });
        pc.createDataChannel('probe');
        const relay = [];
        const errors = [];
        pc.onicecandidateerror = (e) => errors.push(`${e.errorCode} ${e.errorText}`);
        const done = new Promise((resolve) => {
          pc.onicecandidate = (e) => (e.candidate ? e.candidate.type === 'relay' && relay.push(e.candidate.relayProtocol ?? 'udp') : resolve());
          setTimeout(resolve, 15_000);
        });
        await pc.setLocalDescription(await pc.createOffer());
        await done;
        pc.close();
        out[url] = { relay, errors };
      }
      return out;
    }, PASSWORD);
  } finally {
    await browser.close();
  }
}

const tlsUrl = (result) => Object.keys(result).find((u) => u.startsWith('turns:'));

describe('TURN over TLS in Chromium (network namespaces)', { skip: why ?? false, timeout: 300_000 }, () => {
  let net;
  let selfSigned; // the appliance with its generated certificate, at 10.77.0.2
  let dir;

  before(async () => {
    cleanupStale();
    net = new Net();
    net.addSegment('campus');
    net.addHost('app', 'campus', '10.77.0.2/24');
    net.addHost('pc', 'campus', '10.77.0.21/24');
    selfSigned = await startAppliance(net, 'app', '10.77.0.2');
    selfSigned.addUser('probe', 'student', PASSWORD);
    dir = path.join(net.dir, 'pki');
  });
  after(async () => {
    await net?.down();
  });

  /** An appliance at `ip` (host `name`) serving a certificate for `sans` from a new campus
   * CA ([tls] cert and key), and a PC home that trusts that CA. */
  async function campusAppliance(name, ip, sans) {
    const pki = campusCa(path.join(dir, name), sans);
    net.addHost(name, 'campus', `${ip}/24`);
    const server = await startAppliance(net, name, ip, { config: `[tls]\ncert = "${pki.cert}"\nkey = "${pki.key}"\n` });
    server.addUser('probe', 'student', PASSWORD);
    return { server, home: homeTrusting(path.join(net.dir, `${name}-home`), pki.ca) };
  }

  test('the self-signed certificate, not trusted by the PC: UDP and TCP relay, nothing from turns: (error 701)', async () => {
    const home = path.join(net.dir, 'untrusted-home');
    mkdirSync(home, { recursive: true });
    const r = await probe(net, 'pc', selfSigned, home);
    const tls = tlsUrl(r);
    assert.ok(tls, `a turns: URL is offered: ${Object.keys(r)}`);
    assert.deepEqual(r[tls].relay, [], 'no relay candidate over TLS');
    assert.ok(r[tls].errors.some((e) => e.startsWith('701')), `icecandidateerror 701: ${r[tls].errors}`);
    for (const [url, v] of Object.entries(r)) if (url !== tls) assert.ok(v.relay.length > 0, `relay from ${url}`);
  });

  test('the self-signed certificate trusted in the PC’s NSS database: relay candidates over TLS', async () => {
    const home = homeTrusting(path.join(net.dir, 'nss'), selfSigned.certPem());
    const r = await probe(net, 'pc', selfSigned, home);
    const tls = tlsUrl(r);
    assert.deepEqual(r[tls].relay.slice(0, 1), ['tls'], JSON.stringify(r[tls]));
  });

  test('a certificate from the campus CA ([tls] cert and key), the CA trusted: relay candidates over TLS', async () => {
    const { server, home } = await campusAppliance('app2', '10.77.0.3', 'IP:10.77.0.3');
    const r = await probe(net, 'pc', server, home);
    assert.deepEqual(r[tlsUrl(r)].relay.slice(0, 1), ['tls'], JSON.stringify(r));
  });

  test('a trusted certificate that does not name the address in the turns: URL: nothing over TLS', async () => {
    const { server, home } = await campusAppliance('app3', '10.77.0.4', 'IP:10.77.0.99,DNS:other.example.edu');
    const r = await probe(net, 'pc', server, home);
    const tls = tlsUrl(r);
    assert.deepEqual(r[tls].relay, [], JSON.stringify(r[tls]));
    assert.ok(r[tls].errors.some((e) => e.startsWith('701')), `icecandidateerror 701: ${r[tls].errors}`);
  });
});
