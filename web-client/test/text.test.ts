import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeTransferRecord } from '../src/api';
import { decodeIncoming } from '../src/engine/protocol';
import { MAX_TEXT_BYTES, charCount, decodeText, encodeText, textProblem } from '../src/engine/text';
import { linkPieces } from '../src/ui/links';

test('a text is measured as the server counts it: UTF-8 bytes and code points', () => {
  assert.deepEqual(encodeText('Read https://x.edu/ — now').meta, { bytes: 27, chars: 25 });
  assert.deepEqual(encodeText('😀').meta, { bytes: 4, chars: 1 }, 'an emoji is one character of four bytes');
  assert.equal(charCount('e\u0301'), 2, 'a combining accent is a code point of its own');
  assert.equal(decodeText(encodeText('zoë · 😀').bytes), 'zoë · 😀');
  assert.equal(decodeText(new Uint8Array([0x68, 0xff, 0x69])), 'h\ufffdi', 'a byte that is not UTF-8 shows as �');
});

test('an empty text or one over 64 KiB is refused before anything is sent', () => {
  assert.equal(textProblem('  \n ')?.code, 'empty_text');
  assert.equal(textProblem('x'.repeat(MAX_TEXT_BYTES)), null, 'exactly 64 KiB goes');
  const long = textProblem('é'.repeat(MAX_TEXT_BYTES / 2 + 1));
  assert.equal(long?.code, 'text_too_long', 'counted in bytes: é is two');
  assert.match(long?.message ?? '', /65,538 bytes; at most 65,536/);
});

test('a request marked as a text is one only when its one file is the text', () => {
  const from = { peerId: 'p', userId: 1, username: 'ann' };
  const file = { name: 'text.txt', size: 27, mime: 'text/plain;charset=utf-8' };
  const text = { bytes: 27, chars: 25 };
  assert.deepEqual(decodeIncoming({ transferId: 't', from, files: [file], text })?.text, text);
  assert.equal(decodeIncoming({ transferId: 't', from, files: [file] })?.text, null);
  assert.equal(decodeIncoming({ transferId: 't', from, files: [file, file], text })?.text, null, 'two files are files');
  assert.equal(decodeIncoming({ transferId: 't', from, files: [{ ...file, size: 5 }], text })?.text, null, 'another size is a file');
  assert.equal(decodeIncoming({ transferId: 't', from, files: [file], text: { bytes: 27 } })?.text, null);
});

test('http and https addresses become links; the words around them stay text', () => {
  assert.deepEqual(linkPieces('Slides: https://example.edu/week3.pdf. Read them!'), [
    { kind: 'text', text: 'Slides: ' },
    { kind: 'link', text: 'https://example.edu/week3.pdf', href: 'https://example.edu/week3.pdf' },
    { kind: 'text', text: '. Read them!' },
  ]);
  assert.deepEqual(linkPieces('no links here'), [{ kind: 'text', text: 'no links here' }]);
  assert.deepEqual(linkPieces(''), []);
  assert.deepEqual(linkPieces('go to www.example.edu/lab'), [
    { kind: 'text', text: 'go to ' },
    { kind: 'link', text: 'www.example.edu/lab', href: 'https://www.example.edu/lab' },
  ]);
  const both = linkPieces('http://a.example/x\nHTTPS://B.EXAMPLE/Y');
  assert.deepEqual(both.filter((p) => p.kind === 'link').map((p) => p.kind === 'link' && p.href), ['http://a.example/x', 'https://b.example/Y']);
});

test('brackets and sentence ends are left out of a link unless the address holds them', () => {
  const links = (t: string): string[] => linkPieces(t).flatMap((p) => (p.kind === 'link' ? [p.text] : []));
  assert.deepEqual(links('(see https://example.edu/a)'), ['https://example.edu/a']);
  assert.deepEqual(links('https://en.wikipedia.org/wiki/Rust_(programming_language).'), ['https://en.wikipedia.org/wiki/Rust_(programming_language)']);
  assert.deepEqual(links('“https://example.edu/q?a=1&b=2”,'), ['https://example.edu/q?a=1&b=2']);
  assert.deepEqual(links('[https://example.edu/x]'), ['https://example.edu/x']);
});

test('nothing but web addresses with a host becomes a link', () => {
  for (const t of ['javascript:alert(1)', 'data:text/html,<b>x</b>', 'file:///etc/passwd', 'https://', 'mailto:a@example.edu', 'ftp://example.edu/']) {
    assert.ok(linkPieces(t).every((p) => p.kind === 'text'), t);
  }
  // Markup stays text; an address inside it is a link of its own, without the quote.
  const pieces = linkPieces('<a href="https://evil.example/">x</a>');
  assert.deepEqual(pieces.filter((p) => p.kind === 'link').map((p) => p.text), ['https://evil.example/']);
  assert.equal(pieces.map((p) => p.text).join(''), '<a href="https://evil.example/">x</a>', 'every character is kept');
});

test('the history reads a text’s length from the log, and null for files', () => {
  const row = { id: 't1', sender_id: 1, receiver_id: 2, files: [{ name: 'text.txt', size: 27 }], status: 'completed' };
  assert.equal(decodeTransferRecord({ ...row, text_chars: 25 })?.textChars, 25);
  assert.equal(decodeTransferRecord({ ...row, text_chars: null })?.textChars, null);
  assert.equal(decodeTransferRecord(row)?.textChars, null, 'an older server says nothing');
});
