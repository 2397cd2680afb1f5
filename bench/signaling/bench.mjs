// Signaling benchmark coordinator: measures the labbeam binary and the Node.js baseline
// (node-baseline.mjs) with the same client load in one run, prints a table with the ratio
// LabBeam/Node for every figure and writes results/signaling-<date>.json.
//
//   node bench.mjs [--n 1000,10000] [--servers labbeam,node] [--workers 2] [--lab-size 40]
//                  [--users 8] [--storm-secs 10] [--window 32] [--fanout-samples 40]
//                  [--perf]  (perf record of the labbeam server during its storm)
//                  [--hold-secs S] (pause before connecting, to attach heaptrack/gdb)
//
// Environment: LABBEAM_BIN (default: $CARGO_TARGET_DIR or <repo>/target, release build).
// See README.md for what is measured and how.

import { spawn, spawnSync, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Histogram, cpuOf, machineBusy, memOf, nowMs, round, schedOf, sleep, syscallsOf } from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const BIN =
  process.env.LABBEAM_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'release', 'labbeam');
const PASSWORD = 'correct horse battery staple';
const STARTED = nowMs();
const BUDGET_MS = 9.5 * 60_000; // the whole run ends by itself within ~10 minutes

// ---------------------------------------------------------------- options

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith('--') ? true : v;
}
const opts = {
  ns: String(option('n', '1000,10000')).split(',').map(Number),
  servers: String(option('servers', 'labbeam,node')).split(','),
  workers: Number(option('workers', 2)),
  labSize: Number(option('lab-size', 40)),
  users: Number(option('users', 8)),
  stormSecs: Number(option('storm-secs', 10)),
  warmupSecs: Number(option('warmup-secs', 1)),
  window: Number(option('window', 32)),
  backoffMs: Number(option('backoff-ms', 100)),
  fanoutSamples: Number(option('fanout-samples', 40)),
  connectConcurrency: Number(option('connect-concurrency', 64)),
  pairConcurrency: Number(option('pair-concurrency', 64)),
  perf: Boolean(option('perf', false)),
  quietWaitSecs: Number(option('quiet-wait-secs', 60)),
  // seconds to wait (server idle, PID printed) before connecting: time to attach a profiler
  holdSecs: Number(option('hold-secs', 0)),
  // `--pin off`: let the scheduler place the server and the clients anywhere (as before)
  pin: String(option('pin', 'on')) !== 'off' && os.cpus().length >= 2,
  // per-device event budget of both servers during the run (LabBeam's default: 50/s, 200)
  eventRate: Number(option('event-rate', 1_000_000)),
  eventBurst: Number(option('event-burst', 1_000_000)),
  // `--nice -10`: run the servers and the load generator at this nice value (root), so the
  // other users' builds and browsers on a shared machine do not starve them mid-run
  nice: Number(option('nice', 0)),
};
// Pinning: the server gets CPU 0 to itself, the load generator (workers and this
// coordinator) the others, so the clients never take the server's CPU and a server's
// figures do not depend on how the scheduler mixes the two.
const SERVER_CPUS = '0';
const CLIENT_CPUS = os.cpus().length > 2 ? `1-${os.cpus().length - 1}` : '1';
function pinned(cmd, args) {
  let [c, a] = opts.pin ? ['taskset', ['-c', SERVER_CPUS, cmd, ...args]] : [cmd, args];
  if (opts.nice) [c, a] = ['nice', ['-n', String(opts.nice), c, ...a]];
  return [c, a];
}
function pinClient(pid) {
  if (opts.pin) {
    const r = spawnSync('taskset', ['-a', '-p', '-c', CLIENT_CPUS, String(pid)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`taskset failed: ${r.stderr || r.error}`);
  }
  if (opts.nice) {
    // every thread of the process (a nice value is per thread on Linux)
    const tids = readdirSync(`/proc/${pid}/task`);
    const r = spawnSync('renice', ['-n', String(opts.nice), '-p', ...tids], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`renice failed: ${r.stderr || r.error}`);
  }
}
// The per-user transfer-request limits are run-time settings (defaults 30/min, 10
// pending); the benchmark pairs thousands of devices of a handful of users, so it raises
// them in both servers. Everything else runs with LabBeam's defaults.
// The per-device event budget (50 events/s, bursts of 200) would cap the relay storm at
// 100 messages/s per pair (25,000/s with 250 pairs at N = 1,000) for both servers, so it
// measured the policy, not the server: the run raises it too (`--event-rate`, `--event-burst`).
const LIMITS = { requestsPerMinute: 10_000, maxPending: 1000, eventsPerSecond: opts.eventRate, eventBurst: opts.eventBurst };

const log = (...a) => console.error(`[${((nowMs() - STARTED) / 1000).toFixed(1).padStart(6)} s]`, ...a);
const remaining = () => BUDGET_MS - (nowMs() - STARTED);

// Everything we start, so a deadline or a crash cleans up.
const children = new Set();
function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
function killAll() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
}
process.on('exit', killAll);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

