// Transfer benchmark: a large random file between two headless Chromium processes on
// loopback through the real labbeam binary and web client, against the raw ceiling of one
// bare RTCDataChannel measured in the same run. See README.md.
//
//   node bench/transfer/run.mjs [--size-mib 1024] [--runs 2] [--relay] [--json FILE]
//
// Runs alternate (raw, app, raw, app, …, raw) so that a change in machine load shows in both.
//
// Needs: a built binary (CARGO_TARGET_DIR or target/debug, or LABBEAM_BIN), Chromium at
// /usr/bin/chromium, and the npm packages of tests/js and tests/browser installed.

import { readFileSync, readdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { startServer } from '../../tests/js/harness.mjs';
import { launchProfile, peer, randomFile, sendFiles, signInWith } from '../../tests/browser/lib.mjs';

const { values: opts } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    runs: { type: 'string', default: '2' },
    relay: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const MiB = 1024 * 1024;
const size = Number(opts['size-mib']) * MiB;
const runs = Number(opts.runs);
const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1000);
const perGiB = (cpu) => ({
  sender: +((cpu.senderS * 1024 * MiB) / size).toFixed(1),
  receiver: +((cpu.receiverS * 1024 * MiB) / size).toFixed(1),
});
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---- process memory: the receiver browser's processes, found by a marker switch ----

function procs() {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      // Zygote-forked children rewrite their command line into one space-separated string.
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split(/[\0 ]/);
      out.push({ pid: Number(d), ppid, cmd });
    } catch {
      // gone
    }
  }
  return out;
}

