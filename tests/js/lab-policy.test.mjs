// A lab's policies from the web client: `lab:policy {lab, exam?, visibility?}` and
// `lab:policies`. The lab's responsible instructor switches exam mode on for their lab and
// its students are told within 2 s (`exam:state`); the change is in the audit log under the
// instructor's name. Students, instructors of other labs, unknown labs and empty or bad
// payloads are refused with their codes, and change nothing; `lab:policies` lists the labs
// the caller may set (an admin: every lab) with their state and exam window.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { call, droppedWithin, next, startServer } from './harness.mjs';

// Lab P holds 127.0.0.100 to .103: two students and their instructor; Lab Q .104 to .107.
const [ANN, BEA, TOM] = ['127.0.0.100', '127.0.0.101', '127.0.0.102'];
const IVY = '127.0.0.104';

/** The ack of an event sent without any payload. */
function bare(socket, event) {
  return socket.timeout(5000).emitWithAck(event);
}

describe('lab policies from the web client', () => {
  let s;
  let ann;
  let bea;
  let tom;
  let ivy;
  let admin;
  before(async () => {
    s = await startServer();
    s.cli(['lab', 'add', 'Lab P', '--cidr', '127.0.0.100/30']);
    s.cli(['lab', 'add', 'Lab Q', '--cidr', '127.0.0.104/30']);
    ann = await s.user('ann');
    bea = await s.user('bea');
    tom = await s.user('tom', 'instructor');
    ivy = await s.user('ivy', 'instructor');
    s.cli(['lab', 'assign', 'Lab P', 'tom']);
    s.cli(['lab', 'assign', 'Lab Q', 'ivy']);
    admin = await s.admin();
  });
  after(() => s.stop());

  test('refused to students, for other labs, for unknown labs and without a policy; nothing changes', async () => {
    const sockA = await s.connect({ token: ann.token, localAddress: ANN });
    const sockT = await s.connect({ token: tom.token, localAddress: TOM });
    for (const [sock, event, payload, code] of [
      [sockA, 'lab:policy', { lab: 'Lab P', exam: true }, 'forbidden'],
      [sockA, 'lab:policies', {}, 'forbidden'],
      [sockT, 'lab:policy', { lab: 'Lab Q', exam: true }, 'forbidden'],
      [sockT, 'lab:policy', { lab: 'Lab Z', exam: true }, 'unknown_lab'],
      [sockT, 'lab:policy', { lab: 'Lab P' }, 'invalid_payload'],
      [sockT, 'lab:policy', {}, 'invalid_payload'],
      [sockT, 'lab:policy', { lab: 'Lab P', exam: 'yes' }, 'invalid_payload'],
      [sockT, 'lab:policy', { lab: 'Lab P', visibility: 'everyone' }, 'invalid_payload'],
      [sockT, 'lab:policy', { lab: 'Lab P', exam: true, room: 'B' }, 'invalid_payload'],
      [sockT, 'lab:policies', { lab: 'Lab P' }, 'invalid_payload'],
    ]) {
      const ack = await call(sock, event, payload);
      assert.equal(ack.error?.code, code, `${event} ${JSON.stringify(payload)}: ${JSON.stringify(ack)}`);
      assert.ok(ack.error.message.length > 0);
    }
    const empty = await bare(sockT, 'lab:policy');
    assert.equal(empty.error?.code, 'invalid_payload', JSON.stringify(empty));
    const studentsNot = await call(sockA, 'lab:policy', { lab: 'Lab P', visibility: 'all' });
    assert.match(studentsNot.error.message, /broadcast\.send/);
    assert.doesNotMatch(s.cli(['lab', 'list']), /exam mode|sees/);
    const audit = await s.request('GET', '/api/audit?action=lab.policy', { token: admin.token });
    assert.deepEqual(audit.body, [], 'nothing refused was audited');
    sockA.close();
    sockT.close();
  });

  test('lab:policies lists the labs the caller may set: its own for an instructor, all for an admin', async () => {
    const sockT = await s.connect({ token: tom.token, localAddress: TOM });
    const sockAdmin = await s.connect({ token: admin.token });
    assert.deepEqual(await bare(sockT, 'lab:policies'), {
      ok: true,
      labs: [{ lab: 'Lab P', exam: false, visibility: 'default' }],
    });
    assert.deepEqual((await call(sockT, 'lab:policies', null)).labs.length, 1, 'null is no payload too');
    const all = await call(sockAdmin, 'lab:policies', {});
    assert.deepEqual(
      all.labs.map((l) => l.lab),
      ['Lab P', 'Lab Q'],
    );
    // An exam window shows as `schedule`.
    const from = Math.floor(Date.now() / 1000) + 3600;
    const iso = (t) => new Date(t * 1000).toISOString().replace('.000Z', 'Z');
    s.cli(['lab', 'policy', 'Lab Q', '--exam-from', iso(from), '--exam-until', iso(from + 1800)]);
    const q = (await call(sockAdmin, 'lab:policies', {})).labs.find((l) => l.lab === 'Lab Q');
    assert.deepEqual(q, { lab: 'Lab Q', exam: false, visibility: 'default', schedule: { from, until: from + 1800 } });
    s.cli(['lab', 'policy', 'Lab Q', '--exam-schedule', 'clear']);
    // The admin sets another lab's visibility; the instructor of that lab sees it.
    const set = await call(sockAdmin, 'lab:policy', { lab: 'lab q', visibility: 'own' });
    assert.deepEqual(set, { ok: true, lab: 'Lab Q', exam: false, visibility: 'own' });
    const sockI = await s.connect({ token: ivy.token, localAddress: IVY });
    assert.deepEqual((await call(sockI, 'lab:policies', {})).labs, [{ lab: 'Lab Q', exam: false, visibility: 'own' }]);
    for (const sock of [sockT, sockAdmin, sockI]) sock.close();
  });

  test("the lab's instructor switches exam mode on: its students are told at once; off again", async () => {
    const sockT = await s.connect({ token: tom.token, localAddress: TOM });
    let sockA = await s.connect({ token: ann.token, localAddress: ANN });
    await sockA.snapshot;
    let sockB = await s.connect({ token: bea.token, localAddress: BEA });
    await sockB.snapshot;

    // Generous waits: how fast is for benchmarks, not for tests on a loaded machine.
    const toldA = next(sockA, 'exam:state', 10_000);
    const toldB = next(sockB, 'exam:state', 10_000);
    const droppedA = droppedWithin(sockA, 10_000);
    const droppedB = droppedWithin(sockB, 10_000);
    const on = await call(sockT, 'lab:policy', { lab: 'Lab P', exam: true });
    assert.deepEqual(on, { ok: true, lab: 'Lab P', exam: true, visibility: 'default' });
    assert.deepEqual(await toldA, { lab: 'Lab P', on: true, bound: true });
    assert.deepEqual(await toldB, { lab: 'Lab P', on: true, bound: true });
    assert.match(s.cli(['lab', 'list']), /Lab P .*\(exam mode\)/);
    // The students re-join under it: a request between them is refused.
    await droppedA;
    await droppedB;
    sockB = await s.connect({ token: bea.token, localAddress: BEA });
    const snapB = await sockB.snapshot;
    sockA = await s.connect({ token: ann.token, localAddress: ANN });
    assert.deepEqual((await sockA.snapshot).exam, { lab: 'Lab P', on: true, bound: true });
    const refused = await call(sockA, 'transfer:request', {
      to: snapB.self.peerId,
      files: [{ name: 'a.txt', size: 1, mime: 'text/plain' }],
    });
    assert.equal(refused.error?.code, 'exam_mode');
    // Repeated: nothing changes, nobody is told again.
    assert.deepEqual(await call(sockT, 'lab:policy', { lab: 'Lab P', exam: true }), on);

    // Both at once: the visibility first, then exam mode off.
    const off = next(sockA, 'exam:state', 10_000);
    const both = await call(sockT, 'lab:policy', { lab: 'Lab P', exam: false, visibility: 'all' });
    assert.deepEqual(both, { ok: true, lab: 'Lab P', exam: false, visibility: 'all' });
    assert.deepEqual(await off, { lab: 'Lab P', on: false, bound: false });

    const audit = await s.request('GET', '/api/audit?action=lab.policy', { token: admin.token });
    const byTom = audit.body.filter((r) => r.actor_username === 'tom');
    assert.deepEqual(
      byTom.map((r) => [r.target, JSON.parse(r.details)]),
      [
        ['lab:Lab P', { exam: false }],
        ['lab:Lab P', { visibility: 'all', before: null }],
        ['lab:Lab P', { exam: true }],
      ],
      'each change once, the repeat not at all',
    );
    assert.equal(byTom[0].client_addr, TOM, "the instructor's address");
    for (const sock of [sockT, sockA, sockB]) sock.close();
  });
});