// ---------------------------------------------------------------- LabBeam setup

function cliOf(dataDir, args, stdin = '', bin = BIN) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LABBEAM_')));
  const r = spawnSync(bin, [...args, '--data-dir', dataDir], { input: stdin, encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`labbeam ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

// The whole load comes from one loopback address, where a lab's comes from 40: lift the
// per-address connection cap (512 by default) of binaries that have one, or every
// connection past 512 is refused. Older binaries refuse the unknown variable: asked once.
const CAP_VAR = 'LABBEAM_HTTP_MAX_CONNECTIONS_PER_ADDRESS';
const capKnown = new Map();
function knowsConnectionCap(bin) {
  if (!capKnown.has(bin)) {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LABBEAM_')));
    env[CAP_VAR] = '1000000';
    const probe = path.join(os.tmpdir(), `labbeam-cap-probe-${process.pid}`);
    const r = spawnSync(bin, ['doctor', '--data-dir', probe], { encoding: 'utf8', env });
    capKnown.set(bin, !`${r.stderr}${r.stdout}`.includes(CAP_VAR));
  }
  return capKnown.get(bin);
}

async function startLabbeam(dataDir, { preload, bin = BIN } = {}) {
  // labbeam refuses unknown LABBEAM_* variables (LABBEAM_BIN is ours): pass none but these.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LABBEAM_')));
  env.LABBEAM_LOG_LEVEL = 'warn';
  if (knowsConnectionCap(bin)) env[CAP_VAR] = '1000000';
  if (preload) env.LD_PRELOAD = preload;
  const serveArgs = ['serve', '--data-dir', dataDir, '--http-listen', '127.0.0.1:0', '--turn-listen', '127.0.0.1:0'];
  const [cmd, args] = pinned(bin, serveArgs);
  const child = track(spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  const banner = await new Promise((resolve, reject) => {
    const lines = [];
    const timer = setTimeout(() => reject(new Error(`labbeam printed no banner: ${stderr}`)), 60_000);
    child.on('exit', (code) => reject(new Error(`labbeam exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      if (line.trim() === '' && lines.some((l) => l.includes('Open:'))) {
        clearTimeout(timer);
        resolve(lines);
      }
    });
  });
  const port = Number(banner.find((l) => l.includes('Open:')).trim().replace(/\/$/, '').split(':').pop());
  const adminPassword = banner.find((l) => l.trim().startsWith('password:'))?.trim().split(/\s+/)[1];
  return { child, pid: child.pid, port, adminPassword, stderr: () => stderr };
}

async function startNode(configFile) {
  const [cmd, args] = pinned(process.execPath, [path.join(here, 'node-baseline.mjs'), configFile]);
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node baseline did not start: ${stderr}`)), 30_000);
    child.on('exit', (code) => reject(new Error(`node baseline exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^listening (\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  return { child, pid: child.pid, port, stderr: () => stderr };
}

async function stopServer(server) {
  const { child } = server;
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(5000)]);
  if (child.exitCode === null) {
    child.kill('SIGKILL');
    await exited;
  }
}

function request(base, ca, method, pathname, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      `${base}${pathname}`,
      { method, ca, headers: data ? { 'content-type': 'application/json' } : {} },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => {
          let body = null;
          try {
            body = JSON.parse(text);
          } catch {
            body = null;
          }
          resolve({ status: res.statusCode, text, body });
        });
      },
    );
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

/**
 * Creates the data dir, the labs, the student accounts; logs them in once. Each labbeam
 * binary gets a data dir of its own, set up by itself: an older binary refuses a database
 * that a newer one migrated.
 */
