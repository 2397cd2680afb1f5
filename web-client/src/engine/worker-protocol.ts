/** Messages between the page and the receive worker (receive-worker.ts). */

export type WorkerRequest =
  | { readonly op: 'open'; readonly dir: string; readonly index: number; readonly size: number }
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
