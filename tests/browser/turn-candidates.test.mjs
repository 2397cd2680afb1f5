// Headless Chromium with `iceTransportPolicy: 'relay'` gathers relay candidates from the
// appliance's TURN server over UDP and TCP, using the credentials of GET /api/ice-servers
// exactly as the web client does. (TURN over TLS is tested with the Rust client in
// tests/turn.rs, and in Chromium by tests/netns/turn-tls.test.mjs: Chromium uses a `turns:`
// server only when it trusts its certificate, so that test gives the PC an NSS database that
// trusts the appliance's.)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { launch } from './lib.mjs';

describe('relay candidates from the appliance’s TURN server', () => {
  let s;
  let browser;
  let page;
  let ice;

  before(async () => {
    s = await startServer();
    const { token } = await s.user('probe');
    const r = await s.request('GET', '/api/ice-servers', { token });
    assert.equal(r.status, 200, r.text);
    ice = r.body;
    browser = await launch();
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    await context.grantPermissions(['camera', 'microphone'], { origin: s.base });
    page = await context.newPage();
    await page.goto(s.base + '/');
  });
  after(async () => {
    await browser?.close();
    await s?.stop();
  });

  /** The relay candidates Chromium gathers with only `url` as its ICE server. */
  async function relayCandidates(url) {
    const turn = ice.iceServers.find((e) => [e.urls].flat().includes(url));
    return page.evaluate(
      async ({ urls, username, credential }) => {
        const pc = new RTCPeerConnection({ iceServers: [{ urls, username, credential }], iceTransportPolicy: 'relay' });
        pc.createDataChannel('probe');
        const found = [];
        const done = new Promise((resolve) => {
          pc.onicecandidate = (e) => (e.candidate ? found.push(e.candidate.candidate) : resolve());
          setTimeout(resolve, 15_000);
        });
        await pc.setLocalDescription(await pc.createOffer());
        await done;
        pc.close();
        return found.filter((c) => / typ relay /.test(c));
      },
      { urls: [url], username: turn.username, credential: turn.credential },
    );
  }

  for (const [name, pattern] of [
    ['UDP', /^turn:.*transport=udp$/],
    ['TCP', /^turn:.*transport=tcp$/],
  ]) {
    test(`over TURN ${name}`, async () => {
      const url = ice.iceServers.flatMap((e) => [e.urls].flat()).find((u) => pattern.test(u));
      assert.ok(url, `the server offers a ${name} URL: ${JSON.stringify(ice.iceServers)}`);
      const candidates = await relayCandidates(url);
      assert.ok(candidates.length > 0, `no relay candidate from ${url}`);
    });
  }

  test('wrong credentials give no relay candidate', async () => {
    const url = ice.iceServers.flatMap((e) => [e.urls].flat()).find((u) => /transport=udp$/.test(u));
    const found = await page.evaluate(async (urls) => {
      const pc = new RTCPeerConnection({
        iceServers: [{ urls, username: '4102444800:1', credential: 'bm90IHRoZSByaWdodCBrZXk=' }],
        iceTransportPolicy: 'relay',
      });
      pc.createDataChannel('probe');
      const list = [];
      const done = new Promise((resolve) => {
        pc.onicecandidate = (e) => (e.candidate ? list.push(e.candidate.candidate) : resolve());
        setTimeout(resolve, 8_000);
      });
      await pc.setLocalDescription(await pc.createOffer());
      await done;
      pc.close();
      return list.filter((c) => / typ relay /.test(c));
    }, [url]);
    assert.deepEqual(found, []);
  });
});