async function setup(dir, labCount, bin = BIN) {
  const dataDir = path.join(dir, 'data');
  const server = await startLabbeam(dataDir, { bin });
  const cli = (d, args, stdin = '') => cliOf(d, args, stdin, bin);
  const ca = readFileSync(path.join(dataDir, 'tls', 'cert.pem'));
  const t0 = nowMs();
  const labs = [];
  for (let i = 1; i <= labCount; i++) {
    const name = `Lab ${i}`;
    cli(dataDir, ['lab', 'add', name]);
    labs.push(name);
  }
  log(`created ${labCount} labs in ${((nowMs() - t0) / 1000).toFixed(1)} s`);
  cli(dataDir, ['setting', 'set', 'transfer.requests_per_minute', String(LIMITS.requestsPerMinute)]);
  cli(dataDir, ['setting', 'set', 'transfer.max_pending', String(LIMITS.maxPending)]);
  try {
    cli(dataDir, ['setting', 'set', 'signaling.events_per_second', String(LIMITS.eventsPerSecond)]);
    cli(dataDir, ['setting', 'set', 'signaling.event_burst', String(LIMITS.eventBurst)]);
  } catch {
    // A binary from before these settings: both servers keep the default budget.
    LIMITS.eventsPerSecond = 50;
    LIMITS.eventBurst = 200;
    log('note: this labbeam has no event-budget settings; both servers keep 50 events/s, bursts of 200');
  }
  try {
    // Each student account is online from many devices here (the node baseline has no cap).
    cli(dataDir, ['setting', 'set', 'signaling.max_devices_per_user', '0']);
  } catch {
    // A binary from before the device cap.
  }
  try {
    // The labs have no address ranges: each device names its lab in `auth.lab`, which counts
    // only when self-selection is on (off by default since the security round).
    cli(dataDir, ['setting', 'set', 'presence.lab_self_select', 'on']);
  } catch {
    // A binary from before the setting honoured `auth.lab` always.
  }
  const users = [];
  for (let i = 1; i <= opts.users; i++) {
    const username = `student${i}`;
    cli(dataDir, ['user', 'add', username, '--role', 'student', '--password-stdin'], PASSWORD);
    const r = await request(`https://127.0.0.1:${server.port}`, ca, 'POST', '/api/auth/login', { username, password: PASSWORD });
    if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${r.text}`);
    users.push({ token: r.body.token, user: r.body.user });
  }
  log(`created and logged in ${users.length} student accounts`);
  await stopServer(server);
  const nodeConfig = path.join(dir, 'node-baseline.json');
  writeFileSync(
    nodeConfig,
    JSON.stringify({
      host: '127.0.0.1',
      port: 0,
      certFile: path.join(dataDir, 'tls', 'cert.pem'),
      keyFile: path.join(dataDir, 'tls', 'key.pem'),
      jwtKeyFile: path.join(dataDir, 'jwt.key'),
      users: users.map((u) => u.user),
      labs,
      limits: LIMITS,
      presenceScope: 'lab',
    }),
  );
  return { dataDir, ca: ca.toString(), labs, users, nodeConfig };
}

/**
 * Experiment (`--servers labbeam,node,labbeam-nodelay`): the same binary with an
 * LD_PRELOAD shim that sets TCP_NODELAY on accepted sockets (see nodelay-shim.c).
 */
function nodelayShim() {
  const so = path.join(here, 'results', 'nodelay-shim.so');
  mkdirSync(path.dirname(so), { recursive: true });
  const r = spawnSync('cc', ['-O2', '-shared', '-fPIC', '-o', so, path.join(here, 'nodelay-shim.c'), '-ldl'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot build the TCP_NODELAY shim: ${r.stderr || r.error}`);
  return so;
}

/**
 * `labbeam-base` (`--servers labbeam-base,labbeam,node`): another labbeam binary, from
 * `$LABBEAM_BASE_BIN` (e.g. the commit before a change), measured in the same run, on a
 * data folder it set up itself with the same labs, accounts and settings.
 */
function labbeamOptions(kind) {
  const o = {};
  if (kind === 'labbeam-nodelay') o.preload = nodelayShim();
  if (kind === 'labbeam-base') {
    o.bin = process.env.LABBEAM_BASE_BIN;
    if (!o.bin) throw new Error('labbeam-base needs LABBEAM_BASE_BIN');
  }
  return o;
}

// ---------------------------------------------------------------- workers

