// Store benchmark: the same LabBeam binary on SQLite and on PostgreSQL, each store filled
// with the same 1,000,000 transfer rows (fill.mjs), measured in one run with the same
// client load: the latency of every page an admin opens in the portal and of
// GET /api/transfers, login throughput under 40 concurrent clients, and transfer-log
// writes under 40 concurrent clients (Socket.IO request → accept → finish cycles).
// run.sh starts the PostgreSQL cluster and sets what this script reads from the
// environment; README.md says what is measured and how to read it.
//
//   node bench.mjs [--backends sqlite,postgres] [--requests 50] [--warmup 3]
//                  [--clients 40] [--login-secs 15] [--write-secs 15] [--rows 1000000]
//                  [--pages WORD,...] [--load on|off] [--json FILE]
//
// Environment: LABBEAM_BIN (the binary), BENCH_PG_URL (a superuser address of the
// throwaway cluster, for postgres), BENCH_PG_DIR (its folder: the postmaster's pid, for
// its CPU time), BENCH_WORK (a scratch folder), BENCH_PIDS (a file this script appends the
// servers' pids to, so run.sh can end them if this script is killed).

import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

import { DEFAULTS, fillSql } from './fill.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const PASSWORD = 'correct horse battery staple';
const ADMIN_PASSWORD = 'bench admin password 2026';
const GOAL_MS = 100;
const BUDGET_MS = 9.5 * 60_000;
const started = Date.now();

// ------------------------------------------------------------------ options

const opts = {
  backends: ['sqlite', 'postgres'],
  requests: 50,
  warmup: 3,
  clients: 40,
  loginSecs: 15,
  writeSecs: 15,
  warmupSecs: 2,
  rows: DEFAULTS.transfers,
  pageCapSecs: 25,
  pages: null,
  load: true,
  json: null,
};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const value = () => {
    const v = process.argv[++i];
    if (v === undefined) die(`${a} needs a value`);
    return v;
  };
  const int = (min, max) => {
    const v = Number(value());
    if (!Number.isInteger(v) || v < min || v > max) die(`${a} must be an integer from ${min} to ${max}`);
    return v;
  };
  switch (a) {
    case '--backends':
      opts.backends = value().split(',');
      for (const b of opts.backends) if (b !== 'sqlite' && b !== 'postgres') die(`unknown backend ${b}`);
      break;
    case '--requests':
      opts.requests = int(1, 10_000);
      break;
    case '--warmup':
      opts.warmup = int(0, 100);
      break;
    case '--clients':
      opts.clients = int(2, 200) & ~1;
      break;
    case '--login-secs':
      opts.loginSecs = int(1, 300);
      break;
    case '--write-secs':
      opts.writeSecs = int(1, 300);
      break;
    case '--rows':
      opts.rows = int(1000, 10_000_000);
      break;
    case '--pages':
      opts.pages = value().split(',').filter(Boolean);
      break;
    case '--load': {
      const v = value();
      if (v !== 'on' && v !== 'off') die('--load must be on or off');
      opts.load = v === 'on';
      break;
    }
    case '--json':
      opts.json = value();
      break;
    default:
      die(`unknown option ${a} (see the header of bench/store/bench.mjs)`);
  }
}

const BIN = process.env.LABBEAM_BIN || die('LABBEAM_BIN is not set (run bench/store/run.sh)');
const WORK = process.env.BENCH_WORK || die('BENCH_WORK is not set (run bench/store/run.sh)');
const PG_URL = process.env.BENCH_PG_URL || '';
if (opts.backends.includes('postgres') && !PG_URL) die('BENCH_PG_URL is not set (run bench/store/run.sh)');
// The binary refuses LABBEAM_* variables it does not know; LABBEAM_BIN is ours.
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LABBEAM_')));

function die(message) {
  console.error(`bench/store: ${message}`);
  process.exit(2);
}

function log(message) {
  const t = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  console.error(`[${t}s] ${message}`);
}

