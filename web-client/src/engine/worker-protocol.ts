/** Messages between the page and the receive worker (receive-worker.ts). */

/**
 * What the worker keeps next to a transfer's files (`<dir>/state`, JSON), rewritten after the
 * file's bytes were flushed: enough for a reloaded page to go on with the open file.
 */
export interface Checkpoint {
  readonly index: number;
  /** Bytes of file `index` flushed to disk and covered by `hash`. */
  readonly offset: number;
  /** The SHA-256 state of those bytes (hash-wasm `save()`), as numbers 0–255. */
  readonly hash: readonly number[];
}

/** The name of the checkpoint file inside a transfer's folder. */
export const CHECKPOINT_FILE = 'state';

export type WorkerRequest =
  /** With `resume`: the file's first `offset` bytes are kept and its hash goes on from `hashState`. */
  | {
      readonly op: 'open';
      readonly dir: string;
      readonly index: number;
      readonly size: number;
      readonly resume?: { readonly offset: number; readonly hashState: Uint8Array };
    }
  /** Consecutive chunks of the open file, batched to save messages. */
  | { readonly op: 'chunks'; readonly data: readonly ArrayBuffer[] }
  | { readonly op: 'finish'; readonly index: number }
  /** Deletes the transfer's folder, or only the files not listed in `keep`. */
  | { readonly op: 'discard'; readonly dir: string; readonly keep: readonly number[] }
  | PieceRequest;

/**
 * Broadcast pieces (broadcast-store.ts): written and read at any offset, in any order. Each
 * request opens the file, acts and closes it again, so no file stays locked between pieces and
 * a verified file can be saved while its pieces are still forwarded. Answered by `id`.
 */
export type PieceRequest =
  | { readonly op: 'p-alloc'; readonly id: number; readonly dir: string; readonly index: number; readonly size: number }
  | { readonly op: 'p-put'; readonly id: number; readonly dir: string; readonly index: number; readonly at: number; readonly data: ArrayBuffer }
  | { readonly op: 'p-read'; readonly id: number; readonly dir: string; readonly index: number; readonly at: number; readonly size: number }
  /** SHA-256 of the whole stored file, read back from disk. */
  | { readonly op: 'p-digest'; readonly id: number; readonly dir: string; readonly index: number };

export type WorkerReply =
  | { readonly op: 'written'; readonly bytes: number }
  | { readonly op: 'finished'; readonly index: number; readonly sha256: string; readonly bytes: number }
  | { readonly op: 'error'; readonly name: string; readonly message: string }
  | { readonly op: 'discarded' }
  | { readonly op: 'p-done'; readonly id: number; readonly data?: ArrayBuffer; readonly sha256?: string }
  | { readonly op: 'p-failed'; readonly id: number; readonly name: string; readonly message: string };
