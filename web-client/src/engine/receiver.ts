/**
 * The receiving end of the data-channel protocol (framing.ts): checks that what arrives is what
 * was accepted (same files, in order, no more bytes than announced), streams the bytes into a
 * `FileSink` (OPFS in the browser, memory in tests) and verifies each file's SHA-256 against
 * the sender's.
 *
 * The sink hashes what it stored itself, so the check covers the bytes on disk, not only the
 * bytes that crossed the network.
 */

import type { ControlMessage } from './framing';
import type { FileMeta } from './protocol';

export interface StoredFile {
  readonly sha256: string;
  readonly bytes: number;
}

/** A partial file kept from before (a page reload): its bytes up to `offset`, and its hash so far. */
export interface PartialFile {
  readonly index: number;
  readonly offset: number;
  readonly hashState: Uint8Array;
}

/** Where received bytes go. Calls are made in order; the sink must apply them in that order. */
export interface FileSink {
  /** Opens file `index`; with `resume`, keeps its first `resume.offset` bytes and continues its hash. */
  open(index: number, size: number, resume?: PartialFile): void;
  write(chunk: ArrayBuffer): void;
  /** Closes the file; resolves with the hash and length of what was stored. */
  finish(index: number): Promise<StoredFile>;
}

export class ReceiveError extends Error {
  override readonly name = 'ReceiveError';
  constructor(
    readonly code: 'protocol' | 'size_mismatch',
    message: string,
  ) {
    super(message);
  }
}

export interface ReceiverEvents {
  /** A file was stored and checked; `ok` is false on a hash or size mismatch. */
  verified(index: number, ok: boolean, stored: StoredFile): void;
}

export class FileReceiver {
  readonly #files: readonly FileMeta[];
  readonly #sink: FileSink;
  readonly #events: ReceiverEvents;
  #current: { index: number; size: number; received: number } | null = null;
  #nextIndex = 0;
  /** A partial file from before a reload, reopened when the sender's header says so. */
  #partial: PartialFile | null = null;
  /** Payload bytes received so far, all files together. */
  #received = 0;

  /**
   * `start`: where a receiver restored after a page reload goes on: files before `index` were
   * handled already, and `partial` (if any) is file `index`'s kept part.
   */
  constructor(
    files: readonly FileMeta[],
    sink: FileSink,
    events: ReceiverEvents,
    start: { index: number; partial: PartialFile | null } = { index: 0, partial: null },
  ) {
    this.#files = files;
    this.#sink = sink;
    this.#events = events;
    this.#nextIndex = start.index;
    this.#partial = start.partial !== null && start.partial.index === start.index ? start.partial : null;
    this.#received = files.slice(0, start.index).reduce((n, f) => n + f.size, 0) + (this.#partial?.offset ?? 0);
  }

  get receivedBytes(): number {
    return this.#received;
  }

  /** Index of the file being received, or `null` between files. */
  get currentIndex(): number | null {
    return this.#current?.index ?? null;
  }

  /** All announced files have had their end-of-file. */
  get allArrived(): boolean {
    return this.#nextIndex === this.#files.length && this.#current === null;
  }

  /** Where the sender must go on after an interruption: what this receiver has. */
  get resumePoint(): { index: number; offset: number } {
    if (this.#current !== null) return { index: this.#current.index, offset: this.#current.received };
    if (this.#partial !== null) return { index: this.#partial.index, offset: this.#partial.offset };
    return { index: this.#nextIndex, offset: 0 };
  }

  /** Handles a control message from the sender (not `cancel`, which the transfer handles). */
  control(message: ControlMessage): void {
    if (message.t === 'file') {
      const current = this.#current;
      if (current !== null) {
        // A new connection goes on with the open file exactly where it stopped.
        if (message.index !== current.index || message.offset !== current.received || message.size !== current.size) {
          throw new ReceiveError('protocol', 'The sender went on from a point this browser did not ask for.');
        }
        return;
      }
      const expected = this.#files[this.#nextIndex];
      if (expected === undefined || message.index !== this.#nextIndex) {
        throw new ReceiveError('protocol', 'The sender sent a file that was not expected at this point.');
      }
      if (message.name !== expected.name || message.size !== expected.size) {
        throw new ReceiveError('protocol', `The sender sent "${message.name}" where "${expected.name}" was announced.`);
      }
      const partial = this.#partial;
      this.#partial = null;
      const offset = partial?.offset ?? 0;
      if (message.offset !== offset) throw new ReceiveError('protocol', 'The sender tried to resume a file from a point this browser does not have.');
      this.#current = { index: message.index, size: message.size, received: offset };
      this.#nextIndex += 1;
      if (partial !== null) this.#sink.open(message.index, message.size, partial);
      else this.#sink.open(message.index, message.size);
    } else if (message.t === 'eof') {
      const current = this.#current;
      if (current === null || message.index !== current.index) {
        throw new ReceiveError('protocol', 'The sender ended a file that was not being sent.');
      }
      if (current.received !== current.size) {
        throw new ReceiveError('size_mismatch', `${this.#files[current.index]?.name ?? 'A file'} arrived incomplete (${current.received} of ${current.size} bytes).`);
      }
      this.#current = null;
      const expectedSha = message.sha256;
      void this.#sink.finish(current.index).then(
        (stored) => this.#events.verified(current.index, stored.sha256 === expectedSha && stored.bytes === current.size, stored),
        (error: unknown) => this.#fail(error),
      );
    } else if (message.t === 'ready') {
      throw new ReceiveError('protocol', 'The sender sent a message only a receiver sends.');
    }
  }

  chunk(data: ArrayBuffer): void {
    const current = this.#current;
    if (current === null) throw new ReceiveError('protocol', 'The sender sent data outside of a file.');
    current.received += data.byteLength;
    if (current.received > current.size) {
      throw new ReceiveError('size_mismatch', `${this.#files[current.index]?.name ?? 'A file'} is larger than announced.`);
    }
    this.#received += data.byteLength;
    this.#sink.write(data);
  }

  #failure: ((error: unknown) => void) | null = null;

  /** Where sink failures that happen after `control()` returned are reported. */
  onSinkError(handler: (error: unknown) => void): void {
    this.#failure = handler;
  }

  #fail(error: unknown): void {
    this.#failure?.(error);
  }
}