function timeLeft() {
  return BUDGET_MS - (Date.now() - started);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

// ------------------------------------------------------------------ databases

/** Runs SQL (a script) in a backend's database; returns stdout. */
function sql(b, text) {
  const r =
    b.name === 'sqlite'
      ? spawnSync('sqlite3', ['-batch', '-bail', b.dbFile], { input: text, encoding: 'utf8', maxBuffer: 1 << 26 })
      : spawnSync('psql', ['-X', '-q', '-A', '-t', '-F', '|', '-v', 'ON_ERROR_STOP=1', b.storeUrl], {
          input: text,
          encoding: 'utf8',
          maxBuffer: 1 << 26,
        });
  if (r.status !== 0) throw new Error(`${b.name}: SQL failed: ${r.stderr || r.error}\n${text.slice(0, 400)}`);
  return r.stdout.trim();
}

/** One row of a query, as an array of strings. */
function row(b, query) {
  const line = sql(b, `${query};`).split('\n').filter(Boolean).pop() ?? '';
  return line.split('|');
}

function pgAdmin(statement) {
  const r = spawnSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', PG_URL, '-c', statement], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql ${statement}: ${r.stderr}`);
}

// ------------------------------------------------------------------ the server

/** Starts `labbeam serve` on a backend; resolves when its banner is printed. */
async function boot(b) {
  const env = { ...BASE_ENV, LABBEAM_LOG_LEVEL: 'warn', ...(b.storeUrl ? { LABBEAM_STORE_URL: b.storeUrl } : {}) };
  const args = ['serve', '--data-dir', b.dataDir, '--http-listen', '127.0.0.1:0', '--turn-listen', '127.0.0.1:0'];
  const child = spawn(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (process.env.BENCH_PIDS) appendFileSync(process.env.BENCH_PIDS, `${child.pid}\n`);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-20_000);
  });
  const lines = await new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => reject(new Error(`${b.name}: no banner in 120 s; log: ${stderr}`)), 120_000);
    child.once('exit', (code) => reject(new Error(`${b.name}: labbeam exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      seen.push(line);
      if (line.trim() === '' && seen.some((l) => l.includes('Open:'))) {
        clearTimeout(timer);
        resolve(seen);
      }
    });
  });
  const open = lines.find((l) => l.includes('Open:'));
  const port = Number(/:(\d+)\/?\s*$/.exec(open.trim())?.[1]);
  if (!port) throw new Error(`${b.name}: no port in ${open}`);
  const password = lines.find((l) => l.trim().startsWith('password:'))?.trim().split(/\s+/)[1];
  const user = lines.find((l) => l.trim().startsWith('username:'))?.trim().split(/\s+/)[1];
  b.child = child;
  b.port = port;
  b.base = `https://127.0.0.1:${port}`;
  b.ca = readFileSync(path.join(b.dataDir, 'tls', 'cert.pem'));
  b.log = () => stderr;
  return { password, user };
}

async function stop(b) {
  const child = b.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  if ((await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)])) === false) {
    child.kill('SIGKILL');
    await exited;
  }
}

function cli(b, args, stdin = '') {
  const env = { ...BASE_ENV, LABBEAM_LOG_LEVEL: 'warn', ...(b.storeUrl ? { LABBEAM_STORE_URL: b.storeUrl } : {}) };
  const r = spawnSync(BIN, [...args, '--data-dir', b.dataDir], { input: stdin, encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`${b.name}: labbeam ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

// ------------------------------------------------------------------ HTTP

/** One HTTPS request; resolves {status, headers, text, ms}. */
function request(b, method, pathname, { body, token, cookie, agent } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const t0 = nowMs();
    const req = https.request(
      `${b.base}${pathname}`,
      {
        method,
        ca: b.ca,
        agent: agent ?? b.agent,
        headers: {
          ...(data ? { 'content-type': 'application/json' } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(cookie ? { cookie } : {}),
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), ms: nowMs() - t0 }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

async function login(b, username, password, agent) {
  const r = await request(b, 'POST', '/api/auth/login', { body: { username, password }, agent });
  if (r.status !== 200) throw new Error(`${b.name}: login ${username}: ${r.status} ${r.text}`);
  const body = JSON.parse(r.text);
  return { token: body.token, cookie: String(r.headers['set-cookie'][0]).split(';')[0] };
}

// ------------------------------------------------------------------ statistics

/** Nearest-rank quantile of a sorted array. */
function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function summary(values) {
  const s = [...values].sort((x, y) => x - y);
  const r = (v) => (v === null ? null : Math.round(v * 100) / 100);
  return { n: s.length, p50: r(quantile(s, 0.5)), p99: r(quantile(s, 0.99)), max: r(s.at(-1) ?? null) };
}

/** CPU seconds (user + system) of a process, or null. */
function cpuOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return null;
  }
}

/**
 * CPU seconds of the PostgreSQL cluster: the postmaster, every process it runs, and those
 * that ended (a parallel query's workers, closed connections), which the postmaster's
 * children's time holds once reaped.
 */
function pgCpu() {
  const dir = process.env.BENCH_PG_DIR;
  if (!dir) return null;
  let master;
  try {
    master = Number(readFileSync(path.join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return null;
  }
  let total = 0;
  try {
    const s = readFileSync(`/proc/${master}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime
    total = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
  } catch {
    return null;
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const s = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === master) total += (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // ended
    }
  }
  return total;
}

