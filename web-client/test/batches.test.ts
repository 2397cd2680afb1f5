import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  IncomingBatches,
  MAX_FILES_PER_REQUEST,
  MAX_MESSAGE_BYTES,
  MAX_NAME_BYTES,
  cleanMime,
  jsonBytes,
  nameTooLong,
  newBatchId,
  planParts,
  requestBytes,
} from '../src/engine/batches';
import { type FileMeta, type PartInfo, decodeIncoming } from '../src/engine/protocol';

const TO = 'AbCdEfGhIjKlMnOpQrSt';

/** A folder of `n` files as the web client lists it: relative paths, some long, some not ASCII. */
function folder(n: number): FileMeta[] {
  return Array.from({ length: n }, (_, i) => {
    const dir = i % 7 === 0 ? `Projekt “Größe”/${'tief/'.repeat(20)}` : `Project/src/module-${i % 40}/`;
    let name = `${dir}file-${i}.txt`;
    if (i % 97 === 0) name = `${dir}${'ü'.repeat(200)}`; // up to the limit
    while (jsonBytes(name) > MAX_NAME_BYTES) name = name.slice(0, -1);
    return { name, size: (i * 7919) % 100_000, mime: i % 3 === 0 ? 'text/plain' : 'application/vnd.openxmlformats-officedocument.wordprocessingml.document' };
  });
}

test('5,000 files are split into requests of at most 100 files, each under the 64 KiB message cap', () => {
  const files = folder(5000);
  assert.equal(nameTooLong(files), null);
  const parts = planParts(TO, files);
  assert.ok(parts.length >= 50, `${parts.length} parts`);
  const batch = newBatchId();
  assert.match(batch, /^[0-9a-f]{32}$/);
  parts.forEach((indexes, i) => {
    assert.ok(indexes.length >= 1 && indexes.length <= MAX_FILES_PER_REQUEST, `part ${i}: ${indexes.length} files`);
    const list = indexes.map((j) => files[j] as FileMeta);
    const part: PartInfo = { batch, index: i + 1, count: parts.length, totalFiles: files.length, totalBytes: files.reduce((n, f) => n + f.size, 0) };
    // What socket.io-client sends: `42<ack id>["transfer:request",{...}]`.
    const message = `42${1000 + i}${JSON.stringify(['transfer:request', { to: TO, files: list, part }])}`;
    const bytes = new TextEncoder().encode(message).length;
    assert.ok(bytes < MAX_MESSAGE_BYTES, `part ${i}: ${bytes} bytes`);
    assert.ok(requestBytes(TO, list, part) >= bytes, 'the estimate is never below the real size');
  });
  // Every file once, in order.
  assert.deepEqual(parts.flat(), files.map((_, i) => i));
  // Parts are as full as the count allows.
  assert.equal(parts.length, Math.ceil(5000 / MAX_FILES_PER_REQUEST));
});

test('the size cap splits before the count does when entries are large', () => {
  const files = Array.from({ length: 100 }, (_, i) => ({ name: `${'d'.repeat(200)}/${i}`, size: 1, mime: '' }));
  const parts = planParts(TO, files, { maxFiles: 100, maxBytes: 8 * 1024 });
  assert.ok(parts.length > 1);
  for (const indexes of parts) assert.ok(requestBytes(TO, indexes.map((j) => files[j] as FileMeta)) <= 8 * 1024);
  assert.deepEqual(parts.flat(), files.map((_, i) => i));
  // A selection that fits is one part; the largest request at the server's limits fits too.
  assert.equal(planParts(TO, files.slice(0, 3)).length, 1);
  const worst = Array.from({ length: 100 }, () => ({ name: '"'.repeat(127) + 'n', size: 2 ** 50, mime: cleanMime('x'.repeat(255)) }));
  assert.equal(jsonBytes(worst[0]?.name ?? ''), 255);
  assert.equal(planParts(TO, worst).length, 1);
});

