/**
 * Received files live in the Origin Private File System (OPFS) until the user saves them:
 * `labbeam-incoming/<transferId>/<file index>`. The bytes are written by a dedicated worker
 * (receive-worker.ts) through `FileSystemSyncAccessHandle`, so memory stays flat whatever the
 * file size; this module is the page's side of it: the worker proxy (a `FileSink`), reading a
 * stored file back (the UI offers it as a download: ui/saving.ts), copying stored files into a
 * folder, and cleaning up.
 *
 * Each receiving transfer holds a Web Lock named after it for as long as its files may be
 * needed; on start-up, folders whose lock nobody holds (left by a closed or crashed tab) are
 * removed — except those of interrupted transfers that may still be resumed (the engine
 * passes their ids), whose partial files and checkpoint are kept for the resume grace period.
 */

import type { FileSink, PartialFile, StoredFile } from './receiver';
import { CHECKPOINT_FILE, type Checkpoint, type WorkerReply, type WorkerRequest } from './worker-protocol';

export const INCOMING_DIR = 'labbeam-incoming';
const LOCK_PREFIX = 'labbeam-incoming:';
/** Chunks go to the worker in batches of about this size: one message per MiB, not per 64 KiB. */
const BATCH_BYTES = 1024 * 1024;

export function opfsAvailable(): boolean {
  return typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function' && typeof Worker !== 'undefined';
}

/** The page's proxy of a receive worker: one per receiving transfer. */
export class OpfsSink implements FileSink {
  readonly #worker: Worker;
  readonly #transferId: string;
  readonly #pending = new Map<number, { resolve: (s: StoredFile) => void; reject: (e: Error) => void }>();
  #discarded: Promise<void> | null = null;
  #releaseLock: (() => void) | null = null;
  #onError: (error: Error) => void = () => {};
  #stored = 0;
  #batch: ArrayBuffer[] = [];
  #batchBytes = 0;

  constructor(transferId: string, workerUrl = '/receive-worker.js') {
    this.#transferId = transferId;
    this.#worker = new Worker(workerUrl, { type: 'module', name: `labbeam-receive-${transferId}` });
    this.#worker.addEventListener('message', (event: MessageEvent<WorkerReply>) => this.#reply(event.data));
    this.#worker.addEventListener('error', (event) => {
      event.preventDefault();
      this.#fail(new Error(`The file writer stopped: ${event.message || 'unknown error'}`));
    });
    if (typeof navigator.locks?.request === 'function') {
      void navigator.locks.request(LOCK_PREFIX + transferId, () => new Promise<void>((release) => (this.#releaseLock = release)));
    }
  }

  /** Takes the transfer's lock if no other tab holds it; false when one does. */
  static async claim(transferId: string): Promise<boolean> {
    if (typeof navigator.locks?.query !== 'function') return true;
    const held = (await navigator.locks.query()).held?.some((l) => l.name === LOCK_PREFIX + transferId) ?? false;
    return !held;
  }

  /** Bytes the worker has written to disk so far (the rest is queued in the worker). */
  get storedBytes(): number {
    return this.#stored;
  }

  /** Failures of the writer (disk full, OPFS refused) that happen between calls. */
  onError(handler: (error: Error) => void): void {
    this.#onError = handler;
  }

  open(index: number, size: number, resume?: PartialFile): void {
    this.#flush();
    if (resume !== undefined) {
      this.#post({ op: 'open', dir: this.#transferId, index, size, resume: { offset: resume.offset, hashState: resume.hashState } });
    } else {
      this.#post({ op: 'open', dir: this.#transferId, index, size });
    }
  }

  write(chunk: ArrayBuffer): void {
    this.#batch.push(chunk);
    this.#batchBytes += chunk.byteLength;
    if (this.#batchBytes >= BATCH_BYTES) this.#flush();
  }

  finish(index: number): Promise<StoredFile> {
    this.#flush();
    return new Promise((resolve, reject) => {
      this.#pending.set(index, { resolve, reject });
      this.#post({ op: 'finish', index });
    });
  }

  /** Hands the batched chunks to the worker (moved, not copied). */
  #flush(): void {
    if (this.#batch.length === 0) return;
    const data = this.#batch;
    this.#batch = [];
    this.#batchBytes = 0;
    this.#post({ op: 'chunks', data }, data);
  }

  /** Stops the writer and deletes what this transfer stored, except the files in `keep`. */
  discard(keep: readonly number[] = []): Promise<void> {
    this.#discarded ??= new Promise<void>((resolve) => {
      const done = (): void => {
        this.#worker.terminate();
        // Kept files stay locked (protected from the start-up clean-up) while this page lives.
        if (keep.length === 0) this.#releaseLock?.();
        resolve();
      };
      const timer = setTimeout(done, 5000);
      this.#worker.addEventListener('message', (event: MessageEvent<WorkerReply>) => {
        if (event.data.op === 'discarded') {
          clearTimeout(timer);
          done();
        }
      });
      this.#post({ op: 'discard', dir: this.#transferId, keep });
    });
    return this.#discarded;
  }

  /** Stops the writer and keeps the stored files (to be saved, then disposed of). */
  release(): void {
    this.#worker.terminate();
  }

  /** Deletes whatever is still stored and lets the start-up clean-up forget this transfer. */
  async dispose(): Promise<void> {
    this.#worker.terminate();
    if (this.#discarded !== null) await this.#discarded;
    await removeStored(this.#transferId);
    this.#releaseLock?.();
  }

  #post(message: WorkerRequest, transfer: Transferable[] = []): void {
    this.#worker.postMessage(message, transfer);
  }

  #reply(reply: WorkerReply): void {
    switch (reply.op) {
      case 'written':
        this.#stored = reply.bytes;
        break;
      case 'finished': {
        const pending = this.#pending.get(reply.index);
        this.#pending.delete(reply.index);
        pending?.resolve({ sha256: reply.sha256, bytes: reply.bytes });
        break;
      }
      case 'error':
        this.#fail(storageError(reply.name, reply.message));
        break;
      case 'discarded':
        break;
    }
  }

  #fail(error: Error): void {
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    this.#onError(error);
  }
}

