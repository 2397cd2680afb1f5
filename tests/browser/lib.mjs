// Helpers for the browser tests: Debian's Chromium driven by playwright-core, with the flags
// that give usable WebRTC host candidates on loopback (without them, and without the
// camera permission `signInWith` grants, candidates are `.local` names that do not
// resolve, or there are none), and students signed in through the real login form of the
// real binary (booted by ../js/harness.mjs).

import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, openSync, writeSync, closeSync, existsSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

export function chromiumAvailable() {
  return existsSync(CHROMIUM);
}

/**
 * One Chromium process (sender and receiver each get their own, like two lab PCs).
 * `executablePath`: another launcher, e.g. ../netns's wrapper that runs Chromium inside a
 * network namespace.
 */
export function launch({ executablePath = CHROMIUM, args = [] } = {}) {
  return chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS, ...args] });
}

/**
 * A signed-in student in `browser`: a fresh context (own storage, own OPFS) on the server's
 * origin with camera/microphone granted (for host candidates; nothing is captured).
 * Playwright's contexts are off-the-record profiles, whose OPFS Chromium keeps in memory; for
 * memory measurements use `launchProfile` (a real on-disk profile) and `signInWith`.
 */
export async function signIn(browser, server, username, options = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, baseURL: server.base });
  return signInWith(context, server, username, options);
}

/**
 * Two Chromium processes, `first` signed in on one and `second` on the other, each seeing
 * the other online: `{ browsers: [b1, b2], first: {context, page}, second: {context, page} }`.
 */
export async function signedInPair(server, first, second) {
  const browsers = await Promise.all([launch(), launch()]);
  const a = await signIn(browsers[0], server, first);
  const b = await signIn(browsers[1], server, second);
  await peer(a.page, second).waitFor();
  await peer(b.page, first).waitFor();
  return { browsers, first: a, second: b };
}

/** A Chromium process with a persistent on-disk profile in `userDataDir` (one context). */
export function launchProfile(userDataDir, extraArgs = []) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
  });
}

/**
 * `page.goto`, once more when Chromium aborted it with ERR_NETWORK_CHANGED: a browser started
 * in a namespace whose interfaces were just configured can see an address change in its first
 * second and drop the navigation under way, as it would on a PC joining a network.
 */
