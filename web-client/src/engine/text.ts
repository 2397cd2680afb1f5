/**
 * Texts and links sent to a person (docs/PROTOCOL.md, "Texts and links"): a text is a
 * transfer of one file, its UTF-8 bytes, which goes over the data channel like any file; the
 * server is told only its size and length (`transfer:request` with `text: {bytes, chars}`).
 * This module measures and checks a text before it is sent, and reads one that arrived.
 */

import type { TextInfo } from './protocol';

/** The server's limit (`MAX_TEXT_BYTES`): 64 KiB of UTF-8. */
export const MAX_TEXT_BYTES = 64 * 1024;
/** The one file a text travels as; the server names it so too. */
export const TEXT_FILE_NAME = 'text.txt';
export const TEXT_MIME = 'text/plain;charset=utf-8';

/** What is wrong with `text` for sending, in words for the user; null when it can go. */
export function textProblem(text: string): { code: string; message: string } | null {
  if (text.trim() === '') return { code: 'empty_text', message: 'Type or paste a text or link first.' };
  const bytes = utf8Length(text);
  if (bytes > MAX_TEXT_BYTES) {
    return {
      code: 'text_too_long',
      message: `This text is too long to send at once (${bytes.toLocaleString('en')} bytes; at most ${MAX_TEXT_BYTES.toLocaleString('en')}, about 64,000 plain letters). Send it in parts, or save it as a file and send the file.`,
    };
  }
  return null;
}

/** `text` as the bytes that travel and what the server is told of them. */
export function encodeText(text: string): { bytes: Uint8Array<ArrayBuffer>; meta: TextInfo } {
  const bytes = new TextEncoder().encode(text);
  return { bytes, meta: { bytes: bytes.length, chars: charCount(text) } };
}

/** A text that arrived, from its bytes (a byte that is not UTF-8 shows as �, never throws). */
export function decodeText(bytes: ArrayBuffer | Uint8Array): string {
  return new TextDecoder('utf-8').decode(bytes);
}

/** Characters as the server counts them: Unicode code points (an emoji is one, é may be two). */
export function charCount(text: string): number {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
