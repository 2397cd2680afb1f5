/**
 * Where a broadcast receiver keeps its verified pieces: the same OPFS folder and worker as a
 * normal receiving transfer (`labbeam-incoming/<transferId>/<file index>`, receive-worker.ts),
 * written piece by piece at their offsets, so the files can be saved with the same helpers.
 * The few most recent pieces stay in memory for forwarding; older ones are read back from
 * disk when a child (a re-attached one, say) asks for them.
 */

import { removeStored } from './opfs';
import type { PieceRef } from './broadcast-pieces';
import type { PieceRequest, WorkerReply } from './worker-protocol';

const RECENT_PIECES = 8;
const LOCK_PREFIX = 'labbeam-incoming:';

type Pending = { resolve: (r: { data?: ArrayBuffer; sha256?: string }) => void; reject: (e: Error) => void };

/** Omit that works on each member of a union. */
type WithoutIds<T> = T extends unknown ? Omit<T, 'id' | 'dir'> : never;

export class PieceStore {
  readonly #dir: string;
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #recent = new Map<number, Uint8Array>();
  #nextId = 1;
  #releaseLock: (() => void) | null = null;
  #closed = false;

  constructor(dir: string, workerUrl = '/receive-worker.js') {
    this.#dir = dir;
    this.#worker = new Worker(workerUrl, { type: 'module', name: `labbeam-broadcast-${dir}` });
    this.#worker.addEventListener('message', (event: MessageEvent<WorkerReply>) => this.#reply(event.data));
    this.#worker.addEventListener('error', (event) => {
      event.preventDefault();
      this.#failAll(new Error(`The file writer stopped: ${event.message || 'unknown error'}`));
    });
    if (typeof navigator.locks?.request === 'function') {
      void navigator.locks.request(LOCK_PREFIX + dir, () => new Promise<void>((release) => (this.#releaseLock = release)));
    }
  }

  /** Creates the files at their full size (fails at once when there is no room). */
  async allocate(sizes: readonly number[]): Promise<void> {
    await Promise.all(sizes.map((size, index) => this.#call({ op: 'p-alloc', index, size })));
  }

  /** Stores a verified piece and keeps it at hand for forwarding. */
  async put(piece: PieceRef, bytes: Uint8Array): Promise<void> {
    this.#recent.set(piece.n, bytes);
    while (this.#recent.size > RECENT_PIECES) {
      const oldest = this.#recent.keys().next().value;
      if (oldest === undefined) break;
      this.#recent.delete(oldest);
    }
    // Copied (not moved) to the worker: forwarders may still be sending these bytes.
    const data = bytes.slice().buffer;
    await this.#call({ op: 'p-put', index: piece.file, at: piece.offset, data }, [data]);
  }

  async read(piece: PieceRef): Promise<Uint8Array> {
    const recent = this.#recent.get(piece.n);
    if (recent !== undefined) return recent;
    const r = await this.#call({ op: 'p-read', index: piece.file, at: piece.offset, size: piece.size });
    return new Uint8Array(r.data ?? new ArrayBuffer(0));
  }

  /** SHA-256 of a whole stored file, read back from disk. */
  async digest(file: number): Promise<string> {
    const r = await this.#call({ op: 'p-digest', index: file });
    return r.sha256 ?? '';
  }

  /** Stops the worker; the files stay (to be saved), locked while this page lives. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#recent.clear();
    this.#worker.terminate();
    this.#failAll(new Error('the broadcast ended'));
  }

  /** Deletes what was stored. */
  async dispose(): Promise<void> {
    this.close();
    await removeStored(this.#dir);
    this.#releaseLock?.();
  }

  #call(request: WithoutIds<PieceRequest>, transfer: Transferable[] = []): Promise<{ data?: ArrayBuffer; sha256?: string }> {
    if (this.#closed) return Promise.reject(new Error('the broadcast ended'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...request, id, dir: this.#dir } as PieceRequest, transfer);
    });
  }

  #reply(reply: WorkerReply): void {
    if (reply.op !== 'p-done' && reply.op !== 'p-failed') return;
    const p = this.#pending.get(reply.id);
    this.#pending.delete(reply.id);
    if (p === undefined) return;
    if (reply.op === 'p-done') {
      p.resolve({ ...(reply.data !== undefined ? { data: reply.data } : {}), ...(reply.sha256 !== undefined ? { sha256: reply.sha256 } : {}) });
    } else {
      p.reject(storageError(reply.name, reply.message));
    }
  }

  #failAll(error: Error): void {
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }
}

function storageError(name: string, message: string): Error {
  if (name === 'QuotaExceededError') {
    return new Error('This computer has no room left for the file (the browser’s storage is full). Free some disk space.');
  }
  return new Error(`Could not write the file to this computer’s disk: ${message}`);
}
