// The admin portal driven by Debian's Chromium as an IT admin would use it: sign in through
// the portal's own form, create a user, import a CSV with one bad row, add a lab, revoke a
// student's session (their socket drops), filter and export the transfer log. Each page
// visited is saved as a screenshot (LABBEAM_SHOTS, default a temp folder).

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { PASSWORD, call, next, startServer } from '../js/harness.mjs';
import { launch } from './lib.mjs';

const SHOTS = process.env.LABBEAM_SHOTS ?? path.join(tmpdir(), 'labbeam-portal-shots');

describe('admin portal in a real browser', () => {
  let s;
  let browser;
  let page;
  const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    s = await startServer();
    await s.admin();
    browser = await launch();
    const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, baseURL: s.base });
    page = await context.newPage();
  });
  after(async () => {
    await browser?.close();
    await s?.stop();
  });

  test('sign in through the portal form; a wrong password is refused', async () => {
    await page.goto('/admin/users');
    assert.match(page.url(), /\/admin\/login\?next=\/admin\/users$/);
    await page.fill('input[name=username]', 'admin');
    await page.fill('input[name=password]', 'not the password');
    await page.click('button[type=submit]');
    assert.match(await page.textContent('[role=alert]'), /wrong username or password/);
    await shot('login-refused');
    await page.fill('input[name=password]', PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForURL((url) => url.pathname === '/admin/users');
    await shot('users');
  });

  test('a new admin changes the temporary password in the web client and is back on the portal page', async () => {
    const out = s.cli(['user', 'add', 'kai', '--role', 'admin']);
    const otp = /one-time password[^:]*: (\S+)/.exec(out)?.[1];
    assert.ok(otp, out);
    const context = await browser.newContext({ ignoreHTTPSErrors: true, baseURL: s.base });
    try {
      const kai = await context.newPage();
      await kai.goto('/admin/labs?sort=name');
      await kai.fill('input[name=username]', 'kai');
      await kai.fill('input[name=password]', otp);
      await kai.click('button[type=submit]');
      // The portal sends a temporary password to the web client's form, saying where from.
      await kai.waitForURL((url) => url.pathname === '/' && url.searchParams.get('next') === '/admin/labs?sort=name');
      await kai.getByTestId('password-current').fill(otp);
      await kai.getByTestId('password-new').fill('a brand new passphrase');
      await kai.getByTestId('password-confirm').fill('a brand new passphrase');
      await kai.getByTestId('password-submit').click();
      await kai.waitForURL((url) => url.pathname === '/admin/labs' && url.search === '?sort=name');
      assert.match(await kai.textContent('main'), /Labs/);

      // The web client links to the portal for those who may use it, and for nobody else.
      await kai.goto('/');
      await kai.getByTestId('portal-link').click();
      await kai.waitForURL((url) => url.pathname === '/admin');
      const student = await s.user('lena');
      const lena = await browser.newContext({ ignoreHTTPSErrors: true, baseURL: s.base });
      try {
        await lena.addCookies([{ name: 'labbeam_session', value: student.token, url: s.base }]);
        const page2 = await lena.newPage();
        await page2.goto('/');
        await page2.getByTestId('current-user').waitFor();
        assert.equal(await page2.getByTestId('portal-link').count(), 0);
      } finally {
        await lena.close();
      }
    } finally {
      await context.close();
    }
  });

  test('create a user and sign in with the one-time password', async () => {
    await page.goto('/admin/users');
    await page.fill('input[name=username]', 'dora');
    await page.fill('input[name=display_name]', 'Dora <b>D</b>');
    await page.selectOption('select[name=role]', 'student');
    await page.click('form[method=post][action="/admin/users"] button[type=submit]');
    const otp = (await page.textContent('[data-testid=one-time-password]')).trim();
    assert.equal(otp.length, 20);
    await shot('user-created');
    const login = await s.request('POST', '/api/auth/login', { body: { username: 'dora', password: otp } });
    assert.equal(login.status, 200);
    assert.equal(login.body.user.must_change_password, true);
    await page.goto('/admin/users?q=dora');
    assert.equal(await page.textContent('tr[data-username=dora] td:nth-child(2)'), 'Dora <b>D</b>');
  });

  test('import a CSV with one bad row: preview first, then only the good rows', async () => {
    const file = path.join(SHOTS, 'import.csv');
    writeFileSync(file, 'username,display_name,role\nerik,Erik E,student\nfrida,Frida F,instructor\nbad user,Nope,student\n');
    await page.goto('/admin/users/import');
    await page.setInputFiles('input[name=file]', file);
    await page.click('form[action="/admin/users/import"] button[type=submit]');
    const body = await page.textContent('main');
    assert.match(body, /2 row\(s\) can be imported; 1 row\(s\) have errors/);
    assert.match(body, /must have 1 to 64 letters/);
    await shot('import-preview');
    let r = await s.request('POST', '/api/auth/login', { body: { username: 'erik', password: 'x' } });
    assert.equal(r.status, 401, 'nothing is written before confirming');
    await page.click('form[action="/admin/users/import/confirm"] button[type=submit]');
    assert.match(await page.textContent('main'), /Imported 2 user\(s\); 1 row\(s\) with errors were skipped/);
    await shot('import-done');
    const list = await s.request('GET', '/api/users', { token: (await s.login('admin')).token });
    assert.ok(list.body.some((u) => u.username === 'frida' && u.role === 'instructor'));
    assert.ok(!list.body.some((u) => u.username === 'bad user'));
  });

  test('add a lab; an overlapping range is refused with a clear message', async () => {
    await page.goto('/admin/labs');
    await page.fill('form[action="/admin/labs"] input[name=name]', 'Lab 1.01');
    await page.fill('form[action="/admin/labs"] textarea[name=ranges]', '10.1.1.0/24');
    await page.click('form[action="/admin/labs"] button[type=submit]');
    await page.waitForSelector('tr[data-lab="Lab 1.01"]');
    await shot('labs');
    await page.fill('form[action="/admin/labs"] input[name=name]', 'Lab 1.02');
    await page.fill('form[action="/admin/labs"] textarea[name=ranges]', '10.1.0.0/16');
    await page.click('form[action="/admin/labs"] button[type=submit]');
    assert.match(await page.textContent('[role=alert]'), /overlaps 10\.1\.1\.0\/24 of lab "Lab 1\.01"/);
    await shot('labs-overlap');
  });

  test('revoke a student session: their socket drops at once', async () => {
    const student = await s.user('gus');
    const socket = await s.connect({ token: student.token, device: 'PC 7' });
    await socket.snapshot;
    await page.goto('/admin/sessions');
    const row = page.locator('tr[data-session-user=gus]');
    assert.match(await row.textContent(), /PC 7/);
    await shot('sessions');
    const dropped = next(socket, 'disconnect', 5000);
    await row.locator('button[type=submit]').click();
    assert.equal(await dropped, 'io server disconnect');
    assert.equal((await s.request('GET', '/api/me', { token: student.token })).status, 401);
  });

  test('filter and export the transfer log', async () => {
    const a = await s.user('hana');
    const b = await s.user('ivan');
    const sa = await s.connect({ token: a.token, device: 'PC 1' });
    const sb = await s.connect({ token: b.token, device: 'PC 2' });
    await sa.snapshot;
    const pb = (await sb.snapshot).self.peerId;
    const files = [{ name: 'thesis.pdf', size: 5, mime: 'application/pdf' }];
    const { transferId } = await call(sa, 'transfer:request', { to: pb, files });
    await call(sb, 'transfer:respond', { transferId, accept: true });
    const fin = { transferId, status: 'completed', bytes: 5, sha256: 'b'.repeat(64), path: 'direct', durationMs: 9 };
    await call(sa, 'transfer:finish', fin);
    await call(sb, 'transfer:finish', fin);
    const other = await call(sa, 'transfer:request', { to: pb, files });
    await call(sb, 'transfer:respond', { transferId: other.transferId, accept: false });

    await page.goto('/admin/transfers');
    await page.fill('input[name=user]', 'hana');
    await page.selectOption('select[name=status]', 'completed');
    await page.click('button:has-text("Filter")');
    const rows = page.locator('main tbody tr');
    assert.equal(await rows.count(), 1);
    assert.match(await rows.first().textContent(), /thesis\.pdf.*completed.*direct/s);
    await shot('transfers-filtered');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a:has-text("Export CSV")')]);
    const csv = readFileSync(await download.path(), 'utf8');
    const lines = csv.trim().split('\n');
    assert.equal(lines.length, 2, csv);
    assert.match(lines[1], new RegExp(`^${transferId},`));
    assert.match(lines[1], /hana,PC 1,.*ivan,PC 2,.*thesis\.pdf,5,5,completed,direct,9,/);
  });

  test('the dashboard and the remaining pages render', async () => {
    for (const [name, url] of [
      ['dashboard', '/admin'],
      ['roles', '/admin/roles'],
      ['broadcasts', '/admin/broadcasts'],
      ['audit', '/admin/audit'],
      ['settings', '/admin/settings'],
    ]) {
      const response = await page.goto(url);
      assert.equal(response.status(), 200, url);
      await shot(name);
    }
    assert.match(await page.textContent('main'), /presence\.scope/);
  });
});
