/**
 * The parent's end of a relay-tree link: sends the child every piece it asked for (`need`)
 * as soon as this device has it, one at a time, with the data channel's backpressure.
 *
 * Pieces come from a `PieceSource` (the sender's own files, or what a receiver verified and
 * stored), so nothing but the piece on its way is held here. The send buffer is kept small
 * (about a piece): every tree level adds what waits in its buffers to the time the last
 * receiver finishes.
 */

import { type ChannelLike, drained, sendChecked } from './channel';
import { PieceSet, encodeLink } from './broadcast-pieces';

export interface PieceSource {
  /** True when this device has piece `n` (verified). */
  has(n: number): boolean;
  /** The bytes of piece `n`, which `has(n)`. */
  read(n: number): Promise<Uint8Array>;
}

export interface ForwardTuning {
  readonly chunkBytes: number;
  readonly highWaterBytes: number;
  readonly lowWaterBytes: number;
}

export const FORWARD_TUNING: ForwardTuning = {
  chunkBytes: 64 * 1024,
  highWaterBytes: 1024 * 1024,
  lowWaterBytes: 256 * 1024,
};

export class PieceForwarder {
  readonly #channel: ChannelLike;
  readonly #source: PieceSource;
  readonly #signal: AbortSignal;
  readonly #tuning: ForwardTuning;
  /** Pieces the child asked for and that are not queued yet. */
  #need: PieceSet | null = null;
  readonly #queue: number[] = [];
  #pumping = false;
  #queued = 0;
  #onError: (error: unknown) => void = () => {};

  constructor(channel: ChannelLike, count: number, source: PieceSource, signal: AbortSignal, tuning: Partial<ForwardTuning> = {}) {
    this.#channel = channel;
    this.#source = source;
    this.#signal = signal;
    this.#tuning = { ...FORWARD_TUNING, ...tuning };
    this.#count = count;
  }

  readonly #count: number;

  onError(handler: (error: unknown) => void): void {
    this.#onError = handler;
  }

  /** Bytes handed to the network so far. */
  get sentBytes(): number {
    return Math.max(0, this.#queued - this.#channel.bufferedAmount);
  }

  /** True while pieces wait to be sent. */
  get busy(): boolean {
    return this.#pumping || this.#queue.length > 0;
  }

  /** The child's `need`: queues at once every piece of it this device has. */
  setNeed(ranges: readonly (readonly [number, number])[]): void {
    this.#need = PieceSet.fromRanges(this.#count, ranges);
    for (const n of this.#need) {
      if (this.#source.has(n)) this.#enqueue(n);
    }
    void this.#pump();
  }

  /** This device now has piece `n`. */
  available(n: number): void {
    if (this.#need?.has(n) !== true) return;
    this.#enqueue(n);
    void this.#pump();
  }

  #enqueue(n: number): void {
    this.#need?.delete(n);
    this.#queue.push(n);
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (let n = this.#queue.shift(); n !== undefined; n = this.#queue.shift()) {
        const bytes = await this.#source.read(n);
        await this.#sendPiece(n, bytes);
      }
    } catch (error) {
      if (!this.#signal.aborted) this.#onError(error);
    } finally {
      this.#pumping = false;
    }
  }

  async #sendPiece(n: number, bytes: Uint8Array): Promise<void> {
    const { chunkBytes, highWaterBytes, lowWaterBytes } = this.#tuning;
    const channel = this.#channel;
    channel.bufferedAmountLowThreshold = lowWaterBytes;
    if (channel.bufferedAmount > highWaterBytes) await drained(channel, this.#signal);
    this.#send(encodeLink({ t: 'piece', n, size: bytes.byteLength }));
    for (let at = 0; at < bytes.byteLength; at += chunkBytes) {
      if (channel.bufferedAmount > highWaterBytes) await drained(channel, this.#signal);
      this.#send(bytes.subarray(at, Math.min(bytes.byteLength, at + chunkBytes)) as Uint8Array<ArrayBuffer>);
    }
  }

  #send(data: string | Uint8Array<ArrayBuffer>): void {
    this.#queued += sendChecked(this.#channel, this.#signal, data);
  }
}
