// Load generator process (forked by bench.mjs): holds a share of the simulated devices,
// whole labs at a time, so every lab's fan-out is observed inside one process. Driven by
// IPC messages; every phase is bounded by a deadline and reports what it saw.

import { io } from 'socket.io-client';

import { Histogram, nowMs, sleep } from './lib.mjs';

let cfg = null; // {url, ca, labs:[{name, index, members:[{token, device}]}], ...}
/** labIndex → {name, members: [Client]} */
const labs = new Map();

// A realistic trickle-ICE candidate (~220 bytes serialized with the envelope).
const CANDIDATE =
  'candidate:842163049 1 udp 1677729535 203.0.113.57 54321 typ srflx raddr 10.0.2.15 rport 54321 generation 0 ufrag 4ZcD network-cost 999';

function send(msg) {
  process.send(msg);
}

class Client {
  constructor(lab, spec) {
    this.lab = lab;
    this.spec = spec;
    this.socket = null;
    this.peerId = null;
    /** peerIds this device knows are online (snapshot + joined − left) */
    this.known = new Set();
    this.dupJoined = 0;
  }

  /** Connects; resolves {ok, ms} after `presence:snapshot` or {ok:false, error}. */
  connect(timeoutMs) {
    const t0 = nowMs();
    return new Promise((resolve) => {
      const socket = io(cfg.url, {
        transports: ['websocket'],
        ca: cfg.ca,
        auth: { token: this.spec.token, device: this.spec.device, lab: this.lab.name },
        reconnection: false,
        forceNew: true,
        timeout: timeoutMs,
      });
      this.socket = socket;
      let done = false;
      const finish = (r) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        socket.close();
        finish({ ok: false, error: 'timeout' });
      }, timeoutMs);
      socket.on('presence:snapshot', (snap) => {
        this.peerId = snap.self.peerId;
        for (const p of snap.peers) this.known.add(p.peerId);
        finish({ ok: true, ms: nowMs() - t0, at: nowMs() });
      });
      socket.on('presence:joined', (peer) => {
        if (this.known.has(peer.peerId)) this.dupJoined++;
        this.known.add(peer.peerId);
        const probe = this.lab.probe;
        if (probe && peer.device === probe.device) probe.joinedAt.set(this, nowMs());
      });
      socket.on('presence:left', (p) => {
        this.known.delete(p.peerId);
        const probe = this.lab.probe;
        if (probe && p.peerId === probe.leftPeerId) probe.leftAt.set(this, nowMs());
      });
      socket.on('connect_error', (e) => {
        socket.close();
        finish({ ok: false, error: `connect_error:${e.message}` });
      });
      socket.on('disconnect', (reason) => {
        if (!done) finish({ ok: false, error: `disconnect:${reason}` });
        else if (reason !== 'io client disconnect') stats.unexpectedDisconnects[reason] = (stats.unexpectedDisconnects[reason] ?? 0) + 1;
      });
    });
  }
}

const stats = { unexpectedDisconnects: {} };

/** Runs `task(item)` over `items` with at most `limit` at once. */
async function pool(items, limit, task) {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++];
      await task(item);
    }
  });
  await Promise.all(runners);
}

function countErrors(map, code) {
  map[code] = (map[code] ?? 0) + 1;
}

// ---------------------------------------------------------------- phases

async function phaseConnect({ concurrency, timeoutMs }) {
  const all = [];
  for (const lab of labs.values()) for (const c of lab.members) all.push(c);
  const errors = {};
  let ok = 0;
  let last = 0;
  const hist = new Histogram();
  const t0 = nowMs();
  const deadline = t0 + timeoutMs;
  await pool(all, concurrency, async (c) => {
    const left = deadline - nowMs();
    if (left <= 0) return countErrors(errors, 'phase_deadline');
    const r = await c.connect(Math.min(left, 30_000));
    if (r.ok) {
      ok++;
      hist.add(r.ms);
      last = Math.max(last, r.at);
    } else countErrors(errors, r.error);
  });
  // Let the tail of presence:joined arrive, then check presence: every connected device
  // must know exactly the other connected devices of its lab (snapshot + joined).
  const complete = () => {
    let known = 0;
    let expected = 0;
    let wrong = 0;
    let dup = 0;
    for (const lab of labs.values()) {
      const ids = new Set(lab.members.filter((c) => c.peerId).map((c) => c.peerId));
      expected += ids.size * (ids.size - 1);
      for (const c of lab.members) {
        if (!c.peerId) continue;
        dup += c.dupJoined;
        for (const id of c.known) if (ids.has(id) && id !== c.peerId) known++;
        else wrong++;
      }
    }
    return { known, expected, wrong, dup };
  };
  await waitFor(() => {
    const c = complete();
    return c.known >= c.expected;
  }, 5000);
  const presence = complete();
  return { t0, tLast: last, ok, errors, connectToSnapshot: hist.toJSON(), presence };
}

