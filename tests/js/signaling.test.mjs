// Signaling and presence with the real socket.io-client against the real binary.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { PASSWORD, arrives, call, claimsOf, forgeJwt, next, sleep, startServer } from './harness.mjs';

const FILES = [{ name: 'notes.pdf', size: 1024, mime: 'application/pdf' }];

describe('connection authentication', () => {
  let s;
  before(async () => {
    s = await startServer();
  });
  after(() => s.stop());

  const refusal = async (opts) => {
    const err = await s.connect(opts).then(
      () => assert.fail('connected'),
      (e) => e,
    );
    return err.message;
  };

  test('no token, garbage, forged, expired, revoked and disabled are refused with a plain code', async () => {
    assert.equal(await refusal({}), 'unauthenticated');
    assert.equal(await refusal({ token: 'not-a-token' }), 'invalid_token');
    const alice = await s.user('alice');
    const claims = claimsOf(alice.token);
    assert.equal(await refusal({ token: forgeJwt({ alg: 'HS256', typ: 'JWT' }, claims, 'wrong key') }), 'invalid_token');
    const expired = { ...claims, iat: claims.iat - 7200, exp: Math.floor(Date.now() / 1000) - 3600 };
    assert.equal(await refusal({ token: forgeJwt({ alg: 'HS256', typ: 'JWT' }, expired, s.jwtSecret()) }), 'session_expired');
    const none = forgeJwt({ alg: 'none', typ: 'JWT' }, claims, 'x').split('.').slice(0, 2).join('.') + '.';
    assert.equal(await refusal({ token: none }), 'invalid_token');

    const bob = await s.user('bob');
    await s.request('POST', '/api/auth/logout', { token: bob.token });
    assert.equal(await refusal({ token: bob.token }), 'session_revoked');

    const carol = await s.user('carol');
    s.cli(['user', 'disable', 'carol']);
    assert.equal(await refusal({ token: carol.token }), 'account_disabled');

    const admin = await s.login('admin', s.adminPassword);
    assert.equal(await refusal({ token: admin.token }), 'password_change_required');
  });

  test('the session cookie is accepted instead of auth.token', async () => {
    const dave = await s.user('dave');
    const socket = await s.connect({ extraHeaders: { cookie: dave.cookie }, auth: {} });
    const snap = await socket.snapshot;
    assert.equal(snap.self.username, 'dave');
  });
});

describe('presence', () => {
  let s;
  before(async () => {
    s = await startServer();
    // Lab A by address (clients bind 127.0.0.2), Lab B picked by unmatched devices.
    s.cli(['lab', 'add', 'Lab A', '--cidr', '127.0.0.2/32']);
    s.cli(['lab', 'add', 'Lab B', '--cidr', '10.99.0.0/24']);
  });
  after(() => s.stop());

  test('three clients in two labs see exactly their lab; instructors see all', async () => {
    const a1 = await s.user('a1');
    const a2 = await s.user('a2');
    const b1 = await s.user('b1');
    const sa1 = await s.connect({ token: a1.token, device: '  PC\n 1  ', localAddress: '127.0.0.2' });
    const snap1 = await sa1.snapshot;
    assert.equal(snap1.self.lab, 'Lab A');
    assert.equal(snap1.self.device, 'PC 1');
    assert.deepEqual(snap1.peers, []);
    for (const key of ['peerId', 'userId', 'username', 'displayName', 'role', 'lab', 'device']) {
      assert.ok(key in snap1.self, key);
    }

    const joined = next(sa1, 'presence:joined');
    const sa2 = await s.connect({ token: a2.token, device: 'PC 2', localAddress: '127.0.0.2' });
    const snap2 = await sa2.snapshot;
    assert.deepEqual(
      snap2.peers.map((p) => p.username),
      ['a1'],
    );
    assert.equal((await joined).username, 'a2');

    // By default a device outside every range cannot pick a lab: it is in Other.
    const sb0 = await s.connect({ token: b1.token, device: 'PC 9', lab: 'Lab B' });
    assert.equal((await sb0.snapshot).self.lab, 'Other');
    // Once an admin allows self-selection, the live socket is moved (dropped, to re-join).
    const dropped = new Promise((resolve) => sb0.once('disconnect', resolve));
    s.cli(['setting', 'set', 'presence.lab_self_select', 'on']);
    await dropped;
    // An unmatched device picks Lab B; Lab A's students neither see it nor hear of it.
    const hearsB = arrives(sa1, 'presence:joined', 700);
    const sb1 = await s.connect({ token: b1.token, device: 'PC 9', lab: 'Lab B' });
    const snapB = await sb1.snapshot;
    assert.equal(snapB.self.lab, 'Lab B');
    assert.deepEqual(snapB.peers, []);
    assert.equal(await hearsB, false);
    // A pick of a lab that does not exist falls into Other.
    const other = await s.user('o1');
    const so = await s.connect({ token: other.token, lab: 'Narnia' });
    assert.equal((await so.snapshot).self.lab, 'Other');

    const t = await s.user('teacher', 'instructor');
    const st = await s.connect({ token: t.token });
    const snapT = await st.snapshot;
    assert.deepEqual(snapT.peers.map((p) => p.username).sort(), ['a1', 'a2', 'b1', 'o1']);

    const left = next(sa1, 'presence:left');
    const seesLeave = next(st, 'presence:left');
    sa2.close();
    assert.equal((await left).peerId, snap2.self.peerId);
    assert.equal((await seesLeave).peerId, snap2.self.peerId);
  });

  test('one user on two devices is two peers', async () => {
    const m = await s.user('multi');
    const d1 = await s.connect({ token: m.token, device: 'Laptop', lab: 'Lab B' });
    const joined = next(d1, 'presence:joined');
    const d2 = await s.connect({ token: m.token, device: 'Desktop', lab: 'Lab B' });
    const p2 = await joined;
    const self1 = (await d1.snapshot).self;
    assert.equal(p2.userId, self1.userId);
    assert.notEqual(p2.peerId, self1.peerId);
    assert.equal(p2.device, 'Desktop');
    d2.close();
  });
});

