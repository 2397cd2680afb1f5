// A file dropped anywhere must never make the browser open it and leave LabBeam. On the
// signed-in home, a file dropped outside the people and the "Choose files" area is chosen
// (drop anywhere, drop-anywhere.test.mjs); on the other pages (sign-in, account) it is refused.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { chromiumAvailable, dropFiles, gotoSettled, launch, signIn } from './lib.mjs';

describe('a file dropped outside the drop targets', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let browser;
  let dir;
  let file;

  before(async () => {
    s = await startServer();
    s.addUser('alice', 'student');
    browser = await launch();
    dir = mkdtempSync(path.join(tmpdir(), 'labbeam-drop-'));
    file = path.join(dir, 'report.txt');
    writeFileSync(file, 'not to be opened by the browser');
  });

  after(async () => {
    await browser?.close();
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Fails if `context` opened another page (the dropped file) or `page` left `url`. */
  async function stillLabBeam(context, page, url) {
    // Chromium opens an unhandled dropped file in a new tab (or in this one): give it the
    // moment it takes, then look.
    const opened = await context.waitForEvent('page', { timeout: 1500 }).catch(() => null);
    assert.equal(opened?.url() ?? null, null, 'the browser opened the dropped file');
    assert.deepEqual(context.pages(), [page]);
    assert.equal(page.url(), url);
  }

  test('leaves the signed-in page where it is and chooses the file, wherever it is dropped', async () => {
    const { context, page } = await signIn(browser, s, 'alice');
    const url = page.url();
    for (const outside of [page.getByTestId('connection-status'), page.locator('#history-title'), page.locator('#transfers-title'), page.locator('.drop-zone')]) {
      await dropFiles(page, outside, [file]);
      await stillLabBeam(context, page, url);
      // The same file dropped again is chosen once.
      await page.getByTestId('selection').getByText('1 file chosen').waitFor();
    }
    await page.getByTestId('peer-list').waitFor({ state: 'attached' });
    await context.close();
  });

  test('leaves the account page where it is, and chooses nothing there', async () => {
    const { context, page } = await signIn(browser, s, 'alice');
    await page.getByTestId('open-account').click();
    await page.getByTestId('account-panel').waitFor();
    const url = page.url();
    await dropFiles(page, page.getByTestId('account-panel'), [file]);
    await stillLabBeam(context, page, url);
    await page.getByTestId('back-to-files').click();
    await page.getByTestId('selection').getByText('No files chosen').waitFor();
    await context.close();
  });

  test('leaves the sign-in page where it is', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, baseURL: s.base });
    const page = await context.newPage();
    await gotoSettled(page, `${s.base}/`);
    await page.getByTestId('login-username').waitFor();
    const url = page.url();
    await dropFiles(page, page.getByTestId('login-submit'), [file]);
    await stillLabBeam(context, page, url);
    await page.getByTestId('login-username').waitFor();
    await context.close();
  });
});