/** Busy CPU seconds of the whole machine (all cores). */
function machineBusy() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f.slice(0, 8).reduce((x, y) => x + y, 0) - f[3] - (f[4] ?? 0)) / 100;
}

/** CPU seconds of everything this run started: the servers, the cluster and this script. */
function ourCpu(backends) {
  const own = process.cpuUsage();
  return (
    backends.reduce((sum, b) => sum + (cpuOf(b.child.pid) ?? 0), 0) + (pgCpu() ?? 0) + (own.user + own.system) / 1e6
  );
}

/** CPU used during `fn` by the server, the PostgreSQL cluster, this script and the rest of the machine. */
async function withCpu(b, fn) {
  const before = { server: cpuOf(b.child.pid), pg: pgCpu(), own: process.cpuUsage(), machine: machineBusy(), t: nowMs() };
  const result = await fn();
  const secs = (nowMs() - before.t) / 1000;
  const own = process.cpuUsage(before.own);
  const server = cpuOf(b.child.pid) - before.server;
  const pg = b.name === 'postgres' && before.pg !== null ? pgCpu() - before.pg : 0;
  const client = (own.user + own.system) / 1e6;
  const machine = machineBusy() - before.machine;
  const round = (v) => Math.round((v / secs) * 100) / 100;
  result.cpuCores = {
    server: round(server),
    postgres: b.name === 'postgres' ? round(pg) : null,
    client: round(client),
    others: round(Math.max(0, machine - server - pg - client)),
  };
  return result;
}

// ------------------------------------------------------------------ setup

/** Fresh store, first admin, data, settings; leaves the server running. */
async function setup(name, now) {
  const dir = path.join(WORK, name);
  mkdirSync(dir, { recursive: true });
  const b = { name, dir, dataDir: path.join(dir, 'data'), storeUrl: null, dbFile: null };
  b.dbFile = path.join(b.dataDir, 'labbeam.db');
  if (name === 'postgres') {
    pgAdmin('DROP DATABASE IF EXISTS labbeam_bench');
    pgAdmin('CREATE DATABASE labbeam_bench');
    const url = new URL(PG_URL);
    url.pathname = '/labbeam_bench';
    b.storeUrl = url.toString();
  }
  // First start: schema and the first admin, whose one-time password only this banner shows.
  const first = await boot(b);
  if (!first.password || !first.user) throw new Error(`${name}: the banner shows no first admin`);
  b.admin = first;
  await stop(b);

  // One argon2 hash of PASSWORD, made by the binary itself, for every generated account.
  cli(b, ['user', 'add', 'benchhash', '--role', 'student', '--password-stdin'], PASSWORD);
  const [hash] = row(b, "SELECT password_hash FROM users WHERE username = 'benchhash'");
  sql(b, "DELETE FROM users WHERE username = 'benchhash';");

  log(`${name}: filling (${opts.rows.toLocaleString('en')} transfer rows) ...`);
  const t0 = nowMs();
  sql(b, fillSql(name, { now, hash, transfers: opts.rows }));
  b.fillSecs = (nowMs() - t0) / 1000;
  if (name === 'postgres') {
    // What autovacuum does after a bulk load on a live server (statistics, visibility map).
    const t1 = nowMs();
    sql(b, 'VACUUM ANALYZE;');
    b.vacuumSecs = (nowMs() - t1) / 1000;
    // tests/postgres.sh makes a cluster that does not wait for the disk, which is what the
    // fill wants; the measurement runs with PostgreSQL's own defaults, as a campus server does.
    for (const setting of ['fsync', 'full_page_writes', 'synchronous_commit']) pgAdmin(`ALTER SYSTEM SET ${setting} = on`);
    pgAdmin('SELECT pg_reload_conf()');
    pgAdmin('CHECKPOINT');
  }
  log(`${name}: filled in ${b.fillSecs.toFixed(0)} s${b.vacuumSecs ? `, VACUUM ANALYZE ${b.vacuumSecs.toFixed(0)} s` : ''}`);

  // The write load makes 40 users send far more than a person would: the per-user request
  // limits and the per-device event budget would measure the policy, not the store.
  cli(b, ['setting', 'set', 'transfer.requests_per_minute', '10000']);
  cli(b, ['setting', 'set', 'transfer.max_pending', '1000']);
  cli(b, ['setting', 'set', 'signaling.events_per_second', '1000000']);
  cli(b, ['setting', 'set', 'signaling.event_burst', '1000000']);

  const counts = row(
    b,
    'SELECT (SELECT COUNT(*) FROM transfers), (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM audit_log), ' +
      '(SELECT COUNT(*) FROM sessions), (SELECT COUNT(*) FROM broadcasts), ' +
      '(SELECT SUM(total_bytes) + SUM(requested_at) FROM transfers)',
  ).map(Number);
  b.counts = { transfers: counts[0], users: counts[1], audit: counts[2], sessions: counts[3], broadcasts: counts[4] };
  b.checksum = counts[5];
  // A cursor with 90 % of the log newer than it: a deep keyset page.
  const [at, id] = row(b, `SELECT requested_at, id FROM transfers ORDER BY requested_at, id LIMIT 1 OFFSET ${Math.floor(opts.rows / 10)}`);
  b.deepCursor = `${at}.${id}`;
  [b.broadcastId] = row(b, 'SELECT id FROM broadcasts ORDER BY created_at DESC, id LIMIT 1 OFFSET 10');
  b.size =
    name === 'sqlite'
      ? statSync(b.dbFile).size + (statSync(`${b.dbFile}-wal`, { throwIfNoEntry: false })?.size ?? 0)
      : Number(row(b, 'SELECT pg_database_size(current_database())')[0]);

  await boot(b);
  b.agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  // The first admin must change the one-time password before the portal lets them in.
  const once = await login(b, first.user, first.password);
  const r = await request(b, 'POST', '/api/me/password', {
    token: once.token,
    body: { current_password: first.password, new_password: ADMIN_PASSWORD },
  });
  if (r.status !== 200) throw new Error(`${name}: admin password change: ${r.status} ${r.text}`);
  b.session = await login(b, first.user, ADMIN_PASSWORD);
  // A student with ~1,000 transfers, for the history every user's web client asks for.
  b.student = await login(b, 'u0042', PASSWORD);
  return b;
}

