// A minimal Node.js socket.io server with LabBeam's presence + relay logic: the usual stack
// for such a server, written the way a careful Node developer would, so the benchmark
// compares LabBeam against a fair baseline in the same run.
//
// Same contract as docs/PROTOCOL.md for what the benchmark exercises:
//   - connect with `auth: {token, device, lab}`; the token is LabBeam's own HS256 JWT,
//     checked here with node:crypto against LabBeam's `jwt.key` (signature, alg, exp with
//     5 s leeway, required sub/iat/exp). Refusals: connect_error with a plain code.
//   - presence by lab room: `presence:snapshot` {self, peers} on connect,
//     `presence:joined` Peer / `presence:left` {peerId} to the lab's viewers.
//   - `transfer:request` → `transfer:incoming`; `transfer:respond` → `transfer:accepted`
//     / `transfer:declined`; unanswered requests expire; per-user pending cap and
//     requests-per-minute window.
//   - `signal` relayed only between the two parties of an accepted transfer, only to the
//     other party; `transfer:finish` ends a transfer.
//   - every event has an ack `{ok:true,...}` or `{error:{code,message}}`, strict payload
//     checks (unknown fields refused), and the same per-device event budget as LabBeam
//     (50 events/s, bursts of 200).
// Differences (it is "minimal"): no database (no session-revocation lookup on connect, no
// transfer-log rows, no announcements), users and labs come from a JSON file.
//
// Usage: node node-baseline.mjs CONFIG.json   (prints `listening PORT` on stdout)
// CONFIG: {host, port, certFile, keyFile, jwtKeyFile, users:[{id,username,display_name,
//          role,permissions}], labs:[name], limits:{maxFileBytes, requestsPerMinute,
//          maxPending, requestExpirySecs}, presenceScope:"lab"|"all"}

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { Server } from 'socket.io';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const secret = Buffer.from(readFileSync(config.jwtKeyFile, 'utf8').trim(), 'base64');
const users = new Map(config.users.map((u) => [u.id, u]));
const knownLabs = new Set(config.labs);
const limits = {
  maxFileBytes: 107374182400,
  requestsPerMinute: 30,
  maxPending: 10,
  requestExpirySecs: 60,
  ...config.limits,
};
const OTHER = 'Other';
const EVENT_RATE = config.limits?.eventsPerSecond ?? 50;
const EVENT_BURST = config.limits?.eventBurst ?? 200;
const MAX_SIGNAL_BYTES = 16 * 1024;

// ---------------------------------------------------------------- errors and acks

class SignalError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}
const invalid = (m) => new SignalError('invalid_payload', m);
const ok = (extra = {}) => ({ ok: true, ...extra });
const fail = (e) =>
  e instanceof SignalError
    ? { error: { code: e.code, message: e.message } }
    : { error: { code: 'internal', message: 'a server fault; it was logged' } };

// ---------------------------------------------------------------- JWT (HS256)

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/** Returns the claims, or throws an Error whose message is the connect_error code. */
function verifyJwt(token) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) throw new Error('invalid_token');
  let header;
  let claims;
  try {
    header = b64urlJson(parts[0]);
    claims = b64urlJson(parts[1]);
  } catch {
    throw new Error('invalid_token');
  }
  if (header?.alg !== 'HS256') throw new Error('invalid_token');
  const expected = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new Error('invalid_token');
  if (typeof claims?.sub !== 'string' || typeof claims.exp !== 'number' || typeof claims.iat !== 'number') {
    throw new Error('invalid_token');
  }
  if (claims.exp + 5 < Date.now() / 1000) throw new Error('session_expired');
  return claims;
}

// ---------------------------------------------------------------- payload checks

function cleanText(s, max) {
  // eslint-disable-next-line no-control-regex
  return String(s).replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').split(/\s+/).filter(Boolean).join(' ').slice(0, max);
}

function shape(v, fields, what) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid(`${what} must be an object`);
  for (const k of Object.keys(v)) if (!(k in fields)) throw invalid(`unknown field ${k}`);
  for (const [k, type] of Object.entries(fields)) {
    const optional = type.endsWith('?');
    const t = optional ? type.slice(0, -1) : type;
    if (v[k] === undefined) {
      if (optional) continue;
      throw invalid(`missing field ${k}`);
    }
    if (t === 'any') continue;
    if (t === 'array' ? !Array.isArray(v[k]) : typeof v[k] !== t) throw invalid(`${k} must be a ${t}`);
  }
  return v;
}

function validateId(what, s) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(s)) throw invalid(`${what} is not a valid id`);
}