function storageError(name: string, message: string): Error {
  if (name === 'QuotaExceededError') {
    return new Error('This computer has no room left for the file (the browser’s storage is full). Free some disk space, then ask the sender to try again.');
  }
  return new Error(`Could not write the file to this computer’s disk: ${message}`);
}

async function incomingDir(): Promise<FileSystemDirectoryHandle> {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(INCOMING_DIR, { create: true });
}

/** The stored file, disk-backed (reading it does not load it into memory). */
export async function storedFile(transferId: string, index: number): Promise<File> {
  const dir = await (await incomingDir()).getDirectoryHandle(transferId);
  return (await dir.getFileHandle(String(index))).getFile();
}

/** Copies stored files into `target` (a folder the user picked), recreating their relative paths. */
export async function saveStoredToDirectory(
  transferId: string,
  files: readonly { index: number; name: string }[],
  target: FileSystemDirectoryHandle,
): Promise<void> {
  for (const { index, name } of files) {
    const parts = name.split('/').filter((p) => p !== '' && p !== '.' && p !== '..');
    const base = parts.pop();
    if (base === undefined) continue;
    let dir = target;
    for (const part of parts) dir = await dir.getDirectoryHandle(part, { create: true });
    const handle = await dir.getFileHandle(base, { create: true });
    const writable = await handle.createWritable();
    await (await storedFile(transferId, index)).stream().pipeTo(writable);
  }
}

/** Deletes a transfer's stored files (after the user dismissed it). */
export async function removeStored(transferId: string): Promise<void> {
  try {
    await (await incomingDir()).removeEntry(transferId, { recursive: true });
  } catch {
    // Already gone.
  }
}

/** The checkpoint the receive worker left for a transfer (after a page reload), if any. */
export async function readCheckpoint(transferId: string): Promise<PartialFile | null> {
  try {
    const dir = await (await incomingDir()).getDirectoryHandle(transferId);
    const text = await (await (await dir.getFileHandle(CHECKPOINT_FILE)).getFile()).text();
    const v = JSON.parse(text) as Partial<Checkpoint>;
    const ok = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
    if (!ok(v.index) || !ok(v.offset) || !Array.isArray(v.hash) || !v.hash.every((b) => ok(b) && b < 256)) return null;
    return { index: v.index, offset: v.offset, hashState: Uint8Array.from(v.hash) };
  } catch {
    return null;
  }
}

/**
 * Removes folders left by tabs that are gone (no live lock), except those of the transfers in
 * `resumable` (interrupted, still within their grace period).
 */
export async function cleanUpAbandoned(resumable: ReadonlySet<string> = new Set()): Promise<void> {
  if (!opfsAvailable() || typeof navigator.locks?.query !== 'function') return;
  try {
    const held = new Set((await navigator.locks.query()).held?.map((l) => l.name) ?? []);
    const dir = await incomingDir();
    const names: string[] = [];
    for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
    for (const name of names) {
      if (!held.has(LOCK_PREFIX + name) && !resumable.has(name)) await dir.removeEntry(name, { recursive: true }).catch(() => {});
    }
  } catch {
    // OPFS unavailable (private mode): nothing was stored either.
  }
}
