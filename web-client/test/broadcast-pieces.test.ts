// Piece bookkeeping of broadcasts: layout across files, the have/need sets, the manifest,
// the link protocol, reassembly, and a forwarder feeding a child through a fake channel.

import { createHash, randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PieceForwarder } from '../src/engine/broadcast-forward';
import { Manifest, PieceAssembler, PieceLayout, PieceSet, decodeLink, encodeLink } from '../src/engine/broadcast-pieces';
import { FakeChannel } from './fake-channel';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

test('pieces are numbered across files, never spanning two, and empty files have none', () => {
  const l = new PieceLayout([10, 0, 4, 8], 4);
  assert.equal(l.count, 3 + 0 + 1 + 2);
  assert.equal(l.totalBytes, 22);
  assert.deepEqual(l.piece(0), { n: 0, file: 0, offset: 0, size: 4 });
  assert.deepEqual(l.piece(2), { n: 2, file: 0, offset: 8, size: 2 });
  assert.deepEqual(l.piece(3), { n: 3, file: 2, offset: 0, size: 4 });
  assert.deepEqual(l.piece(5), { n: 5, file: 3, offset: 4, size: 4 });
  assert.equal(l.firstOf(3), 4);
  assert.throws(() => l.piece(6));
  assert.throws(() => new PieceLayout([1], 0));
});

test('a piece set knows what is missing, as ranges', () => {
  const s = new PieceSet(10);
  assert.deepEqual(s.missingRanges(), [[0, 10]]);
  for (const n of [0, 1, 4, 9]) s.add(n);
  assert.equal(s.add(4), false, 'twice');
  assert.equal(s.size, 4);
  assert.deepEqual(s.missingRanges(), [[2, 4], [5, 9]]);
  const back = PieceSet.fromRanges(10, s.missingRanges());
  assert.deepEqual([...back], [2, 3, 5, 6, 7, 8]);
  assert.ok(s.delete(0));
  assert.equal(s.has(0), false);
  assert.ok(PieceSet.all(3).complete);
  assert.equal(PieceSet.fromRanges(4, [[-3, 99]]).size, 4, 'ranges are clipped');
});

test('a manifest is complete only with every piece hash and every file hash', () => {
  const l = new PieceLayout([8, 5], 4);
  const m = new Manifest(l);
  const h = (c: string): string => c.repeat(64);
  m.add({ file: 0, first: 0, hashes: [h('a')] });
  m.add({ file: 0, first: 1, hashes: [h('b')], sha256: h('f') });
  assert.equal(m.complete, false);
  m.add({ file: 1, first: 0, hashes: [h('c'), h('d')], sha256: h('e') });
  assert.ok(m.complete);
  assert.equal(m.hashOf(3), h('d'));
  assert.equal(m.fileSha(0), h('f'));
  assert.throws(() => m.add({ file: 1, first: 1, hashes: [h('c'), h('d')] }), 'beyond the file');
  assert.throws(() => m.add({ file: 0, first: 0, hashes: ['XYZ'] }));
  assert.throws(() => m.add({ file: 2, first: 0, hashes: [] }));
});

test('link messages are checked', () => {
  assert.deepEqual(decodeLink(encodeLink({ t: 'need', ranges: [[0, 3], [5, 6]] })), { t: 'need', ranges: [[0, 3], [5, 6]] });
  assert.deepEqual(decodeLink(encodeLink({ t: 'piece', n: 4, size: 100 })), { t: 'piece', n: 4, size: 100 });
  for (const bad of ['nope', '{"t":"piece","n":-1,"size":1}', '{"t":"need","ranges":[[3,1]]}', '{"t":"need","ranges":[1]}', '{"t":"x"}', 'null']) {
    assert.equal(decodeLink(bad), null, bad);
  }
});

test('a piece is reassembled from its messages; overruns and stray data throw', () => {
  const a = new PieceAssembler(8);
  assert.equal(a.begin(1, 6), null);
  assert.equal(a.push(new Uint8Array([1, 2, 3]).buffer), null);
  assert.equal(a.partialBytes, 3);
  const p = a.push(new Uint8Array([4, 5, 6]).buffer);
  assert.deepEqual(p && [...p.bytes], [1, 2, 3, 4, 5, 6]);
  assert.throws(() => a.push(new Uint8Array([1]).buffer), /without a piece header/);
  a.begin(2, 2);
  assert.throws(() => a.push(new Uint8Array([1, 2, 3]).buffer), /longer than announced/);
  assert.throws(() => new PieceAssembler(4).begin(0, 5), /larger/);
  assert.deepEqual(new PieceAssembler(4).begin(3, 0), { n: 3, bytes: new Uint8Array(0) });
});

test('a forwarder sends what the child needs as the pieces become available, within its buffer limit', async () => {
  const pieceBytes = 64 * 1024;
  const data = randomBytes(10 * pieceBytes + 123);
  const layout = new PieceLayout([data.byteLength], pieceBytes);
  const have = new PieceSet(layout.count);
  for (const n of [0, 1, 2, 5]) have.add(n);
  const got = new Map<number, string>();
  const assembler = new PieceAssembler(pieceBytes);
  let done: () => void = () => {};
  const all = new Promise<void>((r) => (done = r));
  // The child already has piece 1 and 7.
  const childHas = new PieceSet(layout.count);
  childHas.add(1);
  childHas.add(7);
  const channel = new FakeChannel((m) => {
    const p = typeof m === 'string' ? (() => {
      const msg = decodeLink(m);
      assert.equal(msg?.t, 'piece');
      return msg?.t === 'piece' ? assembler.begin(msg.n, msg.size) : null;
    })() : assembler.push(m);
    if (p !== null) {
      assert.ok(!got.has(p.n), `piece ${p.n} twice`);
      got.set(p.n, sha(p.bytes));
      if (got.size === layout.count - 2) done();
    }
  });
  const abort = new AbortController();
  const f = new PieceForwarder(channel, layout.count, {
    has: (n) => have.has(n),
    read: async (n) => {
      const p = layout.piece(n);
      return new Uint8Array(data.subarray(p.offset, p.offset + p.size));
    },
  }, abort.signal, { chunkBytes: 16 * 1024, highWaterBytes: 96 * 1024, lowWaterBytes: 32 * 1024 });
  f.setNeed(childHas.missingRanges());
  // The rest arrives later, out of order.
  for (const n of [9, 3, 4, 10, 6, 8, 7, 1]) {
    await new Promise((r) => setTimeout(r, 2));
    have.add(n);
    f.available(n);
  }
  await all;
  channel.close();
  assert.ok(!got.has(1) && !got.has(7), 'not what the child had');
  for (const [n, h] of got) {
    const p = layout.piece(n);
    assert.equal(h, sha(data.subarray(p.offset, p.offset + p.size)), `piece ${n}`);
  }
  assert.ok(channel.maxBuffered <= 96 * 1024 + 16 * 1024, `buffered ${channel.maxBuffered}`);
});