describe('transfer handshake and relay rules', () => {
  let s;
  let alice;
  let bob;
  let eve;
  let sa;
  let sb;
  let se;
  let pa;
  let pb;
  before(async () => {
    s = await startServer();
    s.cli(['setting', 'set', 'transfer.request_expiry_secs', '5']);
    alice = await s.user('alice');
    bob = await s.user('bob');
    eve = await s.user('eve');
    sa = await s.connect({ token: alice.token, device: 'PC A' });
    sb = await s.connect({ token: bob.token, device: 'PC B' });
    se = await s.connect({ token: eve.token, device: 'PC E' });
    pa = (await sa.snapshot).self.peerId;
    pb = (await sb.snapshot).self.peerId;
    await se.snapshot;
  });
  after(() => s.stop());

  test('request, accept, signal both ways, finish, and the transfer log row', async () => {
    const incoming = next(sb, 'transfer:incoming');
    const ack = await call(sa, 'transfer:request', { to: pb, files: FILES });
    assert.equal(ack.ok, true);
    const { transferId } = ack;
    const inc = await incoming;
    assert.equal(inc.transferId, transferId);
    assert.equal(inc.from.username, 'alice');
    assert.deepEqual(inc.files, FILES);
    assert.equal(inc.expiresInSecs, 5, "the request's expiry: transfer.request_expiry_secs");

    // Signals before acceptance are refused.
    const early = await call(sa, 'signal', { transferId, to: pb, data: { sdp: 'x' } });
    assert.equal(early.error.code, 'wrong_state');

    const accepted = next(sa, 'transfer:accepted');
    assert.equal((await call(sb, 'transfer:respond', { transferId, accept: true })).ok, true);
    assert.equal((await accepted).transferId, transferId);

    const got = next(sb, 'signal');
    assert.equal((await call(sa, 'signal', { transferId, to: pb, data: { type: 'offer', sdp: 'v=0' } })).ok, true);
    assert.deepEqual(await got, { transferId, from: pa, data: { type: 'offer', sdp: 'v=0' } });
    const back = next(sa, 'signal');
    await call(sb, 'signal', { transferId, to: pa, data: { candidate: 'c' } });
    assert.equal((await back).from, pb);

    // A third party cannot inject signals, nor can a party aim them elsewhere.
    assert.equal((await call(se, 'signal', { transferId, to: pb, data: {} })).error.code, 'not_party');
    assert.equal((await call(se, 'signal', { transferId, to: pa, data: {} })).error.code, 'not_party');
    assert.equal((await call(sa, 'signal', { transferId, to: (await se.snapshot).self.peerId, data: {} })).error.code, 'not_party');
    assert.equal(await arrives(sb, 'signal', 300), false);

    const sha256 = 'a'.repeat(64);
    const fin = { transferId, status: 'completed', bytes: 1024, sha256, path: 'direct', durationMs: 42 };
    assert.equal((await call(sa, 'transfer:finish', fin)).ok, true);
    assert.equal((await call(sb, 'transfer:finish', fin)).ok, true);
    // Finished: no more signaling.
    assert.equal((await call(sa, 'signal', { transferId, to: pb, data: {} })).error.code, 'unknown_transfer');

    const hist = await s.request('GET', '/api/transfers', { token: bob.token });
    assert.equal(hist.status, 200);
    const row = hist.body.transfers.find((t) => t.id === transferId);
    assert.ok(row, JSON.stringify(hist.body));
    assert.equal(row.status, 'completed');
    assert.equal(row.sha256, sha256);
    assert.equal(row.path, 'direct');
    assert.equal(row.sender_username, 'alice');
    assert.equal(row.receiver_username, 'bob');
    assert.equal(row.sender_device, 'PC A');
    assert.equal(row.bytes, 1024);
    assert.equal(row.duration_ms, 42);
    assert.deepEqual(row.files, FILES);
    // Eve was not a party: her history does not show it.
    const eveHist = await s.request('GET', '/api/transfers', { token: eve.token });
    assert.equal(eveHist.body.transfers.length, 0);
    // Students may not filter by user; admins may.
    assert.equal((await s.request('GET', '/api/transfers?user=alice', { token: eve.token })).status, 403);
    const admin = await s.admin();
    const byUser = await s.request('GET', '/api/transfers?user=alice&status=completed', { token: admin.token });
    assert.equal(byUser.body.transfers.length, 1);
    assert.equal((await s.request('GET', '/api/transfers?status=bogus', { token: admin.token })).status, 400);
    // `scope=own` is the caller's own for anyone (the web client's history, admins included);
    // `scope=all` needs users.manage.
    assert.equal((await s.request('GET', '/api/transfers', { token: admin.token })).body.transfers.some((t) => t.id === transferId), true);
    assert.deepEqual((await s.request('GET', '/api/transfers?scope=own', { token: admin.token })).body.transfers, []);
    assert.equal((await s.request('GET', '/api/transfers?scope=own', { token: bob.token })).body.transfers[0]?.id, transferId);
    const eveAll = await s.request('GET', '/api/transfers?scope=all', { token: eve.token });
    assert.equal(eveAll.status, 403);
    assert.equal(eveAll.body.error.code, 'forbidden');
    assert.equal((await s.request('GET', '/api/transfers?scope=all', { token: admin.token })).body.transfers.length, 1);
    assert.equal((await s.request('GET', '/api/transfers?scope=mine', { token: admin.token })).body.error.code, 'invalid_request');
  });

  test('decline tells the sender and is logged', async () => {
    const incoming = next(sb, 'transfer:incoming');
    const { transferId } = await call(sa, 'transfer:request', { to: pb, files: FILES });
    await incoming;
    const declined = next(sa, 'transfer:declined');
    assert.equal((await call(sb, 'transfer:respond', { transferId, accept: false })).ok, true);
    assert.equal((await declined).transferId, transferId);
    assert.equal((await call(sb, 'transfer:respond', { transferId, accept: true })).error.code, 'unknown_transfer');
    const hist = await s.request('GET', '/api/transfers?status=declined', { token: alice.token });
    assert.ok(hist.body.transfers.some((t) => t.id === transferId));
  });

  test('an unanswered request expires and both sides are told', async () => {
    const incoming = next(sb, 'transfer:incoming');
    const { transferId } = await call(sa, 'transfer:request', { to: pb, files: FILES });
    await incoming;
    const [a, b] = await Promise.all([next(sa, 'transfer:expired', 9000), next(sb, 'transfer:expired', 9000)]);
    assert.equal(a.transferId, transferId);
    assert.equal(b.transferId, transferId);
    assert.equal((await call(sb, 'transfer:respond', { transferId, accept: true })).error.code, 'unknown_transfer');
  });

  test('a cancel from the receiver reaches the sender', async () => {
    const incoming = next(sb, 'transfer:incoming');
    const { transferId } = await call(sa, 'transfer:request', { to: pb, files: FILES });
    await incoming;
    await call(sb, 'transfer:respond', { transferId, accept: true });
    const cancelled = next(sa, 'transfer:cancelled');
    await call(sb, 'transfer:finish', { transferId, status: 'cancelled', bytes: 10, reason: 'user pressed cancel' });
    const c = await cancelled;
    assert.equal(c.transferId, transferId);
    assert.equal(c.reason, 'cancelled');
  });

  test('bad payloads get invalid_payload; requests to absent peers and oversized files are refused', async () => {
    const cases = [
      ['transfer:request', { to: pb }],
      ['transfer:request', { to: pb, files: FILES, extra: 1 }],
      ['transfer:request', { to: pb, files: [{ name: '../etc/passwd', size: 1 }] }],
      ['transfer:request', { to: pb, files: [] }],
      ['transfer:request', 'just a string'],
      ['transfer:respond', { transferId: 5, accept: true }],
      ['transfer:finish', { transferId: 'x', status: 'done' }],
      ['signal', { transferId: 'x', to: pb, data: { blob: 'x'.repeat(20_000) } }],
    ];
    for (const [event, payload] of cases) {
      const ack = await call(sa, event, payload);
      assert.equal(ack.error?.code, 'invalid_payload', `${event} ${JSON.stringify(payload).slice(0, 80)}`);
      assert.ok(ack.error.message.length > 0);
    }
    assert.equal((await call(sa, 'transfer:request', { to: 'nobody', files: FILES })).error.code, 'peer_offline');
    const huge = [{ name: 'disk.img', size: 2 ** 52, mime: '' }];
    assert.equal((await call(sa, 'transfer:request', { to: pb, files: huge })).error.code, 'file_too_large');
  });
});

