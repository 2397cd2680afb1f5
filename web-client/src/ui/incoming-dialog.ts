/**
 * The "someone wants to send you files" dialog: sender, files and sizes, Accept / Decline.
 * A modal `<dialog>`: focus starts on Accept (Enter accepts), Esc declines, and focus returns
 * where it was afterwards. Requests that arrive while one is shown wait in a queue; a request
 * that ends meanwhile (expired, cancelled by the sender) is taken off the screen. A request that
 * is one part of a larger send shows the whole send: answering it answers every part
 * (engine.ts accepts or declines the later parts by itself).
 *
 * Test hooks: `incoming-dialog`, `incoming-accept`, `incoming-decline`.
 */

import type { IncomingRequest } from '../engine/protocol';
import { h } from './dom';
import { formatBytes, plural } from './format';

const SHOWN_FILES = 8;

export class IncomingDialog {
  readonly element: HTMLDialogElement;
  readonly #body: HTMLDivElement;
  readonly #accept: HTMLButtonElement;
  readonly #decline: HTMLButtonElement;
  readonly #queue: IncomingRequest[] = [];
  #current: IncomingRequest | null = null;
  #returnFocus: Element | null = null;

  constructor(private readonly answer: (transferId: string, accept: boolean) => void) {
    this.#body = h('div', { class: 'incoming-body' });
    this.#accept = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'incoming-accept', autofocus: true }, 'Accept');
    this.#decline = h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'incoming-decline' }, 'Decline');
    this.element = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': 'incoming-title', 'aria-describedby': 'incoming-lead', 'data-testid': 'incoming-dialog' },
      h('h2', { id: 'incoming-title', class: 'dialog-title' }, 'Incoming files'),
      this.#body,
      h('p', { class: 'muted dialog-keys' }, 'Enter accepts, Esc declines.'),
      h('div', { class: 'actions dialog-actions' }, this.#decline, this.#accept),
    );
    this.#accept.addEventListener('click', () => this.#answer(true));
    this.#decline.addEventListener('click', () => this.#answer(false));
    // Enter accepts wherever focus is in the dialog, except on Decline itself.
    this.element.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter' || event.target === this.#decline || event.isComposing) return;
      event.preventDefault();
      this.#answer(true);
    });
    // Esc fires `cancel`: decline instead of merely hiding the request.
    this.element.addEventListener('cancel', (event) => {
      event.preventDefault();
      this.#answer(false);
    });
  }

  push(request: IncomingRequest): void {
    if (this.#current === null) this.#show(request);
    else this.#queue.push(request);
  }

  /** The request ended without an answer from here (expired, withdrawn). */
  withdraw(transferId: string): void {
    const i = this.#queue.findIndex((r) => r.transferId === transferId);
    if (i >= 0) this.#queue.splice(i, 1);
    if (this.#current?.transferId === transferId) this.#next();
  }

  get showing(): string | null {
    return this.#current?.transferId ?? null;
  }

  #show(request: IncomingRequest): void {
    this.#current = request;
    const from = request.from;
    const part = request.part;
    const count = plural(part === null ? request.files.length : part.totalFiles, 'file');
    const shown = request.files.slice(0, SHOWN_FILES);
    this.#body.replaceChildren(
      h(
        'p',
        { id: 'incoming-lead', class: 'dialog-lead' },
        h('strong', {}, from.displayName),
        ` (${from.username}${from.device !== '' ? `, ${from.device}` : ''}${from.lab !== '' ? `, ${from.lab}` : ''}) wants to send you ${count}, ${formatBytes(part === null ? request.totalBytes : part.totalBytes)} in total.`,
      ),
      ...(part === null
        ? []
        : [
            h(
              'p',
              { class: 'muted', 'data-testid': 'incoming-parts' },
              `They come in ${part.count} parts, one after the other; this is part ${part.index} (${plural(request.files.length, 'file')}, ${formatBytes(request.totalBytes)}). Your answer is for all of them.`,
            ),
          ]),
      h(
        'ul',
        { class: 'incoming-files', 'aria-label': 'Files' },
        ...shown.map((f) => h('li', {}, h('span', { class: 'file-name' }, f.name), h('span', { class: 'file-size' }, formatBytes(f.size)))),
        request.files.length > SHOWN_FILES ? h('li', { class: 'muted' }, `and ${plural(request.files.length - SHOWN_FILES, 'more file')}`) : null,
      ),
    );
    if (!this.element.open) {
      this.#returnFocus = document.activeElement;
      this.element.showModal();
    }
    this.#accept.focus();
  }

  #answer(accept: boolean): void {
    const current = this.#current;
    if (current === null) return;
    this.answer(current.transferId, accept);
    this.#next();
  }

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
}