export async function gotoSettled(page, url) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await page.goto(url);
    } catch (error) {
      if (attempt >= 3 || !/ERR_NETWORK_CHANGED/.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** Signs `username` in on a new page of `context`. */
export async function signInWith(context, server, username, { query = '', password } = {}) {
  await context.grantPermissions(['camera', 'microphone'], { origin: server.base });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${username}] page error:`, e.message));
  page.on('console', (m) => {
    // 401 (/api/me before signing in) and 404 (/api/ice-servers on servers without it) are expected.
    if (/Failed to load resource: .* (401|404)/.test(m.text())) return;
    if (m.type() === 'error' || m.type() === 'warning') console.error(`[${username}] console.${m.type()}:`, m.text());
  });
  await gotoSettled(page, `${server.base}/${query}`);
  // A profile that is already signed in (session cookie) goes straight to the home view.
  await page.locator('[data-testid="login-username"], [data-testid="peer-list"]').first().waitFor({ state: 'attached' });
  if (await page.getByTestId('login-username').count()) {
    await page.getByTestId('login-username').fill(username);
    await page.getByTestId('login-password').fill(password ?? (await import('../js/harness.mjs')).PASSWORD);
    await page.getByTestId('login-submit').click();
  }
  await page.getByTestId('peer-list').waitFor({ state: 'attached' });
  await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
  return { context, page, username };
}

/** The `peer` entry of `username` in `page`'s list. */
export function peer(page, username) {
  return page.locator(`[data-testid="peer"][data-username="${username}"]`);
}

/** Picks `files` in the sender's page and sends them to `to`; resolves with the transfer id. */
export async function sendFiles(page, to, files) {
  await page.getByTestId('file-input').setInputFiles(files);
  const before = new Set(await page.getByTestId('transfer-status').evaluateAll((els) => els.map((e) => e.dataset.transferId)));
  await peer(page, to).getByTestId('peer-send').click();
  // New cards are put first in the list.
  return poll(
    async () => {
      const id = await page.locator('[data-testid="transfer-status"][data-direction="send"]').first().getAttribute('data-transfer-id', { timeout: 1000 }).catch(() => null);
      return id !== null && !before.has(id) ? id : null;
    },
    { timeout: 10_000, what: 'a new transfer card' },
  );
}

export function card(page, id) {
  return page.locator(`[data-testid="transfer-status"][data-transfer-id="${id}"]`);
}

/** Waits until the transfer's card shows `state`; on timeout says what the card showed. */
export async function waitState(page, id, state, timeout = 60_000) {
  try {
    await page.locator(`[data-testid="transfer-status"][data-transfer-id="${id}"][data-state="${state}"]`).waitFor({ timeout });
  } catch (error) {
    const c = card(page, id);
    const shown = (await c.count())
      ? `${await c.getAttribute('data-state')}: ${(await c.innerText()).replace(/\s+/g, ' ').slice(0, 400)}`
      : 'no such card';
    const dialog = await page.getByTestId('incoming-dialog').isVisible().catch(() => false);
    throw new Error(`transfer ${id} did not reach "${state}" in ${timeout} ms; the card shows ${shown}; incoming dialog open: ${dialog}`, { cause: error });
  }
}

/** Bytes done, as shown by the card's progress bar. */
export async function progressOf(page, id) {
  return card(page, id).locator('progress').first().evaluate((p) => p.value);
}

/** Writes `size` random bytes to `file` in 1 MiB blocks; resolves with the SHA-256 (hex). */
export function randomFile(file, size) {
  const fd = openSync(file, 'w');
  const hash = createHash('sha256');
  const block = Buffer.alloc(1024 * 1024);
  for (let left = size; left > 0; ) {
    const n = Math.min(left, block.length);
    randomFillSync(block, 0, n);
    writeSync(fd, block, 0, n);
    hash.update(block.subarray(0, n));
    left -= n;
  }
  closeSync(fd);
  return hash.digest('hex');
}

export function sha256File(file) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => hash.update(d))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}

/** Entries left in this page's OPFS folder of received files (for clean-up checks). */
export function opfsEntries(page, transferId) {
  return page.evaluate(async (id) => {
    const root = await navigator.storage.getDirectory();
    let incoming;
    try {
      incoming = await root.getDirectoryHandle('labbeam-incoming');
    } catch {
      return [];
    }
    let dir;
    try {
      dir = await incoming.getDirectoryHandle(id);
    } catch {
      return [];
    }
    const names = [];
    for await (const name of dir.keys()) names.push(name);
    return names;
  }, transferId);
}

export async function poll(fn, { timeout = 10_000, every = 200, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export const basename = (p) => path.basename(p);

/**
 * Drags `files` (paths on this machine) in from outside the browser and drops them on the
 * middle of `target` (a locator), as a user does from the file manager: trusted drag events
 * through the DevTools protocol, so the browser's own handling of a drop nobody took (it
 * opens the file) happens as well.
 */
export async function dropFiles(page, target, files) {
  const drag = await dragFiles(page, target, files);
  await drag.drop();
}

/**
 * Drags `files` in from outside the browser over the middle of `target` (a locator), like
 * `dropFiles`, and holds them there: `drop()` drops them, `leave()` drags them out of the
 * page again and lets go there (the page gets `dragleave`). Either ends the drag.
 */
export async function dragFiles(page, target, files) {
  const box = await target.boundingBox();
  if (box === null) throw new Error('the drop target is not on screen');
  const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  const cdp = await page.context().newCDPSession(page);
  // dragOperationsMask 1: copy, what a file manager offers and the drop targets accept.
  const data = { items: [], files, dragOperationsMask: 1 };
  const send = (type, where = at) => cdp.send('Input.dispatchDragEvent', { type, ...where, data });
  const end = async (...steps) => {
    try {
      for (const [type, where] of steps) await send(type, where);
    } finally {
      await cdp.detach();
    }
  };
  try {
    for (const type of ['dragEnter', 'dragOver']) await send(type);
  } catch (error) {
    await cdp.detach();
    throw error;
  }
  // Above the page's top left corner: outside every element, as when the pointer leaves the window.
  const away = { x: -5, y: -5 };
  return { drop: () => end(['drop', at]), leave: () => end(['dragOver', away], ['dragCancel', away]) };
}