describe('permissions, announcements and broadcasts', () => {
  const [A, B, C] = ['127.0.0.50', '127.0.0.51', '127.0.0.52'];
  let s;
  before(async () => {
    s = await startServer();
    // Devices are placed by address: each client binds one loopback address.
    s.cli(['lab', 'add', 'Lab A', '--cidr', '127.0.0.50/32']);
    s.cli(['lab', 'add', 'Lab B', '--cidr', '127.0.0.51/32']);
    s.cli(['lab', 'add', 'Lab C', '--cidr', '127.0.0.52/32']);
  });
  after(() => s.stop());

  test('students cannot broadcast or announce', async () => {
    const st = await s.user('stud');
    const sock = await s.connect({ token: st.token, localAddress: A });
    await sock.snapshot;
    const b = await call(sock, 'broadcast:start', { target: { lab: 'Lab A' }, files: FILES });
    assert.equal(b.error.code, 'forbidden');
    const a = await call(sock, 'announce', { text: 'hello', target: { all: true } });
    assert.equal(a.error.code, 'forbidden');
    sock.close();
  });

  test('an event sent the moment the socket connects is answered', async () => {
    const t = await s.user('quick', 'instructor');
    s.cli(['lab', 'assign', 'Lab C', 'quick']);
    const sock = await s.connect({ token: t.token, localAddress: C });
    // No wait for the snapshot: the server must already listen.
    const ack = await call(sock, 'announce', { text: 'first words', target: { lab: 'Lab C' } });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    sock.close();
  });

  test('an announcement is withdrawn by its author or an admin, from every screen and from late joiners', async () => {
    const t = await s.user('wprof', 'instructor');
    const other = await s.user('wprof2', 'instructor');
    s.cli(['lab', 'assign', 'Lab B', 'wprof']);
    s.cli(['lab', 'assign', 'Lab B', 'wprof2']);
    const st = await s.user('wstud');
    const sockT = await s.connect({ token: t.token, localAddress: B });
    const sockO = await s.connect({ token: other.token, localAddress: B });
    const sockS = await s.connect({ token: st.token, localAddress: B });
    await Promise.all([sockT.snapshot, sockO.snapshot, sockS.snapshot]);
    const heard = next(sockS, 'announcement');
    const ann = await call(sockT, 'announce', { text: 'Quiz in 5 minutes', target: { lab: 'Lab B' } });
    assert.equal(ann.ok, true, JSON.stringify(ann));
    assert.equal((await heard).id, ann.id);
    // Only the author (or an admin) withdraws; students have no announce right at all.
    assert.equal((await call(sockS, 'announce:withdraw', { id: ann.id })).error.code, 'forbidden');
    assert.equal((await call(sockO, 'announce:withdraw', { id: ann.id })).error.code, 'forbidden');
    assert.equal((await call(sockT, 'announce:withdraw', { id: 'x' })).error.code, 'invalid_payload');
    const gone = next(sockS, 'announcement:withdrawn');
    assert.equal((await call(sockT, 'announce:withdraw', { id: ann.id })).ok, true);
    assert.deepEqual(await gone, { id: ann.id });
    assert.equal((await call(sockT, 'announce:withdraw', { id: ann.id })).error.code, 'unknown_announcement');
    // A late joiner does not get it any more.
    const late = await s.user('wlate');
    const lateSock = await s.connect({ token: late.token, localAddress: B });
    await lateSock.snapshot;
    assert.equal(await arrives(lateSock, 'announcement', 700), false);
    // An admin withdraws anyone's.
    const second = await call(sockT, 'announce', { text: 'Second', target: { lab: 'Lab B' } });
    const admin = await s.admin();
    const sockA = await s.connect({ token: admin.token, localAddress: B });
    await sockA.snapshot;
    assert.equal((await call(sockA, 'announce:withdraw', { id: second.id })).ok, true);
    // Both are in the audit log.
    const audit = await s.request('GET', '/api/audit?action=announcement.withdraw', { token: admin.token });
    assert.equal(audit.body.length, 2, JSON.stringify(audit.body));
    for (const sock of [sockT, sockO, sockS, lateSock, sockA]) sock.close();
  });

  test('an instructor announces to a lab and broadcasts only to labs they own', async () => {
    const t = await s.user('prof', 'instructor');
    s.cli(['lab', 'assign', 'Lab A', 'prof']);
    const st1 = await s.user('s1');
    const st2 = await s.user('s2');
    const stB = await s.user('sb');
    const sockT = await s.connect({ token: t.token, localAddress: A });
    const sock1 = await s.connect({ token: st1.token, localAddress: A, device: 'PC 1' });
    const sock2 = await s.connect({ token: st2.token, localAddress: A, device: 'PC 2' });
    const sockB = await s.connect({ token: stB.token, localAddress: B });
    await Promise.all([sockT.snapshot, sock1.snapshot, sock2.snapshot, sockB.snapshot]);

    const heard = next(sock1, 'announcement');
    const bHears = arrives(sockB, 'announcement', 700);
    const ann = await call(sockT, 'announce', { text: 'Exam starts at 10:00', target: { lab: 'Lab A' } });
    assert.equal(ann.ok, true);
    const msg = await heard;
    assert.equal(msg.text, 'Exam starts at 10:00');
    assert.equal(msg.from, 'prof');
    assert.equal(await bHears, false);
    // A late joiner in Lab A still sees it.
    const late = await s.user('late');
    const lateSock = await s.connect({ token: late.token, localAddress: A });
    assert.equal((await next(lateSock, 'announcement')).text, 'Exam starts at 10:00');

    assert.equal((await call(sockT, 'announce', { text: 'x', target: { lab: 'Atlantis' } })).error.code, 'unknown_lab');
    // Announcements have the scope of broadcasts: not another lab, not Other, not everyone.
    for (const target of [{ lab: 'Lab B' }, { lab: 'Other' }, { all: true }]) {
      const refused = await call(sockT, 'announce', { text: 'x', target });
      assert.equal(refused.error?.code, 'forbidden', JSON.stringify(target));
    }

    const inc1 = next(sock1, 'broadcast:offer');
    const inc2 = next(sock2, 'broadcast:offer');
    const bGets = arrives(sockB, 'broadcast:offer', 700);
    const ack = await call(sockT, 'broadcast:start', { target: { lab: 'Lab A' }, files: FILES });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.recipients.length, 3, 'two students and the late joiner');
    const [i1, i2] = await Promise.all([inc1, inc2]);
    assert.equal(i1.broadcastId, ack.broadcastId);
    assert.equal(i2.broadcastId, ack.broadcastId);
    assert.equal(i1.from.username, 'prof');
    assert.equal(i1.autoAccept, true, 'instructors are auto-accepted by default');
    assert.equal(await bGets, false);

    // The manifest comes from the sender only; then every receiver gets it and a link.
    const bad = await call(sock1, 'broadcast:manifest', { broadcastId: ack.broadcastId, file: 0, first: 0, hashes: [], sha256: 'a'.repeat(64) });
    assert.equal(bad.error.code, 'not_party');
    const pieces = Math.ceil(FILES[0].size / ack.pieceBytes);
    const links1 = next(sock1, 'broadcast:link');
    const man1 = next(sock1, 'broadcast:manifest');
    const m = await call(sockT, 'broadcast:manifest', {
      broadcastId: ack.broadcastId, file: 0, first: 0, hashes: Array(pieces).fill('b'.repeat(64)), sha256: 'c'.repeat(64),
    });
    assert.equal(m.ok, true, JSON.stringify(m));
    assert.equal((await man1).sha256, 'c'.repeat(64));
    const link = await links1;
    assert.equal(link.role, 'child');
    // Signals pass over a link between its two ends only.
    const peerOf = (sock) => sock.snapshot.then((snap) => snap.self.peerId);
    const [pT, p1, pB] = await Promise.all([peerOf(sockT), peerOf(sock1), peerOf(sockB)]);
    const parentSock = link.peer === pT ? sockT : link.peer === (await peerOf(sock2)) ? sock2 : lateSock;
    const relayed = next(parentSock, 'signal');
    assert.equal((await call(sock1, 'signal', { transferId: link.linkId, to: link.peer, data: { sdp: 'x' } })).ok, true);
    assert.equal((await relayed).from, p1);
    assert.equal((await call(sockB, 'signal', { transferId: link.linkId, to: p1, data: {} })).error.code, 'not_party');
    assert.equal((await call(sock1, 'signal', { transferId: link.linkId, to: pB, data: {} })).error.code, 'not_party');
    // A receiver's progress reaches the sender.
    const progress = next(sockT, 'broadcast:progress');
    assert.equal((await call(sock1, 'broadcast:status', { broadcastId: ack.broadcastId, state: 'receiving', bytes: 2 })).ok, true);
    const pr = await progress;
    assert.equal(pr.peer.peerId, p1);
    assert.equal(pr.bytes, 2);
    // A device that joins the lab while it runs is offered it, and placed in the tree.
    const st3 = await s.user('joiner');
    const joined = next(sockT, 'broadcast:progress');
    const sock3 = await s.connect({ token: st3.token, localAddress: A });
    const offer3 = next(sock3, 'broadcast:offer');
    const manifest3 = next(sock3, 'broadcast:manifest');
    const link3 = next(sock3, 'broadcast:link');
    assert.equal((await offer3).broadcastId, ack.broadcastId);
    assert.equal((await manifest3).hashes.length, pieces);
    assert.equal((await link3).role, 'child');
    assert.equal((await joined).peer.username, 'joiner');

    const other = await call(sockT, 'broadcast:start', { target: { lab: 'Lab B' }, files: FILES });
    assert.equal(other.error.code, 'forbidden');
    const all = await call(sockT, 'broadcast:start', { target: { all: true }, files: FILES });
    assert.equal(all.error.code, 'forbidden');
  });
});

