// Drop anywhere: files dragged over any part of the signed-in page show an overlay, announced
// to screen readers; leaving the window or Esc hides it; dropped outside the people and the
// "Choose files" area, the files become the selection and go to the person picked next, as
// after choosing them with the picker. Also at 390 px wide in dark mode.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { card, chromiumAvailable, dragFiles, peer, poll, randomFile, sha256File, signedInPair, waitState } from './lib.mjs';

describe('files dropped anywhere on the page', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let browsers;
  let alice;
  let bob;
  let dir;
  let file;
  let sha;

  before(async () => {
    s = await startServer();
    s.addUser('alice', 'student');
    s.addUser('bob', 'student');
    dir = mkdtempSync(path.join(tmpdir(), 'labbeam-drop-anywhere-'));
    file = path.join(dir, 'lab-report.pdf');
    sha = randomFile(file, 300 * 1024);
    ({ browsers, first: alice, second: bob } = await signedInPair(s, 'alice', 'bob'));
  });

  after(async () => {
    await Promise.allSettled((browsers ?? []).map((b) => b.close()));
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const overlay = (page) => page.getByTestId('drop-overlay');
  const shown = (page) => page.locator('[data-testid="drop-overlay"][data-state="shown"]');
  const hidden = (page) => ({ waitFor: () => page.locator('[data-testid="drop-overlay"][data-state="hidden"]').waitFor({ state: 'attached' }) });
  /** Away from the people and the "Choose files" area. */
  const outside = (page) => page.locator('#transfers-title');

  test('the overlay appears while files are over the page, is announced, and goes when they leave or on Esc', async () => {
    const { page } = alice;
    assert.equal(await overlay(page).isVisible(), false);

    const away = await dragFiles(page, outside(page), [file]);
    await shown(page).waitFor();
    assert.ok(await overlay(page).getByText('Drop to choose these files').isVisible());
    assert.equal(await overlay(page).getAttribute('aria-hidden'), 'true', 'the live region speaks for it');
    const said = await page.getByTestId('drop-announcement').textContent();
    assert.match(said, /Drop to choose these files/);
    assert.match(said, /Esc cancels/);
    assert.equal(await page.getByTestId('drop-announcement').getAttribute('role'), 'status');
    await away.leave(); // out of the window: dragleave
    await hidden(page).waitFor();
    assert.equal(await overlay(page).isVisible(), false);
    assert.equal(await page.getByTestId('drop-announcement').textContent(), '');

    const escaped = await dragFiles(page, outside(page), [file]);
    await shown(page).waitFor();
    await page.keyboard.press('Escape');
    await hidden(page).waitFor();
    // A drop after Esc is refused: nothing is chosen and the page stays.
    await escaped.drop();
    // Reading a drop's files takes a moment: give a taken drop the time to show.
    await page.waitForTimeout(500);
    assert.ok(await page.getByTestId('selection').getByText('No files chosen').isVisible());
    assert.equal(await overlay(page).isVisible(), false);
    assert.equal(page.url(), `${s.base}/`);
  });

  test('dropped outside the drop targets, the files are chosen and go to the person picked next, verified', async () => {
    const drag = await dragFiles(alice.page, outside(alice.page), [file]);
    await shown(alice.page).waitFor();
    await drag.drop();
    await hidden(alice.page).waitFor();
    const selection = alice.page.getByTestId('selection');
    await selection.getByText('1 file chosen').waitFor();
    assert.ok(await selection.getByText('lab-report.pdf').isVisible());
    // Nothing was sent yet: the user picks the person.
    assert.equal(await alice.page.getByTestId('transfer-status').count(), 0);
    assert.equal(await peer(alice.page, 'bob').getByTestId('peer-send').textContent(), 'Send 1 file');

    await peer(alice.page, 'bob').getByTestId('peer-send').click();
    const id = await poll(() => alice.page.locator('[data-testid="transfer-status"][data-direction="send"]').first().getAttribute('data-transfer-id', { timeout: 1000 }).catch(() => null), {
      what: 'the transfer card',
    });
    await selection.getByText('No files chosen').waitFor();
    await bob.page.getByTestId('incoming-dialog').getByText('lab-report.pdf').waitFor();
    await bob.page.getByTestId('incoming-accept').click();
    await waitState(bob.page, id, 'completed', 60_000);
    await waitState(alice.page, id, 'completed', 20_000);
    const [download] = await Promise.all([bob.page.waitForEvent('download'), card(bob.page, id).getByTestId('transfer-save').first().click()]);
    assert.equal(download.suggestedFilename(), 'lab-report.pdf');
    assert.equal(await sha256File(await download.path()), sha);
  });

  test('at 390 px wide in dark mode the overlay fits the screen in the dark palette', async () => {
    const { page } = alice;
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      const drag = await dragFiles(page, page.getByTestId('connection-status'), [file]);
      await shown(page).waitFor();
      const box = await overlay(page).locator('.page-drop-card').boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= 390, `the card is ${box.x}..${box.x + box.width} px`);
      assert.ok(box.y >= 0 && box.y + box.height <= 844, `the card is ${box.y}..${box.y + box.height} px down`);
      assert.equal(await page.evaluate(() => document.documentElement.scrollWidth), 390, 'no sideways scrolling');
      const colours = await overlay(page)
        .locator('.page-drop-card')
        .evaluate((el) => ({ background: getComputedStyle(el).backgroundColor, title: getComputedStyle(el.querySelector('.page-drop-title')).color }));
      assert.deepEqual(colours, { background: 'rgb(22, 29, 39)', title: 'rgb(188, 208, 255)' }, 'dark --surface and --accent-soft-text');
      await drag.leave();
      await hidden(page).waitFor();
    } finally {
      await page.emulateMedia({ colorScheme: null });
      await page.setViewportSize({ width: 1280, height: 720 });
    }
  });
});
