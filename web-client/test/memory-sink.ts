// An in-memory FileSink for engine tests: keeps each file's chunks, and on a resumed open
// keeps the first `offset` bytes (what a reloaded page finds on disk).

import { createHash } from 'node:crypto';

import type { FileSink, PartialFile, StoredFile } from '../src/engine/receiver';

export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export class MemorySink implements FileSink {
  readonly files = new Map<number, Buffer[]>();
  #open = -1;
  opened: { index: number; resume?: PartialFile }[] = [];
  open(index: number, _size: number, resume?: PartialFile): void {
    this.#open = index;
    this.opened.push(resume === undefined ? { index } : { index, resume });
    const kept = resume === undefined ? [] : [Buffer.concat(this.files.get(index) ?? []).subarray(0, resume.offset)];
    this.files.set(index, kept);
  }
  write(chunk: ArrayBuffer): void {
    this.files.get(this.#open)!.push(Buffer.from(chunk));
  }
  async finish(index: number): Promise<StoredFile> {
    const all = Buffer.concat(this.files.get(index)!);
    return { sha256: sha(all), bytes: all.byteLength };
  }
}