describe('request size', () => {
  let s;
  let sa;
  let sb;
  let pb;
  before(async () => {
    s = await startServer();
    const a = await s.user('sizea');
    const b = await s.user('sizeb');
    sa = await s.connect({ token: a.token });
    sb = await s.connect({ token: b.token });
    await sa.snapshot;
    pb = (await sb.snapshot).self.peerId;
  });
  after(() => s.stop());

  test('2,000 files in under 64 KiB get too_many_files with the limit, and the socket stays connected', async () => {
    const files = Array.from({ length: 2000 }, (_, i) => ({ name: `f${i}`, size: 1 }));
    const bytes = Buffer.byteLength(JSON.stringify(['transfer:request', { to: pb, files }]));
    assert.ok(bytes < 60 * 1024, `the request is ${bytes} bytes: it must pass the 64 KiB transport cap`);
    const quiet = arrives(sb, 'transfer:incoming', 500);
    const ack = await call(sa, 'transfer:request', { to: pb, files });
    assert.equal(ack.error?.code, 'too_many_files', JSON.stringify(ack).slice(0, 300));
    assert.match(ack.error.message, /\b100\b/, 'the message names the limit');
    assert.equal(await quiet, false);
    assert.equal(sa.connected, true);
    // The same socket goes on working: 101 files are refused the same way, 100 are fine.
    assert.equal((await call(sa, 'transfer:request', { to: pb, files: files.slice(0, 101) })).error?.code, 'too_many_files');
    const ok = await call(sa, 'transfer:request', { to: pb, files: files.slice(0, 100) });
    assert.equal(ok.ok, true, JSON.stringify(ok));
  });

  test('a request at the limits (100 files, 255-byte names and MIME types, the largest sizes) fits under 64 KiB and is accepted', async () => {
    // 255 bytes of JSON text: multi-byte characters and quotes (escaped: two bytes) included.
    const name = (i) => {
      const head = `dir"${String(i).padStart(3, '0')}/ü€😀`;
      return head + 'n'.repeat(255 - Buffer.byteLength(JSON.stringify(head)) + 2);
    };
    const mime = `application/x-${'m'.repeat(255 - 14)}`;
    const files = Array.from({ length: 100 }, (_, i) => ({ name: name(i), size: 107374182400, mime }));
    assert.equal(Buffer.byteLength(JSON.stringify(files[0].name)) - 2, 255);
    const message = `42999999["transfer:request",${JSON.stringify({ to: pb, files, part: { batch: 'b'.repeat(64), index: 9999, count: 10000, totalFiles: 999999, totalBytes: 9007199254740991 } })}]`;
    assert.ok(Buffer.byteLength(message) < 64 * 1024 - 8 * 1024, `${Buffer.byteLength(message)} bytes`);
    const ack = await call(sa, 'transfer:request', { to: pb, files });
    assert.equal(ack.ok, true, JSON.stringify(ack).slice(0, 300));
    const longer = files.map((f, i) => (i === 7 ? { ...f, name: `${f.name}x` } : f));
    const refused = await call(sa, 'transfer:request', { to: pb, files: longer });
    assert.equal(refused.error?.code, 'invalid_payload');
    assert.match(refused.error.message, /255 bytes/);
  });

  test('a request that is one part of a larger send tells the receiver which', async () => {
    const part = { batch: '5f0e6d1c2b3a49887766554433221100', index: 2, count: 3, totalFiles: 250, totalBytes: 100_000 };
    const incoming = next(sb, 'transfer:incoming');
    const ack = await call(sa, 'transfer:request', { to: pb, files: FILES, part });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    const inc = await incoming;
    assert.equal(inc.transferId, ack.transferId);
    assert.deepEqual(inc.part, part);
    for (const bad of [{ ...part, index: 4 }, { ...part, totalFiles: 1000 }, { ...part, batch: 'a b' }, { ...part, extra: 1 }]) {
      assert.equal((await call(sa, 'transfer:request', { to: pb, files: FILES, part: bad })).error?.code, 'invalid_payload', JSON.stringify(bad));
    }
  });
});

