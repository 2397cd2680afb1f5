// The offer/answer exchange (negotiation.ts) between two fake connections, with the signals
// delivered by hand so that each test chooses their order: early signals, candidates before
// the description, glare, an ICE restart, failures and closing.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Negotiation, type NegotiationMessage, type NegotiationRole } from '../src/engine/negotiation';
import { FakePeerConnection, ufragOf } from './fake-peer-connection';

/** One side: its negotiation, its connection, what it sent (not yet delivered) and its failures. */
class Side {
  readonly pc: FakePeerConnection;
  readonly negotiation: Negotiation;
  readonly outbox: NegotiationMessage[] = [];
  readonly failures: unknown[] = [];
  readonly heard: unknown[] = [];

  constructor(role: NegotiationRole, delayMs = 0) {
    this.pc = new FakePeerConnection(delayMs);
    this.negotiation = new Negotiation(role, {
      send: (m) => this.outbox.push(m),
      failed: (e) => this.failures.push(e),
      heard: (d) => this.heard.push(d),
    });
  }

  /** Takes what this side sent so far, to deliver it. */
  take(): NegotiationMessage[] {
    return this.outbox.splice(0);
  }
}

/** Delivers every message of `from` to `to`, in order, without waiting between them. */
async function deliver(from: Side, to: Side): Promise<void> {
  await Promise.all(from.take().map((m) => to.negotiation.receive(m)));
}

const kinds = (messages: readonly NegotiationMessage[]): string[] => messages.map((m) => ('sdp' in m ? (m.sdp.type ?? '?') : 'candidate'));

test('an offer and its answer, then candidates both ways, connect the two sides', async () => {
  const a = new Side('offerer');
  const b = new Side('answerer');
  void a.negotiation.attach(a.pc);
  await b.negotiation.attach(b.pc);
  await a.negotiation.offer();
  assert.deepEqual(kinds(a.outbox), ['offer']);
  await deliver(a, b);
  assert.deepEqual(kinds(b.outbox), ['answer']);
  await deliver(b, a);
  a.pc.gather();
  b.pc.gather();
  a.pc.endOfCandidates();
  await deliver(a, b);
  await deliver(b, a);
  assert.equal(a.pc.signalingState, 'stable');
  assert.equal(b.pc.signalingState, 'stable');
  assert.deepEqual(a.pc.log, ['local offer', 'remote answer', `candidate ${b.pc.ufrag}`]);
  assert.deepEqual(b.pc.log, ['remote offer', 'local answer', `candidate ${a.pc.ufrag}`]);
  assert.deepEqual([...a.failures, ...b.failures], []);
});

test('signals that come before the connection exists are kept and applied in order', async () => {
  const a = new Side('offerer');
  const b = new Side('answerer');
  void a.negotiation.attach(a.pc);
  await a.negotiation.offer();
  a.pc.gather(50000);
  a.pc.gather(50001);
  // The answerer is still fetching its ICE servers: nothing can be applied yet.
  await deliver(a, b);
  assert.deepEqual(b.pc.log, []);
  assert.deepEqual(b.outbox, []);
  await b.negotiation.attach(b.pc);
  assert.deepEqual(b.pc.log, ['remote offer', 'local answer', `candidate ${a.pc.ufrag}`, `candidate ${a.pc.ufrag}`]);
  assert.deepEqual(kinds(b.outbox), ['answer']);
  assert.equal(b.heard.length, 3);
  assert.deepEqual(b.failures, []);
});

test('candidates that arrive before the remote description wait for it', async () => {
  const a = new Side('offerer');
  const b = new Side('answerer');
  void a.negotiation.attach(a.pc);
  void b.negotiation.attach(b.pc);
  await a.negotiation.offer();
  await deliver(a, b);
  const answer = b.take();
  b.pc.gather();
  // The candidate overtakes the answer (a relay that reorders, a replayed buffer).
  await deliver(b, a);
  assert.deepEqual(a.pc.log, ['local offer']);
  assert.deepEqual(a.failures, []);
  for (const m of answer) await a.negotiation.receive(m);
  assert.deepEqual(a.pc.log, ['local offer', 'remote answer', `candidate ${b.pc.ufrag}`]);
  assert.deepEqual(a.failures, []);
});

