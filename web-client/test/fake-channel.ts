// An in-memory stand-in for RTCDataChannel, shared by the engine's unit tests.

import type { ChannelLike } from '../src/engine/channel';

/** A channel that "transmits" `drainBytes` every tick into `deliver`. */
export class FakeChannel implements ChannelLike {
  readyState: RTCDataChannelState = 'open';
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  maxBuffered = 0;
  readonly #queue: (string | Uint8Array)[] = [];
  readonly #listeners = new Map<string, Set<() => void>>();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(deliver: (m: string | ArrayBuffer) => void, drainBytes = 1024 * 1024) {
    this.#timer = setInterval(() => {
      let budget = drainBytes;
      const before = this.bufferedAmount;
      while (this.#queue.length > 0 && budget > 0) {
        const m = this.#queue.shift()!;
        if (typeof m === 'string') deliver(m);
        else {
          budget -= m.byteLength;
          this.bufferedAmount -= m.byteLength;
          deliver(m.buffer.slice(m.byteOffset, m.byteOffset + m.byteLength) as ArrayBuffer);
        }
      }
      if (before > this.bufferedAmountLowThreshold && this.bufferedAmount <= this.bufferedAmountLowThreshold) this.#fire('bufferedamountlow');
    }, 1);
  }

  send(data: string): void;
  send(data: ArrayBufferView<ArrayBuffer>): void;
  send(data: string | ArrayBufferView<ArrayBuffer>): void {
    if (typeof data === 'string') this.#queue.push(data);
    else {
      // Like RTCDataChannel: the bytes are copied at send().
      const copy = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      this.#queue.push(copy);
      this.bufferedAmount += copy.byteLength;
      this.maxBuffered = Math.max(this.maxBuffered, this.bufferedAmount);
    }
  }

  addEventListener(type: string, l: () => void): void {
    const set = this.#listeners.get(type) ?? new Set();
    set.add(l);
    this.#listeners.set(type, set);
  }

  removeEventListener(type: string, l: () => void): void {
    this.#listeners.get(type)?.delete(l);
  }

  close(): void {
    clearInterval(this.#timer);
    this.readyState = 'closed';
    this.#fire('close');
  }

  #fire(type: string): void {
    for (const l of [...(this.#listeners.get(type) ?? [])]) l();
  }
}
