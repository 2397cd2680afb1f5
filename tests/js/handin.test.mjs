// Hand-ins over Socket.IO against the real binary (docs/PROTOCOL.md, "Hand-ins"): an
// instructor opens one for a lab, the lab's devices are told (and late joiners on connect),
// students' files are offered to the instructor's browser as transfers marked `handin`,
// the instructor's receipt reaches the student, a re-submission is the next version, and
// closing stops it. Then every refusal: who may open, for which lab, what a hand-in takes,
// deadlines, the collecting browser away; and exam mode, which does not stop hand-ins.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { arrives, call, next, sleep, startServer } from './harness.mjs';

// Lab H holds 127.0.0.72 to .75: two students and their instructor; .80 is outside it.
const [ANN, BEA, TOM, OUT] = ['127.0.0.72', '127.0.0.73', '127.0.0.74', '127.0.0.80'];
const SHA = (c) => c.repeat(64);
const now = () => Math.floor(Date.now() / 1000);

/** A delivery accepted and finished on both sides, as browsers do once the bytes are in. */
async function deliver(collector, student, transferId, bytes) {
  assert.equal((await call(collector, 'transfer:respond', { transferId, accept: true })).ok, true);
  const fin = { transferId, status: 'completed', bytes, sha256: SHA('c'), path: 'direct', durationMs: 5 };
  assert.equal((await call(student, 'transfer:finish', fin)).ok, true);
  assert.equal((await call(collector, 'transfer:finish', fin)).ok, true);
}