test('names are measured like the server does; MIME types it would refuse are dropped', () => {
  assert.equal(jsonBytes('abc'), 3);
  assert.equal(jsonBytes('a"b'), 4);
  assert.equal(jsonBytes('ü€😀'), 2 + 3 + 4);
  const ok = { name: 'é'.repeat(127) + 'x', size: 1, mime: '' };
  assert.equal(nameTooLong([ok]), null);
  const long = { name: `${ok.name}x`, size: 1, mime: '' };
  assert.equal(nameTooLong([ok, long]), long);
  assert.equal(cleanMime('text/plain'), 'text/plain');
  assert.equal(cleanMime('x'.repeat(256)), '');
  assert.equal(cleanMime('text/\nplain'), '');
});

test('the receiver is asked once per send, and only for what the send announced', () => {
  const b = new IncomingBatches();
  const part = (index: number, over: Partial<PartInfo> = {}): PartInfo => ({ batch: 'send-1', index, count: 3, totalFiles: 250, totalBytes: 2500, ...over });
  assert.equal(b.decide(7, part(1), 100, 1000), 'ask');
  // Not answered yet: a second part is asked as well.
  assert.equal(b.decide(7, part(2), 100, 1000), 'ask');
  b.answered(7, part(1), true);
  assert.equal(b.decide(7, part(2), 100, 1000), 'accept');
  // The same part again, another user, other totals, more than announced: asked.
  assert.equal(b.decide(7, part(2), 100, 1000), 'ask');
  assert.equal(b.decide(8, part(3), 50, 500), 'ask');
  assert.equal(b.decide(7, part(3, { totalBytes: 10_000 }), 50, 500), 'ask');

  const c = new IncomingBatches();
  c.decide(7, part(1), 100, 1000);
  c.answered(7, part(1), true);
  assert.equal(c.decide(7, part(2), 100, 1000), 'accept');
  assert.equal(c.decide(7, part(3), 51, 500), 'ask', 'one file more than announced');
  const d = new IncomingBatches();
  d.decide(7, part(1), 100, 1000);
  d.answered(7, part(1), true);
  assert.equal(d.decide(7, part(2), 100, 1000), 'accept');
  assert.equal(d.decide(7, part(3), 50, 500), 'accept');
  assert.equal(d.decide(7, part(4, { count: 3 }), 0, 0), 'ask', 'beyond the part count');

  const e = new IncomingBatches();
  e.decide(7, part(1), 100, 1000);
  e.answered(7, part(1), false);
  assert.equal(e.decide(7, part(2), 100, 1000), 'decline');
  // An answer to a part that was not asked changes nothing.
  const f = new IncomingBatches();
  f.answered(7, part(1), true);
  assert.equal(f.decide(7, part(2), 100, 1000), 'ask');
});

test('transfer:incoming decodes its part; a bad part is dropped', () => {
  const peer = { peerId: 'p1', userId: 3, username: 'alice', displayName: 'Alice', role: 'student', lab: 'Lab', device: 'PC' };
  const part = { batch: 'b1', index: 2, count: 3, totalFiles: 250, totalBytes: 99 };
  const r = decodeIncoming({ transferId: 't', from: peer, files: [{ name: 'a', size: 1 }], part });
  assert.deepEqual(r?.part, part);
  assert.equal(decodeIncoming({ transferId: 't', from: peer, files: [], part: { ...part, index: 4 } })?.part, null);
  assert.equal(decodeIncoming({ transferId: 't', from: peer, files: [] })?.part, null);
});

test('a broadcast of more than 100 files is refused before anything is sent, with the limit', async () => {
  const { BroadcastManager } = await import('../src/engine/broadcast');
  const calls: string[] = [];
  const m = new BroadcastManager({
    call: async (event) => {
      calls.push(event);
      return { ok: true };
    },
    listen: () => {},
    rtcConfig: async () => ({}),
    signal: async () => {},
    autoSave: () => false,
    download: () => {},
    notice: () => {},
  });
  const files = Array.from({ length: 101 }, (_, i) => ({ name: `f${i}`, blob: new Blob(['x']), mime: '' }));
  await assert.rejects(m.start({ all: true }, files), /at most 100 files \(101 chosen\)/);
  assert.deepEqual(calls, []);
});
