/**
 * One transfer in the Transfers list: who, state, overall and per-file progress with speed and
 * time left, the path used, what went wrong and what to try, and the actions that make sense
 * in that state (cancel, save, retry, dismiss).
 *
 * The card is built once and updated in place at every engine tick, so focus stays on its
 * buttons and screen readers are not flooded: only state changes and problems are in live
 * regions, the byte counters are not.
 *
 * Test hooks: `transfer-status` (with `data-state`, `data-transfer-id`, `data-direction`,
 * `data-path`, `data-setup-ms`, `data-duration-ms`), `transfer-cancel`, `transfer-save` (per file, `data-index`), `transfer-retry`,
 * `transfer-send-again` (a declined or expired request: ask again),
 * `transfer-dismiss`, `transfer-save-folder`, `transfer-problem`, `transfer-file`.
 *
 * An interrupted transfer keeps its `data-state` (the contract's values: `sending`,
 * `receiving`, …) and says it is paused with `data-paused="true"` and the text
 * "Paused — waiting for <peer>": paused is a condition of a running transfer, not a state
 * of its own, and it ends by itself. Also `data-wire-bytes` (sender: file bytes put on the
 * channel, re-sent ones included), `data-resumes`, and for a sender restored after a reload
 * `transfer-repick` (pick the same files again). A transfer that is one part of a larger send
 * says "part k of n" and carries `data-part-index` and `data-part-count`. A text (not files)
 * says "Text · N characters", carries `data-kind="text"`, lists no file, is never saved, and once
 * received has `transfer-show-text` (shows it again).
 */

import { type TransferSnapshot, type TransferState, canSendAgain } from '../engine/engine';
import { describePath } from '../engine/path';
import { h } from './dom';
import { formatBytes, formatEta, formatPercent, formatSpeed, plural } from './format';

export interface TransferActions {
  cancel(id: string): void;
  save(id: string, index: number): void;
  saveFolder(id: string): void;
  retry(id: string): void;
  /** A declined or expired request: the same files to the same person again. */
  sendAgain(id: string): void;
  /** A sender restored after a page reload picked its files again. */
  repick(id: string, files: readonly File[]): void;
  dismiss(id: string): void;
  /** A received text: show it again. */
  showText(id: string): void;
  readonly canSaveToFolder: boolean;
}

const STATE_LABEL: Record<TransferState, string> = {
  requested: 'Waiting for an answer',
  accepted: 'Connecting…',
  sending: 'Sending',
  receiving: 'Receiving',
  completed: 'Done',
  failed: 'Failed',
  cancelled: 'Stopped',
};

interface FileRow {
  row: HTMLLIElement;
  bar: HTMLProgressElement;
  status: HTMLSpanElement;
  save: HTMLButtonElement | null;
}

export class TransferCard {
  readonly root: HTMLElement;
  readonly #actions: TransferActions;
  readonly #id: string;
  readonly #title: HTMLElement;
  readonly #badge: HTMLSpanElement;
  readonly #path: HTMLSpanElement;
  readonly #bar: HTMLProgressElement;
  readonly #numbers: HTMLParagraphElement;
  readonly #problem: HTMLParagraphElement;
  readonly #files: FileRow[];
  readonly #cancel: HTMLButtonElement;
  readonly #retry: HTMLButtonElement;
  readonly #sendAgain: HTMLButtonElement;
  readonly #dismiss: HTMLButtonElement;
  readonly #saveFolder: HTMLButtonElement;
  readonly #repick: HTMLLabelElement;
  readonly #showText: HTMLButtonElement;
  #lastState: TransferState | null = null;
  #lastPaused = false;