function validateFiles(files) {
  if (files.length === 0) throw invalid('files must list at least one file');
  if (files.length > 10_000) throw invalid('at most 10000 files per transfer');
  let total = 0;
  for (const f of files) {
    shape(f, { name: 'string', size: 'number', mime: 'string?' }, 'a file');
    const n = f.name;
    // eslint-disable-next-line no-control-regex
    if (!n || n.length > 1024 || /[\u0000-\u001f\u007f\\]/.test(n) || n.split('/').some((s) => !s || s === '.' || s === '..')) {
      throw invalid(`file name ${JSON.stringify(n)} is not valid`);
    }
    if (!Number.isInteger(f.size) || f.size < 0) throw invalid('size must be a whole number');
    if (f.size > limits.maxFileBytes) throw new SignalError('file_too_large', `${n} is too large`);
    total += f.size;
  }
  return total;
}

// ---------------------------------------------------------------- state

/** peerId → {peer, perms:Set, sessionId, seesAll, bucket:{tokens, at}} */
const members = new Map();
/** lab → Set(peerId) */
const byLab = new Map();
/** transferId → {from, to, fromUser, stage:'requested'|'accepted', timer} */
const transfers = new Map();
/** userId → [request times (ms)] */
const requestTimes = new Map();

const labRoom = (lab) => `lab:${lab}`;
const SCOPE_ALL = 'scope:all';
const sees = (m, peer) => m.seesAll || m.peer.lab === peer.lab;

function spendEvent(m) {
  const now = performance.now();
  const b = m.bucket;
  b.tokens = Math.min(EVENT_BURST, b.tokens + ((now - b.at) / 1000) * EVENT_RATE);
  b.at = now;
  if (b.tokens < 1) throw new SignalError('rate_limited', 'too many requests; wait a moment');
  b.tokens -= 1;
}

// ---------------------------------------------------------------- server

const httpsServer = createServer({ cert: readFileSync(config.certFile), key: readFileSync(config.keyFile) });
const io = new Server(httpsServer, {
  serveClient: false,
  maxHttpBufferSize: 64 * 1024,
  connectTimeout: 10_000,
});

io.use((socket, next) => {
  try {
    const auth = socket.handshake.auth ?? {};
    if (!auth.token) return next(new Error('unauthenticated'));
    const claims = verifyJwt(auth.token);
    const user = users.get(Number(claims.sub));
    if (!user) return next(new Error('invalid_token'));
    const device = cleanText(auth.device ?? '', 64) || 'Browser';
    const pick = auth.lab == null ? null : cleanText(auth.lab, 64);
    const lab = pick && knownLabs.has(pick) ? pick : OTHER;
    socket.data = { user, device, lab, sessionId: claims.jti };
    next();
  } catch (e) {
    next(new Error(e.message === 'session_expired' ? 'session_expired' : 'invalid_token'));
  }
});

