/**
 * Writing a text or link to one person (a person's "Text…" button): a modal `<dialog>` with a
 * text box, its length, Send and Cancel. Ctrl+Enter (⌘+Enter) sends; Esc cancels. The text is
 * checked before anything is sent (empty, over 64 KiB: text.ts) and a refusal is shown in words
 * with the text kept, so nothing typed is lost. On success the dialog closes and the transfer
 * appears in the Transfers list like any.
 *
 * Test hooks: `text-compose`, `text-to`, `text-input`, `text-count`, `text-send`, `text-cancel`,
 * `text-error` (role=alert).
 */

import type { Peer } from '../engine/protocol';
import { MAX_TEXT_BYTES, charCount, textProblem } from '../engine/text';
import { h, messageLine, uniqueId } from './dom';
import { plural } from './format';

export interface TextComposeOptions {
  /** Sends; rejects with an error whose message is for the user. */
  send(peerId: string, text: string): Promise<void>;
}

export class TextCompose {
  readonly element: HTMLDialogElement;
  readonly #options: TextComposeOptions;
  readonly #to: HTMLParagraphElement;
  readonly #input: HTMLTextAreaElement;
  readonly #count: HTMLParagraphElement;
  readonly #send: HTMLButtonElement;
  readonly #error = messageLine('error', 'text-error');
  #peer: Peer | null = null;
  #returnFocus: Element | null = null;
  #busy = false;

  constructor(options: TextComposeOptions) {
    this.#options = options;
    const inputId = uniqueId('text-input');
    this.#to = h('p', { id: `${inputId}-to`, class: 'dialog-lead', 'data-testid': 'text-to' });
    this.#input = h('textarea', {
      id: inputId,
      class: 'field-input text-input',
      rows: 6,
      'data-testid': 'text-input',
      placeholder: 'A note, or a link such as https://…',
      'aria-describedby': `${inputId}-count`,
      spellcheck: 'true',
    });
    this.#count = h('p', { id: `${inputId}-count`, class: 'field-hint', 'data-testid': 'text-count' });
    this.#send = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'text-send' }, 'Send');
    const cancel = h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'text-cancel' }, 'Cancel');
    const form = h(
      'form',
      { method: 'dialog', novalidate: true },
      h('h2', { id: `${inputId}-title`, class: 'dialog-title' }, 'Send a text or link'),
      this.#to,
      h('div', { class: 'field' }, h('label', { class: 'field-label', for: inputId }, 'Text'), this.#input, this.#count),
      this.#error.element,
      h('p', { class: 'muted dialog-keys' }, 'Ctrl+Enter sends. Esc cancels. The text goes straight to their computer; LabBeam keeps only its length.'),
      h('div', { class: 'actions dialog-actions' }, cancel, this.#send),
    );
    this.element = h('dialog', { class: 'dialog dialog-wide', 'aria-labelledby': `${inputId}-title`, 'aria-describedby': `${inputId}-to`, 'data-testid': 'text-compose' }, form);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.#submit();
    });
    cancel.addEventListener('click', () => this.close());
    this.#input.addEventListener('input', () => this.#update());
    this.#input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey) && !event.isComposing) {
        event.preventDefault();
        void this.#submit();
      }
    });
    this.element.addEventListener('cancel', (event) => {
      event.preventDefault();
      this.close();
    });
  }

  /** Opens the dialog for `peer`, with what was typed for them before (kept until sent). */
  open(peer: Peer): void {
    if (this.#peer?.peerId !== peer.peerId) this.#input.value = '';
    this.#peer = peer;
    this.#to.replaceChildren('To ', h('strong', {}, peer.displayName), ` (${[peer.username, peer.device].filter((x) => x !== '').join(', ')})`);
    this.#error.clear();
    this.#update();
    if (!this.element.open) {
      this.#returnFocus = document.activeElement;
      this.element.showModal();
    }
    this.#input.focus();
  }

  close(): void {
    if (this.element.open) this.element.close();
    if (this.#returnFocus instanceof HTMLElement && this.#returnFocus.isConnected) this.#returnFocus.focus();
    this.#returnFocus = null;
  }

  #update(): void {
    const text = this.#input.value;
    const bytes = new TextEncoder().encode(text).length;
    const over = bytes > MAX_TEXT_BYTES;
    this.#count.textContent = over
      ? `Too long: ${bytes.toLocaleString('en')} bytes, at most ${MAX_TEXT_BYTES.toLocaleString('en')}.`
      : plural(charCount(text), 'character');
    this.#count.classList.toggle('field-hint-error', over);
    this.#input.setAttribute('aria-invalid', String(over));
    this.#send.disabled = this.#busy || text.trim() === '' || over;
  }

  async #submit(): Promise<void> {
    const peer = this.#peer;
    if (peer === null || this.#busy) return;
    const text = this.#input.value;
    const problem = textProblem(text);
    if (problem !== null) {
      this.#error.show(problem.message);
      return;
    }
    this.#busy = true;
    this.#update();
    this.#send.textContent = 'Sending…';
    try {
      await this.#options.send(peer.peerId, text);
      this.#input.value = '';
      this.#error.clear();
      this.close();
    } catch (error) {
      this.#error.show(error instanceof Error && error.message !== '' ? error.message : 'The text could not be sent. Try again.');
    } finally {
      this.#busy = false;
      this.#send.textContent = 'Send';
      this.#update();
    }
  }
}