  constructor(t: TransferSnapshot, actions: TransferActions) {
    this.#actions = actions;
    this.#id = t.id;
    const sending = t.direction === 'send';
    const who = `${t.peer.displayName}${t.peer.device !== '' ? ` (${t.peer.device})` : ''}`;
    const titleId = `transfer-${t.id}-title`;
    this.#title = h('h3', { class: 'transfer-title', id: titleId }, sending ? `To ${who}` : `From ${who}`);
    this.#badge = h('span', { class: 'state-badge', role: 'status' });
    this.#path = h('span', { class: 'path-chip', hidden: true });
    this.#bar = h('progress', { class: 'progress', max: Math.max(1, t.totalBytes), value: 0, 'aria-labelledby': titleId });
    this.#numbers = h('p', { class: 'transfer-numbers' });
    this.#problem = h('p', { class: 'message message-error transfer-problem', role: 'alert', 'data-testid': 'transfer-problem' });

    const isText = t.text !== null;
    this.#files = t.files.map((f, index) => {
      const bar = h('progress', { class: 'progress progress-small', max: Math.max(1, f.size), value: 0, 'aria-label': `${f.name} progress` });
      const status = h('span', { class: 'file-status' });
      let save: HTMLButtonElement | null = null;
      if (!sending && !isText) {
        save = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'data-testid': 'transfer-save', 'data-index': index, hidden: true, 'aria-label': `Save ${f.name}` }, 'Save');
        save.addEventListener('click', () => actions.save(this.#id, index));
      }
      const row = h(
        'li',
        { class: 'file-row', 'data-testid': 'transfer-file', 'data-index': index },
        h('span', { class: 'file-name', title: f.name }, f.name),
        h('span', { class: 'file-size' }, formatBytes(f.size)),
        bar,
        status,
        save,
      );
      return { row, bar, status, save };
    });

    this.#cancel = button('Cancel', 'transfer-cancel', 'btn-danger', () => actions.cancel(this.#id));
    this.#retry = button('Retry failed files', 'transfer-retry', 'btn-secondary', () => actions.retry(this.#id));
    this.#sendAgain = button('Send again', 'transfer-send-again', 'btn-primary', () => actions.sendAgain(this.#id));
    this.#dismiss = button('Remove from list', 'transfer-dismiss', 'btn-ghost', () => actions.dismiss(this.#id));
    this.#saveFolder = button('Save all to folder…', 'transfer-save-folder', 'btn-secondary', () => actions.saveFolder(this.#id));
    this.#showText = button('Show text', 'transfer-show-text', 'btn-primary', () => actions.showText(this.#id));
    const repickInput = h('input', { type: 'file', multiple: true, class: 'visually-hidden', 'data-testid': 'transfer-repick' });
    repickInput.addEventListener('change', () => {
      const picked = [...(repickInput.files ?? [])];
      repickInput.value = '';
      if (picked.length > 0) actions.repick(this.#id, picked);
    });
    this.#repick = h('label', { class: 'btn btn-primary btn-small', hidden: true }, 'Pick the files again to continue', repickInput);

    this.root = h(
      'article',
      {
        class: 'transfer',
        'aria-labelledby': titleId,
        'data-testid': 'transfer-status',
        'data-transfer-id': t.id,
        'data-direction': t.direction,
        'data-kind': isText ? 'text' : 'files',
        ...(t.part !== null ? { 'data-part-index': t.part.index, 'data-part-count': t.part.count } : {}),
      },
      h(
        'header',
        { class: 'transfer-head' },
        h('span', { class: `direction-icon ${sending ? 'direction-send' : 'direction-receive'}`, 'aria-hidden': 'true' }, sending ? '↑' : '↓'),
        h('div', { class: 'transfer-who' }, this.#title, h('p', { class: 'muted transfer-summary' }, summary(t))),
        h('div', { class: 'transfer-badges' }, this.#path, this.#badge),
      ),
      this.#bar,
      this.#numbers,
      this.#problem,
      h('ul', { class: 'file-list', 'aria-label': 'Files', hidden: isText }, ...this.#files.map((f) => f.row)),
      h('div', { class: 'actions actions-compact' }, this.#showText, this.#repick, this.#saveFolder, this.#retry, this.#sendAgain, this.#cancel, this.#dismiss),
    );
    this.update(t);
  }

  update(t: TransferSnapshot): void {
    const finished = t.state === 'completed' || t.state === 'failed' || t.state === 'cancelled';
    this.root.setAttribute('data-state', t.state);
    if (t.path !== null) this.root.setAttribute('data-path', t.path.kind);
    // Timings for tests and bench/transfer (setup = accepted → channel open).
    if (t.setupMs !== null) this.root.setAttribute('data-setup-ms', String(t.setupMs));
    if (finished && t.durationMs !== null) this.root.setAttribute('data-duration-ms', String(t.durationMs));
    this.root.setAttribute('data-paused', String(t.paused));
    this.root.setAttribute('data-wire-bytes', String(t.wireBytes));
    this.root.setAttribute('data-resumes', String(t.resumes));
    if (t.state !== this.#lastState || t.paused !== this.#lastPaused) {
      this.#lastState = t.state;
      this.#lastPaused = t.paused;
      this.#badge.textContent = t.paused ? 'Paused' : t.direction === 'receive' && t.awaitingAnswer ? 'Asking you' : STATE_LABEL[t.state];
      this.#badge.className = `state-badge state-${t.paused ? 'paused' : t.state}`;
    }
    this.#repick.hidden = !t.needsFiles;
    if (t.path !== null) {
      this.#path.hidden = false;
      this.#path.textContent = describePath(t.path);
      this.#path.title = t.path.rttMs === null ? '' : `Round trip ${t.path.rttMs} ms`;
    }
    this.#bar.max = Math.max(1, t.totalBytes);
    this.#bar.value = t.bytes;
    this.#numbers.textContent = numbersLine(t);
    this.#problem.textContent = t.problem?.message ?? '';
    this.#problem.className = `message transfer-problem ${t.state === 'failed' ? 'message-error' : 'message-warning'}`;

    t.files.forEach((f, i) => {
      const row = this.#files[i];
      if (row === undefined) return;
      row.bar.value = f.bytes;
      row.row.setAttribute('data-file-state', f.state);
      row.status.textContent = fileStatus(f.state, f.bytes, f.size, finished);
      if (row.save !== null) row.save.hidden = f.state !== 'done' || t.state === 'cancelled';
    });

    const anyStored = t.direction === 'receive' && t.files.some((f) => f.state === 'done') && t.state !== 'cancelled';
    this.#saveFolder.hidden = !(anyStored && this.#actions.canSaveToFolder && t.files.length > 1);
    this.#cancel.hidden = finished || (t.direction === 'receive' && t.awaitingAnswer);
    this.#retry.hidden = !(t.direction === 'send' && t.state === 'failed' && t.files.some((f) => f.state !== 'done'));
    this.#sendAgain.hidden = !canSendAgain(t);
    this.#dismiss.hidden = !finished;
    this.#showText.hidden = !(t.text !== null && t.direction === 'receive' && t.state === 'completed');
  }
}

function summary(t: TransferSnapshot): string {
  if (t.text !== null) return `Text · ${plural(t.text.chars, 'character')}`;
  const part = t.part !== null ? `Part ${t.part.index} of ${t.part.count} of ${plural(t.part.totalFiles, 'file')}: ` : '';
  return `${part}${plural(t.files.length, 'file')} · ${formatBytes(t.totalBytes)}`;
}

function numbersLine(t: TransferSnapshot): string {
  switch (t.state) {
    case 'requested':
      return t.direction === 'send' ? `Waiting for ${t.peer.displayName} to accept…` : 'Waiting for your answer.';
    case 'accepted':
      return 'Connecting to the other computer…';
    case 'sending':
    case 'receiving': {
      if (t.needsFiles) {
        return `Interrupted when this page was reloaded at ${formatBytes(t.bytes)} of ${formatBytes(t.totalBytes)}. The browser no longer has the files: pick the same files again to continue.`;
      }
      if (t.paused) {
        return `Paused — waiting for ${t.peer.displayName} (${formatBytes(t.bytes)} of ${formatBytes(t.totalBytes)} so far). It goes on by itself when both computers are connected again.`;
      }
      const parts = [`${formatBytes(t.bytes)} of ${formatBytes(t.totalBytes)} (${formatPercent(t.bytes, t.totalBytes)})`];
      const speed = formatSpeed(t.bytesPerSecond);
      if (speed !== '') parts.push(speed);
      const eta = formatEta(t.etaSeconds);
      if (eta !== '') parts.push(eta);
      return parts.join(' · ');
    }
    case 'completed': {
      if (t.text !== null) return t.direction === 'send' ? 'Delivered and verified.' : 'Received and verified. It is kept in this page only: copy what you need.';
      const secs = t.durationMs === null ? null : t.durationMs / 1000;
      const avg = secs !== null && secs > 0 ? ` · ${formatSpeed(t.totalBytes / secs)} average` : '';
      return `${t.direction === 'send' ? 'Delivered and verified' : 'Received and verified'}: ${formatBytes(t.totalBytes)}${avg}.`;
    }
    default:
      return t.bytes > 0 ? `${formatBytes(t.bytes)} of ${formatBytes(t.totalBytes)} had been transferred.` : '';
  }
}

function fileStatus(state: string, bytes: number, size: number, finished: boolean): string {
  switch (state) {
    case 'waiting':
      return finished ? 'Not sent' : 'Waiting';
    case 'active':
      return formatPercent(bytes, size);
    case 'verifying':
      return 'Checking…';
    case 'done':
      return 'Verified ✓';
    default:
      return finished ? 'Not received' : 'Failed';
  }
}

function button(label: string, testId: string, kind: string, onClick: () => void): HTMLButtonElement {
  const b = h('button', { type: 'button', class: `btn ${kind} btn-small`, 'data-testid': testId, hidden: true }, label);
  b.addEventListener('click', onClick);
  return b;
}
