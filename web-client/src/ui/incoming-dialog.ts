/**
 * The "someone wants to send you files" dialog: sender, files and sizes, the time left to
 * answer, Accept / Decline. A modal `<dialog>`: focus starts on Accept (Enter accepts), and
 * focus returns where it was afterwards. Esc closes the dialog without answering: the request
 * keeps waiting (until it expires), and the "waiting" banner (`waiting`, placed by the home
 * view) brings it back. Requests that arrive while one is shown wait in a queue; a request
 * that arrives while the dialog is closed opens it; a request that ends meanwhile (expired,
 * cancelled by the sender) is taken off the screen. A request that is one part of a larger
 * send shows the whole send: answering it answers every part (engine.ts accepts or declines
 * the later parts by itself).
 *
 * The countdown uses the request's own expiry (`expiresAt`, from the server's
 * `transfer.request_expiry_secs`), redrawn every second while the dialog is open.
 *
 * Test hooks: `incoming-dialog`, `incoming-accept`, `incoming-decline`, `incoming-countdown`
 * (`data-seconds`: whole seconds left), `incoming-waiting` (the banner, `data-count`: requests
 * waiting while the dialog is closed), `incoming-reopen` (its button).
 */

import type { IncomingRequest } from '../engine/protocol';
import { countdownText, secondsLeft } from './attention';
import { h } from './dom';
import { formatBytes, plural } from './format';

const SHOWN_FILES = 8;

interface Pending {
  readonly request: IncomingRequest;
  /** Closed with Esc: not shown again by itself, only from the banner. */
  dismissed: boolean;
}

export interface IncomingDialogOptions {
  answer(transferId: string, accept: boolean): void;
  /** The number of unanswered requests changed (`count`), or a new one arrived (`arrived`). */
  changed(count: number, arrived: boolean): void;
}

export class IncomingDialog {
  readonly element: HTMLDialogElement;
  /** "1 request waiting for your answer — Answer": shown while requests wait behind a closed dialog. */
  readonly waiting: HTMLElement;
  readonly #options: IncomingDialogOptions;
  readonly #body: HTMLDivElement;
  readonly #countdown: HTMLParagraphElement;
  readonly #accept: HTMLButtonElement;
  readonly #decline: HTMLButtonElement;
  readonly #waitingText: HTMLSpanElement;
  /** Every unanswered request, oldest first; `#current` is the one on screen. */
  readonly #pending: Pending[] = [];
  #current: Pending | null = null;
  #returnFocus: Element | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;

  constructor(options: IncomingDialogOptions) {
    this.#options = options;
    this.#body = h('div', { class: 'incoming-body' });
    this.#countdown = h('p', { class: 'incoming-countdown', 'data-testid': 'incoming-countdown', hidden: true });
    this.#accept = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'incoming-accept', autofocus: true }, 'Accept');
    this.#decline = h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'incoming-decline' }, 'Decline');
    this.element = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': 'incoming-title', 'aria-describedby': 'incoming-lead', 'data-testid': 'incoming-dialog' },
      h('h2', { id: 'incoming-title', class: 'dialog-title' }, 'Incoming files'),
      this.#body,
      this.#countdown,
      h('p', { class: 'muted dialog-keys' }, 'Enter accepts. Esc closes this window without answering: the request waits until it expires.'),
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
    // Esc fires `cancel`: close without answering; the request stays answerable.
    this.element.addEventListener('cancel', (event) => {
      event.preventDefault();
      this.#dismiss();
    });

    this.#waitingText = h('span', {});
    const reopen = h('button', { type: 'button', class: 'btn btn-primary btn-small', 'data-testid': 'incoming-reopen' }, 'Answer');
    reopen.addEventListener('click', () => this.reopen());
    this.waiting = h('div', { class: 'message message-info incoming-waiting', role: 'status', 'data-testid': 'incoming-waiting', 'data-count': '0', hidden: true }, this.#waitingText, ' ', reopen);
  }

  push(request: IncomingRequest): void {
    if (this.#pending.some((p) => p.request.transferId === request.transferId)) return;
    const entry: Pending = { request, dismissed: false };
    this.#pending.push(entry);
    if (this.#current === null) this.#show(entry);
    this.#changed(true);
  }

  /** The request ended without an answer from here (expired, withdrawn). */
  withdraw(transferId: string): void {
    const i = this.#pending.findIndex((p) => p.request.transferId === transferId);
    if (i < 0) return;
    const [gone] = this.#pending.splice(i, 1);
    if (gone === this.#current) this.#next();
    this.#changed(false);
  }

  get showing(): string | null {
    return this.#current?.request.transferId ?? null;
  }

  /** Unanswered requests, shown or not. */
  get count(): number {
    return this.#pending.length;
  }

  /** Shows the oldest waiting request again (the banner's button). */
  reopen(): void {
    const first = this.#pending[0];
    if (first === undefined || this.#current !== null) return;
    first.dismissed = false;
    this.#show(first);
    this.#changed(false);
  }

  #show(entry: Pending): void {
    this.#current = entry;
    const request = entry.request;
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
    this.#tick();
    if (this.#timer === null) this.#timer = setInterval(() => this.#tick(), 1000);
    if (!this.element.open) {
      this.#returnFocus = document.activeElement;
      this.element.showModal();
    }
    this.#accept.focus();
  }

  /** Redraws the time left to answer the request on screen. */
  #tick(): void {
    const expiresAt = this.#current?.request.expiresAt ?? null;
    this.#countdown.hidden = expiresAt === null;
    if (expiresAt === null) return;
    const left = secondsLeft(expiresAt, Date.now());
    this.#countdown.setAttribute('data-seconds', String(left));
    this.#countdown.textContent = left > 0 ? `Answer within ${countdownText(left)}, or the request expires.` : 'The request is expiring…';
    this.#countdown.classList.toggle('incoming-countdown-urgent', left <= 10);
  }

  #answer(accept: boolean): void {
    const current = this.#current;
    if (current === null) return;
    const i = this.#pending.indexOf(current);
    if (i >= 0) this.#pending.splice(i, 1);
    this.#options.answer(current.request.transferId, accept);
    this.#next();
    this.#changed(false);
  }

  /** Esc: the request on screen waits; the next one not dismissed yet is shown, if any. */
  #dismiss(): void {
    const current = this.#current;
    if (current === null) return;
    current.dismissed = true;
    this.#next();
    this.#changed(false);
  }

  /** Shows the next request not dismissed, or closes the dialog. */
  #next(): void {
    const next = this.#pending.find((p) => !p.dismissed);
    if (next !== undefined) {
      this.#show(next);
      return;
    }
    this.#current = null;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (this.element.open) this.element.close();
    if (this.#returnFocus instanceof HTMLElement && this.#returnFocus.isConnected) this.#returnFocus.focus();
    this.#returnFocus = null;
  }

  #changed(arrived: boolean): void {
    const behind = this.#current === null ? this.#pending.length : 0;
    this.waiting.hidden = behind === 0;
    this.waiting.setAttribute('data-count', String(behind));
    this.#waitingText.textContent = behind === 1 ? '1 request is waiting for your answer.' : `${behind} requests are waiting for your answer.`;
    this.#options.changed(this.#pending.length, arrived);
  }

  /** Stops the countdown (the view is going away). */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