// ------------------------------------------------------------------ pages

/**
 * Every page an admin opens, the API's transfer list as an admin and a student's own
 * history (what the web client shows every user). `page2` is read from page 1.
 */
function pages(b, page2) {
  const day = (secs) => new Date(secs * 1000).toISOString().slice(0, 10);
  const now = Math.floor(Date.now() / 1000);
  const from = day(now - 95 * 86_400);
  const to = day(now - 89 * 86_400);
  return [
    ['portal', 'dashboard', '/admin'],
    ['portal', 'dashboard figures (live refresh)', '/admin/dashboard.json'],
    ['portal', 'users', '/admin/users'],
    ['portal', 'users: search "u01", by last login', '/admin/users?q=u01&sort=last_login'],
    ['portal', 'users: page 30', '/admin/users?page=30'],
    ['portal', 'user edit', '/admin/users/1042'],
    ['portal', 'transfers', '/admin/transfers'],
    ['portal', 'transfers: page 2', page2],
    ['portal', 'transfers: user (~1,000 rows)', '/admin/transfers?user=u0042'],
    ['portal', 'transfers: user with no rows', `/admin/transfers?user=${b.admin.user}`],
    ['portal', 'transfers: status failed', '/admin/transfers?status=failed'],
    ['portal', 'transfers: status accepted (none)', '/admin/transfers?status=accepted'],
    ['portal', 'transfers: lab', '/admin/transfers?lab=Lab%2007'],
    ['portal', 'transfers: lab with no rows', '/admin/transfers?lab=Other'],
    ['portal', 'transfers: one week, 3 months ago', `/admin/transfers?from=${from}&to=${to}`],
    ['portal', 'broadcasts', '/admin/broadcasts'],
    ['portal', 'broadcast detail', `/admin/broadcasts/${b.broadcastId}`],
    ['portal', 'audit', '/admin/audit'],
    ['portal', 'audit: failed logins', '/admin/audit?action=login.failure'],
    ['portal', 'audit: an action with no rows', '/admin/audit?action=user.delete'],
    ['portal', 'audit: one actor', '/admin/audit?actor=u0042'],
    ['portal', 'audit: one day, 3 months ago', `/admin/audit?from=${from}&to=${from}`],
    ['portal', 'sessions', '/admin/sessions'],
    ['portal', 'labs', '/admin/labs'],
    ['portal', 'settings', '/admin/settings'],
    ['portal', 'roles', '/admin/roles'],
    ['api', 'GET /api/transfers', '/api/transfers?limit=50'],
    ['api', 'GET /api/transfers: deep cursor (90 % back)', `/api/transfers?limit=50&cursor=${b.deepCursor}`],
    ['api', 'GET /api/transfers: user', '/api/transfers?limit=50&user=u0042'],
    ['api', 'GET /api/transfers: status + path', '/api/transfers?limit=50&status=failed&path=relay'],
    ['student', 'GET /api/transfers: a student\'s own history', '/api/transfers?limit=50'],
  ];
}

