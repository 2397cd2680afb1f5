// An exam window (`labbeam lab policy NAME --exam-from TIME --exam-until TIME`), applied by
// the running server by itself: set from another process while two students of the lab are
// connected, it switches exam mode on once its start comes (each student is told,
// `exam:state`, then re-joins bound, and a request between them is refused with
// `exam_mode`), and off once its end comes (told again; requests work again); the audit log
// names the schedule as who switched, and the window is gone afterwards.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { call, droppedWithin, next, startServer } from './harness.mjs';

const FILES = [{ name: 'notes.txt', size: 1000, mime: 'text/plain' }];
// Lab S holds 127.0.0.96 to .99: two students.
const [ANN, BEA] = ['127.0.0.96', '127.0.0.97'];

/** Unix seconds as RFC 3339 in UTC, without fractions. */
function rfc3339(unix) {
  return new Date(unix * 1000).toISOString().replace('.000Z', 'Z');
}

/** Milliseconds from now until unix second `unix`, plus `slack` ms. */
function untilPlus(unix, slack) {
  return Math.max(0, unix * 1000 - Date.now()) + slack;
}

describe('exam window', () => {
  let s;
  let ann;
  let bea;
  let admin;
  before(async () => {
    s = await startServer();
    s.cli(['lab', 'add', 'Lab S', '--cidr', '127.0.0.96/30']);
    ann = await s.user('ann');
    bea = await s.user('bea');
    admin = await s.admin();
  });
  after(() => s.stop());

  test('its start switches exam mode on for the lab, its end off again, both as the schedule', async () => {
    let sockA = await s.connect({ token: ann.token, localAddress: ANN });
    assert.deepEqual((await sockA.snapshot).exam, { lab: 'Lab S', on: false, bound: false });
    let sockB = await s.connect({ token: bea.token, localAddress: BEA });
    await sockB.snapshot;

    // A window from about 2 s from now, 4 s long.
    const from = Math.ceil(Date.now() / 1000) + 2;
    const until = from + 4;
    const said = s.cli(['lab', 'policy', 'Lab S', '--exam-from', rfc3339(from), '--exam-until', rfc3339(until)]);
    assert.match(said, /^exam window of Lab S is now .*: exam mode goes on at its start and off at its end$/m);
    assert.match(s.cli(['lab', 'list']), /\(exam window /);

    // The start: both students are told, then re-join under exam mode.
    const onA = next(sockA, 'exam:state', untilPlus(from, 6000));
    const onB = next(sockB, 'exam:state', untilPlus(from, 6000));
    const droppedA = droppedWithin(sockA, untilPlus(from, 8000));
    const droppedB = droppedWithin(sockB, untilPlus(from, 8000));
    assert.deepEqual(await onA, { lab: 'Lab S', on: true, bound: true });
    const startedAt = Date.now();
    assert.ok(startedAt >= from * 1000, `exam mode came ${from * 1000 - startedAt} ms before the window's start`);
    assert.ok(startedAt <= from * 1000 + 2500, `exam mode came ${startedAt - from * 1000} ms after the window's start`);
    assert.deepEqual(await onB, { lab: 'Lab S', on: true, bound: true });
    await droppedA;
    await droppedB;
    sockA = await s.connect({ token: ann.token, localAddress: ANN });
    sockB = await s.connect({ token: bea.token, localAddress: BEA });
    assert.deepEqual((await sockA.snapshot).exam, { lab: 'Lab S', on: true, bound: true });
    const snapB = await sockB.snapshot;
    assert.deepEqual(snapB.peers, [], 'a bound student sees no other student');
    const refused = await call(sockA, 'transfer:request', { to: snapB.self.peerId, files: FILES });
    assert.equal(refused.error?.code, 'exam_mode', JSON.stringify(refused));
    assert.ok(Date.now() < until * 1000, 'the refusal came while the window ran');

    // The end: told again, re-joined without it; a request goes through.
    const offA = next(sockA, 'exam:state', untilPlus(until, 6000));
    const droppedA2 = droppedWithin(sockA, untilPlus(until, 8000));
    const droppedB2 = droppedWithin(sockB, untilPlus(until, 8000));
    assert.deepEqual(await offA, { lab: 'Lab S', on: false, bound: false });
    const endedAt = Date.now();
    assert.ok(endedAt >= until * 1000, `exam mode ended ${until * 1000 - endedAt} ms before the window's end`);
    assert.ok(endedAt <= until * 1000 + 2500, `exam mode ended ${endedAt - until * 1000} ms after the window's end`);
    await droppedA2;
    await droppedB2;
    sockB = await s.connect({ token: bea.token, localAddress: BEA });
    const snapB2 = await sockB.snapshot;
    sockA = await s.connect({ token: ann.token, localAddress: ANN });
    assert.deepEqual((await sockA.snapshot).exam, { lab: 'Lab S', on: false, bound: false });
    const asked = await call(sockA, 'transfer:request', { to: snapB2.self.peerId, files: FILES });
    assert.equal(asked.ok, true, JSON.stringify(asked));

    // Who did it: the schedule, once each; its window is gone.
    const audit = await s.request('GET', '/api/audit?action=lab.policy', { token: admin.token });
    const bySchedule = audit.body.filter((r) => r.actor_username === 'schedule').map((r) => JSON.parse(r.details));
    assert.deepEqual(bySchedule, [{ exam: false }, { exam_window: null, before: { from, until } }, { exam: true }]);
    assert.doesNotMatch(s.cli(['lab', 'list']), /exam window/);
    for (const sock of [sockA, sockB]) sock.close();
  });
});
