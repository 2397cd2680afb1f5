// "Test my connection" from a lab PC whose network blocks UDP, and what the admin sees of it:
// PC A sits behind a NAT that drops all UDP (netns.mjs `udp-blocked`), PC B behind an ordinary
// one, both in the lab "Lab" (the campus segment). Each presses the button in the web
// client's settings; A is told "relay over TCP/TLS only", B that everything works, and the
// portal's Health page lists both under the lab, A by its address with the same verdict.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { gotoSettled, signIn } from '../browser/lib.mjs';
import { openLab } from './lab.mjs';
import { certutilAvailable, cleanupStale, unsupported } from './netns.mjs';

const PASSWORD = 'correct horse battery staple';
const why = unsupported() ?? (certutilAvailable() ? null : 'needs certutil (Debian: libnss3-tools), so PCs trust TURN over TLS');

/** Presses "Test my connection" in `page`'s settings; resolves with the result's verdict and words. */
async function testConnection(page) {
  await page.getByTestId('settings-toggle').click();
  await page.getByTestId('connection-test').click();
  const result = page.locator('[data-testid="connection-test-result"][data-state="done"]');
  await result.waitFor({ timeout: 60_000 });
  return {
    verdict: await result.getAttribute('data-verdict'),
    headline: await page.getByTestId('connection-test-headline').textContent(),
    paths: Object.fromEntries(await result.locator('li[data-path]').evaluateAll((els) => els.map((e) => [e.dataset.path, e.dataset.result]))),
    sent: await page.getByTestId('connection-test-sent').textContent(),
  };
}

describe('Test my connection (network namespaces)', { skip: why ?? false, timeout: 300_000 }, () => {
  let lab;

  before(async () => {
    cleanupStale();
    lab = await openLab('udp-blocked');
  });
  after(async () => {
    await lab?.close();
  });

  test('a PC without UDP is told "relay over TCP/TLS only", and the Health page lists it for its lab', async () => {
    const [alice, bob] = lab.users;
    const a = await testConnection(alice.page);
    assert.equal(a.verdict, 'relay_tcp_tls_only', JSON.stringify(a));
    assert.match(a.headline, /^Relay over TCP\/TLS only/);
    assert.deepEqual(a.paths, { direct: 'ok', stun: 'failed', relay_udp: 'failed', relay_tcp: 'ok', relay_tls: 'ok' });
    assert.match(a.sent, /Health page \(lab: Lab\)/);

    const b = await testConnection(bob.page);
    assert.equal(b.verdict, 'all', JSON.stringify(b));

    lab.app.addUser('itadmin', 'admin', PASSWORD);
    const admin = await signIn(lab.browsers[1], lab.app, 'itadmin', { password: PASSWORD });
    await gotoSettled(admin.page, `${lab.app.base}/admin/health`);
    const section = admin.page.locator('[data-testid="health-lab"][data-lab="Lab"]');
    assert.match(await section.getByTestId('health-lab-summary').textContent(), /^2 PCs tested: 1 all good, 1 relay over TCP\/TLS only \(no UDP\)$/);
    // The appliance sees PC A as its NAT router's campus address.
    const rowA = section.locator('[data-testid="health-pc"][data-address="10.77.0.11"]');
    assert.equal(await rowA.getAttribute('data-verdict'), 'relay_tcp_tls_only');
    assert.match(await rowA.textContent(), /relay over TCP\/TLS only: UDP is blocked/);
    const rowB = section.locator('[data-testid="health-pc"][data-address="10.77.0.12"]');
    assert.equal(await rowB.getAttribute('data-verdict'), 'all');
  });
});