/** The `cursor=` link of the transfer page's "next" button. */
async function secondPage(b) {
  const r = await request(b, 'GET', '/admin/transfers', { cookie: b.session.cookie });
  const m = /href="(\/admin\/transfers\?[^"]*cursor=[^"]+)"/.exec(r.text);
  if (r.status !== 200 || !m) throw new Error(`${b.name}: /admin/transfers has no next link (${r.status})`);
  return m[1].replaceAll('&amp;', '&');
}

/** `warmup` + `requests` sequential GETs of one page on a backend, one keep-alive connection. */
async function timePage(b, kind, url) {
  const auth =
    kind === 'portal' ? { cookie: b.session.cookie } : { token: (kind === 'student' ? b.student : b.session).token };
  const times = [];
  let bytes = 0;
  const cap = nowMs() + opts.pageCapSecs * 1000;
  for (let i = 0; i < opts.warmup + opts.requests; i++) {
    const r = await request(b, 'GET', url, auth);
    if (r.status !== 200) throw new Error(`${b.name}: GET ${url}: ${r.status} ${r.text.slice(0, 300)}`);
    bytes = r.text.length;
    if (i >= opts.warmup) times.push(r.ms);
    if (nowMs() > cap && times.length >= 5) break;
  }
  return { ...summary(times), bytes };
}

// ------------------------------------------------------------------ logins

/** `clients` loops of POST /api/auth/login as u0001… from 127.0.0.11…, for warm-up + `secs`. */
async function loginLoad(b, secs) {
  const agents = Array.from(
    { length: opts.clients },
    (_, k) => new https.Agent({ keepAlive: true, maxSockets: 1, localAddress: `127.0.0.${11 + k}` }),
  );
  const times = [];
  const statuses = {};
  let ok = 0;
  const tStart = nowMs() + opts.warmupSecs * 1000;
  const tEnd = tStart + secs * 1000;
  await Promise.all(
    agents.map(async (agent, k) => {
      const username = `u${String(k + 1).padStart(4, '0')}`;
      while (nowMs() < tEnd) {
        let r;
        try {
          r = await request(b, 'POST', '/api/auth/login', { body: { username, password: PASSWORD }, agent });
        } catch (e) {
          r = { status: e.message, ms: 0 };
        }
        const done = nowMs();
        if (done < tStart || done > tEnd) continue;
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        if (r.status === 200) {
          ok++;
          times.push(r.ms);
        } else if (r.status === 503 || r.status === 429) {
          await sleep(200);
        }
      }
    }),
  );
  for (const a of agents) a.destroy();
  return { secs, loginsPerSec: Math.round((ok / secs) * 10) / 10, latency: summary(times), statuses };
}

// ------------------------------------------------------------------ transfer-log writes

/** Connects `clients` devices (users u0001…, one device each); resolves with their sockets. */
async function devices(b) {
  const list = [];
  for (let k = 0; k < opts.clients; k++) {
    const username = `u${String(k + 1).padStart(4, '0')}`;
    const { token } = await login(b, username, PASSWORD);
    list.push({ k, username, token });
  }
  await Promise.all(
    list.map(
      (d) =>
        new Promise((resolve, reject) => {
          const socket = io(b.base, {
            transports: ['websocket'],
            ca: b.ca,
            auth: { token: d.token, device: `bench ${d.k}` },
            reconnection: false,
            forceNew: true,
            timeout: 20_000,
          });
          d.socket = socket;
          const timer = setTimeout(() => reject(new Error(`${b.name}: device ${d.k}: no presence:snapshot`)), 30_000);
          socket.once('presence:snapshot', (snap) => {
            clearTimeout(timer);
            d.peerId = snap.self.peerId;
            resolve();
          });
          socket.once('connect_error', (e) => reject(new Error(`${b.name}: device ${d.k}: ${e.message}`)));
        }),
    ),
  );
  return list;
}

