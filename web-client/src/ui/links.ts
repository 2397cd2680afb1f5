/**
 * The links in a text someone sent, for showing it: the text is cut into plain pieces and link
 * pieces, and the view makes each link an `<a>` (text set as text, never HTML). Only `http:` and
 * `https:` addresses become links (`www.…` gets `https://`); anything else, `javascript:` and
 * `data:` included, stays plain text. Punctuation that ends a sentence is left out of a link, and
 * so is a closing bracket that has no opening one inside it: "(see https://x.edu/a)." links
 * "https://x.edu/a". Plain, unit-tested.
 */

export type TextPiece =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'link'; readonly text: string; readonly href: string };

/** Candidates: from `http://`, `https://` or `www.` up to a space or a character URLs never hold. */
const CANDIDATE = /\b(?:https?:\/\/|www\.)[^\s<>"`{}|\\^]+/giu;
const TRAILING = new Set(['.', ',', ';', ':', '!', '?', "'", '’', '”', '»']);
const CLOSING: Record<string, string> = { ')': '(', ']': '[' };

export function linkPieces(text: string): TextPiece[] {
  const pieces: TextPiece[] = [];
  const plain = (t: string): void => {
    if (t === '') return;
    const last = pieces[pieces.length - 1];
    if (last?.kind === 'text') pieces[pieces.length - 1] = { kind: 'text', text: last.text + t };
    else pieces.push({ kind: 'text', text: t });
  };
  let at = 0;
  for (const match of text.matchAll(CANDIDATE)) {
    const start = match.index;
    const link = trimEnd(match[0]);
    const href = hrefOf(link);
    plain(text.slice(at, start));
    if (href === null) plain(link);
    else pieces.push({ kind: 'link', text: link, href });
    at = start + link.length;
  }
  plain(text.slice(at));
  return pieces;
}

/** Leaves out what ends the sentence rather than the address. */
function trimEnd(candidate: string): string {
  let s = candidate;
  for (;;) {
    const last = s.slice(-1);
    const opening = CLOSING[last];
    if (TRAILING.has(last)) s = s.slice(0, -1);
    else if (opening !== undefined && count(s, last) > count(s, opening)) s = s.slice(0, -1);
    else return s;
  }
}

function count(s: string, c: string): number {
  return s.split(c).length - 1;
}

/** The address to open, or null when it is not a web address with a host. */
function hrefOf(link: string): string | null {
  const href = /^www\./i.test(link) ? `https://${link}` : link;
  try {
    const url = new URL(href);
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') return null;
    return url.href;
  } catch {
    return null;
  }
}
