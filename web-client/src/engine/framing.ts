/**
 * The data-channel protocol between the two browsers of a transfer.
 *
 * One ordered, reliable channel carries, for each file in the order of the request:
 *   text   {"t":"file","index","name","size","offset"}   header
 *   binary chunks of the file's bytes, from `offset` on, in order
 *   text   {"t":"eof","index","sha256"}                  the sender's SHA-256 of the whole file
 * and the receiver answers each file with
 *   text   {"t":"verified","index","ok","sha256"}        its own SHA-256 of what it stored
 * Either side may send {"t":"cancel","reason"} at any time; the channel then closes.
 *
 * Every time a channel opens (the first connection, and each new connection after an
 * interruption), the receiver speaks first:
 *   text   {"t":"verified",...}                          again, for each file it already has
 *   text   {"t":"ready","index","offset"}                where to go on: file `index` from byte `offset`
 * and the sender waits for `ready`, then sends from there (earlier files are not sent again,
 * and file `index` starts with a header whose `offset` is that offset).
 *
 * Binary messages need no header of their own: an ordered channel delivers them after the
 * file header they belong to, so a chunk is pure payload (no copy to add framing).
 * `offset` is where the bytes of a resumed file go on (0 for a file sent from its start).
 */

export type ControlMessage =
  | { readonly t: 'file'; readonly index: number; readonly name: string; readonly size: number; readonly offset: number }
  | { readonly t: 'eof'; readonly index: number; readonly sha256: string }
  | { readonly t: 'verified'; readonly index: number; readonly ok: boolean; readonly sha256: string }
  | { readonly t: 'cancel'; readonly reason: string }
  | { readonly t: 'ready'; readonly index: number; readonly offset: number };

export function encodeControl(message: ControlMessage): string {
  return JSON.stringify(message);
}

const HEX64 = /^[0-9a-f]{64}$/;
const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
export const isSize = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parses and checks a text message; `null` for anything that is not a valid control message. */
export function decodeControl(text: string): ControlMessage | null {
  const m = parseObject(text);
  if (m === null) return null;
  switch (m['t']) {
    case 'file':
      if (!isIndex(m['index']) || typeof m['name'] !== 'string' || !isSize(m['size']) || !isSize(m['offset'])) return null;
      if (m['offset'] > m['size']) return null;
      return { t: 'file', index: m['index'], name: m['name'], size: m['size'], offset: m['offset'] };
    case 'eof':
      if (!isIndex(m['index']) || typeof m['sha256'] !== 'string' || !HEX64.test(m['sha256'])) return null;
      return { t: 'eof', index: m['index'], sha256: m['sha256'] };
    case 'verified':
      if (!isIndex(m['index']) || typeof m['ok'] !== 'boolean' || typeof m['sha256'] !== 'string') return null;
      return { t: 'verified', index: m['index'], ok: m['ok'], sha256: m['sha256'] };
    case 'ready':
      if (!isIndex(m['index']) || !isSize(m['offset'])) return null;
      return { t: 'ready', index: m['index'], offset: m['offset'] };
    case 'cancel':
      return { t: 'cancel', reason: typeof m['reason'] === 'string' ? m['reason'].slice(0, 500) : '' };
    default:
      return null;
  }
}

/** `text` parsed as a JSON object; `null` when it is not valid JSON or not an object. */
export function parseObject(text: string): Record<string, unknown> | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}
