// Lab policies from the web client's "Your labs" panel: the lab's instructor sees their lab
// with its switches, a student sees no panel; switching exam mode on asks first (declined:
// nothing happens; accepted: the student's page shows the exam indicator within seconds);
// the visibility select sets the lab's own visibility; switched off, the indicator goes.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { chromiumAvailable, launch, poll, signIn } from './lib.mjs';

describe('lab policies in the web client', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let browser;

  before(async () => {
    s = await startServer();
    // Every page is on loopback, which this lab's range holds.
    s.cli(['lab', 'add', 'Lab Y', '--cidr', '127.0.0.0/8']);
    s.cli(['lab', 'add', 'Lab Z', '--cidr', '10.9.0.0/24']);
    s.addUser('sam', 'student');
    s.addUser('tia', 'instructor');
    s.cli(['lab', 'assign', 'Lab Y', 'tia']);
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await s?.stop();
  });

  test("the instructor switches their lab's exam mode and visibility; the student's page follows", async () => {
    const sam = await signIn(browser, s, 'sam');
    const tia = await signIn(browser, s, 'tia');
    const panel = tia.page.getByTestId('lab-policy');
    await panel.waitFor({ timeout: 10_000 });
    const row = panel.locator('[data-testid="lab-policy-lab"][data-lab="Lab Y"]');
    await row.waitFor({ timeout: 10_000 });
    assert.equal(await panel.getByTestId('lab-policy-lab').count(), 1, 'only the lab she is responsible for');
    assert.equal(await sam.page.getByTestId('lab-policy').count(), 0, 'no panel for a student');
    const exam = row.getByTestId('lab-policy-exam');
    assert.equal(await exam.isChecked(), false);

    // Declined: the switch stays off and nothing is sent.
    let asked = '';
    tia.page.once('dialog', (d) => {
      asked = d.message();
      void d.dismiss();
    });
    await exam.click();
    await poll(async () => asked !== '', { timeout: 5_000, what: 'the confirmation' });
    assert.match(asked, /^Students in Lab Y will no longer be able to send files to each other/);
    assert.equal(await exam.isChecked(), false);
    assert.doesNotMatch(s.cli(['lab', 'list']), /exam mode/);

    // Accepted: on, and the student's page shows the indicator.
    tia.page.once('dialog', (d) => void d.accept());
    await exam.click();
    await poll(async () => (await row.getAttribute('data-exam')) === 'true', { timeout: 5_000, what: 'the row to say exam mode' });
    const indicator = sam.page.getByTestId('exam-indicator');
    await indicator.waitFor({ state: 'visible', timeout: 5_000 });
    assert.equal(await indicator.getAttribute('data-bound'), 'true');
    assert.match(s.cli(['lab', 'list']), /Lab Y .*\(exam mode\)/);

    // The visibility select.
    const rowNow = panel.locator('[data-testid="lab-policy-lab"][data-lab="Lab Y"]');
    await rowNow.getByTestId('lab-policy-visibility').selectOption('own');
    await poll(async () => /sees own lab only/.test(s.cli(['lab', 'list'])), { timeout: 5_000, what: 'the visibility to be set' });

    // Off again: no question, and the indicator goes.
    await rowNow.getByTestId('lab-policy-exam').click();
    await indicator.waitFor({ state: 'hidden', timeout: 5_000 });
    assert.equal(await rowNow.getAttribute('data-exam'), 'false');
  });
});