function startWorkers(count) {
  const ws = [];
  for (let i = 0; i < count; i++) {
    const child = track(fork(path.join(here, 'worker.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    pinClient(child.pid);
    const waiting = new Map();
    child.on('message', (m) => {
      const w = waiting.get(m.type);
      if (w) {
        waiting.delete(m.type);
        if (m.error) w.reject(new Error(`worker ${i} ${m.type}: ${m.error}`));
        else w.resolve(m.result ?? m);
      }
    });
    child.on('exit', (code) => {
      for (const w of waiting.values()) w.reject(new Error(`worker ${i} exited with ${code}`));
      waiting.clear();
    });
    ws.push({
      child,
      call(msg, timeoutMs) {
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            waiting.delete(msg.type);
            reject(new Error(`worker ${i}: ${msg.type} did not answer within ${timeoutMs} ms`));
          }, timeoutMs);
          waiting.set(msg.type, {
            resolve: (v) => {
              clearTimeout(timer);
              resolve(v);
            },
            reject: (e) => {
              clearTimeout(timer);
              reject(e);
            },
          });
          child.send(msg);
        });
      },
    });
  }
  return ws;
}

const all = (workers, msg, timeoutMs) => Promise.all(workers.map((w) => w.call(msg, timeoutMs)));

// ---------------------------------------------------------------- machine load

/** CPU cores used by processes other than `pids` over the interval since `since`. */
function otherCores(since, pids) {
  const wall = (nowMs() - since.t) / 1000;
  const busy = machineBusy() - since.busy;
  const ours = pids.reduce((s, p, i) => s + ((cpuOf(p) ?? since.cpu[i]) - since.cpu[i]), 0);
  return round(Math.max(0, busy - ours) / wall, 2);
}
function mark(pids) {
  return { t: nowMs(), busy: machineBusy(), cpu: pids.map((p) => cpuOf(p) ?? 0) };
}

/**
 * The machine is shared (other builds run on it): wait, bounded, until the others use
 * less than a quarter of a core, so the two servers are measured under similar conditions.
 * Returns the background load (cores) measured last.
 */
async function waitQuiet() {
  const end = nowMs() + Math.min(opts.quietWaitSecs * 1000, Math.max(0, remaining() - 240_000));
  let load;
  for (;;) {
    const m = mark([process.pid]);
    await sleep(1000);
    load = otherCores(m, [process.pid]);
    if (load < 0.25 || nowMs() >= end) break;
  }
  return load;
}

// ---------------------------------------------------------------- one measurement

