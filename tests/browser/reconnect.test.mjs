// The signaling connection drops (here: the server dies) and comes back. Meanwhile the
// people list says it may be out of date, and someone who leaves is gone once the page is
// connected again; the messages that only said "not connected" go away by themselves, and
// the history is read again.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { chromiumAvailable, dropFiles, peer, poll, signedInPair } from './lib.mjs';

describe('after a reconnection', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let dir;
  let browsers = [];

  before(async () => {
    s = await startServer();
    s.addUser('alice', 'student');
    s.addUser('bob', 'student');
    dir = mkdtempSync(path.join(tmpdir(), 'labbeam-reconnect-'));
  });

  after(async () => {
    await Promise.allSettled(browsers.map((b) => b.close()));
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('stale people are marked, then dropped; "not connected" messages clear', async () => {
    const pair = await signedInPair(s, 'alice', 'bob');
    browsers = pair.browsers;
    const page = pair.first.page;
    const text = async (testId) => (await page.getByTestId(testId).textContent()) ?? '';
    assert.equal(await page.getByTestId('peer-list').getAttribute('data-presence'), 'live');
    assert.equal(await peer(page, 'bob').getAttribute('data-online'), 'true');

    await s.kill();
    await page.locator('[data-testid="connection-status"][data-state="reconnecting"]').waitFor({ timeout: 30_000 });
    await page.locator('[data-testid="peer-list"][data-presence="stale"]').waitFor({ state: 'attached' });
    // Bob is still listed (nobody can tell whether he left) but as maybe offline, without Send.
    assert.equal(await peer(page, 'bob').getAttribute('data-online'), 'false');
    assert.equal(await peer(page, 'bob').getByTestId('peer-send').isDisabled(), true);
    assert.equal(await page.getByTestId('peer-list-stale').isVisible(), true);
    // Bob leaves while the server is away.
    await browsers[1].close();

    // Files dropped on Bob and a history refresh fail for want of a connection.
    const file = path.join(dir, 'notes.txt');
    writeFileSync(file, 'lab notes');
    await dropFiles(page, peer(page, 'bob'), [file]);
    await poll(async () => /Not connected/.test(await text('send-error')), { what: 'the "not connected" send error' });
    await page.getByTestId('history-refresh').click();
    await poll(async () => (await text('history-error')) !== '', { what: 'the history error' });

    await s.restart();
    await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor({ timeout: 30_000 });
    await page.locator('[data-testid="peer-list"][data-presence="live"]').waitFor({ state: 'attached', timeout: 10_000 });
    assert.equal(await peer(page, 'bob').count(), 0, 'Bob left: he is not listed any more');
    assert.equal(await page.getByTestId('peer-list-stale').isVisible(), false);
    assert.equal(await text('send-error'), '', 'the "not connected" error went with the outage');
    await poll(async () => (await text('history-error')) === '', { what: 'the history to load again', timeout: 15_000 });
  });
});
