// Broadcast benchmark: one sender and N receivers, each a real headless Chromium in its own
// network namespace with a tc-shaped link (netns.sh), through the real labbeam binary (in its
// own namespace, unshaped). In one run it times, from the click to the last receiver's
// verified copy:
//   (a)  one transfer to one receiver (the ordinary transfer engine), and a broadcast to
//        that one receiver (same piece machinery, no tree);
//   (b)  the one-connection-per-receiver fan-out (a broadcast with fan-out ≥ N: a star);
//   (c)  the relay tree with fan-out 1 (a chain), 2 and 3.
// See README.md.
//
//   node bench/broadcast/run.mjs [--receivers 8] [--size-mib 20] [--rate 20mbit] [--json FILE]
//
// Needs root (ip netns, tc), a built binary (CARGO_TARGET_DIR or target/debug, or
// LABBEAM_BIN), /usr/bin/chromium and the npm packages of tests/browser.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { CHROMIUM, CHROMIUM_ARGS, poll, randomFile, signInWith } from '../../tests/browser/lib.mjs';
import { chromium } from '../../tests/browser/node_modules/playwright-core/index.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const BIN = process.env.LABBEAM_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'debug', 'labbeam');
const PASSWORD = 'correct horse battery staple';
const NETNS = path.join(here, 'netns.sh');
const SERVER_IP = '10.77.0.10';
const LAB = 'Bench';

