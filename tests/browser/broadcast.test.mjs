// Broadcasts through the relay tree, in real Chromium: an instructor sends 50 MiB to four
// students; students forward verified pieces to each other. One browser process with a
// context per person (five full processes are too heavy for two cores), generous timeouts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { call, startServer } from '../js/harness.mjs';
import { chromiumAvailable, launch, poll, randomFile, signIn } from './lib.mjs';

const MiB = 1024 * 1024;
const STUDENTS = ['s1', 's2', 's3', 's4'];
const LAB = 'Lab 1';

/** SHA-256 of a file the page stored for `transferId` (read back from OPFS). */
function storedSha(page, transferId) {
  return page.evaluate(async (id) => {
    const root = await navigator.storage.getDirectory();
    const dir = await (await root.getDirectoryHandle('labbeam-incoming')).getDirectoryHandle(id);
    const file = await (await dir.getFileHandle('0')).getFile();
    const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }, transferId);
}

function incoming(page) {
  return page.getByTestId('broadcast-in').first();
}

/** Waits until broadcast `id` (in `page`) reaches `state`. */
async function waitIncoming(page, id, state, timeout) {
  const el = page.locator(`[data-testid="broadcast-in"][data-broadcast-id="${id}"]`);
  try {
    await page.locator(`[data-testid="broadcast-in"][data-broadcast-id="${id}"][data-state="${state}"]`).waitFor({ timeout });
  } catch (error) {
    const shown = (await el.count()) ? `${await el.getAttribute('data-state')}: ${(await el.innerText()).replace(/\s+/g, ' ')}` : 'nothing';
    throw new Error(`no broadcast reached "${state}" in ${timeout} ms; the page shows ${shown}`, { cause: error });
  }
}

