/**
 * The part of `RTCDataChannel` the sender and receiver use, so they can be driven by a fake
 * channel in unit tests.
 */

export interface ChannelLike {
  readonly readyState: RTCDataChannelState;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  send(data: string): void;
  send(data: ArrayBufferView<ArrayBuffer>): void;
  addEventListener(type: 'bufferedamountlow' | 'close' | 'error', listener: () => void): void;
  removeEventListener(type: 'bufferedamountlow' | 'close' | 'error', listener: () => void): void;
}

export class ChannelClosedError extends Error {
  override readonly name = 'ChannelClosedError';
  constructor() {
    super('The data channel closed.');
  }
}

/**
 * Resolves once the channel's send buffer has drained to its low-water mark; rejects when the
 * channel closes or `signal` aborts. This is the sender's backpressure: without it, `send()`
 * queues without limit (and throws once Chromium's 16 MiB queue is full).
 */
export function drained(channel: ChannelLike, signal: AbortSignal): Promise<void> {
  if (channel.bufferedAmount <= channel.bufferedAmountLowThreshold) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (): void => {
      channel.removeEventListener('bufferedamountlow', onLow);
      channel.removeEventListener('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const onLow = (): void => {
      done();
      resolve();
    };
    const onClose = (): void => {
      done();
      reject(new ChannelClosedError());
    };
    const onAbort = (): void => {
      done();
      reject(signal.reason);
    };
    channel.addEventListener('bufferedamountlow', onLow);
    channel.addEventListener('close', onClose);
    signal.addEventListener('abort', onAbort);
  });
}

/**
 * Sends one message unless `signal` aborted or the channel is no longer open (then it throws
 * the abort reason or `ChannelClosedError`). Returns the bytes it queued (0 for text).
 */
export function sendChecked(channel: ChannelLike, signal: AbortSignal, data: string | Uint8Array<ArrayBuffer>): number {
  signal.throwIfAborted();
  if (channel.readyState !== 'open') throw new ChannelClosedError();
  if (typeof data === 'string') {
    channel.send(data);
    return 0;
  }
  channel.send(data);
  return data.byteLength;
}
