// Campus sign-in with an OpenID provider, as people do it in Chromium: the web client's
// "Sign in with Campus SSO" button, the provider's own sign-in page (tests/oidc/provider.mjs,
// npm oidc-provider), and back in the web client with the role the provider's groups map
// to; Sign out ends the provider's session too and comes back to LabBeam's sign-in page; the
// portal's sign-in page offers the same button and lands an admin on the dashboard.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { chromiumAvailable, launch } from './lib.mjs';

const PROVIDER = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'oidc', 'provider.mjs');

/** Starts the test provider; resolves with what it prints and a `stop()`. */
async function startProvider() {
  const dir = mkdtempSync(path.join(tmpdir(), 'labbeam-oidc-'));
  const child = spawn(process.execPath, [PROVIDER, '--dir', dir], { stdio: ['ignore', 'pipe', 'ignore'] });
  const line = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`tests/oidc/provider.mjs exited with ${code}`)));
    createInterface({ input: child.stdout }).once('line', resolve);
  });
  const info = JSON.parse(line);
  return { ...info, password: readFileSync(info.passwordFile, 'utf8'), stop: () => child.kill() };
}

describe('signing in with the campus identity provider', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let op;
  let s;
  let browser;

  before(async () => {
    op = await startProvider();
    s = await startServer({
      config: `[[auth.oidc]]
name = "Campus SSO"
issuer = "${op.issuer}"
client_id = "${op.clientId}"
client_secret_file = "${op.secretFile}"
ca_file = "${op.ca}"
scopes = ["openid", "profile", "email", "groups"]
[[auth.role_map]]
group = "labtech"
role = "admin"
[[auth.role_map]]
group = "staff"
role = "instructor"
`,
    });
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await s?.stop();
    op?.stop();
  });

  async function signInAtProvider(page, username) {
    await page.getByTestId('provider-username').fill(username);
    await page.getByTestId('provider-password').fill(op.password);
    await page.getByTestId('provider-submit').click();
  }

  test('the button leads to the provider and back into the web client with the mapped role', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`${s.base}/`);
    const button = page.getByTestId('sign-in-provider');
    await button.waitFor();
    assert.equal(await button.textContent(), 'Sign in with Campus SSO');
    await button.click();
    await page.waitForURL((url) => url.href.startsWith(op.issuer));
    await signInAtProvider(page, 'tom');
    await page.getByTestId('peer-list').waitFor({ state: 'attached', timeout: 20_000 });
    assert.ok(page.url().startsWith(s.base), page.url());
    const me = await page.evaluate(() => fetch('/api/me').then((r) => r.json()));
    assert.equal(me.username, 'tom');
    assert.equal(me.role, 'instructor');
    assert.equal(me.source, 'oidc');

    // Sign out: the provider asks to confirm ending its session too, then sends the browser
    // back to LabBeam's sign-in page.
    await page.getByTestId('logout').click();
    await page.waitForURL((url) => url.href.startsWith(op.issuer));
    await page.locator('button[name="logout"][value="yes"]').click();
    await page.getByTestId('sign-in-provider').waitFor({ timeout: 20_000 });
    assert.ok(page.url().startsWith(s.base), page.url());
    const after = await page.evaluate(() => fetch('/api/me').then((r) => r.status));
    assert.equal(after, 401);
    // The provider's session ended as well: signing in again asks for the password.
    await page.getByTestId('sign-in-provider').click();
    await page.getByTestId('provider-username').waitFor();
    await context.close();
  });

  test("the portal's sign-in page offers the provider and lands an admin on the dashboard", async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`${s.base}/admin/login?next=/admin/users`);
    await page.getByTestId('sign-in-provider').click();
    await signInAtProvider(page, 'ted');
    await page.waitForURL(`${s.base}/admin/users`);
    assert.match(await page.locator('h1').first().textContent(), /Users/);
    await context.close();
  });
});
