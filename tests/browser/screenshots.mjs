// Takes screenshots of the web client's main views (for looking at, not a test):
//   node tests/browser/screenshots.mjs [OUT_DIR]     (default /tmp/labbeam-screens)
// Boots the real binary, signs in three students, walks through sending, an incoming request,
// progress, completion, a failure, the history, settings, dark mode and a narrow screen.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { startServer } from '../js/harness.mjs';
import { launch, peer, poll, progressOf, randomFile, sendFiles, signIn, waitState } from './lib.mjs';

const out = process.argv[2] ?? '/tmp/labbeam-screens';
mkdirSync(out, { recursive: true });
const s = await startServer();
const dir = mkdtempSync(path.join(tmpdir(), 'labbeam-shots-'));
const [b1, b2] = await Promise.all([launch(), launch()]);
const shot = async (page, name, opts = {}) => {
  await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true, ...opts });
  console.log(path.join(out, `${name}.png`));
};
try {
  s.cli(['lab', 'add', 'Lab 2', '--cidr', '10.99.0.0/24']);
  for (const [u, n] of [['alice', 'Alice Martin'], ['bob', 'Bob Chen'], ['carol', 'Carol Diaz']]) {
    s.cli(['user', 'add', u, '--role', 'student', '--display-name', n, '--password-stdin'], 'correct horse battery staple');
  }
  const small = path.join(dir, 'lab-report.pdf');
  randomFile(small, 300 * 1024);
  const big = path.join(dir, 'recording.mp4');
  randomFile(big, 400 * 1024 * 1024);

  // Sign-in page.
  const ctx = await b1.newContext({ ignoreHTTPSErrors: true, baseURL: s.base, viewport: { width: 1280, height: 800 } });
  const loginPage = await ctx.newPage();
  await loginPage.goto('/');
  await loginPage.getByTestId('login-username').waitFor();
  await shot(loginPage, '01-login');
  await ctx.close();

  const alice = await signIn(b1, s, 'alice');
  await alice.page.setViewportSize({ width: 1280, height: 860 });
  await shot(alice.page, '02-home-alone');

  const bob = await signIn(b2, s, 'bob');
  await bob.page.setViewportSize({ width: 1280, height: 860 });
  const carol = await signIn(b2, s, 'carol');
  await peer(alice.page, 'bob').waitFor();
  await peer(alice.page, 'carol').waitFor();
  await alice.page.getByTestId('file-input').setInputFiles([small, big]);
  await shot(alice.page, '03-home-files-chosen');

  // Incoming dialog on Bob's side.
  await peer(alice.page, 'bob').getByTestId('peer-send').click();
  await bob.page.getByTestId('incoming-accept').waitFor();
  await shot(bob.page, '04-incoming-dialog', { fullPage: false });
  await bob.page.getByTestId('incoming-accept').click();

  const id = await poll(async () => alice.page.locator('[data-testid="transfer-status"]').first().getAttribute('data-transfer-id'));
  await waitState(bob.page, id, 'receiving', 20_000);
  await poll(async () => (await progressOf(bob.page, id)) > 60 * 1024 * 1024, { timeout: 60_000 });
  await shot(alice.page, '05-sending-progress');
  await shot(bob.page, '06-receiving-progress');
  await waitState(bob.page, id, 'completed', 180_000);
  await waitState(alice.page, id, 'completed', 20_000);
  await bob.page.waitForTimeout(2500);
  await shot(bob.page, '07-received-with-history');

  // A failure: Carol cancels while receiving.
  const id2 = await sendFiles(alice.page, 'carol', [big]);
  await carol.page.getByTestId('incoming-accept').click();
  await waitState(carol.page, id2, 'receiving', 20_000);
  await poll(async () => (await progressOf(carol.page, id2)) > 20 * 1024 * 1024, { timeout: 60_000 });
  await carol.page.locator(`[data-testid="transfer-status"][data-transfer-id="${id2}"]`).getByTestId('transfer-cancel').click();
  await waitState(alice.page, id2, 'cancelled', 10_000);
  await alice.page.waitForTimeout(2000);
  await alice.page.getByTestId('settings-toggle').click();
  await shot(alice.page, '08-sender-cancelled-settings');

  // Dark mode and a narrow screen.
  await alice.page.getByTestId('setting-theme').selectOption('dark');
  await alice.page.getByTestId('settings-toggle').click();
  await shot(alice.page, '09-dark');
  await bob.page.emulateMedia({ colorScheme: 'dark' });
  await bob.page.setViewportSize({ width: 390, height: 844 });
  await bob.page.waitForTimeout(500); // colour transitions
  await shot(bob.page, '10-narrow-dark');
  await alice.page.getByTestId('open-account').click();
  await shot(alice.page, '11-account');
} finally {
  await Promise.allSettled([b1.close(), b2.close()]);
  await s.stop();
  rmSync(dir, { recursive: true, force: true });
}
