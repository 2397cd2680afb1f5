// A link from one student to another through the real web client: "Text…" next to a person,
// the text goes browser to browser over the data channel, the receiver's dialog shows the
// sender with their device, the text as text (markup stays text, the link is a link that opens
// without handing over this page), Copy puts it on the clipboard, and both histories say
// "Text, N characters", never the text, which the server never logged.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { card, chromiumAvailable, peer, poll, signedInPair, waitState } from './lib.mjs';

const LINK = 'https://example.edu/week3?x=1&y=(2)';
const TEXT = `Slides for today: ${LINK}.\n<b>not bold</b> — see you at 10:15 😀`;
const CHARS = [...TEXT].length;

describe('a text or link sent to a person', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let browsers;
  let alice;
  let bob;
  let transferId;

  before(async () => {
    s = await startServer();
    s.addUser('alice', 'student');
    s.addUser('bob', 'student');
    ({ browsers, first: alice, second: bob } = await signedInPair(s, 'alice', 'bob'));
    await bob.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: s.base });
  });

  after(async () => {
    await Promise.allSettled((browsers ?? []).map((b) => b.close()));
    await s?.stop();
  });

  test('arrives in a dialog with the sender and their device, links clickable and nothing rendered as HTML', async () => {
    const compose = alice.page.getByTestId('text-compose');
    await peer(alice.page, 'bob').getByTestId('peer-send-text').click();
    await compose.waitFor();
    assert.match(await compose.getByTestId('text-to').innerText(), /bob/);
    assert.equal(await compose.getByTestId('text-send').isDisabled(), true, 'nothing to send yet');
    // Too long: refused before anything is sent, and said so.
    await compose.getByTestId('text-input').fill('x'.repeat(70_000));
    assert.match(await compose.getByTestId('text-count').innerText(), /Too long: 70,000 bytes, at most 65,536/);
    assert.equal(await compose.getByTestId('text-send').isDisabled(), true);
    await compose.getByTestId('text-input').fill(TEXT);
    assert.equal(await compose.getByTestId('text-count').innerText(), `${CHARS} characters`);
    await compose.getByTestId('text-send').click();
    await compose.waitFor({ state: 'hidden' });

    transferId = await poll(() => alice.page.locator('[data-testid="transfer-status"][data-kind="text"]').first().getAttribute('data-transfer-id', { timeout: 1000 }).catch(() => null), {
      what: 'the text’s card',
    });
    const dialog = bob.page.getByTestId('text-dialog');
    await dialog.waitFor({ timeout: 30_000 });
    await waitState(alice.page, transferId, 'completed', 20_000);
    assert.match(await card(alice.page, transferId).innerText(), new RegExp(`Text · ${CHARS} characters`));

    // Who sent it: name and device, as bob's list of people shows alice.
    const device = await peer(bob.page, 'alice').locator('.peer-device').innerText();
    const from = await dialog.getByTestId('text-from').innerText();
    assert.match(from, /alice/);
    assert.ok(from.includes(device.split(' · ')[0]), `${from} names the device ${device}`);
    assert.match(from, new RegExp(`${CHARS} characters`));

    const body = dialog.getByTestId('text-body');
    assert.equal(await body.innerText(), TEXT, 'the text exactly, markup as text');
    assert.equal(await body.locator('b').count(), 0, 'nothing rendered as HTML');
    const link = body.getByTestId('text-link');
    assert.equal(await link.count(), 1);
    assert.equal(await link.innerText(), LINK, 'the sentence’s full stop is not part of the link');
    assert.equal(await link.getAttribute('href'), LINK);
    assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
    assert.equal(await link.getAttribute('target'), '_blank');
    assert.equal(await bob.page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'text-copy', 'focus starts on Copy');
  });

  test('Copy puts the text on the clipboard; Close closes; the card shows it again', async () => {
    const dialog = bob.page.getByTestId('text-dialog');
    await dialog.getByTestId('text-copy').click();
    await bob.page.locator('[data-testid="text-copied"][data-state="copied"]').waitFor();
    assert.equal(await bob.page.evaluate(() => navigator.clipboard.readText()), TEXT);
    await dialog.getByTestId('text-close').click();
    await dialog.waitFor({ state: 'hidden' });

    const received = card(bob.page, transferId);
    assert.equal(await received.getAttribute('data-kind'), 'text');
    await waitState(bob.page, transferId, 'completed');
    assert.equal(await received.getByTestId('transfer-save').count(), 0, 'a text is not saved as a file');
    await received.getByTestId('transfer-show-text').click();
    await dialog.waitFor();
    assert.equal(await dialog.getByTestId('text-body').innerText(), TEXT);
    await bob.page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
  });

  test('both histories say “Text, N characters”, never the text, and the server logged no word of it', async () => {
    for (const who of [alice, bob]) {
      const row = who.page.locator(`[data-testid="history-row"][data-transfer-id="${transferId}"]`);
      await poll(
        async () => {
          if ((await row.getAttribute('data-status').catch(() => null)) === 'completed') return true;
          await who.page.getByTestId('history-refresh').click();
          return false;
        },
        { timeout: 40_000, every: 1000, what: `${who.username}'s history row` },
      );
      assert.equal(await row.getAttribute('data-kind'), 'text');
      const shown = await row.innerText();
      assert.match(shown, new RegExp(`Text, ${CHARS} characters`));
      assert.doesNotMatch(shown, /example\.edu|Slides/);
    }
    const { token } = await s.login('alice');
    const logged = (await s.request('GET', '/api/transfers', { token })).body.transfers.find((t) => t.id === transferId);
    assert.equal(logged.text_chars, CHARS);
    assert.equal(logged.status, 'completed');
    assert.doesNotMatch(JSON.stringify(logged), /example\.edu|Slides/);
    assert.doesNotMatch(s.log(), /example\.edu|Slides for today/);
  });
});