describe('hand-ins', () => {
  let s;
  let ann;
  let bea;
  let tom;
  let eve;
  before(async () => {
    s = await startServer();
    s.cli(['lab', 'add', 'Lab H', '--cidr', '127.0.0.72/30']);
    s.cli(['lab', 'add', 'Lab J', '--cidr', '127.0.0.80/30']);
    ann = await s.user('ann');
    bea = await s.user('bea');
    tom = await s.user('tom', 'instructor');
    eve = await s.user('eve', 'instructor');
    s.cli(['lab', 'assign', 'Lab H', 'tom']);
    s.cli(['lab', 'assign', 'Lab J', 'eve']);
  });
  after(() => s.stop());

  test('opened, handed in, receipted, re-submitted, seen by late joiners, closed', async () => {
    const sockT = await s.connect({ token: tom.token, localAddress: TOM, deviceId: 'tom-collecting-pc-1' });
    await sockT.snapshot;
    const sockA = await s.connect({ token: ann.token, localAddress: ANN });
    await sockA.snapshot;

    const annSees = next(sockA, 'handin:opened');
    const tomSees = next(sockT, 'handin:opened');
    const deadline = now() + 3600;
    const opened = await call(sockT, 'handin:open', {
      lab: 'Lab H',
      title: 'Week 3: loops',
      deadline,
      instructions: 'Hand in main.py and notes.txt',
      extensions: ['.PY', 'txt'],
      maxBytes: 10_000,
    });
    assert.equal(opened.ok, true, JSON.stringify(opened));
    const { handinId } = opened;
    const seenByAnn = await annSees;
    assert.deepEqual(
      { ...seenByAnn },
      {
        handinId,
        lab: 'Lab H',
        title: 'Week 3: loops',
        deadline,
        instructions: 'Hand in main.py and notes.txt',
        extensions: ['py', 'txt'],
        maxBytes: 10_000,
        allowLate: false,
        collector: 'tom',
        collecting: false,
      },
    );
    assert.equal((await tomSees).collecting, true, 'the browser that opened it collects');

    // Ann hands in: the instructor's browser is offered her files, marked as this hand-in.
    const files = [
      { name: 'main.py', size: 120, mime: 'text/x-python' },
      { name: 'notes.txt', size: 30, mime: 'text/plain' },
    ];
    const incoming = next(sockT, 'transfer:incoming');
    const sent = await call(sockA, 'handin:submit', { handinId, files });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    const offer = await incoming;
    assert.equal(offer.transferId, sent.transferId);
    assert.deepEqual(offer.handin, { handinId, late: false });
    assert.equal(offer.from.username, 'ann');
    assert.equal(sent.collector.username, 'tom', 'the student learns which device collects');
    assert.equal(sent.collector.peerId, (await sockT.snapshot).self.peerId);
    assert.equal(offer.expiresInSecs, 1800, 'a delivery waits its turn at the collecting browser');
    await deliver(sockT, sockA, sent.transferId, 150);

    // The instructor's browser verified the files: Ann gets her receipt.
    const receiptFiles = [
      { name: 'notes.txt', size: 30, sha256: SHA('b') },
      { name: 'main.py', size: 120, sha256: SHA('a') },
    ];
    const received = next(sockA, 'handin:received');
    const r1 = await call(sockT, 'handin:receipt', { transferId: sent.transferId, files: receiptFiles });
    assert.equal(r1.ok, true, JSON.stringify(r1));
    assert.equal(r1.version, 1);
    const receipt = await received;
    assert.equal(receipt.handinId, handinId);
    assert.equal(receipt.version, 1);
    assert.equal(receipt.late, false);
    assert.equal(receipt.totalBytes, 150);
    assert.deepEqual(receipt.files, receiptFiles);
    // A repeated receipt of the same delivery is the same version.
    assert.equal((await call(sockT, 'handin:receipt', { transferId: sent.transferId, files: receiptFiles })).version, 1);

    // The transfer log names the hand-in.
    const log = await s.request('GET', '/api/transfers', { token: ann.token });
    assert.equal(log.body.transfers.find((t) => t.id === sent.transferId)?.handin_id, handinId);

    // A late joiner of the lab is told of the open hand-in; Ann, back, of her receipt too.
    const sockB = await s.connect({ token: bea.token, localAddress: BEA });
    const beaSees = next(sockB, 'handin:opened');
    assert.equal((await beaSees).handinId, handinId);
    sockA.close();
    const sockA2 = await s.connect({ token: ann.token, localAddress: ANN });
    const again = next(sockA2, 'handin:opened');
    const ownReceipt = next(sockA2, 'handin:received');
    assert.equal((await again).handinId, handinId);
    assert.equal((await ownReceipt).version, 1);
    await sockA2.snapshot;

    // A re-submission is the next version; the instructor's table reads every receipt.
    const incoming2 = next(sockT, 'transfer:incoming');
    const resent = await call(sockA2, 'handin:submit', { handinId, files: [files[0]] });
    assert.equal(resent.ok, true, JSON.stringify(resent));
    await incoming2;
    await deliver(sockT, sockA2, resent.transferId, 120);
    const r2 = await call(sockT, 'handin:receipt', { transferId: resent.transferId, files: [receiptFiles[1]] });
    assert.equal(r2.version, 2);
    const table = await call(sockT, 'handin:receipts', { handinId });
    assert.equal(table.ok, true);
    assert.deepEqual(
      table.receipts.map((r) => [r.username, r.version, r.files.length]),
      [
        ['ann', 1, 2],
        ['ann', 2, 1],
      ],
    );
    assert.equal((await call(sockA2, 'handin:receipts', { handinId })).error.code, 'forbidden');

    // The instructor's browser comes back (same device): it is told it collects.
    sockT.close();
    const sockT2 = await s.connect({ token: tom.token, localAddress: TOM, deviceId: 'tom-collecting-pc-1' });
    assert.equal((await next(sockT2, 'handin:opened')).collecting, true);
    await sockT2.snapshot;

    // The portal lists it with Ann's newest version.
    const admin = await s.admin();
    const page = await s.request('GET', '/admin/handins', { token: admin.token });
    assert.equal(page.status, 200);
    assert.match(page.text, /Week 3: loops/);
    assert.match(page.text, /data-student="ann"><td>ann<\/td><td>2<\/td><td>main\.py<\/td>/);

    // Closed: the lab is told, and nothing more is taken.
    const closedA = next(sockA2, 'handin:closed');
    const closedB = next(sockB, 'handin:closed');
    assert.equal((await call(sockT2, 'handin:close', { handinId })).ok, true);
    assert.equal((await closedA).handinId, handinId);
    assert.equal((await closedB).handinId, handinId);
    const late = await call(sockB, 'handin:submit', { handinId, files: [files[0]] });
    assert.equal(late.error.code, 'handin_closed');
    assert.equal((await call(sockT2, 'handin:close', { handinId })).error.code, 'handin_closed');
    const audit = await s.request('GET', '/api/audit?action=handin.open', { token: admin.token });
    assert.equal(audit.body[0]?.target, `handin:${handinId}`);
    for (const sock of [sockT2, sockA2, sockB]) sock.close();
  });

  test('who may open one, and what a hand-in refuses', async () => {
    const sockT = await s.connect({ token: tom.token, localAddress: TOM, deviceId: 'tom-collecting-pc-2' });
    await sockT.snapshot;
    const sockA = await s.connect({ token: ann.token, localAddress: ANN });
    await sockA.snapshot;
    const sockE = await s.connect({ token: eve.token, localAddress: OUT });
    await sockE.snapshot;
    const deadline = now() + 600;
    const open = (sock, body) => call(sock, 'handin:open', { lab: 'Lab H', title: 'Quiz', deadline, ...body });

    assert.equal((await open(sockA, {})).error.code, 'forbidden', 'a student does not collect');
    assert.equal((await open(sockE, {})).error.code, 'forbidden', 'not her lab');
    assert.equal((await open(sockT, { lab: 'Lab Z' })).error.code, 'unknown_lab');
    assert.equal((await open(sockT, { title: '   ' })).error.code, 'invalid_payload');
    assert.equal((await open(sockT, { deadline: now() - 5 })).error.code, 'invalid_payload');
    assert.equal((await open(sockT, { deadline: now() + 90 * 86400 })).error.code, 'invalid_payload');
    assert.equal((await open(sockT, { extensions: ['tar.gz'] })).error.code, 'invalid_payload');
    assert.equal((await open(sockT, { maxBytes: 0 })).error.code, 'invalid_payload');
    assert.equal((await open(sockT, { colour: 'red' })).error.code, 'invalid_payload');

    const { handinId } = await open(sockT, { extensions: ['pdf'], maxBytes: 1000 });
    const submit = (sock, files) => call(sock, 'handin:submit', { handinId, files });
    const pdf = (name, size) => ({ name, size, mime: 'application/pdf' });
    assert.equal((await submit(sockA, [pdf('essay.docx', 10)])).error.code, 'extension_not_allowed');
    assert.equal((await submit(sockA, [pdf('essay.pdf', 600), pdf('refs.pdf', 600)])).error.code, 'handin_too_large');
    assert.equal((await submit(sockA, [])).error.code, 'invalid_payload');
    assert.equal((await submit(sockE, [pdf('essay.pdf', 10)])).error.code, 'not_in_lab', 'a device of another lab');
    assert.equal((await call(sockA, 'handin:submit', { handinId: 'nope', files: [pdf('a.pdf', 1)] })).error.code, 'unknown_handin');

    // A receipt comes from the collecting browser, for exactly the files offered.
    const incoming = next(sockT, 'transfer:incoming');
    const sent = await submit(sockA, [pdf('essay.pdf', 10)]);
    assert.equal(sent.ok, true, JSON.stringify(sent));
    await incoming;
    await deliver(sockT, sockA, sent.transferId, 10);
    const good = [{ name: 'essay.pdf', size: 10, sha256: SHA('d') }];
    assert.equal((await call(sockE, 'handin:receipt', { transferId: sent.transferId, files: good })).error.code, 'not_party');
    const wrong = [{ name: 'other.pdf', size: 10, sha256: SHA('d') }];
    assert.equal((await call(sockT, 'handin:receipt', { transferId: sent.transferId, files: wrong })).error.code, 'invalid_payload');
    const badHash = [{ name: 'essay.pdf', size: 10, sha256: 'xyz' }];
    assert.equal((await call(sockT, 'handin:receipt', { transferId: sent.transferId, files: badHash })).error.code, 'invalid_payload');
    assert.equal(await arrives(sockA, 'handin:received', 300), false, 'no receipt from a refused report');

    // The collecting browser away: the student is told to send again when it is back.
    sockT.close();
    await sleep(200);
    assert.equal((await submit(sockA, [pdf('essay.pdf', 10)])).error.code, 'collector_offline');
    for (const sock of [sockA, sockE]) sock.close();
  });

  test('deadlines: late refused, or accepted and marked late', async () => {
    const sockT = await s.connect({ token: tom.token, localAddress: TOM, deviceId: 'tom-collecting-pc-3' });
    await sockT.snapshot;
    const sockA = await s.connect({ token: ann.token, localAddress: ANN });
    await sockA.snapshot;
    const strict = await call(sockT, 'handin:open', { lab: 'Lab H', title: 'Strict', deadline: now() + 2 });
    const lenient = await call(sockT, 'handin:open', { lab: 'Lab H', title: 'Lenient', deadline: now() + 2, allowLate: true });
    await sleep(3000);
    const file = [{ name: 'late.txt', size: 5, mime: 'text/plain' }];
    assert.equal((await call(sockA, 'handin:submit', { handinId: strict.handinId, files: file })).error.code, 'deadline_passed');
    const incoming = next(sockT, 'transfer:incoming');
    const sent = await call(sockA, 'handin:submit', { handinId: lenient.handinId, files: file });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    assert.deepEqual((await incoming).handin, { handinId: lenient.handinId, late: true });
    await deliver(sockT, sockA, sent.transferId, 5);
    const received = next(sockA, 'handin:received');
    await call(sockT, 'handin:receipt', { transferId: sent.transferId, files: [{ name: 'late.txt', size: 5, sha256: SHA('e') }] });
    assert.equal((await received).late, true);
    for (const sock of [sockT, sockA]) sock.close();
  });

  test('receipts for several students at once are all kept', async () => {
    const sockT = await s.connect({ token: tom.token, localAddress: TOM, deviceId: 'tom-collecting-pc-5' });
    await sockT.snapshot;
    const sockA = await s.connect({ token: ann.token, localAddress: ANN });
    const sockB = await s.connect({ token: bea.token, localAddress: BEA });
    await Promise.all([sockA.snapshot, sockB.snapshot]);
    const { handinId } = await call(sockT, 'handin:open', { lab: 'Lab H', title: 'Together', deadline: now() + 600 });
    const file = [{ name: 'work.txt', size: 4, mime: 'text/plain' }];
    const sent = [];
    for (const sock of [sockA, sockB]) {
      const r = await call(sock, 'handin:submit', { handinId, files: file });
      assert.equal(r.ok, true, JSON.stringify(r));
      await deliver(sockT, sock, r.transferId, 4);
      sent.push(r.transferId);
    }
    // Both verified at the same moment, as a browser receiving several at once does.
    for (let round = 0; round < 5; round++) {
      const acks = await Promise.all(
        sent.map((transferId) => call(sockT, 'handin:receipt', { transferId, files: [{ name: 'work.txt', size: 4, sha256: SHA(String(round)) }] })),
      );
      for (const ack of acks) assert.equal(ack.ok, true, JSON.stringify(ack));
    }
    const { receipts } = await call(sockT, 'handin:receipts', { handinId });
    assert.deepEqual(receipts.map((r) => [r.username, r.version]).sort(), [['ann', 1], ['bea', 1]]);
    for (const sock of [sockT, sockA, sockB]) sock.close();
  });

  test('the collecting browser away at the deadline: who tried in time is on time', async () => {
    const sockT = await s.connect({ token: tom.token, localAddress: TOM, deviceId: 'tom-collecting-pc-4' });
    await sockT.snapshot;
    const sockA = await s.connect({ token: ann.token, localAddress: ANN });
    const sockB = await s.connect({ token: bea.token, localAddress: BEA });
    await Promise.all([sockA.snapshot, sockB.snapshot]);
    const { handinId } = await call(sockT, 'handin:open', { lab: 'Lab H', title: 'Graced', deadline: now() + 2 });
    sockT.close();
    await sleep(200);
    const file = [{ name: 'work.txt', size: 4, mime: 'text/plain' }];
    // Ann tries in time, but the instructor's tab is closed; Bea only after the deadline.
    assert.equal((await call(sockA, 'handin:submit', { handinId, files: file })).error.code, 'collector_offline');
    // The server counts whole seconds: past the deadline's second.
    await sleep(3500);
    const back = await s.connect({ token: tom.token, localAddress: TOM, deviceId: 'tom-collecting-pc-4' });
    await back.snapshot;
    assert.equal((await call(sockB, 'handin:submit', { handinId, files: file })).error.code, 'deadline_passed');
    const incoming = next(back, 'transfer:incoming');
    const sent = await call(sockA, 'handin:submit', { handinId, files: file });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    assert.deepEqual((await incoming).handin, { handinId, late: false });
    await deliver(back, sockA, sent.transferId, 4);
    const received = next(sockA, 'handin:received');
    await call(back, 'handin:receipt', { transferId: sent.transferId, files: [{ name: 'work.txt', size: 4, sha256: SHA('f') }] });
    assert.equal((await received).late, false, 'on time: tried before the deadline');
    for (const sock of [back, sockA, sockB]) sock.close();
  });

  test('exam mode keeps students apart but not from handing in', async () => {
    s.cli(['lab', 'policy', 'Lab H', '--exam', 'on']);
    try {
      const sockT = await s.connect({ token: tom.token, localAddress: TOM, deviceId: 'tom-collecting-pc-4' });
      await sockT.snapshot;
      const sockA = await s.connect({ token: ann.token, localAddress: ANN });
      await sockA.snapshot;
      const sockB = await s.connect({ token: bea.token, localAddress: BEA });
      const snapB = await sockB.snapshot;
      const refused = await call(sockA, 'transfer:request', { to: snapB.self.peerId, files: [{ name: 'a.txt', size: 1, mime: 'text/plain' }] });
      assert.equal(refused.error.code, 'exam_mode');
      const { handinId } = await call(sockT, 'handin:open', { lab: 'Lab H', title: 'Exam', deadline: now() + 600 });
      const incoming = next(sockT, 'transfer:incoming');
      const sent = await call(sockA, 'handin:submit', { handinId, files: [{ name: 'answers.txt', size: 9, mime: 'text/plain' }] });
      assert.equal(sent.ok, true, JSON.stringify(sent));
      assert.equal((await incoming).handin.handinId, handinId);
      for (const sock of [sockT, sockA, sockB]) sock.close();
    } finally {
      s.cli(['lab', 'policy', 'Lab H', '--exam', 'off']);
    }
  });
});
