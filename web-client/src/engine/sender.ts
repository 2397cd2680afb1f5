/**
 * Sends files over a data channel (see framing.ts), reading each `File` in blocks — never the
 * whole file — hashing as it goes, and never letting more than `highWaterBytes` wait in the
 * channel's send buffer.
 *
 * The next block is read from disk while the current one is being sent, so disk reads and
 * hashing overlap with the network.
 */

import { type ChannelLike, drained, sendChecked } from './channel';
import { encodeControl } from './framing';
import { createSha256 } from './hash';

export interface OutgoingFile {
  /** Name or relative path, as announced in the request. */
  readonly name: string;
  readonly blob: Blob;
}

export interface SendTuning {
  /** Bytes per `send()` (Chromium accepts up to 256 KiB messages). */
  readonly chunkBytes: number;
  /** Bytes per read from disk (and per hash update). */
  readonly readBytes: number;
  /** Stop queueing above this many buffered bytes... */
  readonly highWaterBytes: number;
  /** ...and resume when the buffer has drained to this. */
  readonly lowWaterBytes: number;
}

/**
 * Chosen by measurement (bench/transfer/README.md, "The sender's chunk size and buffer"): the
 * channel is CPU-bound, so the chunk size within the range Chromium accepts made no measurable
 * difference; a few MiB in flight keeps the SCTP sender busy without growing memory, and much
 * more makes `send()` throw.
 */
export const DEFAULT_TUNING: SendTuning = {
  chunkBytes: 64 * 1024,
  readBytes: 1024 * 1024,
  highWaterBytes: 8 * 1024 * 1024,
  lowWaterBytes: 2 * 1024 * 1024,
};

/** Where a (resumed) send starts: file `index`, from byte `offset` (what the receiver has). */
export interface StartPoint {
  readonly index: number;
  readonly offset: number;
}

export class FileSender {
  readonly #channel: ChannelLike;
  readonly #files: readonly OutgoingFile[];
  readonly #tuning: SendTuning;
  readonly #signal: AbortSignal;
  readonly #start: StartPoint;
  /** Bytes the receiver already had when this send started (earlier files and the offset). */
  readonly #baseBytes: number;
  /** Bytes handed to `send()` so far, all files together. */
  #queued = 0;

  constructor(
    channel: ChannelLike,
    files: readonly OutgoingFile[],
    signal: AbortSignal,
    tuning: Partial<SendTuning> = {},
    start: StartPoint = { index: 0, offset: 0 },
  ) {
    this.#channel = channel;
    this.#files = files;
    this.#signal = signal;
    this.#tuning = { ...DEFAULT_TUNING, ...tuning };
    this.#start = start;
    this.#baseBytes = files.slice(0, start.index).reduce((n, f) => n + f.blob.size, 0) + start.offset;
  }

  /** Bytes the receiver has (had before, plus what left the channel's buffer), all files together. */
  get sentBytes(): number {
    return this.#baseBytes + Math.max(0, this.#queued - this.#channel.bufferedAmount);
  }

  /** File bytes handed to the channel by this sender (for the re-sent figure). */
  get queuedBytes(): number {
    return this.#queued;
  }

  /**
   * Sends every file from the start point on; resolves with the sender's SHA-256 of each file
   * it sent (`null` for the files before the start point, which the receiver already has).
   * A file resumed at an offset is still hashed whole: its first part is read and hashed
   * here, not sent.
   */
  async run(): Promise<(string | null)[]> {
    const { chunkBytes, readBytes, highWaterBytes, lowWaterBytes } = this.#tuning;
    const channel = this.#channel;
    channel.bufferedAmountLowThreshold = lowWaterBytes;
    const digests: (string | null)[] = this.#files.slice(0, this.#start.index).map(() => null);

    for (const [index, file] of this.#files.entries()) {
      if (index < this.#start.index) continue;
      const size = file.blob.size;
      const from = index === this.#start.index ? Math.min(this.#start.offset, size) : 0;
      const hash = await createSha256();
      const read = (at: number): Promise<ArrayBuffer> => file.blob.slice(at, Math.min(size, at + readBytes)).arrayBuffer();
      for (let at = 0; at < from; ) {
        this.#signal.throwIfAborted();
        const block = new Uint8Array(await file.blob.slice(at, Math.min(from, at + readBytes)).arrayBuffer());
        if (block.byteLength === 0) throw new Error(`${file.name} became shorter while it was being sent`);
        hash.update(block);
        at += block.byteLength;
      }
      this.#send(encodeControl({ t: 'file', index, name: file.name, size, offset: from }));

      let next: Promise<ArrayBuffer> | null = from < size ? read(from) : null;
      let offset = from;
      while (next !== null) {
        const block = new Uint8Array(await next);
        if (block.byteLength === 0) throw new Error(`${file.name} became shorter while it was being sent`);
        offset += block.byteLength;
        next = offset < size ? read(offset) : null;
        hash.update(block);
        for (let at = 0; at < block.byteLength; at += chunkBytes) {
          if (channel.bufferedAmount > highWaterBytes) await drained(channel, this.#signal);
          this.#send(block.subarray(at, Math.min(block.byteLength, at + chunkBytes)));
        }
      }
      const sha256 = hash.digestHex();
      digests.push(sha256);
      this.#send(encodeControl({ t: 'eof', index, sha256 }));
    }
    return digests;
  }

  #send(data: string | Uint8Array<ArrayBuffer>): void {
    this.#queued += sendChecked(this.#channel, this.#signal, data);
  }
}