async function measure(kind, n, env) {
  const labCount = Math.ceil(n / opts.labSize);
  const background = await waitQuiet();
  if (background >= 0.25) log(`note: other processes use ${background} cores; measuring anyway`);
  const server =
    kind === 'node'
      ? await startNode(env.nodeConfig)
      : await startLabbeam(env.dataDir, labbeamOptions(kind));
  const base = `https://127.0.0.1:${server.port}`;
  const r = { server: kind, n, labs: labCount, pid: server.pid, backgroundCoresBefore: background };
  const workers = startWorkers(opts.workers);
  try {
    await sleep(1000);
    r.idle = memOf(server.pid);
    if (opts.holdSecs) {
      log(`${kind} N=${n}: server PID ${server.pid}; holding ${opts.holdSecs} s before connecting`);
      await sleep(opts.holdSecs * 1000);
    }
    // Whole labs per worker; devices of a lab use the student accounts in turn (a user is
    // online from many devices).
    const shares = workers.map(() => []);
    let dev = 0;
    for (let i = 0; i < labCount; i++) {
      const size = Math.min(opts.labSize, n - i * opts.labSize);
      const members = [];
      for (let j = 0; j < size; j++, dev++) {
        members.push({ token: env.users[dev % env.users.length].token, device: `pc-${i + 1}-${j + 1}` });
      }
      shares[i % workers.length].push({ name: env.labs[i], index: i, members });
    }
    await Promise.all(workers.map((w, i) => w.call({ type: 'init', url: base, ca: env.ca, labs: shares[i] }, 30_000)));

    // 1. connect N devices, each waits for its presence:snapshot
    log(`${kind} N=${n}: connecting`);
    const cpu0 = cpuOf(server.pid);
    const ours = () => [server.pid, process.pid, ...workers.map((w) => w.child.pid)];
    const connMark = mark(ours());
    const wc0 = workers.map((w) => cpuOf(w.child.pid));
    const conn = await all(
      workers,
      { type: 'connect', concurrency: opts.connectConcurrency, timeoutMs: Math.max(10_000, Math.min(180_000, remaining() - 120_000)) },
      200_000,
    );
    const t0 = Math.min(...conn.map((c) => c.t0));
    const tLast = Math.max(...conn.map((c) => c.tLast));
    const ok = conn.reduce((s, c) => s + c.ok, 0);
    const presence = conn.reduce(
      (a, c) => ({
        known: a.known + c.presence.known,
        expected: a.expected + c.presence.expected,
        wrong: a.wrong + c.presence.wrong,
        dup: a.dup + c.presence.dup,
      }),
      { known: 0, expected: 0, wrong: 0, dup: 0 },
    );
    r.connect = {
      connected: ok,
      seconds: round((tLast - t0) / 1000),
      perSecond: round(ok / ((tLast - t0) / 1000), 1),
      serverCpuSeconds: round(cpuOf(server.pid) - cpu0, 2),
      clientCpuSeconds: round(workers.reduce((a, w, i) => a + cpuOf(w.child.pid) - wc0[i], 0), 2),
      backgroundCores: otherCores(connMark, ours()),
      connectToSnapshot: mergeHist(conn.map((c) => c.connectToSnapshot)).summary(),
      presence,
      errors: mergeCounts(conn.map((c) => c.errors)),
    };
    log(`${kind} N=${n}: ${ok} connected in ${r.connect.seconds} s (${r.connect.perSecond}/s)`, JSON.stringify(r.connect.errors));

    // RSS with N connected (after the joined fan-out settled)
    await sleep(2000);
    r.loaded = memOf(server.pid);
    r.rssPerConnKiB = round((r.loaded.rssKiB - r.idle.rssKiB) / Math.max(ok, 1), 2);

    // 2. presence fan-out latency, sampled one lab at a time per worker
    const perWorker = Math.ceil(opts.fanoutSamples / workers.length);
    const fan = await all(workers, { type: 'fanout', samples: perWorker, timeoutMs: 15_000 }, 120_000);
    r.fanout = {
      samples: fan.reduce((s, f) => s + f.samples, 0),
      joined: mergeHist(fan.map((f) => f.joined)).summary(),
      left: mergeHist(fan.map((f) => f.left)).summary(),
      probeConnectToSnapshot: mergeHist(fan.map((f) => f.probeSnapshot)).summary(),
      errors: mergeCounts(fan.map((f) => f.errors)),
    };
    log(`${kind} N=${n}: fan-out joined p50 ${r.fanout.joined.p50} ms p99 ${r.fanout.joined.p99} ms`);

    // 3. half the devices pair up: transfer:request → transfer:respond(accept)
    const cpuP = cpuOf(server.pid);
    const pair = await all(workers, { type: 'pair', concurrency: opts.pairConcurrency, timeoutMs: 90_000 }, 120_000);
    const pairs = pair.reduce((s, p) => s + p.pairs, 0);
    const pairMs = Math.max(...pair.map((p) => p.ms));
    r.pairing = {
      pairs,
      wanted: pair.reduce((s, p) => s + p.wanted, 0),
      seconds: round(pairMs / 1000),
      perSecond: round(pairs / (pairMs / 1000), 1),
      serverCpuSeconds: round(cpuOf(server.pid) - cpuP, 2),
      handshake: mergeHist(pair.map((p) => p.handshake)).summary(),
      errors: mergeCounts(pair.map((p) => p.errors)),
    };
    log(`${kind} N=${n}: ${pairs} pairs in ${r.pairing.seconds} s`, JSON.stringify(r.pairing.errors));

    // 4. relay storm
    const stormMsg = {
      type: 'storm',
      window: opts.window,
      warmupMs: opts.warmupSecs * 1000,
      durationMs: opts.stormSecs * 1000,
      backoffMs: opts.backoffMs,
      drainMs: 10_000,
    };
    const before = kind === 'node' ? null : await signalEvents(base, env.ca);
    const stormP = all(workers, stormMsg, (opts.warmupSecs + opts.stormSecs) * 1000 + 30_000);
    await sleep(opts.warmupSecs * 1000);
    const perf = opts.perf && kind !== 'node' ? startPerf(server.pid, opts.stormSecs, `${kind}-${n}`) : null;
    const c0 = cpuOf(server.pid);
    const stormMark = mark(ours());
    const w0 = workers.map((w) => cpuOf(w.child.pid));
    const s0 = schedOf(server.pid);
    const io0 = syscallsOf(server.pid);
    const ws0 = workers.map((w) => schedOf(w.child.pid));
    const tw0 = nowMs();
    await sleep(opts.stormSecs * 1000);
    const c1 = cpuOf(server.pid);
    const w1 = workers.map((w) => cpuOf(w.child.pid));
    const stormBackground = otherCores(stormMark, ours());
    const s1 = schedOf(server.pid);
    const io1 = syscallsOf(server.pid);
    const ws1 = workers.map((w) => schedOf(w.child.pid));
    // Seconds per second the server's / clients' threads were runnable but had no CPU.
    const serverStarved = s0 && s1 ? round((s1.wait - s0.wait) / ((nowMs() - tw0) / 1000), 2) : null;
    const clientStarved = round(ws1.reduce((a, x, i) => a + (x && ws0[i] ? x.wait - ws0[i].wait : 0), 0) / ((nowMs() - tw0) / 1000), 2);
    const wall = (nowMs() - tw0) / 1000;
    const storm = await stormP;
    const after = before ? await signalEvents(base, env.ca) : null;
    r.stormMem = memOf(server.pid);
    const okAcks = storm.reduce((s, x) => s + x.okAcks, 0);
    const errors = mergeCounts(storm.map((x) => x.errors));
    const serverCpu = c1 - c0;
    r.storm = {
      pairs: storm.reduce((s, x) => s + x.pairs, 0),
      seconds: opts.stormSecs,
      window: opts.window,
      relayedPerSecond: round(okAcks / opts.stormSecs, 1),
      deliveredPerSecond: round(storm.reduce((s, x) => s + x.delivered, 0) / opts.stormSecs, 1),
      refusedPerSecond: round(Object.values(errors).reduce((a, b) => a + b, 0) / opts.stormSecs, 1),
      ack: mergeHist(storm.map((x) => x.ack)).summary(),
      delivery: mergeHist(storm.map((x) => x.delivery)).summary(),
      errors,
      lostInFlight: storm.reduce((s, x) => s + x.lostInFlight, 0),
      // whole storm (warm-up, window, drain): what clients sent, what acks came back, and
      // (LabBeam) how many `signal` events the server counted in its /metrics
      sentTotal: storm.reduce((s, x) => s + x.sent, 0),
      ackedTotal: storm.reduce((s, x) => s + x.allAcks, 0),
      serverSignalEvents: before && after ? diffCounts(after, before) : undefined,
      serverCpuPercent: round((100 * serverCpu) / wall, 1),
      clientCpuPercent: round((100 * w1.reduce((s, v, i) => s + (v - w0[i]), 0)) / wall, 1),
      serverCpuUsPerRelay: okAcks ? round((serverCpu * 1e6) / okAcks, 2) : null,
      backgroundCores: stormBackground,
      serverRunqueueWait: serverStarved,
      serverWriteSyscallsPerRelay: io0 && io1 && okAcks ? round((io1.writes - io0.writes) / okAcks, 2) : null,
      clientRunqueueWait: clientStarved,
    };
    if (perf) r.perf = await perf;
    log(
      `${kind} N=${n}: storm ${r.storm.relayedPerSecond} relays/s, ack p50 ${r.storm.ack.p50} ms p99 ${r.storm.ack.p99} ms, ` +
        `server CPU ${r.storm.serverCpuPercent}%, refused/s ${r.storm.refusedPerSecond}`,
    );

    const closed = await all(workers, { type: 'close' }, 30_000);
    r.unexpectedDisconnects = mergeCounts(closed.map((c) => c.unexpectedDisconnects));
  } catch (e) {
    r.error = String(e?.message ?? e);
    log(`${kind} N=${n}: FAILED: ${r.error}`);
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    r.serverAlive = server.child.exitCode === null;
    const tail = server.stderr().trim().split('\n').slice(-5).join('\n');
    if (tail) r.serverStderrTail = tail;
    await stopServer(server);
  }
  return r;
}