test('glare: an offer reaching the offerer is ignored, and its own offer goes on', async () => {
  const a = new Side('offerer');
  const b = new Side('answerer');
  const intruder = new FakePeerConnection();
  await intruder.setLocalDescription();
  void a.negotiation.attach(a.pc);
  void b.negotiation.attach(b.pc);
  await a.negotiation.offer();
  await a.negotiation.receive({ sdp: intruder.localDescription?.toJSON() });
  assert.equal(a.pc.signalingState, 'have-local-offer');
  assert.equal(a.outbox.length, 1);
  await deliver(a, b);
  await deliver(b, a);
  assert.equal(a.pc.signalingState, 'stable');
  // Nor does the answerer take an answer (it never offers).
  await b.negotiation.receive({ sdp: { type: 'answer', sdp: 'v=0\r\na=ice-ufrag:x\r\n' } });
  assert.deepEqual(b.pc.log, ['remote offer', 'local answer']);
  assert.deepEqual([...a.failures, ...b.failures], []);
  await assert.rejects(b.negotiation.offer(), /Only the offerer/);
});

test('an ICE restart is a new offer on the same connection; new candidates wait for the new answer', async () => {
  // Every operation takes a few milliseconds, so signals delivered together overlap.
  const a = new Side('offerer', 3);
  const b = new Side('answerer', 3);
  void a.negotiation.attach(a.pc);
  void b.negotiation.attach(b.pc);
  await a.negotiation.offer();
  await deliver(a, b);
  await deliver(b, a);
  const before = { a: a.pc.ufrag, b: b.pc.ufrag };

  await a.negotiation.restart();
  const [offer] = a.outbox;
  assert.ok(offer !== undefined && 'sdp' in offer && offer.sdp.type === 'offer');
  assert.notEqual(ufragOf(offer.sdp.sdp), before.a, 'the restart offer carries new ICE credentials');
  await deliver(a, b);
  b.pc.gather();
  assert.notEqual(b.pc.ufrag, before.b);
  // The new answer and the first candidate of the new credentials arrive together.
  await deliver(b, a);
  assert.deepEqual(a.pc.log.slice(-2), ['remote answer', `candidate ${b.pc.ufrag}`]);
  assert.equal(a.pc.signalingState, 'stable');
  assert.deepEqual([...a.failures, ...b.failures], []);
});

test('what cannot be applied is reported; after close nothing is applied, sent or reported', async () => {
  const a = new Side('offerer');
  void a.negotiation.attach(a.pc);
  // An answer to an offer never made.
  await a.negotiation.receive({ sdp: { type: 'answer', sdp: 'v=0\r\na=ice-ufrag:x\r\n' } });
  assert.equal(a.failures.length, 1);
  assert.match(String(a.failures[0]), /wrong state/);
  // Malformed or foreign messages are not signals at all.
  await a.negotiation.receive({ sdp: { type: 'rollback' } });
  await a.negotiation.receive({ candidate: null });
  await a.negotiation.receive('nonsense');
  assert.equal(a.failures.length, 1);
  assert.equal(a.heard.length, 1);

  const b = new Side('answerer');
  void b.negotiation.attach(b.pc);
  await a.negotiation.offer();
  const offer = a.take();
  b.negotiation.close();
  for (const m of offer) await b.negotiation.receive(m);
  b.pc.gather();
  assert.deepEqual(b.pc.log, []);
  assert.deepEqual(b.outbox, []);
  await b.negotiation.receive({ sdp: { type: 'answer', sdp: '' } });
  assert.deepEqual(b.failures, []);
});

test('a negotiation closed while an operation runs sends nothing more', async () => {
  const a = new Side('offerer');
  const b = new Side('answerer', 5);
  void a.negotiation.attach(a.pc);
  void b.negotiation.attach(b.pc);
  await a.negotiation.offer();
  const applying = deliver(a, b);
  setTimeout(() => b.negotiation.close(), 2);
  await applying;
  assert.deepEqual(b.pc.log, ['remote offer']);
  assert.deepEqual(b.outbox, []);
  assert.deepEqual(b.failures, []);
});
