/**
 * Large sends. One `transfer:request` lists at most 100 files and must fit in one Socket.IO
 * message (the server drops messages over 64 KiB, closing the socket), so a larger selection
 * or folder is cut into *parts*: consecutive runs of files, each sent as its own request and
 * transfer, all carrying the same `part` = `{batch, index, count, totalFiles, totalBytes}`
 * (docs/PROTOCOL.md, "Large sends"). The engine sends the parts one after the other.
 *
 * The receiver is asked once: `IncomingBatches` remembers how the user answered a send's
 * first part and answers its later parts the same way, only for the same sending user and
 * only within the part count and totals that the first part announced (what the user saw
 * when accepting). Anything else is asked as usual.
 *
 * No DOM, no I/O: planned and decided here, carried out by engine.ts.
 */

import type { FileMeta, PartInfo } from './protocol';

/** The server's limits (appliance/src/signaling/payloads.rs). */
export const MAX_FILES_PER_REQUEST = 100;
export const MAX_NAME_BYTES = 255;
export const MAX_MIME_BYTES = 255;
/** Socket.IO's cap on one message (signaling/mod.rs `MAX_MESSAGE_BYTES`). */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** What a request may take of it: room for the Socket.IO envelope and a margin. */
export const MAX_REQUEST_BYTES = MAX_MESSAGE_BYTES - 4 * 1024;

const encoder = new TextEncoder();

function utf8Bytes(s: string): number {
  return encoder.encode(s).length;
}

/** Bytes of `s` as JSON string contents (UTF-8, escapes included, quotes not): what the server measures. */
export function jsonBytes(s: string): number {
  return utf8Bytes(JSON.stringify(s)) - 2;
}

/** A MIME type the server accepts, or `''` (the type is only a hint for the receiver). */
export function cleanMime(mime: string): string {
  return jsonBytes(mime) <= MAX_MIME_BYTES && !/[\u0000-\u001f\u007f-\u009f]/.test(mime) ? mime : '';
}

/** The first file whose name (relative path) the server would refuse as too long, if any. */
export function nameTooLong(files: readonly FileMeta[]): FileMeta | null {
  return files.find((f) => jsonBytes(f.name) > MAX_NAME_BYTES) ?? null;
}

/** The serialized size of the largest `part` a request can carry (it is measured before the batch id is known). */
const WORST_PART: PartInfo = { batch: 'x'.repeat(64), index: 10_000, count: 10_000, totalFiles: 1_000_000, totalBytes: Number.MAX_SAFE_INTEGER };

/** Bytes of `transfer:request` to `to` with `files` (and a `part`), as Socket.IO sends it: `42<ack id>[event, payload]`. */
export function requestBytes(to: string, files: readonly FileMeta[], part: PartInfo | null = WORST_PART): number {
  const payload = part === null ? { to, files } : { to, files, part };
  return '42'.length + String(Number.MAX_SAFE_INTEGER).length + utf8Bytes(JSON.stringify(['transfer:request', payload]));
}

export interface PartLimits {
  readonly maxFiles: number;
  readonly maxBytes: number;
}

export const DEFAULT_PART_LIMITS: PartLimits = { maxFiles: MAX_FILES_PER_REQUEST, maxBytes: MAX_REQUEST_BYTES };

/**
 * Cuts `files` (in order) into the fewest consecutive runs that each make one request of at
 * most `maxFiles` files and `maxBytes` bytes (with a `part`). Returns the indexes into
 * `files` of each run; one run when everything fits in one request.
 */
export function planParts(to: string, files: readonly FileMeta[], limits: PartLimits = DEFAULT_PART_LIMITS): number[][] {
  const empty = requestBytes(to, []);
  const parts: number[][] = [];
  let current: number[] = [];
  let bytes = empty;
  files.forEach((f, i) => {
    const entry = utf8Bytes(JSON.stringify(f));
    // (+ 1: the comma before an entry that is not the first)
    if (current.length > 0 && (current.length >= limits.maxFiles || bytes + 1 + entry > limits.maxBytes)) {
      parts.push(current);
      current = [];
      bytes = empty;
    }
    bytes += (current.length > 0 ? 1 : 0) + entry;
    current.push(i);
  });
  if (current.length > 0) parts.push(current);
  return parts;
}

/** A random id for a send (`part.batch`): 32 hex digits. */
export function newBatchId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export type PartDecision = 'ask' | 'accept' | 'decline';

interface KnownSend {
  readonly count: number;
  readonly totalFiles: number;
  readonly totalBytes: number;
  /** The user's answer to the part that was asked; `null` while it is being asked. */
  answer: 'accepted' | 'declined' | null;
  readonly seen: Set<number>;
  files: number;
  bytes: number;
  at: number;
}

/** Sends remembered at most (the oldest is forgotten first). */
const KNOWN_SENDS = 200;

/** The receiving side: which parts of which sends the user already answered (see above). */
export class IncomingBatches {
  readonly #sends = new Map<string, KnownSend>();

  /**
   * What to do with a request from user `from` that is `part` of a send (with `files` files
   * of `bytes` bytes): ask the user, or accept or decline it as they answered that send.
   */
  decide(from: number, part: PartInfo, files: number, bytes: number, now = Date.now()): PartDecision {
    const key = `${from}:${part.batch}`;
    const known = this.#sends.get(key);
    if (known !== undefined && known.answer !== null && this.#fits(known, part, files, bytes)) {
      this.#count(known, part, files, bytes, now);
      if (known.seen.size >= known.count) this.#sends.delete(key);
      return known.answer === 'accepted' ? 'accept' : 'decline';
    }
    if (known === undefined || known.answer !== null) {
      // A send not seen yet (or a part that does not fit what was announced): this part is asked.
      const fresh: KnownSend = { count: part.count, totalFiles: part.totalFiles, totalBytes: part.totalBytes, answer: null, seen: new Set(), files: 0, bytes: 0, at: now };
      this.#count(fresh, part, files, bytes, now);
      this.#sends.delete(key);
      this.#sends.set(key, fresh);
      while (this.#sends.size > KNOWN_SENDS) {
        const oldest = this.#sends.keys().next();
        if (oldest.done === true) break;
        this.#sends.delete(oldest.value);
      }
    }
    return 'ask';
  }

  /** The user answered a part that was asked; the send's later parts get the same answer. */
  answered(from: number, part: PartInfo, accepted: boolean): void {
    const known = this.#sends.get(`${from}:${part.batch}`);
    if (known !== undefined && known.answer === null && known.seen.has(part.index)) known.answer = accepted ? 'accepted' : 'declined';
  }

  #fits(known: KnownSend, part: PartInfo, files: number, bytes: number): boolean {
    return (
      part.count === known.count &&
      part.totalFiles === known.totalFiles &&
      part.totalBytes === known.totalBytes &&
      part.index >= 1 &&
      part.index <= known.count &&
      !known.seen.has(part.index) &&
      known.files + files <= known.totalFiles &&
      known.bytes + bytes <= known.totalBytes
    );
  }

  #count(known: KnownSend, part: PartInfo, files: number, bytes: number, now: number): void {
    known.seen.add(part.index);
    known.files += files;
    known.bytes += bytes;
    known.at = now;
  }
}
