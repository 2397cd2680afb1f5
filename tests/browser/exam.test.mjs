// Exam mode in the web client: switched on from the command line while a student, another
// student and their instructor have LabBeam open, each page shows the exam indicator within
// seconds (the student's says what they can no longer do, the instructor's that the lab is in
// exam mode); the student's people list loses the other student, the send buttons to the
// instructor are off, and a file dropped on the instructor anyway is refused in plain words.
// Switched off, the indicator goes and everything is back. A transfer between two students
// that is under way when exam mode starts stops on both sides with the reason, and handing in
// to the instructor still works during the exam.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { card, chromiumAvailable, dropFiles, launch, peer, poll, randomFile, sendFiles, signIn, waitState } from './lib.mjs';

const STUDENT_WORDS = 'Exam mode: you cannot send to or receive from other students; broadcasts and hand-ins still work.';

describe('exam mode in the web client', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let browser;

  before(async () => {
    s = await startServer();
    // Every page is on loopback, which this lab's range holds.
    s.cli(['lab', 'add', 'Lab X', '--cidr', '127.0.0.0/8']);
    s.addUser('sam', 'student');
    s.addUser('sue', 'student');
    s.addUser('tia', 'instructor');
    s.cli(['lab', 'assign', 'Lab X', 'tia']);
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await s?.stop();
  });

  test('the indicator appears and goes live with the policy; sending is off and explained meanwhile', async () => {
    const sam = await signIn(browser, s, 'sam');
    const sue = await signIn(browser, s, 'sue');
    const tia = await signIn(browser, s, 'tia');
    await peer(sam.page, 'sue').waitFor({ timeout: 10_000 });
    await peer(sam.page, 'tia').waitFor({ timeout: 10_000 });
    const indicator = (page) => page.getByTestId('exam-indicator');
    for (const page of [sam.page, sue.page, tia.page]) assert.equal(await indicator(page).isVisible(), false);

    s.cli(['lab', 'policy', 'Lab X', '--exam', 'on']);
    await indicator(sam.page).waitFor({ state: 'visible', timeout: 5_000 });
    assert.equal(await indicator(sam.page).textContent(), STUDENT_WORDS);
    assert.equal(await indicator(sam.page).getAttribute('data-bound'), 'true');
    await indicator(tia.page).waitFor({ state: 'visible', timeout: 5_000 });
    assert.match(await indicator(tia.page).textContent(), /^Exam mode in Lab X: its students cannot send/);
    assert.equal(await indicator(tia.page).getAttribute('data-bound'), 'false');
    await indicator(sue.page).waitFor({ state: 'visible', timeout: 5_000 });

    // Sam re-joined under the policy: the other student is gone, the instructor stays, and
    // the buttons to send to the instructor are off, saying why.
    await peer(sam.page, 'sue').waitFor({ state: 'detached', timeout: 5_000 });
    const toTia = peer(sam.page, 'tia');
    await toTia.waitFor({ timeout: 5_000 });
    const send = toTia.getByTestId('peer-send');
    await poll(() => send.isDisabled(), { timeout: 5_000, what: 'the send button to go off' });
    assert.equal(await send.getAttribute('title'), 'Exam mode: one-to-one sending is off until the instructor ends it.');
    assert.equal(await toTia.getByTestId('peer-send-text').isDisabled(), true);
    // Trying anyway, by dropping a file on the instructor: refused, in plain words.
    const file = path.join(tmpdir(), `exam-${process.pid}.txt`);
    writeFileSync(file, 'my answers');
    await dropFiles(sam.page, toTia, [file]);
    const error = sam.page.getByTestId('send-error');
    await error.getByText(/exam mode/i).waitFor({ timeout: 5_000 });
    // The indicator stays while the policy does (it is not a message that fades).
    await sam.page.waitForTimeout(1_500);
    assert.equal(await indicator(sam.page).isVisible(), true);

    s.cli(['lab', 'policy', 'Lab X', '--exam', 'off']);
    for (const page of [sam.page, sue.page, tia.page]) await indicator(page).waitFor({ state: 'hidden', timeout: 5_000 });
    await peer(sam.page, 'sue').waitFor({ timeout: 5_000 });
    await poll(async () => !(await peer(sam.page, 'tia').getByTestId('peer-send').isDisabled()), {
      timeout: 5_000,
      what: 'the send button to come back',
    });
  });

  test('a transfer between students stops when the exam starts; handing in still works', { timeout: 120_000 }, async () => {
    // One device per person: the previous test's pages go.
    for (const c of browser.contexts()) await c.close();
    const sam = await signIn(browser, s, 'sam');
    const sue = await signIn(browser, s, 'sue');
    const tia = await signIn(browser, s, 'tia');
    await peer(sam.page, 'sue').waitFor({ timeout: 10_000 });
    // Big enough to be under way for many seconds (about 12 MB/s in headless Chromium here).
    const big = path.join(tmpdir(), `exam-big-${process.pid}.bin`);
    randomFile(big, 200 * 1024 * 1024);
    const id = await sendFiles(sam.page, 'sue', [big]);
    await sue.page.getByTestId('incoming-accept').click({ timeout: 10_000 });
    await poll(async () => (await card(sam.page, id).getAttribute('data-state')) === 'sending', { timeout: 20_000, what: 'the transfer to be under way' });

    s.cli(['lab', 'policy', 'Lab X', '--exam', 'on']);
    try {
      await waitState(sam.page, id, 'cancelled', 10_000);
      await waitState(sue.page, id, 'cancelled', 10_000);
      assert.match(await card(sam.page, id).getByTestId('transfer-problem').innerText(), /exam mode/i);
      await peer(sam.page, 'sue').waitFor({ state: 'detached', timeout: 5_000 });

      // The instructor collects; the student hands in, exam or not.
      await tia.page.locator('details.handin-open > summary').click();
      await tia.page.getByTestId('handin-open-title').fill('Exam answers');
      await tia.page.getByTestId('handin-open-submit').click();
      const handinId = await tia.page.locator('[data-testid="handin-collection"]', { hasText: 'Exam answers' }).getAttribute('data-handin-id', { timeout: 10_000 });
      const answers = path.join(tmpdir(), `exam-answers-${process.pid}.txt`);
      writeFileSync(answers, 'question 1: 42');
      const handinCard = sam.page.locator(`[data-testid="handin-card"][data-handin-id="${handinId}"]`);
      await handinCard.getByTestId('handin-file-input').setInputFiles([answers]);
      await handinCard.getByTestId('handin-submit').click();
      await sam.page.locator(`[data-testid="handin-card"][data-handin-id="${handinId}"][data-state="handed-in"]`).waitFor({ timeout: 30_000 });
      await tia.page.locator('[data-testid="handin-row"][data-username="sam"][data-status="handed-in"]').waitFor({ timeout: 10_000 });
    } finally {
      s.cli(['lab', 'policy', 'Lab X', '--exam', 'off']);
    }
    await peer(sam.page, 'sue').waitFor({ timeout: 10_000 });
  });
});
