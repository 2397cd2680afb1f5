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
//   node bench/broadcast/run.mjs [--peers node|chromium] [--receivers 8] [--size-mib 20]
//                                [--rate 20mbit] [--fanouts 1,2,3] [--rounds 2] [--json FILE]
//
// --peers chromium: every PC is a real headless Chromium running the web client.
// --peers node (default): every PC is peer.ts, a Node.js process that speaks the same
//   protocol through the same server with the web client's piece code, over TCP instead of
//   WebRTC (nine Chromiums on two shared cores measure the CPU, not the network).
//
// Needs root (ip netns, tc), a built binary (CARGO_TARGET_DIR or target/debug, or
// LABBEAM_BIN), /usr/bin/chromium and the npm packages of tests/browser.

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { CHROMIUM_ARGS, poll, randomFile, signInWith } from '../../tests/browser/lib.mjs';
import { SERVER_IP, chromiumIn, startServerIn } from './lab.mjs';
import { chromium } from '../../tests/browser/node_modules/playwright-core/index.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const BIN = process.env.LABBEAM_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'debug', 'labbeam');
const PASSWORD = 'correct horse battery staple';
const NETNS = path.join(here, 'netns.sh');
const LAB = 'Bench';

const { values: opts } = parseArgs({
  options: {
    receivers: { type: 'string', default: '8' },
    'size-mib': { type: 'string', default: '20' },
    rate: { type: 'string', default: '20mbit' },
    fanouts: { type: 'string', default: '1,2,3' },
    peers: { type: 'string', default: 'node' },
    rounds: { type: 'string', default: '2' },
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
const nodePeers = [];

async function cleanup() {
  await Promise.allSettled(browsers.map((b) => b.close()));
  for (const p of nodePeers) p.child.kill('SIGTERM');
  if (server !== null && server.exitCode === null) server.kill('SIGTERM');
  spawnSync(NETNS, ['down']);
  rmSync(work, { recursive: true, force: true });
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));


/** A Chromium inside namespace lbbh`host`. */
async function browserIn(host) {
  const b = await chromium.launch({ executablePath: chromiumIn(work, host), headless: true, args: CHROMIUM_ARGS });
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
  server = await startServerIn(BIN, dataDir);
  const file = path.join(work, 'handout.bin');
  randomFile(file, size);

  if (opts.peers === 'node') {
    await nodeRun(file);
    process.exitCode = 0;
  } else {
    await chromiumRun(file);
  }
} finally {
  await cleanup();
}

async function chromiumRun(file) {
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
  save(results);
}

function save(results) {
  const out = opts.json ?? path.join(here, 'results', `${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}-${opts.peers}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(results, null, 2));
  console.log(`\nwritten to ${out}`);
}

// ---- Node.js peers ----

async function bundlePeer() {
  const { build } = await import('../../web-client/node_modules/esbuild/lib/main.js');
  const outfile = path.join(work, 'peer.mjs');
  await build({
    entryPoints: [path.join(here, 'peer.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    nodePaths: [path.join(repo, 'web-client', 'node_modules')],
    logLevel: 'warning',
    // socket.io-client's Node build uses require(); give the ES module one.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return outfile;
}

function nodePeer(script, host, username) {
  const child = spawn('ip', ['netns', 'exec', `lbbh${host}`, process.execPath, script, `https://${SERVER_IP}:8443`, username, PASSWORD, `10.77.0.${10 + host}`], {
    env: { ...process.env, NODE_TLS_REJECT_UNAUTHORIZED: '0', NODE_NO_WARNINGS: '1' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const peer = { child, username, listeners: new Set(), send: (v) => child.stdin.write(`${JSON.stringify(v)}\n`) };
  createInterface({ input: child.stdout }).on('line', (line) => {
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      return;
    }
    if (ev.ev === 'error') console.error(`[${username}] ${ev.message}`);
    for (const l of [...peer.listeners]) l(ev);
  });
  peer.wait = (pred, ms = 60_000, what = 'an event') =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        peer.listeners.delete(l);
        reject(new Error(`${username}: no ${what} in ${ms} ms`));
      }, ms);
      const l = (ev) => {
        if (!pred(ev)) return;
        clearTimeout(timer);
        peer.listeners.delete(l);
        resolve(ev);
      };
      peer.listeners.add(l);
    });
  nodePeers.push(peer);
  return peer;
}

