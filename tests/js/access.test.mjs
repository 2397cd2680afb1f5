// Access changes act on live sockets at once: a role, a role's permissions, an instructor's
// labs or a lab's ranges changed in the portal (or by the command line) re-evaluates the
// connected devices of the users concerned, which re-join with their new rights. And a
// device that picked its lab (only when an admin allows it) never gets that lab's
// announcements or auto-accepted broadcasts.

import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';

import { arrives, call, droppedWithin, next, startServer } from './harness.mjs';

const FILES = [{ name: 'notes.pdf', size: 1000, mime: 'application/pdf' }];

/** The portal as the signed-in `who` (cookie session): pages and form posts with CSRF. */
function portalOf(s, who) {
  const cookie = `labbeam_session=${who.token}`;
  const send = (method, pathname, form) =>
    new Promise((resolve, reject) => {
      const body = form ? new URLSearchParams(form).toString() : undefined;
      const headers = { cookie, ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) };
      const req = https.request(`${s.base}${pathname}`, { method, ca: s.ca, headers }, (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode, text }));
      });
      req.on('error', reject);
      if (body) req.write(body);
      req.end();
    });
  return {
    page: (pathname) => send('GET', pathname),
    async post(pathname, fields) {
      const page = await send('GET', '/admin');
      const csrf = page.text.match(/name="csrf" value="([^"]+)"/)?.[1];
      assert.ok(csrf, `no CSRF token on /admin (${page.status})`);
      const r = await send('POST', pathname, { csrf, ...fields });
      assert.ok(r.status === 303 || r.status === 302 || r.status === 200, `${pathname}: ${r.status} ${r.text.slice(0, 300)}`);
      return r;
    },
  };
}

describe('access changes reach live sockets', () => {
  const [A, R, X] = ['127.0.0.40', '127.0.0.41', '127.0.0.42'];
  let s;
  let admin;
  let portal;
  before(async () => {
    s = await startServer();
    s.cli(['lab', 'add', 'Lab A', '--cidr', `${A}/32`]);
    s.cli(['lab', 'add', 'Lab R', '--cidr', `${R}/32`]);
    admin = await s.admin();
    portal = portalOf(s, admin);
  });
  after(() => s.stop());

  test('an instructor who loses a lab, then the role, loses broadcast and announce at once', async () => {
    const prof = await s.user('prof', 'instructor');
    s.cli(['lab', 'assign', 'Lab A', 'prof']);
    const stud = await s.user('stud');
    const sockS = await s.connect({ token: stud.token, localAddress: A });
    let sockT = await s.connect({ token: prof.token, localAddress: A });
    await Promise.all([sockS.snapshot, sockT.snapshot]);
    const offered = next(sockS, 'broadcast:offer');
    assert.equal((await call(sockT, 'broadcast:start', { target: { lab: 'Lab A' }, files: FILES })).ok, true);
    await offered;

    // The lab is taken away in the portal (no lab ticked): the socket is dropped at once.
    const dropped = droppedWithin(sockT, 2000);
    await portal.post(`/admin/users/${prof.user.id}`, { display_name: 'prof', role: 'instructor' });
    assert.equal(await dropped, 'io server disconnect');
    sockT = await s.connect({ token: prof.token, localAddress: A });
    await sockT.snapshot;
    const refused = await call(sockT, 'broadcast:start', { target: { lab: 'Lab A' }, files: FILES });
    assert.equal(refused.error?.code, 'forbidden', JSON.stringify(refused));
    const quiet = await call(sockT, 'announce', { text: 'x', target: { lab: 'Lab A' } });
    assert.equal(quiet.error?.code, 'forbidden', JSON.stringify(quiet));

    // Demoted to student: dropped again; back with the student's rights.
    const dropped2 = droppedWithin(sockT, 2000);
    await portal.post(`/admin/users/${prof.user.id}`, { display_name: 'prof', role: 'student' });
    await dropped2;
    sockT = await s.connect({ token: prof.token, localAddress: A });
    assert.equal((await sockT.snapshot).self.role, 'student');
    const nope = await call(sockT, 'announce', { text: 'x', target: { lab: 'Lab A' } });
    assert.equal(nope.error?.code, 'forbidden');
    sockT.close();
    sockS.close();
  });

  test('a new event budget set by the command line applies to live sockets', async () => {
    const u = await s.user('budget');
    const sock = await s.connect({ token: u.token });
    await sock.snapshot;
    const flood = async (n) => {
      const acks = await Promise.all(
        Array.from({ length: n }, () => call(sock, 'signal', { transferId: 'x', to: 'y', data: {} }, 10_000)),
      );
      return acks.filter((a) => a.error?.code === 'rate_limited').length;
    };
    assert.equal(await flood(50), 0, 'the default burst takes 50 events');
    s.cli(['setting', 'set', 'signaling.events_per_second', '1']);
    s.cli(['setting', 'set', 'signaling.event_burst', '5']);
    // The server reads the settings again on its next sweep after the change (≤ 2.25 s).
    let limited = 0;
    for (let i = 0; i < 20 && limited === 0; i++) {
      await new Promise((r) => setTimeout(r, 250));
      limited = await flood(50);
    }
    assert.ok(limited > 0, 'the new budget never applied');
    // The bucket the old budget filled is spent now: a burst of 5 and 1 a second remain.
    limited = await flood(50);
    assert.ok(limited >= 40, `only ${limited} of 50 limited under a burst of 5`);
    s.cli(['setting', 'set', 'signaling.events_per_second', '50']);
    s.cli(['setting', 'set', 'signaling.event_burst', '200']);
    sock.close();
  });

  test('a role that loses transfer.send stops its users sending at once; other sockets stay', async () => {
    const kim = await s.user('kim');
    const lee = await s.user('lee');
    const teacher = await s.user('teacher2', 'instructor');
    let sockK = await s.connect({ token: kim.token, localAddress: A });
    const sockL = await s.connect({ token: lee.token, localAddress: A });
    const sockT = await s.connect({ token: teacher.token, localAddress: A });
    const [, snapL] = await Promise.all([sockK.snapshot, sockL.snapshot, sockT.snapshot]);
    const teacherStays = arrives(sockT, 'disconnect', 1500);
    const droppedK = droppedWithin(sockK, 2000);
    const droppedL = droppedWithin(sockL, 2000);
    // The student role keeps receive only (role 3 is the built-in student role).
    await portal.post('/admin/roles/3', { 'perm_transfer.receive': 'on' });
    await Promise.all([droppedK, droppedL]);
    assert.equal(await teacherStays, false, "an instructor's socket is not touched by the student role");
    sockK = await s.connect({ token: kim.token, localAddress: A });
    await sockK.snapshot;
    const req = await call(sockK, 'transfer:request', { to: snapL.self.peerId, files: FILES });
    assert.equal(req.error?.code, 'forbidden', JSON.stringify(req));
    // Put the permission back for the other tests.
    const droppedAgain = droppedWithin(sockK, 2000);
    await portal.post('/admin/roles/3', { 'perm_transfer.receive': 'on', 'perm_transfer.send': 'on' });
    await droppedAgain;
    sockT.close();
  });

  test("a lab's new ranges move its live devices; the command line acts too", async () => {
    const ray = await s.user('ray');
    let sock = await s.connect({ token: ray.token, localAddress: R });
    assert.equal((await sock.snapshot).self.lab, 'Lab R');
    const page = await portal.page('/admin/labs');
    const id = page.text.match(/data-lab="Lab R"[\s\S]*?action="\/admin\/labs\/(\d+)"/)?.[1];
    assert.ok(id, 'the lab form');
    const dropped = droppedWithin(sock, 2000);
    await portal.post(`/admin/labs/${id}`, { ranges: `${X}/32` });
    await dropped;
    sock = await s.connect({ token: ray.token, localAddress: R });
    assert.equal((await sock.snapshot).self.lab, 'Other');
    // Removed by `labbeam lab remove` (another process): devices placed by it move at once.
    const xs = await s.connect({ token: ray.token, localAddress: X, device: 'PC X' });
    assert.equal((await xs.snapshot).self.lab, 'Lab R');
    const droppedX = droppedWithin(xs, 2000);
    s.cli(['lab', 'remove', 'Lab R']);
    await droppedX;
    sock.close();
  });
});

