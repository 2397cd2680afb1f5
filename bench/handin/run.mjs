// Hand-in benchmark: N students hand in at once to one instructor, everyone a real headless
// Chromium running the web client against the real labbeam binary, the instructor behind a
// tc-shaped link (bench/broadcast/netns.sh). It times, from the moment every student has
// clicked "Hand in" until the instructor's table shows every student handed in (files moved
// into the instructor's storage and receipted):
//   - one student alone (the same-run baseline: one delivery through the shaped link),
//   - all N students at once,
// against the physical floor N × size / instructor downlink, and samples the instructor
// browser's memory (every process of its Chromium, PSS) throughout, for two class sizes, so
// growth with the number of students shows. See README.md.
//
//   node bench/handin/run.mjs [--students 8] [--small 4] [--size-mib 20] [--rate 40mbit]
//                             [--concurrency 4] [--json FILE]
//
// Needs root (ip netns, tc), a built binary (CARGO_TARGET_DIR or target/debug, or
// LABBEAM_BIN), /usr/bin/chromium and the npm packages of tests/browser.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { CHROMIUM_ARGS, poll, randomFile, signInWith } from '../../tests/browser/lib.mjs';
import { SERVER_IP, chromiumIn, startServerIn } from '../broadcast/lab.mjs';
import { chromium } from '../../tests/browser/node_modules/playwright-core/index.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const BIN = process.env.LABBEAM_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'debug', 'labbeam');
const PASSWORD = 'correct horse battery staple';
const NETNS = path.join(repo, 'bench', 'broadcast', 'netns.sh');
const BASE = `https://${SERVER_IP}:8443`;
const LAB = 'Bench';

const { values: opts } = parseArgs({
  options: {
    students: { type: 'string', default: '8' },
    small: { type: 'string', default: '4' },
    'size-mib': { type: 'string', default: '20' },
    rate: { type: 'string', default: '40mbit' },
    concurrency: { type: 'string', default: '4' },
    json: { type: 'string' },
  },
});
const N = Number(opts.students);
const SMALL = Number(opts.small);
const MiB = 1024 * 1024;
const size = Number(opts['size-mib']) * MiB;
const rateBits = Number.parseFloat(opts.rate) * (/gbit/i.test(opts.rate) ? 1e9 : /mbit/i.test(opts.rate) ? 1e6 : /kbit/i.test(opts.rate) ? 1e3 : 1);

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { input: input ?? '', encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const work = mkdtempSync(path.join(tmpdir(), 'lbb-handin-'));
const dataDir = path.join(work, 'data');
const cli = (args, input) => sh(BIN, [...args, '--data-dir', dataDir], input);
let server = null;
const browsers = [];

async function cleanup() {
  await Promise.allSettled(browsers.map((b) => b.close()));
  if (server !== null && server.exitCode === null) server.kill('SIGTERM');
  spawnSync(NETNS, ['down']);
  rmSync(work, { recursive: true, force: true });
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));


/** A Chromium inside namespace lbbh`host`. */
async function browserIn(host, args = []) {
  const b = await chromium.launch({ executablePath: chromiumIn(work, host), headless: true, args: [...CHROMIUM_ARGS, ...args] });
  browsers.push(b);
  return b;
}

/**
 * Memory (bytes) of every process in network namespace `ns` (a browser's all): the sum of
 * their PSS, which shares each shared page out among the processes that map it, so the
 * libraries every Chromium process maps are counted once, not once per process.
 */
function namespaceRss(ns) {
  let total = 0;
  for (const pid of sh('ip', ['netns', 'pids', ns]).split(/\s+/).filter((p) => p !== '')) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // Gone meanwhile.
    }
  }
  return total;
}

/** Samples namespace `ns`'s memory every 250 ms until stopped; `stop()` gives idle and peak in MiB. */
function sampleMemory(ns) {
  const idle = namespaceRss(ns);
  let peak = idle;
  const timer = setInterval(() => (peak = Math.max(peak, namespaceRss(ns))), 250);
  return {
    stop() {
      clearInterval(timer);
      return { idleMiB: +(idle / MiB).toFixed(1), peakMiB: +(peak / MiB).toFixed(1), growthMiB: +((peak - idle) / MiB).toFixed(1) };
    },
  };
}

async function openHandin(page, title) {
  if (!(await page.locator('details.handin-open').evaluate((d) => d.open))) await page.locator('details.handin-open > summary').click();
  await page.getByTestId('handin-open-title').fill(title);
  const deadline = await page.evaluate(() => {
    const d = new Date(Date.now() + 3 * 3600_000);
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  });
  await page.getByTestId('handin-open-deadline').fill(deadline);
  await page.getByTestId('handin-open-lab').selectOption(LAB);
  await page.getByTestId('handin-open-submit').click();
  const block = page.locator('[data-testid="handin-collection"]', { hasText: title });
  await block.waitFor({ timeout: 30_000 });
  return block.getAttribute('data-handin-id');
}

