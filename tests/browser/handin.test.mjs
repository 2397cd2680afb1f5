// Hand-ins in the web client (docs/PROTOCOL.md, "Hand-ins"): an instructor opens one from the
// "Collect work" panel, every student PC of the lab shows it, three students hand in at once
// (files peer-to-peer to the instructor's browser, a few at a time), one re-submits, one more
// hands in after the deadline and is marked late; every student's receipt names the SHA-256
// of their own files; "Save all" writes each student's current files into the folder the
// instructor picks, `username/path`, and the CSV says who handed in what. Then the
// instructor's page is closed mid-hand-in and opened again: what arrived before is still
// there, and a student who handed in meanwhile waited and went through once it was back.
//
// The folder picker is the one thing a test cannot click: the instructor's page is given a
// folder of its own private storage instead, which the page then reads back.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../js/harness.mjs';
import { chromiumAvailable, launch, poll, randomFile, sha256File, signIn, signInWith } from './lib.mjs';

const STUDENTS = ['ann', 'bea', 'cid', 'dan'];

/** `datetime-local` value for `ms` from now, in the page's own time zone. */
function deadlineValue(page, ms) {
  return page.evaluate((ahead) => {
    const d = new Date(Date.now() + ahead);
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }, ms);
}

async function openHandin(page, { title, aheadMs, extensions = '', late = false }) {
  // The form folds away once a hand-in is open.
  if (!(await page.locator('details.handin-open').evaluate((d) => d.open))) await page.locator('details.handin-open > summary').click();
  await page.getByTestId('handin-open-title').fill(title);
  await page.getByTestId('handin-open-deadline').fill(await deadlineValue(page, aheadMs));
  await page.getByTestId('handin-open-extensions').fill(extensions);
  if (late) await page.getByTestId('handin-open-late').check();
  await page.getByTestId('handin-open-submit').click();
  const block = page.locator('[data-testid="handin-collection"]', { hasText: title });
  await block.waitFor({ timeout: 10_000 });
  return block.getAttribute('data-handin-id');
}

const cardOf = (page, id) => page.locator(`[data-testid="handin-card"][data-handin-id="${id}"]`);
const rowOf = (page, id, username) => page.locator(`[data-testid="handin-collection"][data-handin-id="${id}"] [data-testid="handin-row"][data-username="${username}"]`);

async function handIn(page, id, files) {
  const card = cardOf(page, id);
  await card.getByTestId('handin-file-input').setInputFiles(files);
  await card.getByTestId('handin-submit').click();
}

async function handedIn(page, id, timeout = 60_000) {
  const card = cardOf(page, id);
  try {
    await card.locator('[data-testid="handin-receipt"]:not([hidden])').waitFor({ timeout });
    await page.locator(`[data-testid="handin-card"][data-handin-id="${id}"][data-state="handed-in"]`).waitFor({ timeout });
  } catch (error) {
    const shown = (await card.count()) ? `${await card.getAttribute('data-state')}: ${(await card.innerText()).replace(/\s+/g, ' ').slice(0, 300)}` : 'no card';
    throw new Error(`not handed in: ${shown}`, { cause: error });
  }
}

/** The receipt's files as `{name: sha256}`, and its version and lateness. */
async function receiptOf(page, id) {
  const r = cardOf(page, id).getByTestId('handin-receipt');
  const files = await r.getByTestId('handin-receipt-file').evaluateAll((els) => Object.fromEntries(els.map((e) => [e.dataset.name, e.dataset.sha256])));
  return { files, version: Number(await r.getAttribute('data-version')), late: (await r.getAttribute('data-late')) === 'true' };
}

/** Gives the page a private folder as "the folder the user picks" and returns its name. */
async function stubFolderPicker(page, name) {
  await page.evaluate(async (folder) => {
    const root = await navigator.storage.getDirectory();
    await root.removeEntry(folder, { recursive: true }).catch(() => {});
    window.showDirectoryPicker = async () => root.getDirectoryHandle(folder, { create: true });
  }, name);
}

