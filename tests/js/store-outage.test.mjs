// The database goes away for 10 s under load and comes back: LabBeam answers 503
// `store_unavailable` meanwhile (HTTP and Socket.IO alike), never panics, recovers by itself,
// and loses no transfer-log row: not of a transfer that finished before the stop, nor of one
// that finished during it.
//
// It stops and starts a PostgreSQL cluster of its own (tests/postgres.sh), which it could not
// do to the one the other tests share: so it runs in the PostgreSQL pass of tests/run.sh
// (TEST_POSTGRES_URL set), as root (PostgreSQL runs as the postgres user).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { call, next, sleep, startServer } from './harness.mjs';

const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'postgres.sh');
const skip = !process.env.TEST_POSTGRES_URL
  ? 'runs in the PostgreSQL pass of tests/run.sh (TEST_POSTGRES_URL is not set)'
  : process.getuid?.() !== 0
    ? 'needs root: it stops and starts a PostgreSQL cluster of its own'
    : false;
const FILES = [{ name: 'notes.pdf', size: 1024, mime: 'application/pdf' }];
const GAP_MS = 10_000;

function postgres(action, dir) {
  const r = spawnSync('bash', [script, action, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tests/postgres.sh ${action}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Requests a transfer from `sa` to `pb` and has `sb` accept it; resolves with its id. */
async function accepted(sa, sb, pb) {
  const incoming = next(sb, 'transfer:incoming');
  const ack = await call(sa, 'transfer:request', { to: pb, files: FILES });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  await incoming;
  assert.equal((await call(sb, 'transfer:respond', { transferId: ack.transferId, accept: true })).ok, true);
  return ack.transferId;
}

async function finish(sa, sb, transferId) {
  const fin = { transferId, status: 'completed', bytes: 1024, sha256: 'b'.repeat(64), path: 'direct', durationMs: 5 };
  assert.equal((await call(sa, 'transfer:finish', fin, 10_000)).ok, true);
  assert.equal((await call(sb, 'transfer:finish', fin, 10_000)).ok, true);
}

test('the database stopped for 10 s under load: 503 meanwhile, nothing lost, back by itself', { skip, timeout: 180_000 }, async () => {
  const dir = mkdtempSync('/tmp/labbeam-outage-');
  let s;
  try {
    const admin = new URL(postgres('start', dir));
    const created = spawnSync('psql', [admin.toString(), '-qAtc', 'CREATE DATABASE outage'], { encoding: 'utf8' });
    assert.equal(created.status, 0, created.stderr);
    const store = new URL(admin);
    store.pathname = '/outage';
    s = await startServer({ env: { LABBEAM_STORE_URL: store.toString() } });
    const alice = await s.user('alice');
    const bob = await s.user('bob');
    const sa = await s.connect({ token: alice.token, device: 'PC A' });
    const sb = await s.connect({ token: bob.token, device: 'PC B' });
    await sa.snapshot;
    const pb = (await sb.snapshot).self.peerId;

    // Finished before the stop, and accepted before it (it finishes during the gap).
    const before = await accepted(sa, sb, pb);
    await finish(sa, sb, before);
    const during = await accepted(sa, sb, pb);

    // The load: 20 clients asking who they are, which checks the session in the store.
    const seen = new Map();
    let loading = true;
    const load = Array.from({ length: 20 }, async () => {
      while (loading) {
        const r = await s.request('GET', '/api/me', { token: alice.token }).catch((e) => ({ status: `error ${e.code}` }));
        const key = r.status === 200 ? '200' : `${r.status} ${r.body?.error?.code ?? ''}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        await sleep(50);
      }
    });
    await sleep(500);

    postgres('stop', dir);
    const stoppedAt = Date.now();
    // Requests fail with 503 store_unavailable, the same code on every transport, once a
    // connection has been waited for (store.acquire_timeout_secs, 5 s).
    await sleep(500);
    const [me, refused, login] = await Promise.all([
      s.request('GET', '/api/me', { token: alice.token }),
      call(sa, 'transfer:request', { to: pb, files: FILES }, 10_000),
      s.request('POST', '/api/auth/login', { body: { username: 'bob', password: 'correct horse battery staple' } }),
    ]);
    assert.equal(me.status, 503, JSON.stringify(me.body));
    assert.equal(me.body.error.code, 'store_unavailable');
    assert.ok(Number(me.headers['retry-after']) > 0, 'Retry-After');
    assert.equal(refused.error?.code, 'store_unavailable', JSON.stringify(refused));
    assert.equal(login.status, 503, JSON.stringify(login.body));
    // A transfer that ends now is still logged as it ended, once the store is back.
    await finish(sa, sb, during);
    const waiting = await s.request('GET', '/metrics');
    assert.match(waiting.text, /^labbeam_transfer_log_waiting 1$/m);
    await sleep(Math.max(0, GAP_MS - (Date.now() - stoppedAt)));

    postgres('start', dir);
    const deadline = Date.now() + 30_000;
    let back = false;
    while (!back && Date.now() < deadline) {
      back = (await s.request('GET', '/api/me', { token: alice.token })).status === 200;
      if (!back) await sleep(250);
    }
    loading = false;
    await Promise.all(load);
    assert.ok(back, `not back 30 s after the database: ${JSON.stringify([...seen])}`);

    // The load saw only answers and 503 store_unavailable: no 500, no dropped connection.
    for (const key of seen.keys()) assert.ok(key === '200' || key === '503 store_unavailable', JSON.stringify([...seen]));
    assert.ok((seen.get('503 store_unavailable') ?? 0) > 0, JSON.stringify([...seen]));

    // Nothing lost: both transfers are in the log as completed (the second within a sweep).
    let rows = [];
    for (let i = 0; i < 40; i++) {
      const hist = await s.request('GET', '/api/transfers', { token: bob.token });
      rows = hist.body.transfers ?? [];
      if (rows.filter((t) => [before, during].includes(t.id) && t.status === 'completed').length === 2) break;
      await sleep(250);
    }
    assert.deepEqual(
      [before, during].map((id) => rows.find((t) => t.id === id)?.status),
      ['completed', 'completed'],
      JSON.stringify(rows),
    );
    assert.match((await s.request('GET', '/metrics')).text, /^labbeam_transfer_log_waiting 0$/m);

    // Everything works again: sign-in, a new device, a new transfer.
    const again = await s.login('bob');
    const sc = await s.connect({ token: again.token, device: 'PC C' });
    await sc.snapshot;
    await finish(sa, sb, await accepted(sa, sb, pb));
    assert.doesNotMatch(s.log(), /panicked/);
  } finally {
    await s?.stop();
    try {
      postgres('stop', dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
