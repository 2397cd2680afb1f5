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
}

let wasmUsable: boolean | undefined;

export async function createSha256(): Promise<IncrementalHash> {
  if (wasmUsable !== false) {
    try {
      const h = await createSHA256();
      h.init();
      wasmUsable = true;
      return { update: (d) => void h.update(d), digestHex: () => h.digest('hex') };
    } catch {
      wasmUsable = false;
    }
  }
  const h = nobleSha256.create();
  return { update: (d) => void h.update(d), digestHex: () => bytesToHex(h.digest()) };
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