async function startNodePeer(script, host, username) {
  const p = nodePeer(script, host, username);
  await p.wait((e) => e.ev === 'ready', 60_000, 'sign-in');
  return p;
}

/** One broadcast from the Node sender to `expected` receivers; seconds to each one's done. */
async function nodeBroadcast(sender, file, expected) {
  const doneAt = new Map();
  let id = null;
  const t0 = Date.now();
  // Every receiver done, then the server's end of the broadcast (so the next run starts clean).
  const finished = new Promise((resolve, reject) => {
    const l = (ev) => {
      if (ev.ev === 'started') id = ev.id;
      if (ev.ev === 'ended' && ev.id === id && doneAt.size === expected) {
        sender.listeners.delete(l);
        resolve();
      }
      if (ev.ev !== 'progress' || ev.id !== id) return;
      if (ev.state === 'failed') reject(new Error(`${ev.username} failed`));
      if (ev.state === 'done' && !doneAt.has(ev.username)) doneAt.set(ev.username, (Date.now() - t0) / 1000);
    };
    sender.listeners.add(l);
  });
  sender.send({ cmd: 'broadcast', file, lab: LAB, size });
  await finished;
  const times = [...doneAt.values()].sort((a, b) => a - b);
  return { allS: +times[times.length - 1].toFixed(2), firstS: +times[0].toFixed(2), each: Object.fromEntries(doneAt) };
}

async function nodeRun(file) {
  const script = await bundlePeer();
  const rounds = Number(opts.rounds);
  const results = { peers: 'node', receivers: N, sizeMiB: size / MiB, rate: opts.rate, rounds: [] };
  const idealS = (size * 8) / (Number.parseInt(opts.rate, 10) * 1e6);
  console.log(`Node.js peers over TCP: ${N} receivers, ${size / MiB} MiB, links ${opts.rate} (one copy at line rate: ${idealS.toFixed(1)} s)`);
  const sender = await startNodePeer(script, 1, 'teacher');
  const receivers = [await startNodePeer(script, 2, 'r1')];
  const single = [];
  // (a) one receiver alone in the lab: one stream from the sender to it.
  cli(['setting', 'set', 'broadcast.fanout', '1']);
  for (let r = 0; r < rounds; r += 1) single.push((await nodeBroadcast(sender, file, 1)).allS);
  for (let i = 2; i <= N; i += 1) receivers.push(await startNodePeer(script, i + 1, `r${i}`));
  const runs = { single: single.map((s) => ({ allS: s })) };
  const plan = [['star', N], ...fanouts.map((f) => [`tree${f}`, f])];
  for (let r = 0; r < rounds; r += 1) {
    for (const [name, f] of plan) {
      cli(['setting', 'set', 'broadcast.fanout', String(f)]);
      const res = await nodeBroadcast(sender, file, N);
      (runs[name] ??= []).push(res);
      console.log(`  round ${r + 1} ${name.padEnd(6)} all ${String(res.allS).padStart(6)} s, first ${res.firstS} s`);
    }
  }
  const median = (xs) => {
    const s2 = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s2.length / 2);
    return s2.length % 2 ? s2[m] : (s2[m - 1] + s2[m]) / 2;
  };
  const base = median(single);
  console.log(`\n(a) one receiver: ${single.join(', ')} s (median ${base})`);
  console.log('all receivers done (median of rounds), relative to (a):');
  results.median = {};
  for (const [name, list] of Object.entries(runs)) {
    const m = +median(list.map((x) => x.allS)).toFixed(2);
    results.median[name] = m;
    console.log(`  ${name.padEnd(8)} ${String(m).padStart(7)} s  ${(m / base).toFixed(2)}×`);
  }
  results.runs = runs;
  save(results);
  sender.send({ cmd: 'quit' });
}
