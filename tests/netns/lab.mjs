// A lab built from ./netns.mjs for browser tests: a topology, the real labbeam binary in the
// appliance namespace, and one headless Chromium per lab PC (inside that PC's namespace,
// with an NSS database that trusts the appliance's certificate, as a managed lab PC would),
// each with a signed-in student. Also: send a file through the real web client UI and check
// the saved copy's SHA-256.

import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { card, launch, peer, poll, progressOf, randomFile, sendFiles, sha256File, signIn, waitState } from '../browser/lib.mjs';
import { Net, buildTopology, certutilAvailable, chromiumIn, homeTrusting, startAppliance } from './netns.mjs';

const PASSWORD = 'correct horse battery staple';

/**
 * Builds `kind` (see netns.mjs TOPOLOGIES), starts the appliance and one signed-in browser
 * per PC (users `alice` on PC A, `bob` on PC B). `trust: false` leaves the PCs without the
 * appliance's certificate in their NSS database.
 */
export async function openLab(kind, { trust = true, appliance: applianceOptions } = {}) {
  const net = new Net();
  const lab = { net, kind, browsers: [], users: [] };
  try {
    const topo = buildTopology(net, kind);
    lab.topo = topo;
    const app = await startAppliance(net, 'app', topo.appliance.ip, applianceOptions);
    lab.app = app;
    // The campus segment, where the appliance sees the PCs (or their NAT routers): the lab
    // range is what lets the relay reach a PC's own address (one side relayed, the other not).
    app.addLab('Lab', '10.77.0.0/24');
    const names = ['alice', 'bob'];
    for (const n of names) app.addUser(n, 'student', PASSWORD);
    for (const [i, pc] of topo.pcs.entries()) {
      const dir = path.join(net.dir, pc.role);
      mkdirSync(dir, { recursive: true });
      const home = trust && certutilAvailable() ? homeTrusting(dir, app.certPem()) : path.join(dir, 'home');
      mkdirSync(home, { recursive: true });
      const browser = await launch({ executablePath: chromiumIn(net, pc.role, { home }) });
      lab.browsers.push(browser);
      lab.users.push(await signIn(browser, app, names[i], { password: PASSWORD }));
    }
    const [a, b] = lab.users;
    await peer(a.page, 'bob').waitFor({ timeout: 20_000 });
    await peer(b.page, 'alice').waitFor({ timeout: 20_000 });
    lab.close = async () => {
      await Promise.allSettled(lab.browsers.map((br) => br.close()));
      await net.down();
    };
    return lab;
  } catch (error) {
    await Promise.allSettled(lab.browsers.map((br) => br.close()));
    await net.down();
    throw error;
  }
}

/** A random file of `size` bytes in `dir`; `{path, size, sha}`. */
export function makeFile(dir, name, size) {
  const p = path.join(dir, name);
  return { path: p, name, size, sha: randomFile(p, size) };
}

/**
 * `from` sends `file` to `to` through the web client; `to` accepts; waits for both cards to
 * show completed, saves the received copy and checks its SHA-256. Resolves with what was
 * seen: transfer id, path kind and protocol (each side), time from click to completed.
 */
export async function transferVerified(from, to, file, { timeout = 120_000 } = {}) {
  const started = Date.now();
  const id = await sendFiles(from.page, to.username, [file.path]);
  await to.page.getByTestId('incoming-accept').click({ timeout: 20_000 });
  await waitState(to.page, id, 'completed', timeout);
  await waitState(from.page, id, 'completed', 20_000);
  const ms = Date.now() - started;
  const save = card(to.page, id).getByTestId('transfer-save').first();
  const [download] = await Promise.all([to.page.waitForEvent('download'), save.click()]);
  const sha = await sha256File(await download.path());
  const side = async (u) => ({
    path: await card(u.page, id).getAttribute('data-path'),
    chip: await card(u.page, id).locator('.path-chip').textContent(),
  });
  return { id, ms, sha, ok: sha === file.sha, sender: await side(from), receiver: await side(to) };
}

/** The transfer log row of `id` as the server recorded it (read by `user`'s page). */
export function loggedTransfer(user, id) {
  return poll(
    async () => {
      const rows = await user.page.evaluate(async () => {
        const r = await fetch('/api/transfers?limit=50', { credentials: 'same-origin' });
        return r.ok ? (await r.json()).transfers : [];
      });
      return rows.find((r) => r.id === id && r.status === 'completed') ?? null;
    },
    { timeout: 30_000, every: 500, what: `the log row of ${id}` },
  );
}

/** Starts a transfer of `file` from alice to bob, waits until `atBytes` arrived; returns its id. */
export async function startTransfer(lab, file, atBytes) {
  const [alice, bob] = lab.users;
  // Both signed in, connected to signaling (again, after a fault) and seeing each other.
  for (const [u, other] of [[alice, 'bob'], [bob, 'alice']]) {
    await u.page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor({ timeout: 30_000 });
    await peer(u.page, other).waitFor({ timeout: 30_000 });
  }
  const id = await sendFiles(alice.page, 'bob', [file.path]);
  await bob.page.getByTestId('incoming-accept').click({ timeout: 20_000 });
  await waitState(bob.page, id, 'receiving', 30_000);
  await poll(async () => (await progressOf(bob.page, id)) >= atBytes, { timeout: 60_000, every: 100, what: `${atBytes} bytes received` });
  return id;
}

/**
 * Waits until `id`'s card in `page` reaches an end state (completed, failed, cancelled);
 * resolves with it (and the card's problem text, if any).
 */
export async function waitEnd(page, id, timeout) {
  const ended = page.locator(
    ['completed', 'failed', 'cancelled'].map((s) => `[data-testid="transfer-status"][data-transfer-id="${id}"][data-state="${s}"]`).join(', '),
  );
  await ended.first().waitFor({ timeout });
  const state = await card(page, id).getAttribute('data-state');
  const problem = state === 'completed' ? null : await card(page, id).getByTestId('transfer-problem').textContent().catch(() => null);
  return { state, problem };
}

/**
 * Waits for `completed` on both sides (failing at once, with the card's words, when either
 * ends otherwise), saves bob's copy, returns its SHA-256.
 */
export async function finishVerified(lab, id, timeout = 180_000) {
  const [alice, bob] = lab.users;
  for (const [who, t] of [[bob, timeout], [alice, 30_000]]) {
    // A page that lost the transfer (e.g. reloaded without resuming it) has no card for it.
    await card(who.page, id)
      .waitFor({ state: 'attached', timeout: 30_000 })
      .catch(() => {
        throw new Error(`${who.username}'s page shows no card for the transfer (30 s)`);
      });
    const end = await waitEnd(who.page, id, t);
    if (end.state !== 'completed') throw new Error(`${who.username}'s card ended ${end.state}: ${end.problem}`);
  }
  const [download] = await Promise.all([bob.page.waitForEvent('download'), card(bob.page, id).getByTestId('transfer-save').first().click()]);
  return sha256File(await download.path());
}
