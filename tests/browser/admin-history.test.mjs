// The web client's history is the signed-in user's own, admins included: an admin sees the
// transfers they sent and received, each with its direction, and not other people's (those
// are in the portal's transfer log).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { call, next, startServer } from '../js/harness.mjs';
import { chromiumAvailable, launch, signIn } from './lib.mjs';

const FILES = [{ name: 'notes.txt', size: 1024 }];

/** `from` asks `to` to take FILES and `to` declines: a logged transfer without WebRTC. */
async function declinedTransfer(from, to) {
  const toPeer = (await to.snapshot).self.peerId;
  const incoming = next(to, 'transfer:incoming');
  const ack = await call(from, 'transfer:request', { to: toPeer, files: FILES });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  await incoming;
  assert.equal((await call(to, 'transfer:respond', { transferId: ack.transferId, accept: false })).ok, true);
  return ack.transferId;
}

describe("an admin's history in the web client", { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let browser;

  before(async () => {
    s = await startServer();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await s?.stop();
  });

  test('lists only what the admin sent or received, with the right direction', async () => {
    const admin = await s.admin();
    const alice = await s.user('alice');
    const bob = await s.user('bob');
    const sa = await s.connect({ token: alice.token, device: 'PC A' });
    const sb = await s.connect({ token: bob.token, device: 'PC B' });
    const sx = await s.connect({ token: admin.token, device: 'Front desk' });
    const others = await declinedTransfer(sa, sb);
    const sent = await declinedTransfer(sx, sb);
    const received = await declinedTransfer(sb, sx);
    for (const socket of [sa, sb, sx]) socket.close();
    // The rows are in the log, and the admin's API answer without a scope is everyone's.
    const all = (await s.request('GET', '/api/transfers', { token: admin.token })).body.transfers.map((r) => r.id);
    assert.deepEqual(new Set(all), new Set([others, sent, received]));

    const { page } = await signIn(browser, s, 'admin');
    const row = (id) => page.locator(`[data-testid="history-row"][data-transfer-id="${id}"]`);
    await row(sent).waitFor({ timeout: 15_000 });
    await row(received).waitFor();
    assert.equal(await page.getByTestId('history-row').count(), 2, 'only the two transfers the admin was a party of');
    assert.equal(await row(others).count(), 0);
    assert.equal(await row(sent).getAttribute('data-direction'), 'sent');
    assert.match(await row(sent).innerText(), /to\s+bob \(PC B\)/);
    assert.equal(await row(received).getAttribute('data-direction'), 'received');
    assert.match(await row(received).innerText(), /from\s+bob \(PC B\)/);
  });
});
