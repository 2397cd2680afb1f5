/**
 * Piece bookkeeping of a broadcast (no DOM, no network): how the files are cut into pieces,
 * which pieces a receiver has, the sender's manifest of piece hashes, and the messages of
 * the link protocol between a parent and a child of the relay tree.
 *
 * Pieces are numbered across all files in request order; each file is cut into pieces of
 * `pieceBytes` (its last piece shorter; an empty file has none), so a piece never spans two
 * files and can be written at its offset on its own.
 *
 * Link protocol (one ordered, reliable data channel per tree edge):
 *   child → parent  text   {"t":"need","ranges":[[from,to),…]}   pieces it still lacks
 *   parent → child  text   {"t":"piece","n","size"}              then `size` bytes in binary
 *                                                                  messages, in order
 * A child sends `need` once, when the channel opens; the parent then sends every piece in
 * that set as soon as it has it (pipelined: a piece is forwarded as soon as it is verified).
 */

import { isSize, parseObject } from './framing';

export interface PieceRef {
  /** Global piece number. */
  readonly n: number;
  readonly file: number;
  /** Byte offset in its file. */
  readonly offset: number;
  readonly size: number;
}

export class PieceLayout {
  readonly pieceBytes: number;
  readonly sizes: readonly number[];
  readonly #first: number[] = [];
  readonly count: number;
  readonly totalBytes: number;

  constructor(sizes: readonly number[], pieceBytes: number) {
    if (!Number.isSafeInteger(pieceBytes) || pieceBytes <= 0) throw new Error('piece size must be a positive integer');
    this.pieceBytes = pieceBytes;
    this.sizes = [...sizes];
    let n = 0;
    let total = 0;
    for (const size of sizes) {
      this.#first.push(n);
      n += Math.ceil(size / pieceBytes);
      total += size;
    }
    this.count = n;
    this.totalBytes = total;
  }

  /** Pieces of file `file`. */
  piecesOf(file: number): number {
    return Math.ceil((this.sizes[file] ?? 0) / this.pieceBytes);
  }

  firstOf(file: number): number {
    return this.#first[file] ?? this.count;
  }

