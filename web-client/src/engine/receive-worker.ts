/**
 * Dedicated worker that writes one receiving transfer's files into the Origin Private File
 * System with `FileSystemSyncAccessHandle` (only available in workers): each chunk is written
 * at its offset and hashed, then dropped, so memory holds only what is queued. On `finish` it
 * flushes, closes and answers with the SHA-256 of what it wrote.
 *
 * Messages are applied strictly in arrival order (a queue, because opening a file is async
 * while writing is not).
 *
 * Every `CHECKPOINT_EVERY` bytes it flushes the file and then writes a checkpoint (the offset
 * and the saved hash state, see worker-protocol.ts) so that a page reloaded mid-transfer goes
 * on from there: at most that many bytes are sent again.
 */

import { type IncrementalHash, createSha256 } from './hash';
import { INCOMING_DIR } from './opfs';
import { CHECKPOINT_FILE, type Checkpoint, type PieceRequest, type WorkerReply, type WorkerRequest } from './worker-protocol';

// The DOM lib types `self` as Window; these are the worker-only parts used here.
interface SyncAccessHandle {
  write(buffer: ArrayBufferView, options?: { at?: number }): number;
  read(buffer: ArrayBufferView, options?: { at?: number }): number;
  getSize(): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}
interface WorkerScope {
  postMessage(message: WorkerReply): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<WorkerRequest>) => void): void;
}
const scope = globalThis as unknown as WorkerScope;

interface OpenFile {
  readonly index: number;
  readonly handle: SyncAccessHandle;
  readonly hash: IncrementalHash;
  offset: number;
}

const REPORT_EVERY = 4 * 1024 * 1024;
const CHECKPOINT_EVERY = 4 * 1024 * 1024;
const queue: WorkerRequest[] = [];
let pumping = false;
let failed = false;
let file: OpenFile | null = null;
let written = 0;
let lastReport = 0;
let lastCheckpoint = 0;
/** The transfer's checkpoint file, open for as long as a file is. */
let checkpointHandle: SyncAccessHandle | null = null;
let checkpointDir: string | null = null;

scope.addEventListener('message', (event) => {
  queue.push(event.data);
  if (!pumping) void pump();
});

async function pump(): Promise<void> {
  pumping = true;
  try {
    for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
      if (m.op === 'discard') {
        queue.length = 0;
        await discard(m.dir, m.keep);
        scope.postMessage({ op: 'discarded' });
        continue;
      }
      if (m.op.startsWith('p-')) {
        await pieceOp(m as PieceRequest);
        continue;
      }
      if (failed) continue;
      try {
        await apply(m);
      } catch (error) {
        failed = true;
        closeQuietly();
        const e = error instanceof Error ? error : new Error(String(error));
        scope.postMessage({ op: 'error', name: e.name, message: e.message });
      }
    }
  } finally {
    pumping = false;
  }
}

async function apply(m: WorkerRequest): Promise<void> {
  switch (m.op) {
    case 'open': {
      const root = await navigator.storage.getDirectory();
      const incoming = await root.getDirectoryHandle(INCOMING_DIR, { create: true });
      const dir = await incoming.getDirectoryHandle(m.dir, { create: true });
      const handle = await accessHandle(dir, String(m.index));
      // Claiming the full size up front fails at once (QuotaExceededError) when the disk or
      // the browser's quota has no room, instead of after most of the bytes were sent.
      // (For a resumed file this keeps its first bytes: only the length is set.)
      handle.truncate(m.size);
      const hash = m.resume !== undefined ? await createSha256(m.resume.hashState) : await createSha256();
      file = { index: m.index, handle, hash, offset: m.resume?.offset ?? 0 };
      if (checkpointDir !== m.dir) {
        closeCheckpoint();
        checkpointHandle = await accessHandle(dir, CHECKPOINT_FILE);
        checkpointDir = m.dir;
      }
      lastCheckpoint = written;
      break;
    }
    case 'chunks': {
      if (file === null) throw new Error('data arrived for no open file');
      for (const buffer of m.data) writeChunk(file, new Uint8Array(buffer));
      if (written - lastCheckpoint >= CHECKPOINT_EVERY) {
        lastCheckpoint = written;
        checkpoint(file);
      }
      if (written - lastReport >= REPORT_EVERY) {
        lastReport = written;
        scope.postMessage({ op: 'written', bytes: written });
      }
      break;
    }
    case 'finish': {
      if (file === null || file.index !== m.index) throw new Error('finish for a file that is not open');
      const done = file;
      file = null;
      done.handle.truncate(done.offset);
      done.handle.flush();
      done.handle.close();
      scope.postMessage({ op: 'written', bytes: written });
      scope.postMessage({ op: 'finished', index: done.index, sha256: done.hash.digestHex(), bytes: done.offset });
      break;
    }
  }
}

function writeChunk(f: OpenFile, bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.byteLength) {
    const n = f.handle.write(bytes.subarray(at), { at: f.offset + at });
    if (n <= 0) throw new Error('the disk accepted no more bytes');
    at += n;
  }
  f.hash.update(bytes);
  f.offset += bytes.byteLength;
  written += bytes.byteLength;
}