/** Proportional set size: shared pages split between the processes that map them, so a sum over processes is meaningful (a sum of RSS counts the shared Chromium binary once per process). */
function pssKiB(pid) {
  try {
    const m = /Pss:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds used so far by the processes of the browser with `marker` (user + system). */
function cpuSeconds(marker) {
  const all = procs();
  const root = all.find((p) => p.cmd.includes(marker) && !p.cmd.some((a) => a.startsWith('--type=')));
  if (!root) return 0;
  const tree = new Set([root.pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) if (!tree.has(p.pid) && tree.has(p.ppid)) tree.add(p.pid), (grew = true);
  }
  let ticks = 0;
  for (const pid of tree) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return ticks / 100;
}

/** CPU seconds both browsers spend on `run()`: a measure of cost that machine load does not skew. */
async function withCpu(run) {
  const s0 = cpuSeconds('--labbeam-bench-role=sender');
  const r0 = cpuSeconds('--labbeam-bench-role=receiver');
  const result = await run();
  const s1 = cpuSeconds('--labbeam-bench-role=sender');
  const r1 = cpuSeconds('--labbeam-bench-role=receiver');
  return { ...result, cpu: { senderS: s1 - s0, receiverS: r1 - r0, totalS: s1 - s0 + r1 - r0 } };
}

/** Samples the RSS of the renderer processes and the PSS of the whole tree of the browser with `marker`. */
function memorySampler(marker) {
  let peakRenderer = 0;
  let peakTree = 0;
  let peakByType = {};
  const sample = () => {
    const all = procs();
    const root = all.find((p) => p.cmd.includes(marker) && !p.cmd.some((a) => a.startsWith('--type=')));
    if (!root) return;
    const tree = new Set([root.pid]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const p of all) if (!tree.has(p.pid) && tree.has(p.ppid)) tree.add(p.pid), (grew = true);
    }
    let renderer = 0;
    let total = 0;
    const byType = {};
    for (const p of all) {
      if (!tree.has(p.pid)) continue;
      const r = pssKiB(p.pid);
      total += r;
      const type = (p.cmd.find((a) => a.startsWith('--type=')) ?? '--type=browser').slice(7);
      const sub = p.cmd.find((a) => a.startsWith('--utility-sub-type='));
      const key = sub ? `${type}:${sub.slice(19)}` : type;
      byType[key] = (byType[key] ?? 0) + r;
      if (type === 'renderer') renderer = Math.max(renderer, rssKiB(p.pid));
    }
    for (const [k, v] of Object.entries(byType)) peakByType[k] = Math.max(peakByType[k] ?? 0, v);
    peakRenderer = Math.max(peakRenderer, renderer);
    peakTree = Math.max(peakTree, total);
    return { renderer, total };
  };
  let timer = null;
  return {
    now: sample,
    start() {
      peakRenderer = 0;
      peakTree = 0;
      peakByType = {};
      timer = setInterval(sample, 250);
    },
    stop() {
      clearInterval(timer);
      sample();
      const byTypeMiB = Object.fromEntries(Object.entries(peakByType).map(([k, v]) => [k, Math.round(v / 1024)]));
      return { rendererMiB: peakRenderer / 1024, treeMiB: peakTree / 1024, byTypeMiB };
    },
  };
}

// ---- the raw ceiling: one bare data channel, no application logic ----

const RAW_CHUNK = 64 * 1024;
const HIGH = 8 * MiB;
const LOW = 2 * MiB;

async function rawRun(sendPage, recvPage, bytes) {
  const setup = `
    window.__pc = new RTCPeerConnection();
    window.__gathered = () => new Promise((r) => {
      if (__pc.iceGatheringState === 'complete') return r();
      __pc.addEventListener('icegatheringstatechange', () => __pc.iceGatheringState === 'complete' && r());
    });`;
  await sendPage.evaluate(setup);
  await recvPage.evaluate(setup);
  const offer = await sendPage.evaluate(async () => {
    window.__dc = __pc.createDataChannel('raw', { ordered: true });
    window.__dc.binaryType = 'arraybuffer';
    await __pc.setLocalDescription();
    await __gathered();
    return __pc.localDescription.toJSON();
  });
  const answer = await recvPage.evaluate(async ({ offer, bytes }) => {
    window.__done = new Promise((resolve) => {
      __pc.addEventListener('datachannel', ({ channel }) => {
        channel.binaryType = 'arraybuffer';
        let got = 0;
        channel.addEventListener('message', (e) => {
          got += e.data.byteLength;
          if (got >= bytes) resolve(performance.timeOrigin + performance.now());
        });
      });
    });
    await __pc.setRemoteDescription(offer);
    await __pc.setLocalDescription();
    await __gathered();
    return __pc.localDescription.toJSON();
  }, { offer, bytes });
  const t0 = Date.now();
  const started = await sendPage.evaluate(
    async ({ answer, bytes, chunk, high, low }) => {
      await __pc.setRemoteDescription(answer);
      const dc = window.__dc;
      if (dc.readyState !== 'open') await new Promise((r) => dc.addEventListener('open', r, { once: true }));
      const opened = performance.timeOrigin + performance.now();
      dc.bufferedAmountLowThreshold = low;
      const block = new Uint8Array(chunk);
      crypto.getRandomValues(block.subarray(0, 65536));
      (async () => {
        for (let sent = 0; sent < bytes; sent += chunk) {
          if (dc.bufferedAmount > high) await new Promise((r) => dc.addEventListener('bufferedamountlow', r, { once: true }));
          dc.send(block);
        }
      })();
      return opened;
    },
    { answer, bytes, chunk: RAW_CHUNK, high: HIGH, low: LOW },
  );
  const done = await recvPage.evaluate(() => __done);
  const setupMs = started - t0;
  await sendPage.evaluate(() => __pc.close());
  await recvPage.evaluate(() => __pc.close());
  return { ms: done - started, setupMs };
}

/** A page in each browser on the server's origin (a secure context), with no application. */
async function rawPages(senderContext, receiverContext, server) {
  const pages = [];
  for (const context of [senderContext, receiverContext]) {
    await context.grantPermissions(['camera', 'microphone'], { origin: server.base });
    const page = await context.newPage();
    await page.goto(`${server.base}/healthz`);
    pages.push(page);
  }
  return pages;
}

// ---- the application: the real client, request → accept → verified ----

async function appRun(alice, bob, file, bytes, { relay }) {
  const tRequest = Date.now();
  const id = await sendFiles(alice.page, 'bob', [file]);
  await bob.page.getByTestId('incoming-accept').click();
  const sel = `[data-testid="transfer-status"][data-transfer-id="${id}"]`;
  const card = (p) => p.locator(sel);
  await bob.page.locator(`${sel}:is([data-state="receiving"],[data-state="completed"],[data-state="failed"])`).waitFor({ timeout: 60_000 });
  const tOpen = Date.now();
  await bob.page.locator(`${sel}:is([data-state="completed"],[data-state="failed"],[data-state="cancelled"])`).waitFor({ timeout: 30 * 60_000 });
  const state = await card(bob.page).getAttribute('data-state');
  if (state !== 'completed') throw new Error(`transfer ${state}: ${await card(bob.page).getByTestId('transfer-problem').textContent()}`);
  await alice.page.locator(`${sel}[data-state="completed"]`).waitFor({ timeout: 60_000 });
  const durationMs = Number(await card(bob.page).getAttribute('data-duration-ms'));
  const setupMs = Number(await card(bob.page).getAttribute('data-setup-ms'));
  const path = await card(bob.page).getAttribute('data-path');
  if (relay && path !== 'relay') throw new Error(`expected the relay path, got ${path}`);
  // Free the receiver's OPFS copy before the next run.
  await card(bob.page).getByTestId('transfer-dismiss').click();
  return { ms: durationMs, setupMs, requestToOpenMs: tOpen - tRequest, path };
}

// ---- main ----

const server = await startServer();
const dir = mkdtempSync(path.join(tmpdir(), 'labbeam-bench-'));
const browsers = [];
try {
  server.addUser('alice', 'student');
  server.addUser('bob', 'student');
  const file = path.join(dir, 'random.bin');
  console.error(`writing ${size / MiB} MiB of random bytes…`);
  randomFile(file, size);

  // Real on-disk profiles: Playwright's default contexts are off-the-record, where Chromium
  // keeps OPFS in memory (the receiver's browser process would grow by the file's size).
  const [senderContext, receiverContext] = await Promise.all([
    launchProfile(path.join(dir, 'sender-profile'), ['--labbeam-bench-role=sender']),
    launchProfile(path.join(dir, 'receiver-profile'), ['--labbeam-bench-role=receiver']),
  ]);
  browsers.push(senderContext, receiverContext);
  const memory = memorySampler('--labbeam-bench-role=receiver');

  const results = { sizeMiB: size / MiB, chromium: senderContext.browser()?.version() ?? '', raw: [], app: [], relay: [] };

  const runRaw = async () => {
    const [send, recv] = await rawPages(senderContext, receiverContext, server);
    console.error('raw data channel…');
    memory.start();
    const r = await withCpu(() => rawRun(send, recv, size));
    const mem = memory.stop();
    results.raw.push({ mbps: mbps(size, r.ms), ms: r.ms, setupMs: r.setupMs, cpuSecondsPerGiB: perGiB(r.cpu), receiverRendererPeakMiB: mem.rendererMiB, receiverBrowserTreePeakMiB: mem.treeMiB });
    await send.close();
    await recv.close();
  };
  await runRaw();

  for (let i = 0; i < runs; i++) {
    const alice = await signInWith(senderContext, server, 'alice');
    const bob = await signInWith(receiverContext, server, 'bob');
    await peer(alice.page, 'bob').waitFor();
    const baseline = memory.now();
    console.error('LabBeam client, direct…');
    memory.start();
    const app = await withCpu(() => appRun(alice, bob, file, size, { relay: false }));
    const mem = memory.stop();
    results.app.push({
      mbps: mbps(size, app.ms),
      cpuSecondsPerGiB: perGiB(app.cpu),
      ms: app.ms,
      setupMs: app.setupMs,
      requestToOpenMs: app.requestToOpenMs,
      path: app.path,
      receiverRendererBaselineMiB: baseline.renderer / 1024,
      receiverRendererPeakMiB: mem.rendererMiB,
      receiverBrowserTreeBaselineMiB: baseline.total / 1024,
      receiverBrowserTreePeakMiB: mem.treeMiB,
      receiverPeakByProcessTypeMiB: mem.byTypeMiB,
    });
    await alice.page.close();
    await bob.page.close();
    await runRaw();
  }

  if (opts.relay) {
    const ice = await server.request('GET', '/api/ice-servers', { token: (await server.login('alice')).token });
    const hasTurn = ice.status === 200 && JSON.stringify(ice.body).includes('turn:');
    if (!hasTurn) {
      console.error('relay: skipped — this server offers no TURN relay (/api/ice-servers has no turn: URL)');
    } else {
      for (const transport of ['udp', 'tcp']) {
        const a = await signInWith(senderContext, server, 'alice', { query: `?relay=${transport}` });
        const b = await signInWith(receiverContext, server, 'bob', { query: `?relay=${transport}` });
        await peer(a.page, 'bob').waitFor();
        console.error(`LabBeam client, relay over ${transport}…`);
        memory.start();
        try {
          const r = await withCpu(() => appRun(a, b, file, size, { relay: true }));
          const m = memory.stop();
          results.relay.push({ transport, mbps: mbps(size, r.ms), ms: r.ms, setupMs: r.setupMs, cpuSecondsPerGiB: perGiB(r.cpu), receiverRendererPeakMiB: m.rendererMiB });
        } catch (error) {
          memory.stop();
          results.relay.push({ transport, error: error.message });
        }
        await a.page.close();
        await b.page.close();
      }
    }
  }


  const rawBest = Math.max(...results.raw.map((r) => r.mbps));
  const rawMedian = median(results.raw.map((r) => r.mbps));
  const appMedian = median(results.app.map((r) => r.mbps));
  results.summary = {
    rawMedianMBps: rawMedian,
    rawBestMBps: rawBest,
    appMedianMBps: appMedian,
    appBestMBps: Math.max(...results.app.map((r) => r.mbps)),
    appVsRawMedian: appMedian / rawMedian,
    receiverRendererPeakMiB: Math.max(...results.app.map((r) => r.receiverRendererPeakMiB)),
    setupMsMedian: median(results.app.map((r) => r.setupMs)),
    cpuSecondsPerGiBRaw: median(results.raw.map((r) => r.cpuSecondsPerGiB.sender + r.cpuSecondsPerGiB.receiver)),
    cpuSecondsPerGiBApp: median(results.app.map((r) => r.cpuSecondsPerGiB.sender + r.cpuSecondsPerGiB.receiver)),
  };
  console.log(JSON.stringify(results, null, 2));
  if (opts.json) writeFileSync(opts.json, JSON.stringify(results, null, 2));
} finally {
  await Promise.allSettled(browsers.map((b) => b.close()));
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
