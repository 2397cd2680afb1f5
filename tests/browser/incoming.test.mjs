// Incoming requests are hard to miss: while one waits, the tab's title and icon carry a
// badge and a chime plays (a setting, on by default); the dialog counts down the request's
// real expiry (the server's transfer.request_expiry_secs); Esc closes the dialog without
// declining, and a banner brings the request back; a declined or expired request can be
// sent again from the sender's card.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { card, chromiumAvailable, poll, sendFiles, signedInPair, waitState } from './lib.mjs';

describe('incoming requests', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let dir;
  let file;
  let browsers;
  let alice;
  let bob;

  before(async () => {
    s = await startServer();
    s.addUser('alice', 'student');
    s.addUser('bob', 'student');
    s.cli(['setting', 'set', 'transfer.request_expiry_secs', '90']);
    dir = mkdtempSync(path.join(tmpdir(), 'labbeam-incoming-'));
    file = path.join(dir, 'notes.txt');
    writeFileSync(file, 'notes for the lab\n');
    ({ browsers, first: alice, second: bob } = await signedInPair(s, 'alice', 'bob'));
  });

  after(async () => {
    await Promise.allSettled((browsers ?? []).map((b) => b.close()));
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const icon = (page) => page.locator('link[rel="icon"]').getAttribute('href');
  const chimes = (page) => page.evaluate(() => window.labbeamTest.chimes());

  test('a waiting request badges the title and the icon and chimes; answering clears the badge', async () => {
    const title = await bob.page.title();
    assert.doesNotMatch(title, /^\(\d+\)/);
    assert.equal(await icon(bob.page), '/favicon.svg');
    const chimed = await chimes(bob.page);

    const id = await sendFiles(alice.page, 'bob', [file]);
    await bob.page.getByTestId('incoming-dialog').waitFor();
    await poll(async () => (await bob.page.title()) === `(1) ${title}`, { what: `the title "(1) ${title}"` });
    assert.equal(await icon(bob.page), '/favicon-waiting.svg');
    assert.equal(await chimes(bob.page), chimed + 1, 'one chime for one request');
    // The badged icon is served.
    const r = await s.request('GET', '/favicon-waiting.svg');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /svg/);

    await bob.page.getByTestId('incoming-accept').click();
    await waitState(bob.page, id, 'completed', 20_000);
    assert.equal(await bob.page.title(), title);
    assert.equal(await icon(bob.page), '/favicon.svg');
  });

  test("the dialog counts down the request's real expiry", async () => {
    await sendFiles(alice.page, 'bob', [file]);
    const countdown = bob.page.getByTestId('incoming-countdown');
    await countdown.waitFor();
    const first = Number(await countdown.getAttribute('data-seconds'));
    assert.ok(first > 80 && first <= 90, `${first} s left of the server's 90`);
    assert.match(await countdown.textContent(), /Answer within 1:[23]\d/);
    await poll(async () => Number(await countdown.getAttribute('data-seconds')) < first, { timeout: 3000, what: 'the countdown moving' });
    await bob.page.getByTestId('incoming-decline').click();
  });

  test('Esc closes the dialog without declining; the banner brings the request back', async () => {
    const id = await sendFiles(alice.page, 'bob', [file]);
    const dialog = bob.page.getByTestId('incoming-dialog');
    await dialog.waitFor();
    await bob.page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    const waiting = bob.page.getByTestId('incoming-waiting');
    await waiting.waitFor();
    assert.equal(await waiting.getAttribute('data-count'), '1');
    assert.match(await bob.page.title(), /^\(1\) /, 'still waiting: still badged');
    // Not declined: the sender still waits for an answer.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(await card(alice.page, id).getAttribute('data-state'), 'requested');

    await bob.page.getByTestId('incoming-reopen').click();
    await dialog.waitFor();
    assert.equal(await waiting.isVisible(), false);
    await bob.page.getByTestId('incoming-accept').click();
    await waitState(alice.page, id, 'completed', 20_000);
    await waitState(bob.page, id, 'completed', 20_000);
  });

  test('a declined request is sent again from its card, as a new request', async () => {
    const id = await sendFiles(alice.page, 'bob', [file]);
    await bob.page.getByTestId('incoming-decline').click();
    await waitState(alice.page, id, 'cancelled', 10_000);
    const again = card(alice.page, id).getByTestId('transfer-send-again');
    await again.waitFor();
    await again.click();
    const second = await poll(
      async () => {
        const next = await alice.page.locator('[data-testid="transfer-status"][data-direction="send"]').first().getAttribute('data-transfer-id');
        return next !== id ? next : null;
      },
      { what: 'a new request' },
    );
    await card(alice.page, id).waitFor({ state: 'detached' });
    await bob.page.getByTestId('incoming-accept').click();
    await waitState(alice.page, second, 'completed', 20_000);
  });

  test('an expired request can be sent again; no chime with the sound turned off', async () => {
    s.cli(['setting', 'set', 'transfer.request_expiry_secs', '5']);
    await bob.page.getByTestId('settings-toggle').click();
    const sound = bob.page.getByTestId('setting-sound');
    assert.equal(await sound.isChecked(), true, 'on by default');
    await sound.uncheck();
    await bob.page.getByTestId('settings-toggle').click();
    const chimed = await chimes(bob.page);

    const id = await sendFiles(alice.page, 'bob', [file]);
    await bob.page.getByTestId('incoming-dialog').waitFor();
    const left = Number(await bob.page.getByTestId('incoming-countdown').getAttribute('data-seconds'));
    assert.ok(left <= 5, `${left} s left of 5`);
    await waitState(alice.page, id, 'cancelled', 15_000);
    assert.match(await card(alice.page, id).getByTestId('transfer-problem').textContent(), /did not answer in time/);
    await bob.page.getByTestId('incoming-dialog').waitFor({ state: 'hidden' });
    assert.doesNotMatch(await bob.page.title(), /^\(\d+\)/, 'an expired request takes its badge along');
    assert.equal(await chimes(bob.page), chimed, 'the sound is off');

    s.cli(['setting', 'set', 'transfer.request_expiry_secs', '90']);
    await card(alice.page, id).getByTestId('transfer-send-again').click();
    await card(alice.page, id).waitFor({ state: 'detached' });
    await bob.page.getByTestId('incoming-accept').click();
    const second = await alice.page.locator('[data-testid="transfer-status"][data-direction="send"]').first().getAttribute('data-transfer-id');
    await waitState(alice.page, second, 'completed', 20_000);
  });
});
