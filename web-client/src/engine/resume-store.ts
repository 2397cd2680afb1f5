/**
 * What this browser remembers across page reloads so interrupted transfers can be resumed:
 * its device id (sent when connecting; the server lets only this device re-claim its side of
 * a transfer) and one record per unfinished transfer (who, which files, which were verified).
 * The receiver's bytes and hash state live in OPFS (opfs.ts); this is only the index.
 *
 * Everything is in `localStorage`, which the tabs of one browser profile share: a tab adopts a
 * stored transfer only when no other tab holds it (Web Lock, see engine.ts).
 */

import type { FileMeta, HandinTag, Peer } from './protocol';

const DEVICE_KEY = 'labbeam.deviceId';
const RECORDS_KEY = 'labbeam.transfers';

/** One interrupted (or running) transfer, as stored. */
export interface ResumeRecord {
  readonly id: string;
  readonly direction: 'send' | 'receive';
  readonly peer: Peer;
  readonly files: readonly FileMeta[];
  /** Receiver: per file, `null` (not yet) or the verification result. */
  readonly verified: readonly ({ readonly ok: boolean; readonly sha256: string } | null)[];
  readonly createdAt: number;
  /** Last time this page saw the transfer alive (ms). */
  readonly updatedAt: number;
  /** The server's resume grace period when it was stored (seconds). */
  readonly graceSecs: number;
  /** Set when the transfer delivers to a hand-in (absent in records of older pages). */
  readonly handin?: HandinTag;
}

/** Minimal storage interface (localStorage in the browser, a map in tests). */
export interface KeyValue {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

function defaultStorage(): KeyValue | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null;
  }
}

/** This browser's device id: created once (a random UUID), then kept. */
export function deviceId(storage: KeyValue | null = defaultStorage(), random: () => string = randomId): string {
  const existing = storage?.getItem(DEVICE_KEY) ?? null;
  if (existing !== null && /^[A-Za-z0-9_-]{16,64}$/.test(existing)) return existing;
  const id = random();
  try {
    storage?.setItem(DEVICE_KEY, id);
  } catch {
    // Storage full or refused: this page can still work, only not resume after a reload.
  }
  return id;
}

function randomId(): string {
  if (typeof crypto !== 'undefined' && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class ResumeStore {
  readonly #storage: KeyValue | null;

  constructor(storage: KeyValue | null = defaultStorage()) {
    this.#storage = storage;
  }

  all(): ResumeRecord[] {
    const text = this.#storage?.getItem(RECORDS_KEY) ?? null;
    if (text === null) return [];
    try {
      const v: unknown = JSON.parse(text);
      return Array.isArray(v) ? v.filter(isRecord) : [];
    } catch {
      return [];
    }
  }

  get(id: string): ResumeRecord | undefined {
    return this.all().find((r) => r.id === id);
  }

  put(record: ResumeRecord): void {
    this.#write([...this.all().filter((r) => r.id !== record.id), record]);
  }

  remove(id: string): void {
    const all = this.all();
    if (all.some((r) => r.id === id)) this.#write(all.filter((r) => r.id !== id));
  }

  /** Splits the records into those still within their grace period and the expired ones (removed). */
  prune(now: number): { live: ResumeRecord[]; expired: ResumeRecord[] } {
    const live: ResumeRecord[] = [];
    const expired: ResumeRecord[] = [];
    for (const r of this.all()) (now - r.updatedAt > r.graceSecs * 1000 ? expired : live).push(r);
    if (expired.length > 0) this.#write(live);
    return { live, expired };
  }

  #write(records: readonly ResumeRecord[]): void {
    try {
      if (records.length === 0) this.#storage?.removeItem(RECORDS_KEY);
      else this.#storage?.setItem(RECORDS_KEY, JSON.stringify(records));
    } catch {
      // Storage full: the transfer still runs; only a reload could not resume it.
    }
  }
}

function isRecord(v: unknown): v is ResumeRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r['id'] === 'string' &&
    (r['direction'] === 'send' || r['direction'] === 'receive') &&
    typeof r['peer'] === 'object' &&
    r['peer'] !== null &&
    Array.isArray(r['files']) &&
    Array.isArray(r['verified']) &&
    typeof r['updatedAt'] === 'number' &&
    typeof r['graceSecs'] === 'number' &&
    typeof r['createdAt'] === 'number'
  );
}
