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
//   node bench/handin/run.mjs [--students 8] [--small 4] [--size-mib 20] [--rate 20mbit]
//                             [--concurrency 4] [--json FILE]
//
// Needs root (ip netns, tc), a built binary (CARGO_TARGET_DIR or target/debug, or
// LABBEAM_BIN), /usr/bin/chromium and the npm packages of tests/browser.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
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
    rate: { type: 'string', default: '20mbit' },
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

/** CPU seconds (user + system) used so far by every process in network namespace `ns`, by pid. */
function namespaceCpu(ns) {
  const hz = 100; // USER_HZ on Linux
  const byPid = new Map();
  for (const pid of sh('ip', ['netns', 'pids', ns]).split(/\s+/).filter((p) => p !== '')) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byPid.set(pid, (Number(f[11]) + Number(f[12])) / hz);
    } catch {
      // Gone meanwhile.
    }
  }
  return byPid;
}

/** CPU seconds each namespace's processes used between `before` and `after` (new processes count whole). */
function cpuUsed(before, after) {
  let total = 0;
  for (const [pid, s] of after) total += s - (before.get(pid) ?? 0);
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

/**
 * One poll of the instructor's table: when each student's row was first seen queued, taken
 * ("sending", the connection being set up), moving bytes (a percentage above 0), at 100 %
 * and handed in (kept and receipted). Times in seconds from the clicks, to 0.1 s (the poll).
 */
function noteRow(timeline, { user, status, words }, at) {
  const t = timeline.get(user) ?? {};
  const first = (k) => (t[k] ??= at);
  if (status === 'queued') first('queued');
  if (status === 'sending') {
    first('taken');
    const pct = Number.parseFloat(/([\d.]+)\s*%/.exec(words)?.[1] ?? '0');
    if (pct > 0) first('bytes');
    if (pct >= 100) first('all');
  }
  if (status === 'handed-in') first('done');
  timeline.set(user, t);
}

/**
 * Where each delivery's time went, as medians and 90th percentiles over the students:
 *   setup  taken → first bytes (request accepted, ICE, DTLS, SCTP, first chunk),
 *   moving first bytes → 100 %,
 *   finish 100 % → handed in (last hash, move into the hand-in's folder, receipt),
 * and how many deliveries were moving bytes at once, on average over the run: with N at a
 * time and a full link this is near N; a low figure means the link sat idle between them.
 */
function summarizeTimeline(timeline, seconds) {
  const q = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? null : +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2);
  };
  const span = (a, b) => [...timeline.values()].filter((t) => t[a] !== undefined && t[b] !== undefined).map((t) => t[b] - t[a]);
  const moving = [...timeline.values()].filter((t) => t.bytes !== undefined).map((t) => (t.all ?? t.done ?? seconds) - t.bytes);
  const taken = [...timeline.values()].filter((t) => t.taken !== undefined).map((t) => (t.done ?? seconds) - t.taken);
  const out = {};
  for (const [name, a, b] of [['setup', 'taken', 'bytes'], ['moving', 'bytes', 'all'], ['finish', 'all', 'done']]) {
    const xs = name === 'moving' ? moving : span(a, b);
    out[name] = { p50: q(xs, 0.5), p90: q(xs, 0.9), n: xs.length };
  }
  out.meanMoving = +(moving.reduce((x, y) => x + y, 0) / seconds).toFixed(2);
  out.meanTaken = +(taken.reduce((x, y) => x + y, 0) / seconds).toFixed(2);
  out.rows = Object.fromEntries(timeline);
  return out;
}