  piece(n: number): PieceRef {
    if (!Number.isInteger(n) || n < 0 || n >= this.count) throw new RangeError(`no piece ${n}`);
    // The last file whose first piece is at or before n (files without pieces are skipped).
    let file = 0;
    for (let f = 0; f < this.sizes.length; f += 1) {
      if ((this.#first[f] ?? 0) <= n && this.piecesOf(f) > 0) file = f;
    }
    const index = n - (this.#first[file] ?? 0);
    const offset = index * this.pieceBytes;
    return { n, file, offset, size: Math.min(this.pieceBytes, (this.sizes[file] ?? 0) - offset) };
  }
}

/** A set of piece numbers in [0, count). */
export class PieceSet {
  readonly count: number;
  readonly #bits: Uint8Array;
  #size = 0;

  constructor(count: number) {
    this.count = count;
    this.#bits = new Uint8Array(Math.ceil(count / 8));
  }

  static all(count: number): PieceSet {
    const s = new PieceSet(count);
    for (let n = 0; n < count; n += 1) s.add(n);
    return s;
  }

  static fromRanges(count: number, ranges: readonly (readonly [number, number])[]): PieceSet {
    const s = new PieceSet(count);
    for (const [from, to] of ranges) {
      for (let n = Math.max(0, from); n < Math.min(count, to); n += 1) s.add(n);
    }
    return s;
  }

  get size(): number {
    return this.#size;
  }

  get complete(): boolean {
    return this.#size === this.count;
  }

  has(n: number): boolean {
    return n >= 0 && n < this.count && ((this.#bits[n >> 3] ?? 0) & (1 << (n & 7))) !== 0;
  }

  add(n: number): boolean {
    if (n < 0 || n >= this.count || this.has(n)) return false;
    this.#bits[n >> 3] = (this.#bits[n >> 3] ?? 0) | (1 << (n & 7));
    this.#size += 1;
    return true;
  }

  delete(n: number): boolean {
    if (!this.has(n)) return false;
    this.#bits[n >> 3] = (this.#bits[n >> 3] ?? 0) & ~(1 << (n & 7));
    this.#size -= 1;
    return true;
  }

  /** The pieces not in the set, as half-open ranges. */
  missingRanges(): [number, number][] {
    const out: [number, number][] = [];
    let start = -1;
    for (let n = 0; n < this.count; n += 1) {
      if (!this.has(n)) {
        if (start < 0) start = n;
      } else if (start >= 0) {
        out.push([start, n]);
        start = -1;
      }
    }
    if (start >= 0) out.push([start, this.count]);
    return out;
  }

  *[Symbol.iterator](): IterableIterator<number> {
    for (let n = 0; n < this.count; n += 1) if (this.has(n)) yield n;
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

/** The sender's piece hashes, filled part by part (`broadcast:manifest`). */
export class Manifest {
  readonly layout: PieceLayout;
  readonly #hashes: (string | null)[];
  readonly #fileSha: (string | null)[];
  #known = 0;

  constructor(layout: PieceLayout) {
    this.layout = layout;
    this.#hashes = new Array<string | null>(layout.count).fill(null);
    this.#fileSha = layout.sizes.map(() => null);
  }

  /** Adds a part; throws on anything that does not fit the layout. */
  add(part: { file: number; first: number; hashes: readonly string[]; sha256?: string | null }): void {
    const { file, first, hashes } = part;
    const pieces = this.layout.piecesOf(file);
    if (file < 0 || file >= this.layout.sizes.length || first < 0 || first + hashes.length > pieces) {
      throw new Error('a manifest part does not fit the files');
    }
    hashes.forEach((h, i) => {
      if (!HEX64.test(h)) throw new Error('a piece hash is not valid');
      const n = this.layout.firstOf(file) + first + i;
      if (this.#hashes[n] === null) this.#known += 1;
      this.#hashes[n] = h;
    });
    if (part.sha256 !== undefined && part.sha256 !== null) {
      if (!HEX64.test(part.sha256)) throw new Error('a file hash is not valid');
      this.#fileSha[file] = part.sha256;
    }
  }

  hashOf(n: number): string | null {
    return this.#hashes[n] ?? null;
  }

  fileSha(file: number): string | null {
    return this.#fileSha[file] ?? null;
  }

  get complete(): boolean {
    return this.#known === this.layout.count && this.#fileSha.every((h) => h !== null);
  }
}

export type LinkMessage =
  | { readonly t: 'need'; readonly ranges: readonly (readonly [number, number])[] }
  | { readonly t: 'piece'; readonly n: number; readonly size: number };

export function encodeLink(m: LinkMessage): string {
  return JSON.stringify(m);
}

/** Parses a text message of the link protocol; `null` for anything else. */
export function decodeLink(text: string): LinkMessage | null {
  const m = parseObject(text);
  if (m === null) return null;
  if (m['t'] === 'piece' && isSize(m['n']) && isSize(m['size'])) return { t: 'piece', n: m['n'], size: m['size'] };
  if (m['t'] === 'need' && Array.isArray(m['ranges']) && m['ranges'].length <= 100_000) {
    const ranges: [number, number][] = [];
    for (const r of m['ranges'] as unknown[]) {
      if (!Array.isArray(r) || r.length !== 2 || !isSize(r[0]) || !isSize(r[1]) || r[0] > r[1]) return null;
      ranges.push([r[0], r[1]]);
    }
    return { t: 'need', ranges };
  }
  return null;
}

/**
 * Collects one piece's binary messages after its header. `push` returns the whole piece when
 * its last byte arrived; more bytes than announced, or data without a header, throw.
 */
export class PieceAssembler {
  #current: { n: number; buf: Uint8Array; at: number } | null = null;
  readonly #maxSize: number;

  constructor(maxSize: number) {
    this.#maxSize = maxSize;
  }

  /** Bytes of the piece under way. */
  get partialBytes(): number {
    return this.#current?.at ?? 0;
  }

  begin(n: number, size: number): { n: number; bytes: Uint8Array } | null {
    if (this.#current !== null) throw new Error('a piece began before the previous one ended');
    if (size > this.#maxSize) throw new Error('a piece is larger than the piece size');
    if (size === 0) return { n, bytes: new Uint8Array(0) };
    this.#current = { n, buf: new Uint8Array(size), at: 0 };
    return null;
  }

  push(data: ArrayBuffer): { n: number; bytes: Uint8Array } | null {
    const c = this.#current;
    if (c === null) throw new Error('piece data arrived without a piece header');
    if (c.at + data.byteLength > c.buf.byteLength) throw new Error('a piece is longer than announced');
    c.buf.set(new Uint8Array(data), c.at);
    c.at += data.byteLength;
    if (c.at < c.buf.byteLength) return null;
    this.#current = null;
    return { n: c.n, bytes: c.buf };
  }
}