async function phaseFanout({ samples, timeoutMs }) {
  const joinHist = new Histogram();
  const leftHist = new Histogram();
  const snapHist = new Histogram();
  const errors = {};
  let done = 0;
  const chosen = [...labs.values()].slice(0, samples);
  for (const lab of chosen) {
    const k = lab.members.length - 1;
    const victim = lab.members[k];
    if (!victim.peerId) continue;
    const others = lab.members.filter((c) => c !== victim && c.peerId);
    // 1. the victim leaves: time until the others hear `presence:left`
    const probe = { device: `${victim.spec.device}-r${done}`, leftPeerId: victim.peerId, leftAt: new Map(), joinedAt: new Map() };
    lab.probe = probe;
    const tLeave = nowMs();
    victim.socket.close();
    await waitFor(() => probe.leftAt.size >= others.length, 5000);
    for (const t of probe.leftAt.values()) leftHist.add(t - tLeave);
    if (probe.leftAt.size < others.length) countErrors(errors, 'left_missing');
    // 2. a new device of the same user joins: time from its connect() to `presence:joined`
    //    at each other member of the lab
    const fresh = new Client(lab, { ...victim.spec, device: probe.device });
    const tJoin = nowMs();
    const r = await fresh.connect(timeoutMs);
    if (!r.ok) {
      countErrors(errors, r.error);
      continue;
    }
    snapHist.add(r.ms);
    await waitFor(() => probe.joinedAt.size >= others.length, 5000);
    for (const t of probe.joinedAt.values()) joinHist.add(t - tJoin);
    if (probe.joinedAt.size < others.length) countErrors(errors, 'joined_missing');
    lab.members[k] = fresh;
    lab.probe = null;
    done++;
    await sleep(20);
  }
  return { samples: done, joined: joinHist.toJSON(), left: leftHist.toJSON(), probeSnapshot: snapHist.toJSON(), errors };
}

async function waitFor(cond, ms) {
  const end = nowMs() + ms;
  while (!cond() && nowMs() < end) await sleep(2);
  return cond();
}

/** Pairs members 0/1, 2/3, … of the first half of every lab: request → accept. */
let pairs = [];
async function phasePair({ concurrency, timeoutMs }) {
  const todo = [];
  for (const lab of labs.values()) {
    const half = Math.floor(lab.members.length / 2);
    for (let j = 0; j + 1 < half; j += 2) {
      const a = lab.members[j];
      const b = lab.members[j + 1];
      if (a.peerId && b.peerId) todo.push([a, b]);
    }
  }
  const errors = {};
  const hist = new Histogram();
  const t0 = nowMs();
  const deadline = t0 + timeoutMs;
  pairs = [];
  await pool(todo, concurrency, async ([a, b]) => {
    if (nowMs() > deadline) return countErrors(errors, 'phase_deadline');
    const started = nowMs();
    try {
      const incoming = once(b.socket, 'transfer:incoming', 20_000);
      const req = await a.socket
        .timeout(20_000)
        .emitWithAck('transfer:request', { to: b.peerId, files: [{ name: 'handout.pdf', size: 1_048_576, mime: 'application/pdf' }] });
      if (!req?.ok) throw new Error(`request:${req?.error?.code}`);
      const inc = await incoming;
      if (inc.transferId !== req.transferId) throw new Error('incoming_mismatch');
      const accepted = once(a.socket, 'transfer:accepted', 20_000);
      const resp = await b.socket.timeout(20_000).emitWithAck('transfer:respond', { transferId: req.transferId, accept: true });
      if (!resp?.ok) throw new Error(`respond:${resp?.error?.code}`);
      await accepted;
      hist.add(nowMs() - started);
      pairs.push({ a, b, transferId: req.transferId });
    } catch (e) {
      countErrors(errors, e.message.startsWith('operation has timed out') ? 'ack_timeout' : e.message);
    }
  });
  return { pairs: pairs.length, wanted: todo.length, ms: nowMs() - t0, handshake: hist.toJSON(), errors };
}

function once(socket, event, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, h);
      reject(new Error(`no_${event}`));
    }, ms);
    function h(data) {
      clearTimeout(timer);
      resolve(data);
    }
    socket.once(event, h);
  });
}

/**
 * Relay storm: both sides of every pair keep `window/2` acked `signal`s in flight for
 * warmup + duration. A `rate_limited` ack pauses that device for `backoffMs` (what a
 * well-behaved client does); it is counted, not retried at once.
 */