function phaseLine(r) {
  const p = r.phases;
  const f = (x) => (x.n === 0 ? 'not seen' : `${x.p50} s (p90 ${x.p90})`);
  const busy = (r.cpu.teacherS + r.cpu.studentsAndServerS) / (r.seconds * r.cpu.cores);
  return (
    `      per delivery: setup ${f(p.setup)}, moving ${f(p.moving)}, finish ${f(p.finish)}; on average ${p.meanTaken} taken, ${p.meanMoving} moving bytes at once\n` +
    `      CPU: instructor ${r.cpu.teacherS} s, students and server ${r.cpu.studentsAndServerS} s in ${r.seconds} s on ${r.cpu.cores} cores (${(100 * busy).toFixed(0)} % busy); before the clicks the students' pages and the server used ${r.cpu.idleStudentsCores} of a core`
  );
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
  // What the class costs before anyone sends: every student page showing the hand-in card.
  const idle0 = namespaceCpu('lbbh0');
  await new Promise((r) => setTimeout(r, 5000));
  const idleStudentsCores = +(cpuUsed(idle0, namespaceCpu('lbbh0')) / 5).toFixed(2);
  const memory = sampleMemory('lbbh1');
  const cpu0 = { teacher: namespaceCpu('lbbh1'), rest: namespaceCpu('lbbh0') };
  const t0 = Date.now();
  await Promise.all(students.map((s) => s.page.locator(`[data-testid="handin-card"][data-handin-id="${id}"]`).getByTestId('handin-submit').click()));
  const clicked = (Date.now() - t0) / 1000;
  const rows = `[data-testid="handin-collection"][data-handin-id="${id}"] [data-testid="handin-row"]`;
  const timeline = new Map();
  await poll(
    async () => {
      const seen = await teacher.page.locator(rows).evaluateAll((els) =>
        els.map((e) => ({ user: e.dataset.username, status: e.dataset.status, words: e.children[1]?.textContent ?? '' })),
      );
      const at = (Date.now() - t0) / 1000;
      for (const r of seen) noteRow(timeline, r, at);
      const states = seen.map((r) => r.status);
      if (states.includes('failed')) throw new Error(`a delivery failed: ${await teacher.page.locator(rows).allInnerTexts()}`);
      return states.filter((s) => s === 'handed-in').length >= students.length;
    },
    { timeout: 3_600_000, every: 100, what: 'every student handed in' },
  );
  const seconds = (Date.now() - t0) / 1000;
  const mem = memory.stop();
  // Of the machine's CPU time over the run, what the instructor's browser and what everything
  // else (the students' browser and the server) used: near the core count means CPU-bound.
  const cpu = {
    cores: availableParallelism(),
    teacherS: +cpuUsed(cpu0.teacher, namespaceCpu('lbbh1')).toFixed(1),
    studentsAndServerS: +cpuUsed(cpu0.rest, namespaceCpu('lbbh0')).toFixed(1),
    idleStudentsCores,
  };
  const phases = summarizeTimeline(timeline, seconds);
  // Close it and clear what this browser kept, so the next round starts from the same storage.
  teacher.page.once('dialog', (d) => d.accept());
  await teacher.page.locator(`[data-testid="handin-collection"][data-handin-id="${id}"]`).getByTestId('handin-close').click();
  teacher.page.once('dialog', (d) => d.accept());
  await teacher.page.locator(`[data-testid="handin-collection"][data-handin-id="${id}"][data-state="closed"]`).getByTestId('handin-remove').click();
  return { students: students.length, seconds: +seconds.toFixed(2), clickSpreadS: +clicked.toFixed(2), ...mem, cpu, phases };
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
  console.log(phaseLine(results.runs.one));
  for (const [name, count] of [['small', SMALL], ['all', N]]) {
    if (count < 2 || (name === 'small' && count >= N)) continue;
    const r = await round(teacher, students.slice(0, count), file, `${count} students`);
    results.runs[name] = r;
    const floor = count * lineS;
    console.log(
      `${String(count).padStart(3)} students at once: ${String(r.seconds).padStart(7)} s  (${(r.seconds / floor).toFixed(2)}× the floor of ${floor.toFixed(1)} s; ${(r.seconds / (count * results.runs.one.seconds)).toFixed(2)}× ${count} × one alone)  instructor memory idle ${r.idleMiB} MiB, peak +${r.growthMiB} MiB`,
    );
    console.log(phaseLine(r));
  }
  const out = opts.json ?? path.join(here, 'results', `${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(results, null, 2));
  console.log(`\nwritten to ${out}`);
} finally {
  await cleanup();
}
