/**
 * Sends files over a data channel (see framing.ts), reading each `File` in blocks — never the
 * whole file — hashing as it goes, and never letting more than `highWaterBytes` wait in the
 * channel's send buffer.
 *
 * The next block is read from disk while the current one is being sent, so disk reads and
 * hashing overlap with the network.
 */

import { type ChannelLike, ChannelClosedError, drained } from './channel';
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
 * Chosen by measurement (bench/transfer): on two cores the channel is CPU-bound and chunk sizes
 * between 16 and 256 KiB made no measurable difference; a few MiB in flight keeps the SCTP
 * sender busy without growing memory.
 */
export const DEFAULT_TUNING: SendTuning = {
  chunkBytes: 64 * 1024,
  readBytes: 1024 * 1024,
  highWaterBytes: 8 * 1024 * 1024,
  lowWaterBytes: 2 * 1024 * 1024,
};

export class FileSender {
  readonly #channel: ChannelLike;
  readonly #files: readonly OutgoingFile[];
  readonly #tuning: SendTuning;
  readonly #signal: AbortSignal;
  /** Bytes handed to `send()` so far, all files together. */
  #queued = 0;

  constructor(channel: ChannelLike, files: readonly OutgoingFile[], signal: AbortSignal, tuning: Partial<SendTuning> = {}) {
    this.#channel = channel;
    this.#files = files;
    this.#signal = signal;
    this.#tuning = { ...DEFAULT_TUNING, ...tuning };
  }

  /** Bytes that have left the channel's buffer (handed to the network), all files together. */
  get sentBytes(): number {
    return Math.max(0, this.#queued - this.#channel.bufferedAmount);
  }

  /** Sends every file; resolves with the sender's SHA-256 of each, in order. */
  async run(): Promise<string[]> {
    const { chunkBytes, readBytes, highWaterBytes, lowWaterBytes } = this.#tuning;
    const channel = this.#channel;
    channel.bufferedAmountLowThreshold = lowWaterBytes;
    const digests: string[] = [];

    for (const [index, file] of this.#files.entries()) {
      const size = file.blob.size;
      this.#send(encodeControl({ t: 'file', index, name: file.name, size, offset: 0 }));
      const hash = await createSha256();
      const read = (at: number): Promise<ArrayBuffer> => file.blob.slice(at, Math.min(size, at + readBytes)).arrayBuffer();

      let next: Promise<ArrayBuffer> | null = size > 0 ? read(0) : null;
      let offset = 0;
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
    this.#signal.throwIfAborted();
    if (this.#channel.readyState !== 'open') throw new ChannelClosedError();
    if (typeof data === 'string') {
      this.#channel.send(data);
    } else {
      this.#channel.send(data);
      this.#queued += data.byteLength;
    }
  }
}
