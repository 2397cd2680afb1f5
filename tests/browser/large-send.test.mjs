// A folder of more files than one request may list (100): the web client sends it in parts,
// one request and transfer each, under the 64 KiB message cap; the receiver answers once and
// every file arrives. With the default request limit (30 a minute) the 50 parts also exercise
// the sender's waiting and asking again.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { chromiumAvailable, peer, poll, signedInPair } from './lib.mjs';

const DIRS = 50;
const PER_DIR = 100;
const FILES = DIRS * PER_DIR;

describe('a large folder', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let dir;
  let browsers;
  let alice;
  let bob;

  before(async () => {
    s = await startServer();
    s.addUser('alice', 'student');
    s.addUser('bob', 'student');
    dir = mkdtempSync(path.join(tmpdir(), 'labbeam-large-'));
    ({ browsers, first: alice, second: bob } = await signedInPair(s, 'alice', 'bob'));
  });

  after(async () => {
    await Promise.allSettled((browsers ?? []).map((b) => b.close()));
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test(`a folder of ${FILES} small files goes in parts, is accepted once and arrives whole`, { timeout: 15 * 60_000 }, async () => {
    const root = path.join(dir, 'Many');
    for (let d = 0; d < DIRS; d++) {
      mkdirSync(path.join(root, `dir-${d}`), { recursive: true });
      for (let f = 0; f < PER_DIR; f++) writeFileSync(path.join(root, `dir-${d}`, `file-${f}.txt`), `${d}/${f}\n`);
    }
    await alice.page.getByTestId('folder-input').setInputFiles(root);
    await alice.page.getByTestId('selection').getByText(`${FILES} files chosen`).waitFor();
    await peer(alice.page, 'bob').getByTestId('peer-send').click();

    const dialog = bob.page.getByTestId('incoming-dialog');
    await dialog.waitFor();
    const parts = await dialog.getByTestId('incoming-parts').innerText();
    assert.match(parts, /in 50 parts/);
    await bob.page.getByTestId('incoming-accept').click();

    const started = Date.now();
    const done = (page, direction) =>
      page.locator(`[data-testid="transfer-status"][data-direction="${direction}"][data-part-count="50"][data-state="completed"]`).count();
    let asked = 0;
    await poll(
      async () => {
        // The receiver is never asked again.
        if (await dialog.isVisible()) asked += 1;
        const failed = await bob.page.locator('[data-testid="transfer-status"][data-state="failed"], [data-testid="transfer-status"][data-state="cancelled"]').count();
        assert.equal(failed, 0, 'no part failed');
        return (await done(bob.page, 'receive')) === 50;
      },
      { timeout: 14 * 60_000, every: 2000, what: 'all 50 parts received' },
    );
    console.error(`# ${FILES} files in 50 parts: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(asked, 0, 'the receiver was asked only once');
    await poll(async () => (await done(alice.page, 'send')) === 50, { timeout: 30_000, what: 'the sender sees 50 parts done' });

    const names = await bob.page
      .locator('[data-testid="transfer-status"][data-direction="receive"] [data-testid="transfer-file"] .file-name')
      .allTextContents();
    assert.equal(names.length, FILES);
    assert.equal(new Set(names).size, FILES);
    assert.ok(names.includes('Many/dir-49/file-99.txt'));
    const indexes = await bob.page
      .locator('[data-testid="transfer-status"][data-direction="receive"]')
      .evaluateAll((els) => els.map((e) => Number(e.dataset.partIndex)).sort((a, b) => a - b));
    assert.deepEqual(indexes, Array.from({ length: 50 }, (_, i) => i + 1));
  });
});