io.on('connection', (socket) => {
  const { user, device, lab, sessionId } = socket.data;
  const perms = new Set(user.permissions);
  const peer = {
    peerId: socket.id,
    userId: user.id,
    username: user.username,
    displayName: user.display_name,
    role: user.role,
    lab,
    device,
  };
  const seesAll = config.presenceScope === 'all' || perms.has('portal.access') || perms.has('broadcast.send');
  const me = { peer, perms, sessionId, seesAll, bucket: { tokens: EVENT_BURST, at: performance.now() } };

  socket.join(labRoom(lab));
  if (seesAll) socket.join(SCOPE_ALL);
  const visible = [];
  if (seesAll) for (const m of members.values()) visible.push(m.peer);
  else for (const id of byLab.get(lab) ?? []) visible.push(members.get(id).peer);
  members.set(peer.peerId, me);
  if (!byLab.has(lab)) byLab.set(lab, new Set());
  byLab.get(lab).add(peer.peerId);
  socket.emit('presence:snapshot', { self: peer, peers: visible });
  socket.to([labRoom(lab), SCOPE_ALL]).emit('presence:joined', peer);

  const on = (event, handler) =>
    socket.on(event, (...args) => {
      const ack = typeof args[args.length - 1] === 'function' ? args.pop() : () => {};
      let result;
      try {
        spendEvent(me);
        result = ok(handler(args[0]));
      } catch (e) {
        if (!(e instanceof SignalError)) console.error(`${event}:`, e);
        result = fail(e);
      }
      ack(result);
    });

  on('transfer:request', (data) => {
    shape(data, { to: 'string', files: 'array' }, 'payload');
    validateId('to', data.to);
    if (!perms.has('transfer.send')) throw new SignalError('forbidden', 'this needs the permission transfer.send');
    const total = validateFiles(data.files);
    const target = members.get(data.to);
    if (!target || !sees(me, target.peer)) throw new SignalError('peer_offline', 'that device is not online');
    if (target === me) throw invalid('a device cannot send to itself');
    if (!target.perms.has('transfer.receive')) throw new SignalError('peer_cannot_receive', 'that user may not receive files');
    let pending = 0;
    for (const t of transfers.values()) if (t.fromUser === user.id && t.stage === 'requested') pending++;
    if (pending >= limits.maxPending) throw new SignalError('too_many_pending', 'too many requests wait for an answer');
    const now = Date.now();
    const times = (requestTimes.get(user.id) ?? []).filter((t) => now - t <= 60_000);
    if (times.length >= limits.requestsPerMinute) throw new SignalError('rate_limited', 'too many requests');
    times.push(now);
    requestTimes.set(user.id, times);
    const transferId = randomBytes(12).toString('hex');
    const t = { from: peer.peerId, to: data.to, fromUser: user.id, stage: 'requested', timer: null };
    t.timer = setTimeout(() => {
      if (transfers.get(transferId)?.stage !== 'requested') return;
      transfers.delete(transferId);
      io.to(t.from).to(t.to).emit('transfer:expired', { transferId });
    }, limits.requestExpirySecs * 1000);
    transfers.set(transferId, t);
    io.to(data.to).emit('transfer:incoming', { transferId, from: peer, files: data.files, totalBytes: total });
    return { transferId };
  });

  on('transfer:respond', (data) => {
    shape(data, { transferId: 'string', accept: 'boolean' }, 'payload');
    validateId('transferId', data.transferId);
    const t = transfers.get(data.transferId);
    if (!t) throw new SignalError('unknown_transfer', 'no such transfer');
    if (t.to !== peer.peerId) throw new SignalError('not_party', 'you are not a party to that transfer');
    if (t.stage !== 'requested') throw new SignalError('wrong_state', 'it was already answered');
    clearTimeout(t.timer);
    if (data.accept) {
      t.stage = 'accepted';
      io.to(t.from).emit('transfer:accepted', { transferId: data.transferId });
    } else {
      transfers.delete(data.transferId);
      io.to(t.from).emit('transfer:declined', { transferId: data.transferId });
    }
    return {};
  });

  on('signal', (data) => {
    shape(data, { transferId: 'string', to: 'string', data: 'any' }, 'payload');
    validateId('transferId', data.transferId);
    validateId('to', data.to);
    const size = Buffer.byteLength(JSON.stringify(data.data) ?? '');
    if (size > MAX_SIGNAL_BYTES) throw invalid(`data is ${size} bytes; at most ${MAX_SIGNAL_BYTES}`);
    const t = transfers.get(data.transferId);
    if (!t) throw new SignalError('unknown_transfer', 'no such transfer');
    const other = peer.peerId === t.from ? t.to : peer.peerId === t.to ? t.from : null;
    if (other === null || data.to !== other) throw new SignalError('not_party', 'you are not a party to that transfer');
    if (t.stage !== 'accepted') throw new SignalError('wrong_state', 'it is not accepted');
    if (!members.has(other)) throw new SignalError('peer_offline', 'that device is not online');
    io.to(other).emit('signal', { transferId: data.transferId, from: peer.peerId, data: data.data });
    return {};
  });

  on('transfer:finish', (data) => {
    shape(
      data,
      { transferId: 'string', status: 'string', bytes: 'number?', sha256: 'string?', path: 'string?', durationMs: 'number?', reason: 'string?' },
      'payload',
    );
    const t = transfers.get(data.transferId);
    if (!t) throw new SignalError('unknown_transfer', 'no such transfer');
    if (t.from !== peer.peerId && t.to !== peer.peerId) throw new SignalError('not_party', 'not a party');
    const other = t.from === peer.peerId ? t.to : t.from;
    if (data.status !== 'completed') {
      io.to(other).emit('transfer:cancelled', { transferId: data.transferId, reason: data.status, detail: data.reason ?? '' });
    }
    clearTimeout(t.timer);
    transfers.delete(data.transferId);
    return {};
  });

  socket.on('disconnect', () => {
    members.delete(peer.peerId);
    byLab.get(lab)?.delete(peer.peerId);
    io.to([labRoom(lab), SCOPE_ALL]).emit('presence:left', { peerId: peer.peerId });
    for (const [id, t] of transfers) {
      if (t.stage === 'requested' && (t.from === peer.peerId || t.to === peer.peerId)) {
        clearTimeout(t.timer);
        transfers.delete(id);
        io.to(t.from === peer.peerId ? t.to : t.from).emit('transfer:cancelled', { transferId: id, reason: 'peer_left' });
      }
    }
  });
});

httpsServer.listen(config.port ?? 0, config.host ?? '127.0.0.1', () => {
  console.log(`listening ${httpsServer.address().port}`);
});
process.on('SIGTERM', () => {
  io.close();
  process.exit(0);
});
