// Forced relay: both browsers may only use relay candidates (`?relay=udp` / `?relay=tcp`), so
// the bytes go through the appliance's TURN relay, and the transfer still completes, verified,
// and reports `path: relay`. Runs when the server offers a TURN relay (a `turn:` URL in
// GET /api/ice-servers, which a server whose start banner prints a `TURN:` line has);
// otherwise it is skipped and says why.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { card, chromiumAvailable, launch, peer, poll, randomFile, sendFiles, signIn, waitState } from './lib.mjs';

const s = await startServer();
const ice = await s.request('GET', '/api/ice-servers', { token: (await s.user('probe')).token });
const turnUrls = ice.status === 200 ? ice.body.iceServers.flatMap((e) => [e.urls].flat()).filter((u) => u.startsWith('turn:')) : [];
const pending = !chromiumAvailable()
  ? 'no Chromium at /usr/bin/chromium'
  : turnUrls.length === 0
    ? `pending: this server offers no TURN relay (GET /api/ice-servers → ${ice.status})`
    : false;
if (pending) await s.stop();

describe('forced relay through the appliance’s TURN server', { skip: pending }, () => {
  let dir;
  let file;
  let sender;
  let receiver;

  before(async () => {
    s.addUser('carol', 'student');
    s.addUser('dave', 'student');
    dir = mkdtempSync(path.join(tmpdir(), 'labbeam-relay-'));
    file = path.join(dir, 'relayed.bin');
    randomFile(file, 10 * 1024 * 1024);
    [sender, receiver] = await Promise.all([launch(), launch()]);
  });

  after(async () => {
    await Promise.allSettled([sender?.close(), receiver?.close()]);
    await s.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const transport of ['udp', 'tcp']) {
    test(`relay over TURN ${transport.toUpperCase()} completes and reports path relay`, async (t) => {
      if (!turnUrls.some((u) => (transport === 'tcp' ? /transport=tcp/.test(u) : !/transport=tcp/.test(u)))) {
        t.skip(`pending: no TURN ${transport} URL offered`);
        return;
      }
      const carol = await signIn(sender, s, 'carol', { query: `?relay=${transport}` });
      const dave = await signIn(receiver, s, 'dave', { query: `?relay=${transport}` });
      try {
        await peer(carol.page, 'dave').waitFor();
        const id = await sendFiles(carol.page, 'dave', [file]);
        await dave.page.getByTestId('incoming-accept').click();
        await waitState(dave.page, id, 'completed', 120_000);
        await waitState(carol.page, id, 'completed', 20_000);
        assert.equal(await card(dave.page, id).getAttribute('data-path'), 'relay');
        assert.equal(await card(carol.page, id).getAttribute('data-path'), 'relay');
        // The chip names how this browser reaches the relay.
        const chip = await card(dave.page, id).locator('.path-chip').textContent();
        assert.equal(chip, `through the relay (${transport.toUpperCase()})`);
        const { token } = await s.login('carol');
        const row = await poll(
          async () => (await s.request('GET', '/api/transfers', { token })).body.transfers.find((r) => r.id === id && r.status === 'completed'),
          { timeout: 40_000, every: 500, what: 'the log row' },
        );
        assert.equal(row.path, 'relay');
      } finally {
        await carol.context.close();
        await dave.context.close();
      }
    });
  }
});