describe('devices per user', () => {
  let s;
  before(async () => {
    s = await startServer();
  });
  after(() => s.stop());

  const refusal = (opts) =>
    s.connect(opts).then(
      (sock) => {
        sock.close();
        assert.fail('connected');
      },
      (e) => e.message,
    );
  const deviceId = (i) => `device-${i}-0123456789abcdef`;

  test('the fifth device is refused with too_many_devices; a device that reconnects is not; a freed place is taken', async () => {
    const u = await s.user('many');
    const socks = [];
    for (let i = 0; i < 4; i++) {
      const sock = await s.connect({ token: u.token, device: `PC ${i}`, deviceId: deviceId(i) });
      await sock.snapshot;
      socks.push(sock);
    }
    assert.equal(await refusal({ token: u.token, deviceId: deviceId(4) }), 'too_many_devices');
    assert.equal(await refusal({ token: u.token }), 'too_many_devices', 'without a deviceId a connection is a device of its own');
    // Another user is not affected.
    const other = await s.user('other');
    await (await s.connect({ token: other.token, deviceId: deviceId(4) })).snapshot;

    // Device 0 reconnects while the server still holds its old socket (not noticed gone yet).
    const again = await s.connect({ token: u.token, device: 'PC 0', deviceId: deviceId(0) });
    assert.equal((await again.snapshot).self.username, 'many');
    assert.equal(socks[0].connected, true);

    // Device 1 leaves: its place is free for a new device.
    const left = next(socks[2], 'presence:left');
    socks[1].close();
    await left;
    const fifth = await s.connect({ token: u.token, deviceId: deviceId(4) });
    await fifth.snapshot;
    assert.equal(await refusal({ token: u.token, deviceId: deviceId(5) }), 'too_many_devices');
  });

  test('one device holds at most 8 connections (tabs); the cap is a setting, 0 turns it off', async () => {
    const u = await s.user('tabs');
    for (let i = 0; i < 8; i++) await (await s.connect({ token: u.token, deviceId: deviceId(9) })).snapshot;
    assert.equal(await refusal({ token: u.token, deviceId: deviceId(9) }), 'too_many_connections');

    const v = await s.user('lab-pcs');
    s.cli(['setting', 'set', 'signaling.max_devices_per_user', '2']);
    for (let i = 0; i < 2; i++) await (await s.connect({ token: v.token, deviceId: deviceId(i) })).snapshot;
    assert.equal(await refusal({ token: v.token, deviceId: deviceId(2) }), 'too_many_devices');
    s.cli(['setting', 'set', 'signaling.max_devices_per_user', '0']);
    for (let i = 2; i < 12; i++) await (await s.connect({ token: v.token, deviceId: deviceId(i) })).snapshot;
  });
});

