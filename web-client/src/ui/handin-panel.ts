/**
 * A student's hand-ins: one card per hand-in open for this PC's lab (engine/handins.ts) with
 * its title, who collects, the deadline and a countdown, the instructions and what it takes;
 * a drop zone (or "Choose files…"/"Choose a folder…") and Hand in; then where the hand-in
 * stands — waiting for the instructor's browser, queued, sending with its progress, handed
 * in — and the receipt: every file with its size and SHA-256 as the instructor's browser
 * verified it, the version, when, on time or late, and "Download receipt" (a small text file).
 * Handing in again replaces the earlier version.
 *
 * Test hooks: `handin-card` (`data-handin-id`, `data-state`: `open`, `waiting`, `queued`,
 * `sending`, `delivered`, `handed-in`, `failed`, `submitting`), `handin-countdown`,
 * `handin-file-input`, `handin-folder-input`, `handin-selection`, `handin-submit`,
 * `handin-status`, `handin-error`, `handin-receipt` (`data-version`, `data-late`),
 * `handin-receipt-file` (`data-name`, `data-sha256`), `handin-receipt-download`.
 */

import type { PickedFile } from '../engine/engine';
import { type StudentHandin, receiptText, submissionProblem } from '../engine/handins';
import type { Handins } from '../engine/handins';
import { coalesced, h, uniqueId } from './dom';
import { formatBytes, formatPercent, plural } from './format';
import { dropTarget, fromFileList, mergeSelection } from './picking';
import { downloadFile } from './saving';

/** How often a hand-in panel redraws at most while deliveries move. */
export const RENDER_EVERY_MS = 250;

export interface HandinPanelOptions {
  /** The student, as the receipt names them. */
  student: string;
}

/** "in 1 h 05 min", "in 42 s", "2 min ago" — the deadline's countdown. */
export function countdownWords(deadline: number, nowSecs: number): string {
  const left = Math.round(deadline - nowSecs);
  const span = Math.abs(left);
  const words =
    span >= 86_400
      ? `${Math.floor(span / 86_400)} d ${Math.floor((span % 86_400) / 3600)} h`
      : span >= 3600
        ? `${Math.floor(span / 3600)} h ${String(Math.floor((span % 3600) / 60)).padStart(2, '0')} min`
        : span >= 60
          ? `${Math.floor(span / 60)} min ${String(span % 60).padStart(2, '0')} s`
          : `${span} s`;
  return left >= 0 ? `in ${words}` : `${words} ago`;
}

class HandinCard {
  readonly root: HTMLElement;
  #view: StudentHandin;
  readonly #handins: Handins;
  readonly #student: string;
  #picked: PickedFile[] = [];
  readonly #countdown: HTMLSpanElement;
  readonly #selection: HTMLDivElement;
  readonly #submit: HTMLButtonElement;
  readonly #status: HTMLParagraphElement;
  readonly #error: HTMLParagraphElement;
  readonly #receipt: HTMLDivElement;
  readonly #drop: HTMLDivElement;