describe('devices that picked their lab', () => {
  const S = '127.0.0.45';
  let s;
  before(async () => {
    s = await startServer();
    s.cli(['lab', 'add', 'Lab S', '--cidr', `${S}/32`]);
    s.cli(['setting', 'set', 'presence.lab_self_select', 'on']);
  });
  after(() => s.stop());

  test("get neither the lab's announcements nor auto-accepted broadcasts", async () => {
    const prof = await s.user('prof', 'instructor');
    s.cli(['lab', 'assign', 'Lab S', 'prof']);
    const here = await s.user('here');
    const away = await s.user('away');
    const sockT = await s.connect({ token: prof.token, localAddress: S });
    const sockHere = await s.connect({ token: here.token, localAddress: S });
    const sockAway = await s.connect({ token: away.token, lab: 'Lab S' });
    await Promise.all([sockT.snapshot, sockHere.snapshot]);
    assert.equal((await sockAway.snapshot).self.lab, 'Lab S', 'self-selection is on');

    const heard = next(sockHere, 'announcement');
    const awayHears = arrives(sockAway, 'announcement', 800);
    assert.equal((await call(sockT, 'announce', { text: 'Quiz at 11', target: { lab: 'Lab S' } })).ok, true);
    assert.equal((await heard).text, 'Quiz at 11');
    assert.equal(await awayHears, false);
    // Nor does it get the lab's live announcements when it connects.
    const late = await s.connect({ token: away.token, lab: 'Lab S', device: 'second' });
    assert.equal(await arrives(late, 'announcement', 800), false);
    late.close();

    const offerHere = next(sockHere, 'broadcast:offer');
    const offerAway = next(sockAway, 'broadcast:offer');
    assert.equal((await call(sockT, 'broadcast:start', { target: { lab: 'Lab S' }, files: FILES })).ok, true);
    assert.equal((await offerHere).autoAccept, true);
    assert.equal((await offerAway).autoAccept, false, 'asked, not auto-accepted');
    for (const sock of [sockT, sockHere, sockAway]) sock.close();
  });
});