/** LabBeam's `socket_events` counters for `signal`, by result, from /metrics (loopback). */
async function signalEvents(base, ca) {
  try {
    const r = await request(base, ca, 'GET', '/metrics');
    const out = {};
    for (const m of r.text.matchAll(/^labbeam_socket_events_total\{([^}]*)\} (\d+)/gm)) {
      if (!m[1].includes('event="signal"')) continue;
      out[/result="([^"]*)"/.exec(m[1])?.[1] ?? '?'] = Number(m[2]);
    }
    return out;
  } catch {
    return null;
  }
}

function diffCounts(a, b) {
  const out = {};
  for (const k of Object.keys(a)) out[k] = a[k] - (b[k] ?? 0);
  return out;
}

function mergeHist(list) {
  const h = new Histogram();
  for (const x of list) h.merge(x);
  return h;
}

function mergeCounts(list) {
  const out = {};
  for (const m of list) for (const [k, v] of Object.entries(m ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** `perf record` of the server for `secs`; resolves with the top of the report. */
function startPerf(pid, secs, label) {
  const dir = path.join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `perf-${label}.data`);
  return new Promise((resolve) => {
    const p = track(
      spawn('perf', ['record', '-F', '999', '-p', String(pid), '-o', file, '--', 'sleep', String(secs)], {
        stdio: 'ignore',
      }),
    );
    p.on('error', (e) => resolve({ error: String(e) }));
    p.on('exit', () => {
      const rep = spawnSync('perf', ['report', '-i', file, '--stdio', '--no-children', '--percent-limit', '0.5'], {
        encoding: 'utf8',
        maxBuffer: 64 << 20,
      });
      const top = (rep.stdout ?? '').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
      writeFileSync(file.replace(/\.data$/, '.txt'), rep.stdout ?? '');
      resolve({ file, top: top.slice(0, 40) });
    });
  });
}

// ---------------------------------------------------------------- report

const ROWS = [
  ['connect rate (conn/s)', (r) => r.connect?.perSecond, 'higher'],
  ['server CPU ms per connection', (r) => (r.connect ? round((1000 * r.connect.serverCpuSeconds) / r.connect.connected, 2) : null), 'lower'],
  ['connect→snapshot p50 (ms, bulk)', (r) => r.connect?.connectToSnapshot.p50, 'lower'],
  ['connect→snapshot p99 (ms, bulk)', (r) => r.connect?.connectToSnapshot.p99, 'lower'],
  ['presence fan-out p50 (ms)', (r) => r.fanout?.joined.p50, 'lower'],
  ['presence fan-out p99 (ms)', (r) => r.fanout?.joined.p99, 'lower'],
  ['RSS idle (MiB)', (r) => (r.idle ? round(r.idle.rssKiB / 1024, 1) : null), 'lower'],
  ['RSS with N connected (MiB)', (r) => (r.loaded ? round(r.loaded.rssKiB / 1024, 1) : null), 'lower'],
  ['RSS per connection (KiB)', (r) => r.rssPerConnKiB, 'lower'],
  ['pairing handshakes/s', (r) => r.pairing?.perSecond, 'higher'],
  ['relayed signal msgs/s (acked ok)', (r) => r.storm?.relayedPerSecond, 'higher'],
  ['relay ack p50 (ms)', (r) => r.storm?.ack.p50, 'lower'],
  ['relay ack p99 (ms)', (r) => r.storm?.ack.p99, 'lower'],
  ['relay delivery p50 (ms)', (r) => r.storm?.delivery.p50, 'lower'],
  ['refused acks/s (rate_limited …)', (r) => r.storm?.refusedPerSecond, 'lower'],
  ['server CPU during storm (%)', (r) => r.storm?.serverCpuPercent, ''],
  ['server CPU µs per relayed msg', (r) => r.storm?.serverCpuUsPerRelay, 'lower'],
  ['relay capacity (msgs per server CPU-second)', (r) => (r.storm?.serverCpuUsPerRelay ? round(1e6 / r.storm.serverCpuUsPerRelay, 0) : null), 'higher'],
  ['server write syscalls per relayed msg', (r) => r.storm?.serverWriteSyscallsPerRelay, 'lower'],
  ['load generator CPU during storm (%)', (r) => r.storm?.clientCpuPercent, ''],
  ['other processes during storm (cores)', (r) => r.storm?.backgroundCores, ''],
  ['server threads waiting for a CPU (s/s)', (r) => r.storm?.serverRunqueueWait, ''],
  ['client threads waiting for a CPU (s/s)', (r) => r.storm?.clientRunqueueWait, ''],
];

const LABEL = { labbeam: 'LabBeam', node: 'Node', 'labbeam-nodelay': 'LB+NODELAY', 'labbeam-base': 'LB base' };

function table(results) {
  const lines = [];
  const cell = (v, w) => String(v ?? '—').padStart(w);
  const others = opts.servers.filter((k) => k !== 'node');
  for (const n of opts.ns) {
    const get = (k) => results.find((r) => r.server === k && r.n === n) ?? {};
    const nd = get('node');
    const any = results.find((r) => r.n === n && r.storm) ?? {};
    const cols = [];
    for (const k of others) cols.push({ head: LABEL[k] ?? k, value: (row) => row[1](get(k)) });
    if (opts.servers.includes('node')) cols.push({ head: 'Node', value: (row) => row[1](nd) });
    for (const k of others) {
      cols.push({
        head: `${LABEL[k] ?? k}/Node`,
        value: (row) => {
          const a = row[1](get(k));
          const b = row[1](nd);
          return typeof a === 'number' && typeof b === 'number' && b !== 0 ? `${round(a / b, 2)}×` : '—';
        },
      });
    }
    lines.push('');
    lines.push(
      `N = ${n} (${Math.ceil(n / opts.labSize)} labs of ${opts.labSize}; storm: ${any.storm?.pairs ?? '?'} pairs, window ${opts.window}, ${opts.stormSecs} s)`,
    );
    lines.push(`| ${'figure'.padEnd(42)} |${cols.map((c) => ` ${c.head.padStart(12)} |`).join('')}`);
    lines.push(`|${'-'.repeat(44)}|${cols.map(() => `${'-'.repeat(13)}:|`).join('')}`);
    for (const row of ROWS) {
      const name = `${row[0]}${row[2] ? ` (${row[2] === 'higher' ? '↑' : '↓'})` : ''}`;
      lines.push(`| ${name.padEnd(42)} |${cols.map((c) => ` ${cell(c.value(row), 12)} |`).join('')}`);
    }
  }
  return lines.join('\n');
}

function goals(results) {
  const out = [];
  for (const n of opts.ns) {
    const lb = results.find((r) => r.server === 'labbeam' && r.n === n);
    const nd = results.find((r) => r.server === 'node' && r.n === n);
    if (!lb?.storm || !nd?.storm) continue;
    const thr = lb.storm.relayedPerSecond / nd.storm.relayedPerSecond;
    const cap = nd.storm.serverCpuUsPerRelay / lb.storm.serverCpuUsPerRelay;
    const mem = lb.rssPerConnKiB / nd.rssPerConnKiB;
    out.push(
      `N=${n}: relayed msgs/s ${round(thr, 2)}× Node; relay capacity per server CPU-second ${round(cap, 2)}× Node ` +
        `(goal ≥ 3×: ${cap >= 3 ? 'met' : 'NOT met'}); ` +
        `memory per connection ${round(mem, 2)}× Node (goal ≤ 0.33×: ${mem <= 1 / 3 ? 'met' : 'NOT met'})`,
    );
    const busyClient = Math.max(lb.storm.clientCpuPercent, nd.storm.clientCpuPercent);
    if (opts.pin && busyClient >= 90 * (os.cpus().length - 1)) {
      out.push(
        `N=${n}: the load generator used ${busyClient}% of its CPU(s): relayed msgs/s is bounded by the clients, ` +
          'so the capacity per server CPU-second is the figure that compares the servers',
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------- main

async function main() {
  const watchdog = setTimeout(() => {
    log('run budget exhausted: stopping everything');
    killAll();
    process.exit(3);
  }, BUDGET_MS + 30_000);
  watchdog.unref();

  const dir = mkdtempSync(path.join(os.tmpdir(), 'labbeam-bench-'));
  const results = [];
  const startedAt = new Date();
  try {
    log(`labbeam binary: ${BIN}`);
    if (opts.pin || opts.nice) {
      pinClient(process.pid);
      if (opts.pin) log(`pinned: servers on CPU ${SERVER_CPUS}, load generator on CPU ${CLIENT_CPUS}`);
      if (opts.nice) log(`servers and load generator run at nice ${opts.nice}`);
    }
    const labCount = Math.ceil(Math.max(...opts.ns) / opts.labSize);
    const env = await setup(dir, labCount);
    const baseEnv = opts.servers.includes('labbeam-base')
      ? await setup(path.join(dir, 'base'), labCount, labbeamOptions('labbeam-base').bin)
      : null;
    for (const n of opts.ns) {
      for (const kind of opts.servers) {
        if (remaining() < 90_000) {
          log(`skipping ${kind} N=${n}: not enough of the time budget left`);
          results.push({ server: kind, n, error: 'skipped: time budget' });
          continue;
        }
        results.push(await measure(kind, n, kind === 'labbeam-base' ? baseEnv : env));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const report = table(results);
  const goalLines = goals(results);
  console.log(report);
  console.log('');
  for (const g of goalLines) console.log(g);

  const out = {
    date: startedAt.toISOString(),
    durationSeconds: round((nowMs() - STARTED) / 1000, 1),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGiB: round(os.totalmem() / 2 ** 30, 1),
      kernel: os.release(),
      node: process.version,
    },
    labbeamBin: BIN,
    options: opts,
    limits: LIMITS,
    results,
    table: report,
    goals: goalLines,
  };
  const resultsDir = path.join(here, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `signaling-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
}

main().then(
  () => process.exit(0),
  (e) => {
    log(`benchmark failed: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
