// Two students on two real Chromium processes send files to each other through the real
// labbeam binary: bytes go browser to browser over WebRTC, the server only signals.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import {
  card,
  chromiumAvailable,
  opfsEntries,
  peer,
  poll,
  progressOf,
  randomFile,
  sendFiles,
  sha256File,
  signIn,
  signedInPair,
  waitState,
} from './lib.mjs';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('transfers between two browsers', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let dir;
  let files; // [{path, size, sha}]
  let big; // the 200 MiB file
  let senderBrowser;
  let receiverBrowser;
  let alice;
  let bob;

  before(async () => {
    s = await startServer();
    s.addUser('alice', 'student');
    s.addUser('bob', 'student');
    dir = mkdtempSync(path.join(tmpdir(), 'labbeam-browser-'));
    files = [
      ['notes.txt', 1 * KiB],
      ['slides.bin', 10 * MiB],
      ['dataset.bin', 200 * MiB],
    ].map(([name, size]) => {
      const p = path.join(dir, name);
      return { path: p, name, size, sha: randomFile(p, size) };
    });
    big = files[2];
    ({ browsers: [senderBrowser, receiverBrowser], first: alice, second: bob } = await signedInPair(s, 'alice', 'bob'));
  });

  after(async () => {
    await Promise.allSettled([senderBrowser?.close(), receiverBrowser?.close()]);
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let completedId;

  test('three files (1 KiB, 10 MiB, 200 MiB) arrive and the saved copies have the senders’ SHA-256', async () => {
    const id = await sendFiles(alice.page, 'bob', files.map((f) => f.path));
    completedId = id;
    await bob.page.getByTestId('incoming-dialog').waitFor();
    for (const f of files) await assert.doesNotReject(bob.page.getByTestId('incoming-dialog').getByText(f.name).waitFor());
    await bob.page.getByTestId('incoming-accept').click();

    await waitState(bob.page, id, 'receiving', 20_000);
    await waitState(bob.page, id, 'completed', 180_000);
    await waitState(alice.page, id, 'completed', 20_000);
    assert.equal(await card(alice.page, id).getAttribute('data-path'), 'direct');

    const saves = card(bob.page, id).getByTestId('transfer-save');
    assert.equal(await saves.count(), 3);
    for (const [i, f] of files.entries()) {
      const [download] = await Promise.all([bob.page.waitForEvent('download'), saves.nth(i).click()]);
      assert.equal(download.suggestedFilename(), f.name);
      const saved = await download.path();
      assert.equal(await sha256File(saved), f.sha, `${f.name} differs after saving`);
    }
  });

  test('history on both sides and the transfer log show the completed transfer', async () => {
    assert.ok(completedId, 'needs the first test');
    for (const who of [alice, bob]) {
      const row = who.page.locator(`[data-testid="history-row"][data-transfer-id="${completedId}"]`);
      await poll(
        async () => {
          if ((await row.getAttribute('data-status').catch(() => null)) === 'completed') return true;
          await who.page.getByTestId('history-refresh').click();
          return false;
        },
        { timeout: 40_000, every: 1000, what: `${who.username}'s history row` },
      );
      assert.equal(await row.getAttribute('data-path'), 'direct');
    }
    const { token } = await s.login('alice');
    const r = await s.request('GET', '/api/transfers', { token });
    const logged = r.body.transfers.find((t) => t.id === completedId);
    assert.equal(logged.status, 'completed');
    assert.equal(logged.bytes, files.reduce((n, f) => n + f.size, 0));
    assert.equal(logged.path, 'direct');
    assert.match(logged.sha256, /^[0-9a-f]{64}$/);
  });

  test('a picked folder keeps its relative paths on the other side', async () => {
    const root = path.join(dir, 'Project');
    mkdirSync(path.join(root, 'src', 'deep'), { recursive: true });
    writeFileSync(path.join(root, 'README.md'), '# project\n');
    writeFileSync(path.join(root, 'src', 'main.c'), 'int main(void) { return 0; }\n');
    writeFileSync(path.join(root, 'src', 'deep', 'data.csv'), 'a,b\n1,2\n');
    await alice.page.getByTestId('folder-input').setInputFiles(root);
    await peer(alice.page, 'bob').getByTestId('peer-send').click();
    await bob.page.getByTestId('incoming-dialog').getByText('Project/src/deep/data.csv').waitFor();
    await bob.page.getByTestId('incoming-accept').click();
    const id = await poll(async () => bob.page.locator('[data-testid="transfer-status"][data-direction="receive"]').first().getAttribute('data-transfer-id'));
    await waitState(bob.page, id, 'completed', 30_000);
    const names = await card(bob.page, id).locator('[data-testid="transfer-file"] .file-name').allTextContents();
    assert.deepEqual(names.sort(), ['Project/README.md', 'Project/src/deep/data.csv', 'Project/src/main.c']);
  });

  test('a declined request ends as cancelled on both sides and says so', async () => {
    const id = await sendFiles(alice.page, 'bob', [files[0].path]);
    await bob.page.getByTestId('incoming-accept').waitFor();
    await bob.page.getByTestId('incoming-decline').click();
    await waitState(alice.page, id, 'cancelled', 10_000);
    await waitState(bob.page, id, 'cancelled', 10_000);
    assert.match(await card(alice.page, id).getByTestId('transfer-problem').textContent(), /declined/);
    assert.equal(await bob.page.getByTestId('incoming-dialog').isVisible(), false);
  });

  test('Enter accepts an incoming request', async () => {
    const id = await sendFiles(alice.page, 'bob', [files[0].path]);
    await bob.page.getByTestId('incoming-accept').waitFor();
    await bob.page.keyboard.press('Enter');
    await waitState(bob.page, id, 'completed', 20_000);
    await waitState(alice.page, id, 'completed', 20_000);
  });

  for (const side of ['sender', 'receiver']) {
    test(`the ${side} cancels mid-way: both stop, the receiver keeps no partial data`, async () => {
      const id = await sendFiles(alice.page, 'bob', [big.path]);
      await bob.page.getByTestId('incoming-accept').click();
      await waitState(bob.page, id, 'receiving', 20_000);
      await poll(async () => (await progressOf(bob.page, id)) > 5 * MiB, { timeout: 30_000, what: 'some progress' });

      const [canceller, other] = side === 'sender' ? [alice, bob] : [bob, alice];
      await card(canceller.page, id).getByTestId('transfer-cancel').click();
      await waitState(canceller.page, id, 'cancelled', 5_000);
      await waitState(other.page, id, 'cancelled', 10_000);
      assert.match(await card(other.page, id).getByTestId('transfer-problem').textContent(), /cancelled/);
      await poll(async () => (await opfsEntries(bob.page, id)).length === 0, { what: 'partial data removed' });
      const at = await progressOf(bob.page, id);
      assert.ok(at < big.size, 'it stopped before the end');
    });
  }

  test('a receiver that closes its page mid-transfer: the sender shows it paused, waiting for it, and can cancel', async () => {
    const id = await sendFiles(alice.page, 'bob', [big.path]);
    await bob.page.getByTestId('incoming-accept').click();
    await waitState(bob.page, id, 'receiving', 20_000);
    await poll(async () => (await progressOf(bob.page, id)) > 5 * MiB, { timeout: 30_000, what: 'some progress' });
    await bob.context.close();

    // Interrupted, not failed: it would go on if bob's browser came back within the grace period.
    await alice.page.locator(`[data-testid="transfer-status"][data-transfer-id="${id}"][data-paused="true"]`).waitFor({ timeout: 30_000 });
    assert.equal(await card(alice.page, id).getAttribute('data-state'), 'sending');
    assert.match(await card(alice.page, id).innerText(), /Paused — waiting for bob/i);
    await card(alice.page, id).getByTestId('transfer-cancel').click();
    await waitState(alice.page, id, 'cancelled', 5_000);

    // Bob comes back (a new browser profile: another device, nothing to resume).
    bob = await signIn(receiverBrowser, s, 'bob');
    await peer(alice.page, 'bob').waitFor();
  });

  test('a sender that closes its page mid-transfer: the receiver keeps its partial data, paused; cancelling removes it', async () => {
    const id = await sendFiles(alice.page, 'bob', [big.path]);
    await bob.page.getByTestId('incoming-accept').click();
    await waitState(bob.page, id, 'receiving', 20_000);
    await poll(async () => (await progressOf(bob.page, id)) > 5 * MiB, { timeout: 30_000, what: 'some progress' });
    await alice.context.close();

    await bob.page.locator(`[data-testid="transfer-status"][data-transfer-id="${id}"][data-paused="true"]`).waitFor({ timeout: 30_000 });
    assert.match(await card(bob.page, id).innerText(), /Paused — waiting for alice/i);
    assert.ok((await opfsEntries(bob.page, id)).length > 0, 'the partial data is kept while it may resume');
    await card(bob.page, id).getByTestId('transfer-cancel').click();
    await waitState(bob.page, id, 'cancelled', 5_000);
    await poll(async () => (await opfsEntries(bob.page, id)).length === 0, { what: 'partial data removed' });
    alice = await signIn(senderBrowser, s, 'alice');
  });
});
