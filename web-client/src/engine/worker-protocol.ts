/** Messages between the page and the receive worker (receive-worker.ts). */

export type WorkerRequest =
  | { readonly op: 'open'; readonly dir: string; readonly index: number; readonly size: number }
  /** Consecutive chunks of the open file, batched to save messages. */
  | { readonly op: 'chunks'; readonly data: readonly ArrayBuffer[] }
  | { readonly op: 'finish'; readonly index: number }
  /** Deletes the transfer's folder, or only the files not listed in `keep`. */
  | { readonly op: 'discard'; readonly dir: string; readonly keep: readonly number[] };

export type WorkerReply =
  | { readonly op: 'written'; readonly bytes: number }
  | { readonly op: 'finished'; readonly index: number; readonly sha256: string; readonly bytes: number }
  | { readonly op: 'error'; readonly name: string; readonly message: string }
  | { readonly op: 'discarded' };