/** Every student in `students` hands in `file` at once; seconds until the instructor has them all. */
async function round(teacher, students, file, title) {
  const id = await openHandin(teacher.page, title);
  await Promise.all(students.map((s) => s.page.locator(`[data-testid="handin-card"][data-handin-id="${id}"]`).waitFor({ timeout: 60_000 })));
  for (const s of students) await s.page.locator(`[data-testid="handin-card"][data-handin-id="${id}"]`).getByTestId('handin-file-input').setInputFiles(file);
  const memory = sampleMemory('lbbh1');
  const t0 = Date.now();
  await Promise.all(students.map((s) => s.page.locator(`[data-testid="handin-card"][data-handin-id="${id}"]`).getByTestId('handin-submit').click()));
  const clicked = (Date.now() - t0) / 1000;
  const rows = `[data-testid="handin-collection"][data-handin-id="${id}"] [data-testid="handin-row"]`;
  await poll(
    async () => {
      const states = await teacher.page.locator(rows).evaluateAll((els) => els.map((e) => e.dataset.status));
      if (states.includes('failed')) throw new Error(`a delivery failed: ${await teacher.page.locator(rows).allInnerTexts()}`);
      return states.filter((s) => s === 'handed-in').length >= students.length;
    },
    { timeout: 3_600_000, every: 100, what: 'every student handed in' },
  );
  const seconds = (Date.now() - t0) / 1000;
  const mem = memory.stop();
  // Close it and clear what this browser kept, so the next round starts from the same storage.
  teacher.page.once('dialog', (d) => d.accept());
  await teacher.page.locator(`[data-testid="handin-collection"][data-handin-id="${id}"]`).getByTestId('handin-close').click();
  teacher.page.once('dialog', (d) => d.accept());
  await teacher.page.locator(`[data-testid="handin-collection"][data-handin-id="${id}"][data-state="closed"]`).getByTestId('handin-remove').click();
  return { students: students.length, seconds: +seconds.toFixed(2), clickSpreadS: +clicked.toFixed(2), ...mem };
}

try {
  // lbbh0: the server and the students (unshaped); lbbh1: the instructor, its link shaped
  // to RATE each way. So the only narrow link is the instructor's downlink.
  sh(NETNS, ['up', '1', opts.rate]);
  cli(['user', 'add', 'teacher', '--role', 'instructor', '--password-stdin'], PASSWORD);
  for (let i = 1; i <= N; i += 1) cli(['user', 'add', `s${i}`, '--role', 'student', '--password-stdin'], PASSWORD);
  cli(['lab', 'add', LAB, '--cidr', '10.77.0.0/24']);
  cli(['lab', 'assign', LAB, 'teacher']);
  server = await startServerIn(BIN, dataDir);
  const file = path.join(work, 'work.bin');
  randomFile(file, size);

  // The instructor's Chromium is the only thing in lbbh1: its memory is the namespace's. A
  // real on-disk profile, as on the instructor's PC: an off-the-record context would keep
  // what it stores (the students' files) in memory.
  const tctx = await chromium.launchPersistentContext(path.join(work, 'teacher-profile'), {
    executablePath: chromiumIn(work, 1),
    headless: true,
    args: CHROMIUM_ARGS,
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
    baseURL: BASE,
  });
  browsers.push(tctx);
  await tctx.addInitScript((n) => {
    const raw = localStorage.getItem('labbeam.settings');
    const v = raw ? JSON.parse(raw) : {};
    localStorage.setItem('labbeam.settings', JSON.stringify({ ...v, handinConcurrency: n }));
  }, Number(opts.concurrency));
  const teacher = await signInWith(tctx, { base: BASE }, 'teacher', { password: PASSWORD });

  const studentBrowser = await browserIn(0);
  const students = [];
  for (let i = 1; i <= N; i += 8) {
    const batch = [];
    for (let j = i; j < Math.min(i + 8, N + 1); j += 1) {
      batch.push(studentBrowser.newContext({ ignoreHTTPSErrors: true, baseURL: BASE }).then((c) => signInWith(c, { base: BASE }, `s${j}`, { password: PASSWORD })));
    }
    students.push(...(await Promise.all(batch)));
  }
  const lineS = size * 8 / rateBits;
  console.log(`${N} students × ${size / MiB} MiB to one instructor, instructor's link ${opts.rate}, ${opts.concurrency} deliveries at once`);
  console.log(`one student's files at line rate: ${lineS.toFixed(1)} s; the floor for ${N}: ${(N * lineS).toFixed(1)} s\n`);

  const results = { students: N, small: SMALL, sizeMiB: size / MiB, rate: opts.rate, concurrency: Number(opts.concurrency), runs: {} };
  results.runs.one = await round(teacher, students.slice(0, 1), file, 'Baseline: one student');
  console.log(`one student alone:   ${String(results.runs.one.seconds).padStart(7)} s  (${(results.runs.one.seconds / lineS).toFixed(2)}× line rate)  instructor memory idle ${results.runs.one.idleMiB} MiB, peak +${results.runs.one.growthMiB} MiB`);
  for (const [name, count] of [['small', SMALL], ['all', N]]) {
    if (count < 2 || (name === 'small' && count >= N)) continue;
    const r = await round(teacher, students.slice(0, count), file, `${count} students`);
    results.runs[name] = r;
    const floor = count * lineS;
    console.log(
      `${String(count).padStart(3)} students at once: ${String(r.seconds).padStart(7)} s  (${(r.seconds / floor).toFixed(2)}× the floor of ${floor.toFixed(1)} s; ${(r.seconds / (count * results.runs.one.seconds)).toFixed(2)}× ${count} × one alone)  instructor memory idle ${r.idleMiB} MiB, peak +${r.growthMiB} MiB`,
    );
  }
  const out = opts.json ?? path.join(here, 'results', `${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(results, null, 2));
  console.log(`\nwritten to ${out}`);
} finally {
  await cleanup();
}
