// Seat names: a device connecting from an address of a lab's seat map is shown under the
// seat's name (presence, transfer requests, the transfer log), else under the name its
// user gave it, else under one from its address; and a seat renamed by the command line
// reaches the live sockets at that address (they are dropped and re-join under the new
// name, as for any access change).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { call, droppedWithin, next, startServer } from './harness.mjs';

const FILES = [{ name: 'notes.pdf', size: 1000, mime: 'application/pdf' }];
// Lab S holds 127.0.0.60 and .61; .60 is seat PC-60.
const [SEAT, FREE] = ['127.0.0.60', '127.0.0.61'];

/** The next `presence:joined` on `socket` for a device of user `username`. */
function joinedBy(socket, username, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${username} did not join within ${ms} ms`)), ms);
    const handler = (peer) => {
      if (peer.username !== username) return;
      clearTimeout(timer);
      socket.off('presence:joined', handler);
      resolve(peer);
    };
    socket.on('presence:joined', handler);
  });
}

describe('seat names', () => {
  let s;
  let kim;
  let lee;
  before(async () => {
    s = await startServer();
    s.cli(['lab', 'add', 'Lab S', '--cidr', '127.0.0.60/31']);
    assert.match(s.cli(['lab', 'seat', 'Lab S', SEAT, 'PC-60']), /127\.0\.0\.60 in Lab S is now PC-60/);
    kim = await s.user('kim');
    lee = await s.user('lee');
  });
  after(() => s.stop());

  test("a seat's name beats the user's, which beats the address; requests and the log carry it", async () => {
    const sockL = await s.connect({ token: lee.token, localAddress: FREE });
    const snapL = await sockL.snapshot;
    assert.equal(snapL.self.device, 'PC .61', 'no seat, no name given: from the address');
    const seen = joinedBy(sockL, 'kim');
    // Kim's browser sends the name she gave this PC; the seat's name wins.
    const sockK = await s.connect({ token: kim.token, localAddress: SEAT, device: "Kim's laptop" });
    const snapK = await sockK.snapshot;
    assert.equal(snapK.self.device, 'PC-60');
    assert.equal(snapK.self.lab, 'Lab S');
    assert.equal((await seen).device, 'PC-60', 'others see the seat name');
    assert.equal(snapK.peers.find((p) => p.username === 'lee')?.device, 'PC .61');

    // No seat: the user's own name.
    const named = await s.connect({ token: lee.token, localAddress: FREE, device: "Lee's PC" });
    assert.equal((await named.snapshot).self.device, "Lee's PC");
    named.close();

    const incoming = next(sockL, 'transfer:incoming');
    const ack = await call(sockK, 'transfer:request', { to: snapL.self.peerId, files: FILES });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal((await incoming).from.device, 'PC-60', 'the request names the seat');
    const hist = await s.request('GET', '/api/transfers', { token: kim.token });
    const row = hist.body.transfers.find((t) => t.id === ack.transferId);
    assert.ok(row, JSON.stringify(hist.body));
    assert.equal(row.sender_device, 'PC-60', 'the transfer log records the seat name');
    assert.equal(row.receiver_device, 'PC .61');
    sockK.close();
    sockL.close();
  });

  test('a renamed seat reaches the live socket at its address; a removed one gives the name back', async () => {
    const sockL = await s.connect({ token: lee.token, localAddress: FREE });
    await sockL.snapshot;
    let sockK = await s.connect({ token: kim.token, localAddress: SEAT, device: "Kim's laptop" });
    assert.equal((await sockK.snapshot).self.device, 'PC-60');

    // Renamed by another process (the command line): kim's socket is dropped at once and
    // re-joins under the new name; lee's is not touched and sees the new name.
    const dropped = droppedWithin(sockK, 2000);
    let stays = true;
    sockL.once('disconnect', () => {
      stays = false;
    });
    s.cli(['lab', 'seat', 'Lab S', SEAT, 'PC-60 (window)']);
    assert.equal(await dropped, 'io server disconnect');
    const seen = joinedBy(sockL, 'kim');
    sockK = await s.connect({ token: kim.token, localAddress: SEAT, device: "Kim's laptop" });
    assert.equal((await sockK.snapshot).self.device, 'PC-60 (window)');
    assert.equal((await seen).device, 'PC-60 (window)');

    // Removed: back to the name kim gave her computer.
    const droppedAgain = droppedWithin(sockK, 2000);
    s.cli(['lab', 'seat', 'Lab S', SEAT, '--remove']);
    await droppedAgain;
    sockK = await s.connect({ token: kim.token, localAddress: SEAT, device: "Kim's laptop" });
    assert.equal((await sockK.snapshot).self.device, "Kim's laptop");
    assert.equal(stays, true, "lee's socket, at an address whose seat did not change, stayed");
    sockK.close();
    sockL.close();
  });
});