/** Every file under the private folder `name`, `{path: sha256}`. */
function savedFiles(page, name) {
  return page.evaluate(async (folder) => {
    const out = {};
    const walk = async (dir, prefix) => {
      for await (const [entry, handle] of dir.entries()) {
        const p = prefix === '' ? entry : `${prefix}/${entry}`;
        if (handle.kind === 'directory') await walk(handle, p);
        else {
          const digest = await crypto.subtle.digest('SHA-256', await (await handle.getFile()).arrayBuffer());
          out[p] = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
        }
      }
    };
    await walk(await (await navigator.storage.getDirectory()).getDirectoryHandle(folder), '');
    return out;
  }, name);
}

describe('hand-ins in the web client', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let dir;
  let teacherBrowser;
  let studentBrowser;
  let tom;
  const students = {};

  before(async () => {
    s = await startServer();
    s.cli(['lab', 'add', 'Lab H', '--cidr', '127.0.0.0/8']);
    s.addUser('tom', 'instructor');
    s.cli(['lab', 'assign', 'Lab H', 'tom']);
    for (const name of STUDENTS) s.addUser(name, 'student');
    dir = mkdtempSync(path.join(tmpdir(), 'labbeam-handin-'));
    [teacherBrowser, studentBrowser] = await Promise.all([launch(), launch()]);
    tom = await signIn(teacherBrowser, s, 'tom');
    for (const name of STUDENTS) students[name] = await signIn(studentBrowser, s, name);
  });

  after(async () => {
    await Promise.allSettled([teacherBrowser?.close(), studentBrowser?.close()]);
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('three at once, a re-submission and a late one; receipts match; Save all and the CSV', { timeout: 180_000 }, async () => {
    const file = (name, size) => {
      const p = path.join(dir, name);
      return { path: p, sha: randomFile(p, size) };
    };
    const work = {
      ann: [file('ann-main.txt', 300_000), file('ann-notes.txt', 2_000)],
      bea: [file('bea-main.txt', 3 * 1024 * 1024)],
      cid: [file('cid-main.txt', 1024 * 1024)],
    };
    const id = await openHandin(tom.page, { title: 'Week 3: loops', aheadMs: 45_000, extensions: 'txt', late: true });
    for (const name of STUDENTS) await cardOf(students[name].page, id).waitFor({ timeout: 10_000 });
    assert.match(await cardOf(students.ann.page, id).innerText(), /Collected by tom/);
    await rowOf(tom.page, id, 'dan').and(tom.page.locator('[data-status="not-started"]')).waitFor({ timeout: 10_000 });

    // A file type the hand-in does not take is refused before anything is sent.
    const wrong = path.join(dir, 'photo.jpg');
    writeFileSync(wrong, 'not a text');
    await cardOf(students.dan.page, id).getByTestId('handin-file-input').setInputFiles([wrong]);
    await cardOf(students.dan.page, id).getByTestId('handin-error').getByText(/takes only \.txt files/).waitFor();
    await cardOf(students.dan.page, id).getByText('Clear').click();

    // Three students at once.
    await Promise.all(['ann', 'bea', 'cid'].map((name) => handIn(students[name].page, id, work[name].map((f) => f.path))));
    for (const name of ['ann', 'bea', 'cid']) {
      await handedIn(students[name].page, id);
      const r = await receiptOf(students[name].page, id);
      assert.deepEqual(r.files, Object.fromEntries(work[name].map((f) => [path.basename(f.path), f.sha])), `${name}'s receipt names their files' SHA-256`);
      assert.equal(r.version, 1);
      assert.equal(r.late, false);
      await rowOf(tom.page, id, name).and(tom.page.locator('[data-status="handed-in"]')).waitFor({ timeout: 10_000 });
    }

    // Ann hands in again before the deadline: version 2 replaces version 1.
    const again = file('ann-main-v2.txt', 50_000);
    await handIn(students.ann.page, id, [again.path]);
    await poll(async () => (await receiptOf(students.ann.page, id)).version === 2, { timeout: 60_000, what: "Ann's second version" });
    assert.deepEqual((await receiptOf(students.ann.page, id)).files, { 'ann-main-v2.txt': again.sha });
    await tom.page.locator(`[data-testid="handin-row"][data-username="ann"][data-version="2"]`).waitFor({ timeout: 10_000 });

    // Dan, after the deadline: taken, and marked late on both sides.
    const deadline = Number(await tom.page.locator(`[data-testid="handin-collection"][data-handin-id="${id}"] [data-deadline]`).getAttribute('data-deadline'));
    await poll(() => Date.now() / 1000 > deadline + 1, { timeout: 60_000, what: 'the deadline to pass' });
    const late = file('dan-main.txt', 10_000);
    await handIn(students.dan.page, id, [late.path]);
    await handedIn(students.dan.page, id);
    assert.equal((await receiptOf(students.dan.page, id)).late, true);
    await tom.page.locator('[data-testid="handin-row"][data-username="dan"][data-late="true"]').waitFor({ timeout: 10_000 });

    // Save all: each student's current files, under their username.
    await stubFolderPicker(tom.page, 'picked-week3');
    await tom.page.getByTestId('handin-save-all').click();
    await tom.page.getByTestId('handin-collect-notice').getByText('Saved 4 files').waitFor({ timeout: 20_000 });
    assert.deepEqual(await savedFiles(tom.page, 'picked-week3'), {
      'ann/ann-main-v2.txt': again.sha,
      'bea/bea-main.txt': work.bea[0].sha,
      'cid/cid-main.txt': work.cid[0].sha,
      'dan/dan-main.txt': late.sha,
    });

    // The CSV: one line per student, the current version, late or not, with the hashes.
    const download = tom.page.waitForEvent('download');
    await tom.page.getByTestId('handin-csv').click();
    const csv = readFileSync(await (await download).path(), 'utf8').trim().split(/\r\n/);
    assert.equal(csv[0], 'username,name,status,version,late,files,bytes,received_at,problem,files_sha256');
    const line = (name) => csv.find((l) => l.startsWith(`${name},`)) ?? '';
    assert.match(line('ann'), new RegExp(`^ann,ann,handed in,2,no,1,50000,.*ann-main-v2.txt:${again.sha}$`));
    assert.match(line('dan'), /^dan,dan,handed in,1,yes,1,10000,/);

    // Closing: students' cards go; the instructor's table stays to be saved.
    tom.page.once('dialog', (d) => d.accept());
    await tom.page.locator(`[data-testid="handin-collection"][data-handin-id="${id}"]`).getByTestId('handin-close').click();
    await cardOf(students.bea.page, id).waitFor({ state: 'detached', timeout: 10_000 });
    await tom.page.locator(`[data-testid="handin-collection"][data-handin-id="${id}"][data-state="closed"]`).waitFor({ timeout: 10_000 });
  });

  test('the instructor’s page closed mid-hand-in and opened again: nothing is lost', { timeout: 180_000 }, async () => {
    const annFile = path.join(dir, 'ann-essay.txt');
    const annSha = randomFile(annFile, 200_000);
    const beaFile = path.join(dir, 'bea-essay.txt');
    const beaSha = randomFile(beaFile, 200_000);
    const id = await openHandin(tom.page, { title: 'Essay', aheadMs: 10 * 60_000 });
    await cardOf(students.ann.page, id).waitFor({ timeout: 10_000 });
    await handIn(students.ann.page, id, [annFile]);
    await handedIn(students.ann.page, id);

    // The instructor closes the tab; Bea hands in meanwhile and is told to wait.
    await tom.page.close();
    await handIn(students.bea.page, id, [beaFile]);
    await cardOf(students.bea.page, id).and(students.bea.page.locator('[data-state="waiting"]')).waitFor({ timeout: 10_000 });
    assert.match(await cardOf(students.bea.page, id).getByTestId('handin-status').innerText(), /Waiting for tom’s browser/);

    // Back (the same browser): Ann's files are still here, and Bea's go through by themselves.
    tom = await signInWith(tom.context, s, 'tom');
    await handedIn(students.bea.page, id, 60_000);
    assert.deepEqual((await receiptOf(students.bea.page, id)).files, { 'bea-essay.txt': beaSha });
    for (const name of ['ann', 'bea']) await rowOf(tom.page, id, name).and(tom.page.locator('[data-status="handed-in"]')).waitFor({ timeout: 10_000 });
    await stubFolderPicker(tom.page, 'picked-essay');
    await tom.page.locator(`[data-testid="handin-collection"][data-handin-id="${id}"]`).getByTestId('handin-save-all').click();
    await tom.page.getByTestId('handin-collect-notice').getByText('Saved 2 files').waitFor({ timeout: 20_000 });
    assert.deepEqual(await savedFiles(tom.page, 'picked-essay'), { 'ann/ann-essay.txt': annSha, 'bea/bea-essay.txt': beaSha });
  });
});
