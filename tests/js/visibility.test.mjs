// A lab's own visibility (`labbeam lab policy NAME --visibility own|all|default`), live: set
// from the command line while sockets are connected, it reaches the lab's students and the
// presence lists of the other labs at once (the waits allow 5 s on a loaded machine), through the access change path; the setting
// `presence.scope` stays what labs without a choice of their own follow.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { arrives, call, droppedWithin, next, startServer } from './harness.mjs';

const FILES = [{ name: 'notes.txt', size: 100, mime: 'text/plain' }];
// Lab V1: ann and the instructor tom; Lab V2: bea; Lab V3: cid.
const [ANN, TOM, BEA, CID] = ['127.0.0.80', '127.0.0.81', '127.0.0.84', '127.0.0.88'];

/** Usernames in a snapshot's peer list, sorted. */
function seen(snapshot) {
  return snapshot.peers.map((p) => p.username).sort();
}

describe('lab visibility', () => {
  let s;
  let ann;
  let bea;
  let cid;
  let tom;
  // The instructor stays connected through both tests: seeing everyone, it tells when the
  // students of one test have left.
  let sockT;
  before(async () => {
    s = await startServer();
    s.cli(['lab', 'add', 'Lab V1', '--cidr', '127.0.0.80/30']);
    s.cli(['lab', 'add', 'Lab V2', '--cidr', '127.0.0.84/30']);
    s.cli(['lab', 'add', 'Lab V3', '--cidr', '127.0.0.88/30']);
    ann = await s.user('ann');
    bea = await s.user('bea');
    cid = await s.user('cid');
    tom = await s.user('tom', 'instructor');
  });
  after(() => {
    sockT?.close();
    return s.stop();
  });

  test('own lab only beats presence.scope = all, live, and default gives the setting back', async () => {
    s.cli(['setting', 'set', 'presence.scope', 'all']);
    sockT = await s.connect({ token: tom.token, localAddress: TOM });
    await sockT.snapshot;
    const sockA = await s.connect({ token: ann.token, localAddress: ANN });
    await sockA.snapshot;
    const sockC = await s.connect({ token: cid.token, localAddress: CID });
    await sockC.snapshot;
    let sockB = await s.connect({ token: bea.token, localAddress: BEA });
    assert.deepEqual(seen(await sockB.snapshot), ['ann', 'cid', 'tom'], 'scope all: every lab');
    const beaPeer = (await sockB.snapshot).self.peerId;

    // Lab V2 keeps its students to themselves: bea re-joins, and the others' lists lose her.
    const annLosesBea = next(sockA, 'presence:left');
    const cidLosesBea = next(sockC, 'presence:left');
    const dropped = droppedWithin(sockB, 2000);
    let othersStay = true;
    for (const sock of [sockA, sockC, sockT]) {
      sock.once('disconnect', () => {
        othersStay = false;
      });
    }
    const started = Date.now();
    assert.match(
      s.cli(['lab', 'policy', 'Lab V2', '--visibility', 'own']),
      /visibility of Lab V2 is now own lab only/,
    );
    assert.equal((await annLosesBea).peerId, beaPeer);
    assert.equal((await cidLosesBea).peerId, beaPeer);
    assert.equal(await dropped, 'io server disconnect');
    assert.ok(Date.now() - started < 2000, `applied after ${Date.now() - started} ms`);

    const tomSeesBea = next(sockT, 'presence:joined');
    const annToldOfBea = arrives(sockA, 'presence:joined', 1000);
    sockB = await s.connect({ token: bea.token, localAddress: BEA });
    const snapB = await sockB.snapshot;
    assert.deepEqual(seen(snapB), [], 'her own lab only: nobody else is in Lab V2');
    assert.equal((await tomSeesBea).username, 'bea', 'an instructor of another lab still sees her');
    assert.equal(await annToldOfBea, false, 'a student of another lab is not told of her');
    const snapA = await sockA.snapshot;
    const refused = await call(sockA, 'transfer:request', { to: snapB.self.peerId, files: FILES });
    assert.equal(refused.error?.code, 'peer_offline', JSON.stringify(refused));
    const out = await call(sockB, 'transfer:request', { to: snapA.self.peerId, files: FILES });
    assert.equal(out.error?.code, 'peer_offline', JSON.stringify(out));
    // The instructor still reaches her.
    const toBea = await call(sockT, 'transfer:request', { to: snapB.self.peerId, files: FILES });
    assert.equal(toBea.ok, true, JSON.stringify(toBea));
    assert.equal(othersStay, true, 'only the devices of Lab V2 re-joined');

    // Back to the setting: she sees every lab again, and is seen.
    const dropped2 = droppedWithin(sockB, 2000);
    assert.match(
      s.cli(['lab', 'policy', 'Lab V2', '--visibility', 'default']),
      /visibility of Lab V2 is now presence.scope \(default\)/,
    );
    await dropped2;
    const annSeesBea = next(sockA, 'presence:joined');
    sockB = await s.connect({ token: bea.token, localAddress: BEA });
    assert.deepEqual(seen(await sockB.snapshot), ['ann', 'cid', 'tom']);
    assert.equal((await annSeesBea).username, 'bea');
    const gone = new Promise((resolve) => {
      let left = 0;
      sockT.on('presence:left', () => {
        left += 1;
        if (left === 3) resolve();
      });
    });
    for (const sock of [sockA, sockB, sockC]) sock.close();
    await gone;
    sockT.removeAllListeners('presence:left');
  });

  test('all labs beats presence.scope = lab, and only between labs that both show every lab', async () => {
    s.cli(['setting', 'set', 'presence.scope', 'lab']);
    s.cli(['lab', 'policy', 'Lab V1', '--visibility', 'all']);
    s.cli(['lab', 'policy', 'Lab V3', '--visibility', 'all']);
    const sockA = await s.connect({ token: ann.token, localAddress: ANN });
    assert.deepEqual(seen(await sockA.snapshot), ['tom']);
    const sockB = await s.connect({ token: bea.token, localAddress: BEA });
    assert.deepEqual(seen(await sockB.snapshot), [], 'Lab V2 follows presence.scope = lab');
    const annSeesCid = next(sockA, 'presence:joined');
    const beaToldOfCid = arrives(sockB, 'presence:joined', 1000);
    const sockC = await s.connect({ token: cid.token, localAddress: CID });
    assert.deepEqual(seen(await sockC.snapshot), ['ann', 'tom'], 'the other lab that shows every lab, not bea');
    assert.equal((await annSeesCid).username, 'cid');
    assert.equal(await beaToldOfCid, false);
    const asked = await call(sockC, 'transfer:request', { to: (await sockA.snapshot).self.peerId, files: FILES });
    assert.equal(asked.ok, true, JSON.stringify(asked));

    // Lab V3 back to the setting (lab): cid re-joins alone, ann's list loses him.
    const annLosesCid = next(sockA, 'presence:left');
    const dropped = droppedWithin(sockC, 2000);
    s.cli(['lab', 'policy', 'Lab V3', '--visibility', 'default']);
    await annLosesCid;
    await dropped;
    const again = await s.connect({ token: cid.token, localAddress: CID });
    assert.deepEqual(seen(await again.snapshot), [], 'its own lab only: not even the instructor of Lab V1');
    for (const sock of [sockA, sockB, again]) sock.close();
  });
});
