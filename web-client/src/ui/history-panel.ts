/**
 * Transfer history from the server's log (`GET /api/transfers?scope=own`): what this account
 * sent and received, with status, size, path and duration, also for admins (everyone's
 * transfers are in the portal). Refreshed on demand and shortly after a transfer of this page
 * ends (the log row is written once both sides reported).
 *
 * Test hooks: `history`, `history-row` (with `data-transfer-id`, `data-status`, `data-path`,
 * `data-direction`: `sent` or `received`, `data-kind`: `files` or `text`), `history-refresh`,
 * `history-error`. A text is shown as "Text, N characters", never the text.
 */

import { ApiError, type ApiClient, type TransferRecord, type User } from '../api';
import { h, messageLine } from './dom';
import { formatBytes, formatDuration, formatWhen, plural } from './format';

const STATUS_LABEL: Record<string, string> = {
  requested: 'Waiting',
  accepted: 'In progress',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled',
  declined: 'Declined',
  expired: 'Expired',
};

export class HistoryPanel {
  readonly root: HTMLElement;
  readonly #api: ApiClient;
  readonly #me: Pick<User, 'id' | 'username'>;
  readonly #body: HTMLTableSectionElement;
  readonly #empty: HTMLParagraphElement;
  readonly #table: HTMLTableElement;
  readonly #error = messageLine('error', 'history-error');
  readonly #refresh: HTMLButtonElement;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #failed = false;

  constructor(api: ApiClient, me: Pick<User, 'id' | 'username'>) {
    this.#api = api;
    this.#me = me;
    this.#body = h('tbody');
    this.#table = h(
      'table',
      { class: 'history-table', 'data-testid': 'history' },
      h('caption', { class: 'visually-hidden' }, 'Your transfers, newest first'),
      h(
        'thead',
        {},
        h('tr', {}, ...['When', 'With', 'Files', 'Size', 'Status', 'Path', 'Time'].map((c) => h('th', { scope: 'col' }, c))),
      ),
      this.#body,
    );
    this.#empty = h('p', { class: 'muted empty' }, 'No transfers yet.');
    this.#refresh = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'history-refresh' }, 'Refresh');
    this.#refresh.addEventListener('click', () => void this.load());
    this.root = h(
      'section',
      { class: 'card panel panel-history', 'aria-labelledby': 'history-title' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'history-title', class: 'panel-title' }, 'History'), this.#refresh),
      this.#error.element,
      h('div', { class: 'table-scroll' }, this.#table),
      this.#empty,
    );
  }

  /** The last load failed (its error is on screen). */
  get failed(): boolean {
    return this.#failed;
  }

  /** Reloads in a moment (coalescing several calls). */
  soon(ms = 1500): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.load();
    }, ms);
  }

  async load(): Promise<void> {
    this.#refresh.disabled = true;
    try {
      const rows = await this.#api.transfers(50);
      this.#failed = false;
      this.#error.clear();
      this.#render(rows);
    } catch (error) {
      this.#failed = true;
      this.#error.show(`Could not load the history: ${error instanceof ApiError ? error.message : 'unexpected error'}`);
    } finally {
      this.#refresh.disabled = false;
    }
  }

  #render(rows: readonly TransferRecord[]): void {
    this.#empty.hidden = rows.length > 0;
    this.#table.hidden = rows.length === 0;
    this.#body.replaceChildren(
      ...rows.map((r) => {
        // By account id; by name for rows logged without one.
        const sent = r.senderId !== null ? r.senderId === this.#me.id : r.senderUsername === this.#me.username;
        const other = sent ? `${r.receiverUsername}${r.receiverDevice !== '' ? ` (${r.receiverDevice})` : ''}` : `${r.senderUsername}${r.senderDevice !== '' ? ` (${r.senderDevice})` : ''}`;
        const files =
          r.textChars !== null ? `Text, ${plural(r.textChars, 'character')}` : r.files.length === 1 ? (r.files[0]?.name ?? '') : plural(r.fileCount, 'file');
        const status = h('span', { class: `state-badge state-${r.status}` }, STATUS_LABEL[r.status] ?? r.status);
        if (r.failureReason !== '') status.title = r.failureReason;
        return h(
          'tr',
          {
            'data-testid': 'history-row',
            'data-transfer-id': r.id,
            'data-status': r.status,
            'data-path': r.path,
            'data-direction': sent ? 'sent' : 'received',
            'data-kind': r.textChars !== null ? 'text' : 'files',
          },
          h('td', {}, formatWhen(r.requestedAt)),
          h('td', {}, h('span', { class: 'muted' }, sent ? 'to ' : 'from '), other),
          h('td', { class: 'history-files', title: r.textChars !== null ? files : r.files.map((f) => f.name).join('\n') }, files),
          h('td', { class: 'num' }, formatBytes(r.totalBytes)),
          h('td', {}, status),
          h('td', {}, r.path === '' ? '–' : r.path),
          h('td', { class: 'num' }, r.durationMs === null ? '–' : formatDuration(r.durationMs / 1000)),
        );
      }),
    );
  }
}