  constructor(view: StudentHandin, handins: Handins, student: string) {
    this.#view = view;
    this.#handins = handins;
    this.#student = student;
    const hd = view.handin;
    const fileInput = h('input', { type: 'file', multiple: true, id: uniqueId('handin-file'), class: 'visually-hidden', 'data-testid': 'handin-file-input' });
    const folderInput = h('input', { type: 'file', id: uniqueId('handin-folder'), class: 'visually-hidden', 'data-testid': 'handin-folder-input' });
    folderInput.webkitdirectory = true;
    if (hd.extensions.length > 0) fileInput.accept = hd.extensions.map((e) => `.${e}`).join(',');
    for (const input of [fileInput, folderInput]) {
      input.addEventListener('change', () => {
        this.#choose(fromFileList(input.files));
        input.value = '';
      });
    }
    this.#countdown = h('span', { class: 'handin-countdown', 'data-testid': 'handin-countdown' });
    this.#selection = h('div', { class: 'selection', 'data-testid': 'handin-selection', 'aria-live': 'polite' });
    this.#submit = h('button', { type: 'button', class: 'btn btn-primary btn-small', 'data-testid': 'handin-submit', disabled: true }, 'Hand in');
    this.#submit.addEventListener('click', () => void this.#handIn());
    this.#status = h('p', { class: 'handin-status', role: 'status', 'data-testid': 'handin-status' });
    this.#error = h('p', { class: 'message message-error', role: 'alert', 'data-testid': 'handin-error' });
    this.#receipt = h('div', { class: 'handin-receipt', 'data-testid': 'handin-receipt', hidden: true });
    const takes = [
      hd.extensions.length > 0 ? `Takes ${hd.extensions.map((e) => `.${e}`).join(', ')} files` : 'Takes any files',
      hd.maxBytes !== null ? `up to ${formatBytes(hd.maxBytes)} in all` : null,
      hd.allowLate ? 'late work is taken, marked late' : 'nothing is taken after the deadline',
    ].filter((x) => x !== null);
    this.#drop = h(
      'div',
      { class: 'drop-zone handin-drop' },
      h('p', { class: 'drop-hint' }, 'Drop your files or a folder here, or pick them:'),
      h(
        'div',
        { class: 'actions actions-compact' },
        h('label', { class: 'btn btn-secondary btn-small', for: fileInput.id }, 'Choose files…'),
        fileInput,
        h('label', { class: 'btn btn-secondary btn-small', for: folderInput.id }, 'Choose a folder…'),
        folderInput,
      ),
      this.#selection,
    );
    dropTarget(this.#drop, (files) => this.#choose(files), () => this.#showError('Could not read what was dropped. Try “Choose files…” instead.'));
    const titleId = uniqueId('handin-title');
    this.root = h(
      'section',
      { class: 'card panel panel-handin', 'aria-labelledby': titleId, 'data-testid': 'handin-card', 'data-handin-id': hd.handinId },
      h('h2', { id: titleId, class: 'panel-title' }, `Hand in: ${hd.title}`),
      h(
        'p',
        { class: 'handin-meta' },
        `Collected by ${hd.collector || 'your instructor'} · due ${new Date(hd.deadline * 1000).toLocaleString()} (`,
        this.#countdown,
        ')',
      ),
      hd.instructions !== '' ? h('p', { class: 'handin-instructions' }, hd.instructions) : null,
      h('p', { class: 'muted handin-takes' }, `${takes.join('; ')}.`),
      this.#drop,
      h('div', { class: 'actions actions-compact' }, this.#submit),
      this.#error,
      this.#status,
      this.#receipt,
    );
    this.update(view);
  }

  update(view: StudentHandin): void {
    this.#view = view;
    const s = view.submission;
    const r = view.receipt;
    const state = s?.phase ?? (r !== null ? 'handed-in' : 'open');
    this.root.dataset['state'] = state;
    this.tick();
    let status = '';
    if (s !== null) {
      const what = `${plural(s.files.length, 'file')}, ${formatBytes(s.totalBytes)}`;
      status =
        s.phase === 'submitting'
          ? `Handing in ${what}…`
          : s.phase === 'waiting'
            ? (s.problem?.message ?? 'Waiting for the instructor’s browser.')
            : s.phase === 'queued'
              ? `Queued: ${view.handin.collector || 'the instructor'}’s browser takes a few at a time; yours goes next in turn (${what}). Keep this page open.`
              : s.phase === 'sending'
                ? `Sending ${what}: ${formatPercent(s.bytes, s.totalBytes)}. Keep this page open.`
                : s.phase === 'delivered'
                  ? 'All files arrived and were verified; the receipt is on its way.'
                  : s.phase === 'failed'
                    ? ''
                    : '';
      if (s.phase === 'failed') this.#showError(s.problem?.message ?? 'The files were not handed in. Try again.');
    } else if (r !== null) {
      status = `Handed in${r.late ? ' (late)' : ''}: version ${r.version}. You may close this page.`;
    }
    this.#status.textContent = status;
    if (s?.phase !== 'failed' && s !== null) this.#error.textContent = '';
    this.#renderReceipt();
    const busy = s !== null && s.phase !== 'failed';
    this.#drop.hidden = busy;
    this.#submit.hidden = busy;
    this.#submit.textContent = r !== null ? `Hand in again (replaces version ${r.version})` : 'Hand in';
    this.#submit.disabled = this.#picked.length === 0;
  }

  /** Every second: the countdown. */
  tick(): void {
    this.#countdown.textContent = countdownWords(this.#view.handin.deadline, Date.now() / 1000);
  }

  #choose(files: PickedFile[]): void {
    this.#error.textContent = '';
    this.#picked = mergeSelection(this.#picked, files);
    const problem = submissionProblem(this.#view.handin, this.#picked.map((f) => ({ name: f.name, size: f.blob.size })), Date.now() / 1000);
    if (problem !== null) this.#showError(problem.message);
    this.#renderSelection();
    this.update(this.#view);
  }

  #renderSelection(): void {
    this.#selection.replaceChildren();
    if (this.#picked.length === 0) return;
    const total = this.#picked.reduce((n, f) => n + f.blob.size, 0);
    const clear = h('button', { type: 'button', class: 'btn btn-ghost btn-small' }, 'Clear');
    clear.addEventListener('click', () => {
      this.#picked = [];
      this.#error.textContent = '';
      this.#renderSelection();
      this.update(this.#view);
    });
    this.#selection.append(
      h('p', {}, `${plural(this.#picked.length, 'file')} chosen, ${formatBytes(total)}: ${this.#picked.slice(0, 5).map((f) => f.name).join(', ')}${this.#picked.length > 5 ? ', …' : ''} `, clear),
    );
  }

  async #handIn(): Promise<void> {
    this.#error.textContent = '';
    const files = this.#picked;
    this.#submit.disabled = true;
    try {
      await this.#handins.handIn(this.#view.handin.handinId, files);
      this.#picked = [];
      this.#renderSelection();
    } catch (error) {
      this.#showError(error instanceof Error ? error.message : String(error));
    }
    this.update(this.#view);
  }

  #showError(text: string): void {
    this.#error.textContent = text;
  }

  #renderReceipt(): void {
    const r = this.#view.receipt;
    this.#receipt.hidden = r === null;
    if (r === null) return;
    this.#receipt.dataset['version'] = String(r.version);
    this.#receipt.dataset['late'] = String(r.late);
    const download = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'data-testid': 'handin-receipt-download' }, 'Download receipt');
    download.addEventListener('click', () => {
      const text = receiptText(this.#view.handin, r, this.#student);
      const safe = this.#view.handin.title.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'hand-in';
      downloadFile(new Blob([text], { type: 'text/plain;charset=utf-8' }), `receipt-${safe}-v${r.version}.txt`);
    });
    this.#receipt.replaceChildren(
      h('h3', { class: 'section-title' }, `Receipt: version ${r.version}, ${new Date(r.receivedAt * 1000).toLocaleString()}, ${r.late ? 'late' : 'on time'}`),
      h(
        'ul',
        { class: 'handin-receipt-files' },
        ...r.files.map((f) =>
          h(
            'li',
            { 'data-testid': 'handin-receipt-file', 'data-name': f.name, 'data-sha256': f.sha256 },
            h('span', { class: 'file-name' }, f.name),
            ` · ${formatBytes(f.size)} · `,
            h('code', { class: 'sha', title: 'SHA-256 as the instructor’s browser verified it' }, f.sha256),
          ),
        ),
      ),
      h('div', { class: 'actions actions-compact' }, download),
    );
  }
}