/**
 * Each device sends to its partner (0↔1, 2↔3 …) in a loop: `transfer:request` (the server
 * inserts the row) → the partner's `transfer:respond` accept (update) → `transfer:finish`
 * from both sides (the second one writes the outcome); a cycle counts once both finish
 * acks are in, so all three writes are committed. Every device is sender and receiver.
 */
async function writeLoad(b, list, secs) {
  const waiters = new Map();
  const early = new Set();
  const signal = (key) => {
    const w = waiters.get(key);
    if (w) {
      waiters.delete(key);
      w();
    } else early.add(key);
  };
  const wait = (key, ms = 30_000) =>
    new Promise((resolve, reject) => {
      if (early.delete(key)) return resolve();
      const timer = setTimeout(() => {
        waiters.delete(key);
        reject(new Error(`no ${key.split(':')[0]}`));
      }, ms);
      waiters.set(key, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  const finish = (socket, transferId) =>
    socket.timeout(30_000).emitWithAck('transfer:finish', {
      transferId,
      status: 'completed',
      bytes: 1_048_576,
      sha256: 'ab'.repeat(32),
      path: 'direct',
      durationMs: 850,
    });
  const errors = {};
  const count = (e) => {
    const code = String(e?.message ?? e).startsWith('operation has timed out') ? 'ack_timeout' : String(e?.message ?? e);
    errors[code] = (errors[code] ?? 0) + 1;
  };
  for (const d of list) {
    d.socket.removeAllListeners('transfer:incoming');
    d.socket.removeAllListeners('transfer:accepted');
    d.socket.on('transfer:accepted', ({ transferId }) => signal(`accepted:${transferId}`));
    // The receiving side: accept at once, then report the end.
    d.socket.on('transfer:incoming', async ({ transferId }) => {
      try {
        const a = await d.socket.timeout(30_000).emitWithAck('transfer:respond', { transferId, accept: true });
        if (!a?.ok) throw new Error(`respond:${a?.error?.code}`);
        const f = await finish(d.socket, transferId);
        if (!f?.ok) throw new Error(`finish(receiver):${f?.error?.code}`);
        signal(`received:${transferId}`);
      } catch (e) {
        count(e);
      }
    });
  }
  const times = [];
  let inWindow = 0;
  let total = 0;
  const tStart = nowMs() + opts.warmupSecs * 1000;
  const tEnd = tStart + secs * 1000;
  const files = [{ name: 'lab-report.pdf', size: 1_048_576, mime: 'application/pdf' }];
  await Promise.all(
    list.map(async (d) => {
      const partner = list[d.k ^ 1];
      while (nowMs() < tEnd) {
        const t0 = nowMs();
        try {
          const req = await d.socket.timeout(30_000).emitWithAck('transfer:request', { to: partner.peerId, files });
          if (!req?.ok) throw new Error(`request:${req?.error?.code}`);
          await wait(`accepted:${req.transferId}`);
          const f = await finish(d.socket, req.transferId);
          if (!f?.ok) throw new Error(`finish(sender):${f?.error?.code}`);
          await wait(`received:${req.transferId}`);
          total++;
          const done = nowMs();
          if (t0 >= tStart && done <= tEnd) times.push(done - t0);
          if (done >= tStart && done <= tEnd) inWindow++;
        } catch (e) {
          count(e);
          await sleep(100);
        }
      }
    }),
  );
  const cyclesPerSec = inWindow / secs;
  return {
    secs,
    cyclesPerSec: Math.round(cyclesPerSec * 10) / 10,
    writesPerSec: Math.round(cyclesPerSec * 3 * 10) / 10,
    cycle: summary(times),
    cycles: total,
    errors,
  };
}

/** Completed rows written by the bench devices (to check every cycle reached the store). */
function benchRows(b) {
  return Number(row(b, "SELECT COUNT(*) FROM transfers WHERE sender_device LIKE 'bench %' AND status = 'completed'")[0]);
}

// ------------------------------------------------------------------ report

function machine() {
  return {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg().map((v) => Math.round(v * 100) / 100),
    kernel: os.release(),
  };
}

function git(args) {
  const r = spawnSync('git', args, { cwd: repo, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function cell(s) {
  return s ? `${s.p50.toFixed(1)} / ${s.p99.toFixed(1)}` : 'n/a';
}

function printReport(result) {
  const names = result.backends.map((b) => b.name);
  const label = { sqlite: 'SQLite', postgres: 'PostgreSQL' };
  const w = 44;
  const out = [];
  out.push('');
  out.push(`bench/store: ${result.rows.toLocaleString('en')} transfer rows, commit ${result.commit}, ${result.date}`);
  out.push(`machine: ${result.machine.cpus} CPUs, load ${result.machine.loadavg.join(' ')} at start, ${result.machineEnd.loadavg.join(' ')} at end`);
  out.push('');
  out.push(
    `${'page (p50 / p99 ms, ' + opts.requests + ' requests)'.padEnd(w)}${names.map((n) => label[n].padStart(18)).join('')}   < ${GOAL_MS} ms   others (cores)`,
  );
  const busiest = (p) => Math.max(...names.map((n) => p[n]?.othersCores ?? 0));
  for (const p of result.pages) {
    const cells = names.map((n) => cell(p[n]).padStart(18)).join('');
    const ok = names.every((n) => p[n] && p[n].p99 < GOAL_MS);
    out.push(`${p.name.padEnd(w)}${cells}   ${(ok ? 'yes' : 'NO').padEnd(8)}   ${busiest(p).toFixed(2)}`);
  }
  const line = (title, f) => out.push(`${title.padEnd(w)}${names.map((n) => f(result.load[n]).padStart(18)).join('')}`);
  if (Object.keys(result.load).length > 0) out.push('');
  const measured = (what) => names.some((n) => result.load[n]?.[what]);
  if (measured('login')) {
    line(`logins/s (${opts.clients} clients)`, (l) => (l?.login ? String(l.login.loginsPerSec) : 'n/a'));
    line('  login p50 / p99 ms', (l) => cell(l?.login?.latency));
    line('  refused (503 busy / 429)', (l) => (l?.login ? `${l.login.statuses[503] ?? 0} / ${l.login.statuses[429] ?? 0}` : 'n/a'));
    line('  CPU cores: server / postgres', (l) => (l?.login ? `${l.login.cpuCores.server} / ${l.login.cpuCores.postgres ?? '-'}` : 'n/a'));
  }
  if (measured('write')) {
    line(`transfer cycles/s (${opts.clients} clients)`, (l) => (l?.write ? String(l.write.cyclesPerSec) : 'n/a'));
    line('  transfer-log writes/s (3 a cycle)', (l) => (l?.write ? String(l.write.writesPerSec) : 'n/a'));
    line('  cycle p50 / p99 ms', (l) => cell(l?.write?.cycle));
    line('  CPU cores: server / postgres', (l) => (l?.write ? `${l.write.cpuCores.server} / ${l.write.cpuCores.postgres ?? '-'}` : 'n/a'));
    line('  rows in the store = cycles', (l) => (l?.write ? `${l.write.rowsInStore === l.write.cyclesTotal ? 'yes' : 'NO'} (${l.write.rowsInStore})` : 'n/a'));
  }
  if (result.load.postgresAsync?.write) {
    const wr = result.load.postgresAsync.write;
    out.push(`${'PostgreSQL, synchronous_commit off:'.padEnd(w)}${`${wr.cyclesPerSec} cycles/s, ${wr.writesPerSec} writes/s, cycle p50/p99 ${cell(wr.cycle)} ms`}`);
  }
  out.push('');
  for (const n of names) {
    const slow = result.pages.filter((p) => !p[n] || p[n].p99 >= GOAL_MS).map((p) => p.name);
    out.push(`goal (every page p99 < ${GOAL_MS} ms) on ${label[n]}: ${slow.length === 0 ? 'met' : `MISSED by ${slow.join(', ')}`}`);
  }
  const busy = result.pages.filter((p) => busiest(p) >= 0.5).length;
  if (busy > 0) {
    out.push(
      `note: other processes used half a core or more while ${busy} of ${result.pages.length} pages were timed (last column): a p99 far above its p50 there is the machine's; run again on a quiet machine`,
    );
  }
  out.push(`same data on both stores: ${result.sameData ? 'yes' : 'NO'}`);
  console.log(out.join('\n'));
}

// ------------------------------------------------------------------ main

async function main() {
  const now = Math.floor(Date.now() / 1000);
  const result = {
    date: new Date().toISOString(),
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirty: (git(['status', '--porcelain', '--', 'appliance', 'migrations']) ?? '') !== '',
    binary: BIN,
    rows: opts.rows,
    options: opts,
    machine: machine(),
    backends: [],
    pages: [],
    load: {},
  };
  const backends = [];
  const cleanup = async () => {
    for (const b of backends) await stop(b);
  };
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      cleanup().finally(() => process.exit(130));
    });
  }
  try {
    for (const name of opts.backends) {
      backends.push(await setup(name, now));
      const b = backends.at(-1);
      result.backends.push({
        name,
        fillSecs: Math.round(b.fillSecs),
        vacuumSecs: b.vacuumSecs ? Math.round(b.vacuumSecs) : null,
        sizeMiB: Math.round(b.size / 2 ** 20),
        counts: b.counts,
        version: name === 'postgres' ? row(b, 'SHOW server_version')[0] : null,
      });
    }
    result.sameData = backends.every((b) => b.checksum === backends[0].checksum && JSON.stringify(b.counts) === JSON.stringify(backends[0].counts));

    // Pages: for each page, each backend in turn (the order alternating), so a change in the
    // machine's load falls on both.
    const lists = new Map();
    const wanted = ([, name]) => !opts.pages || opts.pages.some((w) => name.includes(w));
    for (const b of backends) lists.set(b.name, pages(b, await secondPage(b)).filter(wanted));
    const count = lists.get(backends[0].name).length;
    log(`pages: ${count} × ${opts.warmup} + ${opts.requests} requests on each store ...`);
    for (let i = 0; i < count; i++) {
      const [kind, name] = lists.get(backends[0].name)[i];
      const entry = { kind, name, url: {} };
      const order = i % 2 === 0 ? backends : [...backends].reverse();
      for (const b of order) {
        const url = lists.get(b.name)[i][2];
        entry.url[b.name] = url;
        const before = { ours: ourCpu(backends), machine: machineBusy(), t: nowMs() };
        entry[b.name] = await timePage(b, kind, url);
        // Other processes' CPU while this page was timed: on a shared 2-core machine they,
        // not the store, make most of a p99 that is far above the p50.
        const secs = (nowMs() - before.t) / 1000;
        const others = machineBusy() - before.machine - (ourCpu(backends) - before.ours);
        entry[b.name].othersCores = Math.round((Math.max(0, others) / secs) * 100) / 100;
      }
      result.pages.push(entry);
      log(`  ${name}: ${backends.map((b) => `${b.name} ${cell(entry[b.name])}`).join(', ')}`);
      if (timeLeft() < 150_000) {
        log('time budget: skipping the remaining pages');
        break;
      }
    }

    for (const b of opts.load ? backends : []) {
      if (timeLeft() < 60_000) break;
      log(`${b.name}: logins, ${opts.clients} clients, ${opts.loginSecs} s ...`);
      result.load[b.name] = { login: await withCpu(b, () => loginLoad(b, opts.loginSecs)) };
    }
    for (const b of opts.load ? backends : []) {
      if (timeLeft() < 40_000) break;
      log(`${b.name}: transfer cycles, ${opts.clients} devices, ${opts.writeSecs} s ...`);
      const list = await devices(b);
      const before = benchRows(b);
      const w = await withCpu(b, () => writeLoad(b, list, opts.writeSecs));
      w.cyclesTotal = w.cycles;
      w.rowsInStore = benchRows(b) - before;
      result.load[b.name] = { ...result.load[b.name], write: w };
      if (b.name === 'postgres' && timeLeft() > 40_000) {
        // The durability SQLite has in LabBeam (WAL, synchronous NORMAL: a commit does not
        // wait for the disk): PostgreSQL's equivalent is synchronous_commit off.
        pgAdmin('ALTER SYSTEM SET synchronous_commit = off');
        pgAdmin('SELECT pg_reload_conf()');
        await sleep(500);
        log(`${b.name}: transfer cycles with synchronous_commit off ...`);
        const before2 = benchRows(b);
        const w2 = await withCpu(b, () => writeLoad(b, list, opts.writeSecs));
        w2.cyclesTotal = w2.cycles;
        w2.rowsInStore = benchRows(b) - before2;
        result.load.postgresAsync = { write: w2 };
        pgAdmin('ALTER SYSTEM RESET synchronous_commit');
        pgAdmin('SELECT pg_reload_conf()');
      }
      for (const d of list) d.socket.close();
    }
  } finally {
    result.machineEnd = machine();
    result.secs = Math.round((Date.now() - started) / 1000);
    await cleanup();
    for (const b of backends) b.agent?.destroy();
    for (const b of backends) rmSync(b.dir, { recursive: true, force: true });
  }
  printReport(result);
  const file = opts.json ?? path.join(here, 'results', `store-${result.date.slice(0, 19).replaceAll(':', '')}.json`);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`results: ${path.relative(process.cwd(), file)} (${result.secs} s)`);
}

main().catch((e) => {
  console.error(`bench/store: ${e.stack ?? e}`);
  process.exit(1);
});
