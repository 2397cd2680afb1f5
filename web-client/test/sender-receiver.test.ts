// The sender and receiver talking through an in-memory data channel: files arrive intact,
// backpressure holds the send buffer near its high-water mark, and protocol violations fail.

import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeControl, encodeControl } from '../src/engine/framing';
import { transferDigest } from '../src/engine/hash';
import { FileReceiver, ReceiveError, type StoredFile } from '../src/engine/receiver';
import { FileSender } from '../src/engine/sender';
import { FakeChannel } from './fake-channel';
import { MemorySink, sha } from './memory-sink';


async function roundTrip(contents: Uint8Array[], tamper?: (chunk: ArrayBuffer) => void) {
  const metas = contents.map((c, i) => ({ name: `dir/file-${i}.bin`, size: c.byteLength, mime: '' }));
  const sink = new MemorySink();
  const verified: { index: number; ok: boolean; stored: StoredFile }[] = [];
  const receiver = new FileReceiver(metas, sink, { verified: (index, ok, stored) => verified.push({ index, ok, stored }) });
  const channel = new FakeChannel((m) => {
    if (typeof m === 'string') receiver.control(decodeControl(m)!);
    else {
      tamper?.(m);
      receiver.chunk(m);
    }
  });
  const sender = new FileSender(
    channel,
    contents.map((c, i) => ({ name: metas[i]!.name, blob: new Blob([c as Uint8Array<ArrayBuffer>]) })),
    new AbortController().signal,
    { chunkBytes: 16 * 1024, readBytes: 256 * 1024, highWaterBytes: 512 * 1024, lowWaterBytes: 128 * 1024 },
  );
  const digests = await sender.run();
  const deadline = Date.now() + 5000;
  while (verified.length < contents.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  channel.close();
  return { digests, verified, sink, channel, sender };
}

test('several files, including an empty one, arrive intact and verified', async () => {
  const contents = [randomBytes(3 * 1024 * 1024 + 17), new Uint8Array(0), randomBytes(1000)];
  const { digests, verified, sink, channel } = await roundTrip(contents);
  assert.deepEqual(digests, contents.map(sha));
  assert.deepEqual(verified.map((v) => [v.index, v.ok]), [[0, true], [1, true], [2, true]]);
  for (const [i, c] of contents.entries()) assert.ok(Buffer.concat(sink.files.get(i)!).equals(Buffer.from(c)));
  // Backpressure: never more than the high-water mark plus one chunk waited in the buffer.
  assert.ok(channel.maxBuffered <= 512 * 1024 + 16 * 1024, `buffered up to ${channel.maxBuffered}`);
});

test('a corrupted byte fails that file only', async () => {
  let n = 0;
  const contents = [randomBytes(200_000), randomBytes(50_000)];
  const { verified } = await roundTrip(contents, (chunk) => {
    if (n++ === 3) new Uint8Array(chunk)[10] ^= 0xff;
  });
  assert.deepEqual(verified.map((v) => [v.index, v.ok]), [[0, false], [1, true]]);
});

test('the receiver refuses data outside a file, wrong names and extra bytes', () => {
  const metas = [{ name: 'a.txt', size: 4, mime: '' }];
  const r = () => new FileReceiver(metas, new MemorySink(), { verified: () => {} });
  assert.throws(() => r().chunk(new ArrayBuffer(1)), ReceiveError);
  assert.throws(() => r().control({ t: 'file', index: 0, name: 'b.txt', size: 4, offset: 0 }), /was announced/);
  const extra = r();
  extra.control({ t: 'file', index: 0, name: 'a.txt', size: 4, offset: 0 });
  assert.throws(() => extra.chunk(new ArrayBuffer(5)), (e: unknown) => e instanceof ReceiveError && e.code === 'size_mismatch');
  const short = r();
  short.control({ t: 'file', index: 0, name: 'a.txt', size: 4, offset: 0 });
  short.chunk(new ArrayBuffer(2));
  assert.throws(() => short.control({ t: 'eof', index: 0, sha256: 'a'.repeat(64) }), /incomplete/);
  assert.throws(() => r().control({ t: 'file', index: 1, name: 'a.txt', size: 4, offset: 0 }), /not expected/);
});

test('a cancelled send stops with the abort reason', async () => {
  const channel = new FakeChannel(() => {}, 0);
  const abort = new AbortController();
  const sender = new FileSender(channel, [{ name: 'x', blob: new Blob([randomBytes(4 * 1024 * 1024)]) }], abort.signal, {
    highWaterBytes: 256 * 1024,
    lowWaterBytes: 64 * 1024,
  });
  const run = sender.run();
  setTimeout(() => abort.abort(new Error('stop')), 20);
  await assert.rejects(run, /stop/);
  channel.close();
});

test('the transfer digest is the file hash for one file, else the hash of the joined hashes', async () => {
  const a = sha(Buffer.from('a'));
  const b = sha(Buffer.from('b'));
  assert.equal(await transferDigest([a]), a);
  assert.equal(await transferDigest([a, b]), sha(Buffer.from(`${a}\n${b}`)));
  assert.equal(encodeControl({ t: 'cancel', reason: '' }), '{"t":"cancel","reason":""}');
});