describe('broadcast to a lab through a relay tree', { skip: !chromiumAvailable() && 'no Chromium at /usr/bin/chromium' }, () => {
  let s;
  let dir;
  let file;
  let browser;
  let teacher;
  const students = new Map();

  async function student(name) {
    const st = await signIn(browser, s, name);
    students.set(name, st);
    return st;
  }

  /** Starts a broadcast of the 50 MiB file from the teacher's page; resolves with its id. */
  async function startBroadcast() {
    const page = teacher.page;
    const before = new Set(await page.getByTestId('broadcast-out').evaluateAll((els) => els.map((e) => e.dataset.broadcastId)));
    await page.getByTestId('file-input').setInputFiles(file.path);
    await page.getByTestId('broadcast-target').selectOption(LAB);
    await page.getByTestId('broadcast-start').click();
    return poll(
      async () => {
        const ids = await page.getByTestId('broadcast-out').evaluateAll((els) => els.map((e) => e.dataset.broadcastId));
        return ids.find((id) => !before.has(id)) ?? null;
      },
      { timeout: 20_000, what: 'the broadcast to start' },
    );
  }

  function recipient(id, username) {
    return teacher.page.locator(`[data-testid="broadcast-out"][data-broadcast-id="${id}"] [data-testid="broadcast-recipient"][data-username="${username}"]`);
  }

  before(async () => {
    s = await startServer();
    s.addUser('teacher', 'instructor');
    for (const name of STUDENTS) s.addUser(name, 'student');
    s.cli(['lab', 'add', LAB, '--cidr', '127.0.0.0/8']);
    s.cli(['lab', 'assign', LAB, 'teacher']);
    // Fan-out 2: the teacher serves two students, the first of them the other two.
    s.cli(['setting', 'set', 'broadcast.fanout', '2']);
    dir = mkdtempSync(path.join(tmpdir(), 'labbeam-broadcast-'));
    const p = path.join(dir, 'handout.bin');
    file = { path: p, sha: randomFile(p, 50 * MiB) };
    browser = await launch();
    teacher = await signIn(browser, s, 'teacher');
    for (const name of STUDENTS) await student(name);
    await poll(async () => (await teacher.page.getByTestId('peer').count()) >= STUDENTS.length, { timeout: 20_000, what: 'everyone online' });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('four students receive 50 MiB from the instructor, relayed by students, each copy verified', { timeout: 420_000 }, async () => {
    const id = await startBroadcast();
    for (const name of STUDENTS) {
      const { page } = students.get(name);
      // Instructors are trusted for auto-accept by default: no question, but who and what is shown.
      await incoming(page).waitFor({ timeout: 20_000 });
      assert.match(await incoming(page).innerText(), /teacher.*handout\.bin/s);
    }
    for (const name of STUDENTS) await waitIncoming(students.get(name).page, id, 'done', 300_000);
    for (const name of STUDENTS) {
      const { page } = students.get(name);
      const transferId = await incoming(page).getAttribute('data-transfer-id');
      assert.equal(await storedSha(page, transferId), file.sha, `${name}'s copy`);
      assert.equal(await incoming(page).getAttribute('data-bad-pieces'), '0');
      await recipient(id, name).and(teacher.page.locator('[data-state="done"]')).waitFor({ timeout: 20_000 });
    }
    // The log has the broadcast and one completed row per recipient.
    const admin = await s.admin();
    const rows = (await s.request('GET', '/api/transfers?limit=100', { token: admin.token })).body;
    const list = Array.isArray(rows) ? rows : (rows.transfers ?? rows.items ?? []);
    const mine = list.filter((r) => r.broadcast_id === id);
    assert.equal(mine.length, 4, JSON.stringify(rows).slice(0, 500));
    assert.ok(mine.every((r) => r.status === 'completed' && r.sha256 === file.sha), JSON.stringify(mine));
    const out = teacher.page.locator(`[data-testid="broadcast-out"][data-broadcast-id="${id}"]`);
    await out.and(teacher.page.locator('[data-phase="ended"]')).waitFor({ timeout: 20_000 });
  });

  test('a forwarding student closes mid-way and the others still complete', { timeout: 420_000 }, async () => {
    const id = await startBroadcast();
    // s1 is the teacher's first child and forwards to s3 and s4 (fan-out 2, by name).
    const s1 = students.get('s1');
    await poll(async () => Number(await recipient(id, 's1').getAttribute('data-bytes').catch(() => 0)) >= 10 * MiB, {
      timeout: 120_000,
      every: 100,
      what: 's1 to have a fifth of the file',
    });
    await s1.context.close();
    students.delete('s1');
    // While it runs, the portal's Broadcasts page shows each recipient's live state.
    const admin = await s.admin().catch(() => s.login('admin'));
    const portal = await s.request('GET', `/admin/broadcasts/${id}`, { headers: { cookie: admin.cookie } });
    assert.equal(portal.status, 200);
    assert.match(portal.text, /Live now/);
    for (const name of STUDENTS) assert.match(portal.text, new RegExp(`${name} \\(`));
    for (const name of ['s2', 's3', 's4']) await waitIncoming(students.get(name).page, id, 'done', 300_000);
    for (const name of ['s2', 's3', 's4']) {
      const { page } = students.get(name);
      const transferId = await page.locator(`[data-testid="broadcast-in"][data-broadcast-id="${id}"]`).getAttribute('data-transfer-id');
      assert.equal(await storedSha(page, transferId), file.sha, `${name}'s copy`);
    }
    await recipient(id, 's1').and(teacher.page.locator('[data-state="failed"]')).waitFor({ timeout: 30_000 });
    // s3 and s4 lost their parent and got another one.
    for (const name of ['s3', 's4']) {
      const parents = Number(await students.get(name).page.locator(`[data-testid="broadcast-in"][data-broadcast-id="${id}"]`).getAttribute('data-parents'));
      assert.ok(parents >= 2, `${name} had ${parents} parent(s)`);
    }
  });

  test('a student cannot start a broadcast', async () => {
    const { page } = students.get('s2');
    assert.equal(await page.getByTestId('broadcast-start').count(), 0, 'no control for students');
    const st = await s.login('s2');
    const sock = await s.connect({ token: st.token });
    await sock.snapshot;
    const ack = await call(sock, 'broadcast:start', { target: { lab: LAB }, files: [{ name: 'x.bin', size: 10, mime: '' }] });
    assert.equal(ack.error?.code, 'forbidden', JSON.stringify(ack));
    sock.close();
  });

  test('a tampered piece from a forwarder is detected, dropped, and fetched again elsewhere', { timeout: 420_000 }, async () => {
    // s1 comes back and forwards again (first by name); its page corrupts one byte of one
    // piece it sends on (a test-only patch of this page's data channels, not an app feature).
    const s1 = await student('s1');
    await poll(async () => (await teacher.page.getByTestId('peer').count()) >= STUDENTS.length, { timeout: 20_000, what: 's1 back online' });
    await s1.page.evaluate(() => {
      const send = RTCDataChannel.prototype.send;
      let binary = 0;
      RTCDataChannel.prototype.send = function (data) {
        if (typeof data !== 'string' && data.byteLength > 1024) {
          binary += 1;
          if (binary === 40) {
            const copy = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
            copy[100] ^= 0xff;
            window.__tampered = (window.__tampered ?? 0) + 1;
            return send.call(this, copy);
          }
        }
        return send.call(this, data);
      };
    });
    const id = await startBroadcast();
    for (const name of STUDENTS) await waitIncoming(students.get(name).page, id, 'done', 300_000);
    assert.equal(await s1.page.evaluate(() => window.__tampered), 1, 'one piece was tampered with');
    let detected = 0;
    for (const name of STUDENTS) {
      const { page } = students.get(name);
      const el = page.locator(`[data-testid="broadcast-in"][data-broadcast-id="${id}"]`);
      const transferId = await el.getAttribute('data-transfer-id');
      assert.equal(await storedSha(page, transferId), file.sha, `${name}'s copy`);
      detected += Number(await el.getAttribute('data-bad-pieces'));
    }
    assert.equal(detected, 1, 'the damaged piece was caught by the child that got it');
    // The server flagged the forwarder: it no longer forwards, and the sender sees why.
    assert.match(await recipient(id, 's1').innerText(), /damaged piece/);
  });
});
