// Resuming: an interrupted send goes on from what the receiver has (nothing that arrived is
// sent again), a receiver restored after a reload continues its file and its hash, and what
// the browser stores to get there (device id, transfer records) behaves.

import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeControl } from '../src/engine/framing';
import { createSha256 } from '../src/engine/hash';
import { FileReceiver, type PartialFile } from '../src/engine/receiver';
import { type KeyValue, type ResumeRecord, ResumeStore, deviceId } from '../src/engine/resume-store';
import { FileSender } from '../src/engine/sender';
import { FakeChannel } from './fake-channel';
import { MemorySink, sha } from './memory-sink';

const TUNING = { chunkBytes: 16 * 1024, readBytes: 256 * 1024, highWaterBytes: 512 * 1024, lowWaterBytes: 128 * 1024 };

function wire(receiver: FileReceiver, drainBytes?: number): FakeChannel {
  return new FakeChannel((m) => {
    if (typeof m === 'string') {
      const c = decodeControl(m)!;
      if (c.t !== 'cancel' && c.t !== 'verified' && c.t !== 'ready') receiver.control(c);
    } else receiver.chunk(m);
  }, drainBytes);
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('an interrupted send goes on from the receiver’s point and sends nothing twice', async () => {
  const contents = [randomBytes(600_000), randomBytes(2 * 1024 * 1024 + 5)];
  const metas = contents.map((c, i) => ({ name: `f${i}`, size: c.byteLength, mime: '' }));
  const blobs = contents.map((c, i) => ({ name: metas[i]!.name, blob: new Blob([c as Uint8Array<ArrayBuffer>]) }));
  const sink = new MemorySink();
  const verified: [number, boolean][] = [];
  const receiver = new FileReceiver(metas, sink, { verified: (i, ok) => verified.push([i, ok]) });

  // First connection: slow, dropped in the middle of the second file.
  const first = wire(receiver, 64 * 1024);
  const s1 = new FileSender(first, blobs, new AbortController().signal, TUNING);
  const run1 = s1.run().catch((e: unknown) => e);
  await until(() => receiver.receivedBytes > 600_000 + 300_000, 'progress into the second file');
  first.close();
  assert.equal((await run1 as Error).name, 'ChannelClosedError');
  const at = receiver.resumePoint;
  assert.equal(at.index, 1);
  assert.ok(at.offset > 0 && at.offset < contents[1]!.byteLength);

  // Second connection: from there on.
  const second = wire(receiver);
  const s2 = new FileSender(second, blobs, new AbortController().signal, TUNING, at);
  const digests = await s2.run();
  await until(() => verified.length === 2, 'both files verified');
  second.close();
  assert.deepEqual(verified, [[0, true], [1, true]]);
  assert.deepEqual(digests, [null, sha(contents[1]!)]);
  assert.ok(Buffer.concat(sink.files.get(1)!).equals(Buffer.from(contents[1]!)));
  // Only what was lost in the dropped channel's buffer was sent again.
  const needed = contents[0]!.byteLength + contents[1]!.byteLength;
  const resent = s1.queuedBytes + s2.queuedBytes - needed;
  assert.ok(resent >= 0 && resent <= TUNING.highWaterBytes + TUNING.chunkBytes, `re-sent ${resent}`);
  assert.equal(s2.sentBytes, needed);
  assert.equal(sink.opened.length, 2, 'the open file was not reopened for the second connection');
});

test('a receiver restored after a reload reopens its partial file and continues its hash', async () => {
  const content = randomBytes(1024 * 1024 + 333);
  const meta = [{ name: 'big.bin', size: content.byteLength, mime: '' }];
  const offset = 400_000;
  const hash = await createSha256();
  hash.update(content.subarray(0, offset));
  const state = hash.save();
  assert.ok(state !== null, 'hash-wasm saves its state');
  const partial: PartialFile = { index: 0, offset, hashState: state };
  const sink = new MemorySink();
  sink.files.set(0, [Buffer.from(content.subarray(0, offset + 1000))]); // more than the checkpoint: overwritten
  const verified: boolean[] = [];
  const receiver = new FileReceiver(meta, sink, { verified: (_i, ok) => verified.push(ok) }, { index: 0, partial });
  assert.deepEqual(receiver.resumePoint, { index: 0, offset });
  assert.equal(receiver.receivedBytes, offset);
  // A header from another point is refused.
  assert.throws(() => new FileReceiver(meta, new MemorySink(), { verified: () => {} }, { index: 0, partial }).control({ t: 'file', index: 0, name: 'big.bin', size: meta[0]!.size, offset: 0 }), /point/);
  const channel = wire(receiver);
  const sender = new FileSender(channel, [{ name: 'big.bin', blob: new Blob([content]) }], new AbortController().signal, TUNING, receiver.resumePoint);
  const [digest] = await sender.run();
  await until(() => verified.length === 1, 'verified');
  channel.close();
  assert.equal(digest, sha(content), 'the sender hashes the part it did not send too');
  assert.deepEqual(verified, [true]);
  assert.deepEqual(sink.opened, [{ index: 0, resume: partial }]);
  assert.equal(sender.queuedBytes, content.byteLength - offset);

  // The continued hash equals the hash of the whole file.
  const continued = await createSha256(state);
  continued.update(content.subarray(offset));
  assert.equal(continued.digestHex(), sha(content));
});

class MapStorage implements KeyValue {
  readonly map = new Map<string, string>();
  getItem(k: string): string | null {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.map.set(k, v);
  }
  removeItem(k: string): void {
    this.map.delete(k);
  }
}

test('the device id is created once and kept; a bad stored one is replaced', () => {
  const storage = new MapStorage();
  let n = 0;
  const random = () => `device-id-number-${++n}`;
  const first = deviceId(storage, random);
  assert.equal(first, 'device-id-number-1');
  assert.equal(deviceId(storage, random), first);
  storage.setItem('labbeam.deviceId', 'bad id!');
  assert.equal(deviceId(storage, random), 'device-id-number-2');
});

test('stored transfer records: put, replace, remove, and expiry after the grace period', () => {
  const storage = new MapStorage();
  const store = new ResumeStore(storage);
  const peer = { peerId: 'p', userId: 1, username: 'a', displayName: 'A', role: 'student', lab: 'L', device: 'pc' };
  const rec = (id: string, updatedAt: number): ResumeRecord => ({
    id,
    direction: 'receive',
    peer,
    files: [{ name: 'x', size: 1, mime: '' }],
    verified: [null],
    createdAt: 0,
    updatedAt,
    graceSecs: 60,
  });
  store.put(rec('t1', 1000));
  store.put(rec('t2', 100_000));
  store.put(rec('t1', 2000));
  assert.deepEqual(store.all().map((r) => [r.id, r.updatedAt]), [['t2', 100_000], ['t1', 2000]]);
  const { live, expired } = store.prune(2000 + 60_001);
  assert.deepEqual(expired.map((r) => r.id), ['t1']);
  assert.deepEqual(live.map((r) => r.id), ['t2']);
  assert.deepEqual(store.all().map((r) => r.id), ['t2']);
  store.remove('t2');
  assert.equal(storage.getItem('labbeam.transfers'), null);
  storage.setItem('labbeam.transfers', '{not json');
  assert.deepEqual(store.all(), []);
});

test('the ready message decodes strictly', () => {
  assert.deepEqual(decodeControl('{"t":"ready","index":2,"offset":10}'), { t: 'ready', index: 2, offset: 10 });
  assert.equal(decodeControl('{"t":"ready","index":-1,"offset":0}'), null);
  assert.equal(decodeControl('{"t":"ready","index":0}'), null);
});