/** Every hand-in this page hands in to: a card each, in the order they were opened. */
export class HandinPanel {
  readonly root: HTMLDivElement;
  readonly #o: HandinPanelOptions;
  readonly #cards = new Map<string, HandinCard>();
  #handins: Handins | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  readonly #redraw = coalesced(() => this.#render(), RENDER_EVERY_MS);

  constructor(options: HandinPanelOptions) {
    this.#o = options;
    this.root = h('div', { class: 'handin-panels' });
  }

  attach(handins: Handins): void {
    this.#handins = handins;
    // Progress changes many times a second per delivery: draw at most every 250 ms, so the
    // page's main thread (which also receives the data channels' bytes) stays free.
    handins.on('changed', () => this.#redraw.request());
    this.#timer ??= setInterval(() => {
      for (const c of this.#cards.values()) c.tick();
    }, 1000);
    this.#render();
  }

  stop(): void {
    this.#redraw.cancel();
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #render(): void {
    const handins = this.#handins;
    if (handins === null) return;
    const views = handins.student();
    const seen = new Set<string>();
    for (const view of views) {
      seen.add(view.handin.handinId);
      const card = this.#cards.get(view.handin.handinId);
      if (card !== undefined) card.update(view);
      else {
        const created = new HandinCard(view, handins, this.#o.student);
        this.#cards.set(view.handin.handinId, created);
        this.root.append(created.root);
      }
    }
    for (const [id, card] of this.#cards) {
      if (!seen.has(id)) {
        card.root.remove();
        this.#cards.delete(id);
      }
    }
  }
}