async function phaseStorm({ window, warmupMs, durationMs, backoffMs, drainMs }) {
  const perSide = Math.max(1, Math.floor(window / 2));
  const ackHist = new Histogram();
  const deliverHist = new Histogram();
  const errors = {};
  let okAcks = 0;
  let allAcks = 0;
  let delivered = 0;
  let sent = 0;
  const start = nowMs();
  const winStart = start + warmupMs;
  const winEnd = winStart + durationMs;
  let running = true;

  const sides = [];
  for (const p of pairs) {
    const A = { me: p.a, other: p.b, transferId: p.transferId, inflight: 0, pausedUntil: 0, timer: null, seq: 0, sentAt: new Map() };
    const B = { me: p.b, other: p.a, transferId: p.transferId, inflight: 0, pausedUntil: 0, timer: null, seq: 0, sentAt: new Map() };
    A.peerSide = B;
    B.peerSide = A;
    sides.push(A, B);
  }
  const handlers = [];
  for (const s of sides) {
    // Deliveries arrive at the other side: match by sequence number.
    const h = (msg) => {
      const src = s.peerSide;
      const t = src.sentAt.get(msg.data.seq);
      if (t === undefined) return;
      src.sentAt.delete(msg.data.seq);
      const now = nowMs();
      if (t >= winStart && now <= winEnd) {
        delivered++;
        deliverHist.add(now - t);
      }
    };
    s.me.socket.on('signal', h);
    handlers.push([s.me.socket, h]);
  }

  function pump(s) {
    if (!running) return;
    const now = nowMs();
    if (now < s.pausedUntil) {
      if (!s.timer) {
        s.timer = setTimeout(() => {
          s.timer = null;
          pump(s);
        }, s.pausedUntil - now);
      }
      return;
    }
    while (s.inflight < perSide && running) {
      const seq = ++s.seq;
      const t = nowMs();
      s.sentAt.set(seq, t);
      s.inflight++;
      sent++;
      s.me.socket.emit(
        'signal',
        { transferId: s.transferId, to: s.other.peerId, data: { candidate: CANDIDATE, sdpMid: '0', sdpMLineIndex: 0, seq } },
        (ack) => {
          s.inflight--;
          const now2 = nowMs();
          const inWindow = t >= winStart && now2 <= winEnd;
          allAcks++;
          if (ack && ack.ok) {
            if (inWindow) {
              okAcks++;
              ackHist.add(now2 - t);
            }
          } else {
            s.sentAt.delete(seq);
            const code = ack?.error?.code ?? 'bad_ack';
            if (inWindow) countErrors(errors, code);
            if (code === 'rate_limited') s.pausedUntil = now2 + backoffMs;
          }
          pump(s);
        },
      );
    }
  }
  for (const s of sides) pump(s);
  await sleep(winEnd - nowMs());
  running = false;
  // Drain: wait (bounded) for the acks still in flight, so the next phase starts clean.
  const inflight = () => sides.reduce((n, s) => n + s.inflight, 0);
  await waitFor(() => inflight() === 0, drainMs);
  for (const s of sides) if (s.timer) clearTimeout(s.timer);
  for (const [sock, h] of handlers) sock.off('signal', h);
  return {
    pairs: pairs.length,
    sides: sides.length,
    windowMs: durationMs,
    okAcks,
    delivered,
    sent,
    allAcks,
    lostInFlight: inflight(),
    errors,
    ack: ackHist.toJSON(),
    delivery: deliverHist.toJSON(),
  };
}

async function phaseClose() {
  for (const lab of labs.values()) for (const c of lab.members) c.socket?.close();
  await sleep(200);
  return { closed: true, unexpectedDisconnects: stats.unexpectedDisconnects };
}

// ---------------------------------------------------------------- IPC

const phases = { connect: phaseConnect, fanout: phaseFanout, pair: phasePair, storm: phaseStorm, close: phaseClose };

process.on('message', async (msg) => {
  try {
    if (msg.type === 'init') {
      cfg = msg;
      for (const l of msg.labs) {
        const lab = { name: l.name, index: l.index, members: [], probe: null };
        lab.members = l.members.map((spec) => new Client(lab, spec));
        labs.set(l.index, lab);
      }
      send({ type: 'init', ok: true });
      return;
    }
    const phase = phases[msg.type];
    if (!phase) throw new Error(`unknown message ${msg.type}`);
    const result = await phase(msg);
    send({ type: msg.type, result });
    if (msg.type === 'close') setTimeout(() => process.exit(0), 100);
  } catch (e) {
    send({ type: msg.type, error: String(e?.stack ?? e) });
  }
});

process.on('disconnect', () => process.exit(0));
