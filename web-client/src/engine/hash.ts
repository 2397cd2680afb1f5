/**
 * Incremental SHA-256 for files of any size (`crypto.subtle.digest` needs the whole input at
 * once). hash-wasm is several times faster than pure JavaScript, which matters because hashing
 * shares the CPU with the data channel; it needs WebAssembly, which a Content-Security-Policy
 * without `'wasm-unsafe-eval'` forbids, so @noble/hashes (pure JS) is the fallback.
 */

import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { createSHA256 } from 'hash-wasm';

export interface IncrementalHash {
  update(data: Uint8Array): void;
  /** Lowercase hex; the hash cannot be used afterwards. */
  digestHex(): string;
  /**
   * The hash's internal state, to continue it later (a receiver that resumes a file after a
   * page reload); `null` when this implementation cannot save it (the pure-JS fallback).
   */
  save(): Uint8Array | null;
}

let wasmUsable: boolean | undefined;

/**
 * A new SHA-256, or one continued from `state` (from `save()`). A state that cannot be loaded
 * (the fallback implementation, or a damaged state) rejects: the caller starts the file over.
 */
export async function createSha256(state?: Uint8Array): Promise<IncrementalHash> {
  if (wasmUsable !== false) {
    let h: Awaited<ReturnType<typeof createSHA256>> | null = null;
    try {
      h = await createSHA256();
      h.init();
      wasmUsable = true;
    } catch {
      wasmUsable = false;
    }
    if (h !== null) {
      const hasher = h;
      if (state !== undefined) hasher.load(state);
      return { update: (d) => void hasher.update(d), digestHex: () => hasher.digest('hex'), save: () => hasher.save() };
    }
  }
  if (state !== undefined) throw new Error('this browser cannot continue a saved hash');
  const h = nobleSha256.create();
  return { update: (d) => void h.update(d), digestHex: () => bytesToHex(h.digest()), save: () => null };
}

/** Which implementation `createSha256` uses here (after its first call). */
export function hashImplementation(): 'wasm' | 'js' | 'unknown' {
  return wasmUsable === undefined ? 'unknown' : wasmUsable ? 'wasm' : 'js';
}

/**
 * The digest a transfer reports in `transfer:finish`: the file's own SHA-256 for one file,
 * otherwise the SHA-256 of the files' hex digests joined by newlines, in request order. Both
 * sides compute it the same way, so the server can compare them.
 */
export async function transferDigest(fileDigests: readonly string[]): Promise<string> {
  if (fileDigests.length === 1) return fileDigests[0] ?? '';
  const h = await createSha256();
  h.update(new TextEncoder().encode(fileDigests.join('\n')));
  return h.digestHex();
}