/** Makes the bytes written so far durable, then records how far they go and their hash. */
function checkpoint(f: OpenFile): void {
  const state = f.hash.save();
  if (checkpointHandle === null || state === null) return;
  f.handle.flush();
  const record: Checkpoint = { index: f.index, offset: f.offset, hash: Array.from(state) };
  const bytes = new TextEncoder().encode(JSON.stringify(record));
  checkpointHandle.truncate(0);
  checkpointHandle.write(bytes, { at: 0 });
  checkpointHandle.flush();
}

function closeCheckpoint(): void {
  try {
    checkpointHandle?.close();
  } catch {
    // Already closed.
  }
  checkpointHandle = null;
  checkpointDir = null;
}

function closeQuietly(): void {
  try {
    file?.handle.close();
  } catch {
    // Already closed.
  }
  file = null;
  closeCheckpoint();
}

async function discard(dirName: string, keep: readonly number[]): Promise<void> {
  closeQuietly();
  try {
    const root = await navigator.storage.getDirectory();
    const incoming = await root.getDirectoryHandle(INCOMING_DIR, { create: true });
    if (keep.length === 0) {
      await incoming.removeEntry(dirName, { recursive: true });
      return;
    }
    const dir = await incoming.getDirectoryHandle(dirName);
    const names: string[] = [];
    for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
    for (const name of names) {
      if (!keep.includes(Number(name))) await dir.removeEntry(name).catch(() => {});
    }
  } catch {
    // Nothing was stored.
  }
}

// ---- broadcast pieces: every request opens, acts and closes ----

async function pieceHandle(dir: string, index: number): Promise<SyncAccessHandle> {
  const root = await navigator.storage.getDirectory();
  const incoming = await root.getDirectoryHandle(INCOMING_DIR, { create: true });
  const folder = await incoming.getDirectoryHandle(dir, { create: true });
  return accessHandle(folder, String(index));
}

/** How long `accessHandle` waits for another page's worker to let go of a file. */
const HANDLE_WAIT_MS = 15_000;

/**
 * Opens `name` in `dir` for synchronous access. A file has one such handle at a time: after a
 * reload, the previous page's worker can still hold it for a moment while that page is torn
 * down, so a refusal because of another open handle (`NoModificationAllowedError`) is retried
 * until it lets go; any other error is thrown at once.
 */
async function accessHandle(dir: FileSystemDirectoryHandle, name: string): Promise<SyncAccessHandle> {
  const handleOf = (await dir.getFileHandle(name, { create: true })) as unknown as {
    createSyncAccessHandle(): Promise<SyncAccessHandle>;
  };
  const deadline = Date.now() + HANDLE_WAIT_MS;
  for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
    try {
      return await handleOf.createSyncAccessHandle();
    } catch (error) {
      const busy = error instanceof DOMException && error.name === 'NoModificationAllowedError';
      if (!busy || Date.now() + wait > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

async function pieceOp(m: PieceRequest): Promise<void> {
  let handle: SyncAccessHandle | null = null;
  try {
    handle = await pieceHandle(m.dir, m.index);
    switch (m.op) {
      case 'p-alloc':
        // Claiming the size up front fails at once when there is no room.
        handle.truncate(m.size);
        scope.postMessage({ op: 'p-done', id: m.id });
        break;
      case 'p-put': {
        const bytes = new Uint8Array(m.data);
        let at = 0;
        while (at < bytes.byteLength) {
          const n = handle.write(bytes.subarray(at), { at: m.at + at });
          if (n <= 0) throw new Error('the disk accepted no more bytes');
          at += n;
        }
        handle.flush();
        scope.postMessage({ op: 'p-done', id: m.id });
        break;
      }
      case 'p-read': {
        const buf = new Uint8Array(m.size);
        let at = 0;
        while (at < m.size) {
          const n = handle.read(buf.subarray(at), { at: m.at + at });
          if (n <= 0) throw new Error('the stored file is shorter than expected');
          at += n;
        }
        (scope.postMessage as (message: WorkerReply, transfer: Transferable[]) => void)({ op: 'p-done', id: m.id, data: buf.buffer }, [buf.buffer]);
        break;
      }
      case 'p-digest': {
        const hash = await createSha256();
        const size = handle.getSize();
        const buf = new Uint8Array(Math.min(size, 4 * 1024 * 1024));
        for (let at = 0; at < size; ) {
          const n = handle.read(buf.subarray(0, Math.min(buf.byteLength, size - at)), { at });
          if (n <= 0) throw new Error('the stored file is shorter than expected');
          hash.update(buf.subarray(0, n));
          at += n;
        }
        scope.postMessage({ op: 'p-done', id: m.id, sha256: hash.digestHex() });
        break;
      }
    }
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    scope.postMessage({ op: 'p-failed', id: m.id, name: e.name, message: e.message });
  } finally {
    try {
      handle?.close();
    } catch {
      // Already closed.
    }
  }
}
