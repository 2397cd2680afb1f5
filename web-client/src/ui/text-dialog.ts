/**
 * The dialog that shows a text or link someone sent (engine `text` event): who sent it (name,
 * user, their seat or device name, lab), the text itself, set as text and never parsed as HTML,
 * its http(s) addresses as links that open in a new tab without handing this page to it
 * (`rel="noopener noreferrer"`), Copy and Close. A modal `<dialog>`: focus starts on Copy and
 * returns where it was afterwards; Esc closes it. Texts that arrive while one is shown wait
 * and follow, oldest first ("1 more text waiting").
 *
 * Test hooks: `text-dialog`, `text-from`, `text-body`, `text-link` (each link), `text-copy`,
 * `text-copied` (the status line: `data-state` = copied|failed), `text-close`, `text-more`.
 */

import type { ReceivedText } from '../engine/engine';
import { h } from './dom';
import { plural } from './format';
import { linkPieces } from './links';

export class TextDialog {
  readonly element: HTMLDialogElement;
  readonly #from: HTMLParagraphElement;
  readonly #body: HTMLDivElement;
  readonly #copy: HTMLButtonElement;
  readonly #close: HTMLButtonElement;
  readonly #status: HTMLParagraphElement;
  readonly #more: HTMLParagraphElement;
  readonly #queue: ReceivedText[] = [];
  #current: ReceivedText | null = null;
  #returnFocus: Element | null = null;

  constructor() {
    this.#from = h('p', { id: 'text-dialog-from', class: 'dialog-lead', 'data-testid': 'text-from' });
    this.#body = h('div', { class: 'text-body', 'data-testid': 'text-body', tabindex: 0, role: 'document', 'aria-label': 'The text' });
    this.#copy = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'text-copy' }, 'Copy');
    this.#close = h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'text-close' }, 'Close');
    this.#status = h('p', { class: 'text-copied', role: 'status', 'data-testid': 'text-copied' });
    this.#more = h('p', { class: 'muted', 'data-testid': 'text-more', hidden: true });
    this.element = h(
      'dialog',
      { class: 'dialog dialog-wide', 'aria-labelledby': 'text-dialog-title', 'aria-describedby': 'text-dialog-from', 'data-testid': 'text-dialog' },
      h('h2', { id: 'text-dialog-title', class: 'dialog-title' }, 'Text received'),
      this.#from,
      this.#body,
      this.#status,
      this.#more,
      h('div', { class: 'actions dialog-actions' }, this.#close, this.#copy),
    );
    this.#copy.addEventListener('click', () => void this.#copyText());
    this.#close.addEventListener('click', () => this.#next());
    // Esc: the same as Close.
    this.element.addEventListener('cancel', (event) => {
      event.preventDefault();
      this.#next();
    });
  }

  /** Shows `text` now, or after the ones already waiting. The same transfer is shown once at a time. */
  push(text: ReceivedText): void {
    if (this.#current?.transferId === text.transferId || this.#queue.some((t) => t.transferId === text.transferId)) return;
    this.#queue.push(text);
    if (this.#current === null) this.#next();
    else this.#showMore();
  }

  /** The transfer whose text is on screen. */
  get showing(): string | null {
    return this.#current?.transferId ?? null;
  }

  #show(t: ReceivedText): void {
    this.#current = t;
    const from = t.from;
    const where = [from.username, from.device, from.lab].filter((x) => x !== '').join(', ');
    this.#from.replaceChildren(h('strong', {}, from.displayName), ` (${where}) sent you a text, ${plural(t.chars, 'character')}:`);
    this.#body.replaceChildren(
      ...linkPieces(t.text).map((piece) =>
        piece.kind === 'text'
          ? document.createTextNode(piece.text)
          : h('a', { href: piece.href, target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'text-link' }, piece.text),
      ),
    );
    this.#body.scrollTop = 0;
    this.#status.textContent = '';
    this.#status.removeAttribute('data-state');
    this.#showMore();
    if (!this.element.open) {
      this.#returnFocus = document.activeElement;
      this.element.showModal();
    }
    this.#copy.focus();
  }

  #showMore(): void {
    this.#more.hidden = this.#queue.length === 0;
    this.#more.textContent = `${plural(this.#queue.length, 'more text')} waiting: Close shows the next.`;
  }

  /** Shows the next waiting text, or closes. */
  #next(): void {
    const next = this.#queue.shift();
    if (next !== undefined) {
      this.#show(next);
      return;
    }
    this.#current = null;
    if (this.element.open) this.element.close();
    if (this.#returnFocus instanceof HTMLElement && this.#returnFocus.isConnected) this.#returnFocus.focus();
    this.#returnFocus = null;
  }

  async #copyText(): Promise<void> {
    const t = this.#current;
    if (t === null) return;
    let copied = false;
    try {
      await navigator.clipboard.writeText(t.text);
      copied = true;
    } catch {
      // No clipboard permission (or not a secure context): select the text for Ctrl+C instead.
      const range = document.createRange();
      range.selectNodeContents(this.#body);
      const selection = window.getSelection();
      selection?.removeAllRanges();
      selection?.addRange(range);
    }
    this.#status.setAttribute('data-state', copied ? 'copied' : 'failed');
    this.#status.textContent = copied ? 'Copied. Paste it where you need it.' : 'The browser did not let LabBeam copy: the text is selected, press Ctrl+C to copy it.';
  }
}
