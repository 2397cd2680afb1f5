// Exam mode (`labbeam lab policy NAME --exam on|off`), live: switched on from the command
// line while sockets are connected, it cancels the one-to-one transfer under way between
// two students of the lab (`transfer:cancelled`, reason `exam_mode`) at once, the students
// re-join seeing only the lab's instructor, and a request between them (or to the
// instructor) is refused with `exam_mode`; the instructor still sees them and still
// broadcasts to them. Every device of the lab is told (`exam:state`; the snapshot's `exam`).
// The waits allow 5 s: the 2 s goal is the server's, and a loaded machine is not a benchmark.
// Switched off, everything is back.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { call, droppedWithin, next, startServer } from './harness.mjs';

const FILES = [{ name: 'answers.txt', size: 1000, mime: 'text/plain' }];
// Lab E holds 127.0.0.68 to .71: two students and their instructor.
const [ANN, BEA, TOM] = ['127.0.0.68', '127.0.0.69', '127.0.0.70'];

/** Usernames in a snapshot's peer list, sorted. */
function seen(snapshot) {
  return snapshot.peers.map((p) => p.username).sort();
}

describe('exam mode', () => {
  let s;
  let ann;
  let bea;
  let tom;
  before(async () => {
    s = await startServer();
    s.cli(['lab', 'add', 'Lab E', '--cidr', '127.0.0.68/30']);
    ann = await s.user('ann');
    bea = await s.user('bea');
    tom = await s.user('tom', 'instructor');
    s.cli(['lab', 'assign', 'Lab E', 'tom']);
  });
  after(() => s.stop());

  test('switched on: the transfer under way stops, presence shrinks, requests are refused; off: back', async () => {
    const sockT = await s.connect({ token: tom.token, localAddress: TOM });
    assert.deepEqual((await sockT.snapshot).exam, { lab: 'Lab E', on: false, bound: false });
    let sockA = await s.connect({ token: ann.token, localAddress: ANN });
    await sockA.snapshot;
    let sockB = await s.connect({ token: bea.token, localAddress: BEA });
    let snapB = await sockB.snapshot;
    assert.deepEqual(seen(snapB), ['ann', 'tom']);

    // A transfer between the two students, accepted and under way.
    const incoming = next(sockB, 'transfer:incoming');
    const asked = await call(sockA, 'transfer:request', { to: snapB.self.peerId, files: FILES });
    assert.equal(asked.ok, true, JSON.stringify(asked));
    const { transferId } = await incoming;
    const accepted = next(sockA, 'transfer:accepted');
    assert.equal((await call(sockB, 'transfer:respond', { transferId, accept: true })).ok, true);
    await accepted;

    // Exam mode on, from another process: both sides are told within 2 s, then re-join.
    const cancelledA = next(sockA, 'transfer:cancelled');
    const cancelledB = next(sockB, 'transfer:cancelled');
    const droppedA = droppedWithin(sockA, 2000);
    const droppedB = droppedWithin(sockB, 2000);
    let tomStays = true;
    sockT.once('disconnect', () => {
      tomStays = false;
    });
    // Every device of the lab is told (exam:state), the instructor too, who stays connected.
    const tomTold = next(sockT, 'exam:state');
    const annTold = next(sockA, 'exam:state');
    const started = Date.now();
    assert.match(s.cli(['lab', 'policy', 'Lab E', '--exam', 'on']), /exam mode of Lab E is now on/);
    assert.deepEqual(await tomTold, { lab: 'Lab E', on: true, bound: false });
    assert.deepEqual(await annTold, { lab: 'Lab E', on: true, bound: true });
    for (const cancelled of [await cancelledA, await cancelledB]) {
      assert.equal(cancelled.transferId, transferId);
      assert.equal(cancelled.reason, 'exam_mode');
    }
    assert.ok(Date.now() - started < 2000, `cancelled after ${Date.now() - started} ms`);
    assert.equal(await droppedA, 'io server disconnect');
    assert.equal(await droppedB, 'io server disconnect');
    const hist = await s.request('GET', '/api/transfers', { token: ann.token });
    const row = hist.body.transfers.find((t) => t.id === transferId);
    assert.equal(row?.status, 'cancelled', JSON.stringify(row));
    assert.match(row.failure_reason, /^exam_mode/);

    // Back in: each student sees the instructor only; the instructor sees both.
    const tomSeesA = next(sockT, 'presence:joined');
    sockA = await s.connect({ token: ann.token, localAddress: ANN });
    assert.deepEqual(seen(await sockA.snapshot), ['tom']);
    assert.deepEqual((await sockA.snapshot).exam, { lab: 'Lab E', on: true, bound: true }, 'the snapshot says it too');
    assert.equal((await tomSeesA).username, 'ann');
    let annSawBea = false;
    sockA.on('presence:joined', (p) => {
      if (p.username === 'bea') annSawBea = true;
    });
    const tomSeesB = next(sockT, 'presence:joined');
    sockB = await s.connect({ token: bea.token, localAddress: BEA });
    snapB = await sockB.snapshot;
    assert.deepEqual(seen(snapB), ['tom']);
    assert.equal((await tomSeesB).username, 'bea');
    const snapA = await sockA.snapshot;

    // No one-to-one transfer for a student of the lab: to a student, from one, to the instructor.
    for (const [from, to] of [
      [sockA, snapB.self.peerId],
      [sockB, snapA.self.peerId],
      [sockA, (await sockA.snapshot).peers[0].peerId],
    ]) {
      const refused = await call(from, 'transfer:request', { to, files: FILES });
      assert.equal(refused.error?.code, 'exam_mode', JSON.stringify(refused));
    }
    // The instructor still broadcasts to the lab, and both students get the offer.
    const offerA = next(sockA, 'broadcast:offer');
    const offerB = next(sockB, 'broadcast:offer');
    const b = await call(sockT, 'broadcast:start', { target: { lab: 'Lab E' }, files: FILES });
    assert.equal(b.ok, true, JSON.stringify(b));
    assert.deepEqual(b.recipients.map((r) => r.peer.username).sort(), ['ann', 'bea']);
    await offerA;
    await offerB;
    assert.equal((await call(sockT, 'broadcast:cancel', { broadcastId: b.broadcastId })).ok, true);
    assert.equal(annSawBea, false, 'a student is not told of another student');

    // Off again: the students re-join and see each other; requests go through.
    const droppedA2 = droppedWithin(sockA, 2000);
    const droppedB2 = droppedWithin(sockB, 2000);
    const tomToldOff = next(sockT, 'exam:state');
    assert.match(s.cli(['lab', 'policy', 'Lab E', '--exam', 'off']), /exam mode of Lab E is now off/);
    assert.deepEqual(await tomToldOff, { lab: 'Lab E', on: false, bound: false });
    await droppedA2;
    await droppedB2;
    sockB = await s.connect({ token: bea.token, localAddress: BEA });
    snapB = await sockB.snapshot;
    sockA = await s.connect({ token: ann.token, localAddress: ANN });
    assert.deepEqual(seen(await sockA.snapshot), ['bea', 'tom']);
    assert.deepEqual((await sockA.snapshot).exam, { lab: 'Lab E', on: false, bound: false });
    const again = await call(sockA, 'transfer:request', { to: snapB.self.peerId, files: FILES });
    assert.equal(again.ok, true, JSON.stringify(again));
    assert.equal(tomStays, true, "the instructor's socket was never dropped");
    for (const sock of [sockA, sockB, sockT]) sock.close();
  });
});
