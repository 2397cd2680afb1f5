// Test harness for the JavaScript-side tests: boots the real labbeam binary on free
// loopback ports with a temporary data directory (like tests/harness/mod.rs does for the
// Rust tests) and talks to it the way browsers do: HTTPS with its generated certificate
// and the real socket.io-client.

import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
export const BIN =
  process.env.LABBEAM_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'debug', 'labbeam');
export const PASSWORD = 'correct horse battery staple';
// The binary refuses unknown LABBEAM_* variables, and LABBEAM_BIN is the harness's own.
const INHERITED_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LABBEAM_BIN'));

/**
 * The PostgreSQL server the suite also runs against (tests/run.sh starts one and sets
 * TEST_POSTGRES_URL): each server then gets a database of its own there, through
 * LABBEAM_STORE_URL, for `serve` and its command lines alike. Unset: the SQLite file in
 * the data directory.
 */
const TEST_POSTGRES_URL = process.env.TEST_POSTGRES_URL || '';
let databases = 0;
function freshStoreUrl() {
  if (!TEST_POSTGRES_URL) return null;
  const name = `labbeam_js_${process.pid}_${databases++}_${Date.now()}`;
  const r = spawnSync('psql', [TEST_POSTGRES_URL, '-qAtc', `CREATE DATABASE ${name}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot create database ${name}: ${r.stderr}`);
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Starts the binary; resolves with the child, its banner lines and a reader of its log. */
async function boot(args, env) {
  const child = spawn(BIN, args, { env: { ...INHERITED_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => {
    log += d;
  });
  const banner = await new Promise((resolve, reject) => {
    const lines = [];
    const timer = setTimeout(() => reject(new Error(`no banner; log: ${log}`)), 60_000);
    child.on('exit', (code) => reject(new Error(`labbeam exited with ${code}: ${log}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      if (line.trim() === '' && lines.some((l) => l.includes('Open:'))) {
        clearTimeout(timer);
        resolve(lines);
      }
    });
  });
  return { child, banner, log: () => log };
}

export async function startServer({ config, env: extraEnv } = {}) {
  // A store the test chose itself is used as it is, by serve and the command line alike.
  const storeUrl = extraEnv?.LABBEAM_STORE_URL ?? freshStoreUrl();
  const storeEnv = storeUrl ? { LABBEAM_STORE_URL: storeUrl } : {};
  const env = { ...storeEnv, ...extraEnv };
  const dir = mkdtempSync(path.join(tmpdir(), 'labbeam-js-'));
  const dataDir = path.join(dir, 'data');
  const args = ['serve', '--data-dir', dataDir, '--http-listen', '127.0.0.1:0', '--turn-listen', '127.0.0.1:0'];
  if (config) {
    const file = path.join(dir, 'labbeam.toml');
    (await import('node:fs')).writeFileSync(file, config);
    args.push('--config', file);
  }
  let { child, banner, log } = await boot(args, env);
  let earlierLogs = '';
  const port = Number(banner.find((l) => l.includes('Open:')).trim().replace(/\/$/, '').split(':').pop());
  const adminPassword = banner.find((l) => l.trim().startsWith('password:'))?.trim().split(/\s+/)[1];
  const ca = readFileSync(path.join(dataDir, 'tls', 'cert.pem'));
  const base = `https://127.0.0.1:${port}`;
  const sockets = [];

  const server = {
    port,
    base,
    dataDir,
    storeUrl,
    ca,
    adminPassword,
    log: () => earlierLogs + log(),

    /** Kills the server at once (SIGKILL: no goodbye to anyone), as a crash would. */
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },

    /** Starts the binary again on the same data directory and HTTPS port. */
    async restart() {
      await server.kill();
      earlierLogs += log();
      const again = args.map((a, i) => (args[i - 1] === '--http-listen' ? `127.0.0.1:${port}` : a));
      ({ child, banner, log } = await boot(again, env));
    },

    cli(cliArgs, stdin) {
      const r = spawnSync(BIN, [...cliArgs, '--data-dir', dataDir], {
        input: stdin ?? '',
        encoding: 'utf8',
        env: { ...INHERITED_ENV, ...storeEnv },
      });
      if (r.status !== 0) throw new Error(`labbeam ${cliArgs.join(' ')} failed: ${r.stderr}`);
      return r.stdout;
    },

    addUser(username, role) {
      server.cli(['user', 'add', username, '--role', role, '--password-stdin'], PASSWORD);
    },

    request(method, pathname, { body, token, headers } = {}) {
      return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = https.request(
          `${base}${pathname}`,
          {
            method,
            ca,
            headers: {
              ...(data ? { 'content-type': 'application/json' } : {}),
              ...(token ? { authorization: `Bearer ${token}` } : {}),
              ...headers,
            },
          },
          (res) => {
            let text = '';
            res.on('data', (c) => {
              text += c;
            });
            res.on('end', () => {
              let json = null;
              try {
                json = JSON.parse(text);
              } catch {
                json = null;
              }
              resolve({ status: res.statusCode, headers: res.headers, body: json, text });
            });
          },
        );
        req.on('error', reject);
        if (data) req.write(data);
        req.end();
      });
    },

    async login(username, password = PASSWORD) {
      const r = await server.request('POST', '/api/auth/login', { body: { username, password } });
      if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${r.text}`);
      return { token: r.body.token, user: r.body.user, cookie: r.headers['set-cookie'][0].split(';')[0] };
    },

    /** A new account of this role, signed in. */
    async user(username, role = 'student') {
      server.addUser(username, role);
      return server.login(username);
    },

    /** The first admin with a changed password. */
    async admin() {
      const first = await server.login('admin', adminPassword);
      const r = await server.request('POST', '/api/me/password', {
        token: first.token,
        body: { current_password: adminPassword, new_password: PASSWORD },
      });
      if (r.status !== 200) throw new Error(`admin password change: ${r.text}`);
      return first;
    },

    /** A socket.io-client socket; resolves once connected (or rejects with connect_error). */
    connect({ token, device, lab, deviceId, localAddress, extraHeaders, auth } = {}) {
      const socket = io(base, {
        transports: ['websocket'],
        ca,
        auth: auth ?? { token, device, lab, ...(deviceId ? { deviceId } : {}) },
        reconnection: false,
        forceNew: true,
        timeout: 10_000,
        ...(localAddress ? { localAddress } : {}),
        ...(extraHeaders ? { extraHeaders } : {}),
      });
      sockets.push(socket);
      // Buffer the snapshot: it is emitted right after connect.
      socket.snapshot = new Promise((resolve) => socket.once('presence:snapshot', resolve));
      return new Promise((resolve, reject) => {
        socket.once('connect', () => resolve(socket));
        socket.once('connect_error', (err) => {
          socket.close();
          reject(err);
        });
      });
    },

    jwtSecret() {
      return Buffer.from(readFileSync(path.join(dataDir, 'jwt.key'), 'utf8').trim(), 'base64');
    },

    async stop() {
      for (const s of sockets) s.close();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(10_000)]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Emits with an ack; resolves with the ack body. */
export function call(socket, event, payload, timeoutMs = 15_000) {
  return socket.timeout(timeoutMs).emitWithAck(event, payload);
}

/** The next `event` on `socket`, or a rejection after `timeoutMs`. */
export function next(socket, event, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, handler);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    function handler(data) {
      clearTimeout(timer);
      resolve(data);
    }
    socket.once(event, handler);
  });
}

/** Resolves with the reason when `socket` is dropped, or rejects after `ms`. */
export function droppedWithin(socket, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still connected after ${ms} ms`)), ms);
    socket.once('disconnect', (reason) => {
      clearTimeout(timer);
      resolve(reason);
    });
  });
}

/** Resolves true if `event` arrives within `ms`, false otherwise. */
export async function arrives(socket, event, ms = 500) {
  try {
    await next(socket, event, ms);
    return true;
  } catch {
    return false;
  }
}

export function forgeJwt(header, claims, secret) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64(header)}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

export function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}