describe('limits and revocation', () => {
  let s;
  before(async () => {
    s = await startServer();
    s.cli(['setting', 'set', 'transfer.requests_per_minute', '3']);
  });
  after(() => s.stop());

  test('request rate limit per user', async () => {
    const a = await s.user('ra');
    const b = await s.user('rb');
    const sa = await s.connect({ token: a.token });
    const sb = await s.connect({ token: b.token });
    await sa.snapshot;
    const pb = (await sb.snapshot).self.peerId;
    for (let i = 0; i < 3; i++) {
      const ack = await call(sa, 'transfer:request', { to: pb, files: FILES });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      await call(sb, 'transfer:respond', { transferId: ack.transferId, accept: false });
    }
    assert.equal((await call(sa, 'transfer:request', { to: pb, files: FILES })).error.code, 'rate_limited');
  });

  test('an event flood is limited and the server stays responsive', async () => {
    const f = await s.user('flood');
    const sock = await s.connect({ token: f.token });
    await sock.snapshot;
    const acks = await Promise.all(
      Array.from({ length: 400 }, () => call(sock, 'signal', { transferId: 'x', to: 'y', data: {} }, 10_000)),
    );
    const limited = acks.filter((a) => a.error?.code === 'rate_limited').length;
    assert.ok(limited >= 150, `only ${limited} of 400 were limited`);
    const health = await s.request('GET', '/healthz');
    assert.equal(health.status, 200);
  });

  test('an oversized message closes only that connection', async () => {
    const o = await s.user('big');
    const sock = await s.connect({ token: o.token });
    await sock.snapshot;
    const closed = next(sock, 'disconnect');
    sock.emit('signal', { transferId: 'x', to: 'y', data: 'z'.repeat(200_000) });
    await closed;
    const again = await s.connect({ token: o.token });
    assert.equal((await again.snapshot).self.username, 'big');
  });

  test('logout and disabling disconnect the user’s sockets', async () => {
    const u = await s.user('leaver');
    const sock = await s.connect({ token: u.token });
    await sock.snapshot;
    const gone = next(sock, 'disconnect');
    await s.request('POST', '/api/auth/logout', { token: u.token });
    assert.equal(await gone, 'io server disconnect');

    const v = await s.user('victim');
    const sock2 = await s.connect({ token: v.token });
    await sock2.snapshot;
    const gone2 = next(sock2, 'disconnect', 8000);
    s.cli(['user', 'disable', 'victim']);
    assert.equal(await gone2, 'io server disconnect');
    assert.ok(PASSWORD);
  });
});

await sleep(0);