const { values: opts } = parseArgs({
  options: {
    receivers: { type: 'string', default: '8' },
    'size-mib': { type: 'string', default: '20' },
    rate: { type: 'string', default: '20mbit' },
    fanouts: { type: 'string', default: '1,2,3' },
    json: { type: 'string' },
  },
});
const N = Number(opts.receivers);
const MiB = 1024 * 1024;
const size = Number(opts['size-mib']) * MiB;
const fanouts = opts.fanouts.split(',').map(Number);

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { input: input ?? '', encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const work = mkdtempSync(path.join(tmpdir(), 'lbb-bench-'));
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

async function startServer() {
  const child = spawn('ip', ['netns', 'exec', 'lbbh0', BIN, 'serve', '--data-dir', dataDir, '--http-listen', `${SERVER_IP}:8443`, '--turn-listen', `${SERVER_IP}:3478`, '--public-host', SERVER_IP], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner: ${log}`)), 60_000);
    child.on('exit', (code) => reject(new Error(`labbeam exited ${code}: ${log}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes('Open:')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

/** A Chromium inside namespace lbbh`host`, through a wrapper as its executable. */
async function browserIn(host) {
  const wrapper = path.join(work, `chromium-${host}.sh`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec lbbh${host} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  const b = await chromium.launch({ executablePath: wrapper, headless: true, args: CHROMIUM_ARGS });
  browsers.push(b);
  return b;
}

async function person(host, username) {
  const b = await browserIn(host);
  const base = `https://${SERVER_IP}:8443`;
  const context = await b.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, baseURL: base });
  return signInWith(context, { base }, username, { password: PASSWORD });
}

/** Times one broadcast of the file to the lab; resolves with seconds to each receiver's done. */
async function broadcast(sender, file, expected) {
  const page = sender.page;
  const before = new Set(await page.getByTestId('broadcast-out').evaluateAll((els) => els.map((e) => e.dataset.broadcastId)));
  await page.getByTestId('file-input').setInputFiles(file);
  await page.getByTestId('broadcast-target').selectOption(LAB);
  const t0 = Date.now();
  await page.getByTestId('broadcast-start').click();
  const id = await poll(
    async () => (await page.getByTestId('broadcast-out').evaluateAll((els) => els.map((e) => e.dataset.broadcastId))).find((x) => !before.has(x)) ?? null,
    { timeout: 30_000, what: 'the broadcast' },
  );
  const doneAt = new Map();
  await poll(
    async () => {
      const states = await page
        .locator(`[data-testid="broadcast-out"][data-broadcast-id="${id}"] [data-testid="broadcast-recipient"]`)
        .evaluateAll((els) => els.map((e) => [e.dataset.username, e.dataset.state]));
      for (const [u, s] of states) {
        if (s === 'failed') throw new Error(`${u} failed`);
        if (s === 'done' && !doneAt.has(u)) doneAt.set(u, (Date.now() - t0) / 1000);
      }
      return doneAt.size === expected;
    },
    { timeout: 1_800_000, every: 100, what: 'every receiver done' },
  );
  const times = [...doneAt.values()].sort((a, b) => a - b);
  return { allS: +times[times.length - 1].toFixed(2), firstS: +times[0].toFixed(2), each: Object.fromEntries(doneAt) };
}

/** Times an ordinary transfer (accept clicked at once) from the click to the sender's `completed`. */
async function transfer(sender, receiver, file, to) {
  await sender.page.getByTestId('file-input').setInputFiles(file);
  const t0 = Date.now();
  await sender.page.locator(`[data-testid="peer"][data-username="${to}"]`).getByTestId('peer-send').click();
  await receiver.page.getByTestId('incoming-accept').click({ timeout: 30_000 });
  await sender.page.locator('[data-testid="transfer-status"][data-direction="send"][data-state="completed"]').first().waitFor({ timeout: 1_800_000 });
  return +((Date.now() - t0) / 1000).toFixed(2);
}

try {
  sh(NETNS, ['up', String(N + 1), opts.rate]);
  for (const [u, role] of [['teacher', 'instructor'], ...Array.from({ length: N }, (_, i) => [`r${i + 1}`, 'student'])]) {
    cli(['user', 'add', u, '--role', role, '--password-stdin'], PASSWORD);
  }
  cli(['lab', 'add', LAB, '--cidr', '10.77.0.0/24']);
  cli(['lab', 'assign', LAB, 'teacher']);
  server = await startServer();
  const file = path.join(work, 'handout.bin');
  randomFile(file, size);

  const sender = await person(1, 'teacher');
  const first = await person(2, 'r1');
  const results = { receivers: N, sizeMiB: size / MiB, rate: opts.rate, cpus: (await import('node:os')).cpus().length, runs: {} };
  const idealS = (size * 8) / (Number.parseInt(opts.rate, 10) * 1e6);
  console.log(`${N} receivers, ${size / MiB} MiB, links ${opts.rate} (one copy at line rate: ${idealS.toFixed(1)} s)`);

  // (a) one receiver: an ordinary transfer, and a broadcast to it alone.
  results.runs.transfer1 = await transfer(sender, first, file, 'r1');
  console.log(`(a)  one transfer to one receiver:        ${results.runs.transfer1} s`);
  cli(['setting', 'set', 'broadcast.fanout', '1']);
  results.runs.broadcast1 = await broadcast(sender, file, 1);
  console.log(`(a') broadcast to that one receiver:       ${results.runs.broadcast1.allS} s`);

  for (let i = 2; i <= N; i += 1) await person(i + 1, `r${i}`);
  await poll(async () => (await sender.page.getByTestId('peer').count()) >= N, { timeout: 60_000, what: 'every receiver online' });

  // (b) one connection per receiver: a star (fan-out N).
  cli(['setting', 'set', 'broadcast.fanout', String(N)]);
  results.runs.star = await broadcast(sender, file, N);
  console.log(`(b)  fan-out, one connection per receiver: ${results.runs.star.allS} s (first done ${results.runs.star.firstS} s)`);
  // (c) relay trees.
  for (const f of fanouts) {
    cli(['setting', 'set', 'broadcast.fanout', String(f)]);
    results.runs[`tree${f}`] = await broadcast(sender, file, N);
    console.log(`(c)  relay tree, fan-out ${f}:              ${results.runs[`tree${f}`].allS} s (first done ${results.runs[`tree${f}`].firstS} s)`);
  }
  const base = results.runs.transfer1;
  console.log('\nall receivers done, relative to one transfer to one receiver:');
  for (const [k, v] of Object.entries(results.runs)) {
    const s = typeof v === 'number' ? v : v.allS;
    console.log(`  ${k.padEnd(12)} ${String(s).padStart(7)} s  ${(s / base).toFixed(2)}×`);
  }
  const out = opts.json ?? path.join(here, 'results', `${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(results, null, 2));
  console.log(`\nwritten to ${out}`);
} finally {
  await cleanup();
}
