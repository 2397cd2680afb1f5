/**
 * Collecting students' work, for users with `collect` (engine/handins.ts): a form that opens
 * a hand-in for a lab (title, deadline, instructions, file types, most per student, late work
 * taken or not); then, for each hand-in this browser collects, the live table — every
 * student with where their hand-in stands (not started, queued, sending with its progress,
 * handed in, late, failed and why), files, size, when and which version — with "Save all…"
 * (each student's current files into a folder the instructor picks, `username/path`),
 * "Export CSV", Close, and once closed "Remove from this browser".
 *
 * Test hooks: `handin-open-form`, `handin-open-lab`, `handin-open-title`,
 * `handin-open-deadline`, `handin-open-instructions`, `handin-open-extensions`,
 * `handin-open-max-mb`, `handin-open-late`, `handin-open-submit`, `handin-open-error`,
 * `handin-collection` (`data-handin-id`, `data-state`: `open` or `closed`),
 * `handin-summary`, `handin-row` (`data-username`, `data-status`, `data-version`,
 * `data-late`), `handin-save-all`, `handin-csv`, `handin-close`, `handin-remove`,
 * `handin-collect-notice`.
 */

import type { Collection, CollectRow, Handins } from '../engine/handins';
import { collectionCsv } from '../engine/handins';
import { coalesced, h, messageLine, uniqueId } from './dom';
import { formatBytes, formatPercent, plural } from './format';
import { RENDER_EVERY_MS, countdownWords } from './handin-panel';
import { downloadFile, folderPickerAvailable, pickFolder } from './saving';

/** `datetime-local`'s value for a time (local, to the minute). */
export function localInputValue(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** `"pdf, .py  txt"` → `['pdf', 'py', 'txt']`. */
export function parseExtensions(text: string): string[] {
  return text
    .split(/[\s,;]+/)
    .map((e) => e.trim().replace(/^\.+/, '').toLowerCase())
    .filter((e) => e !== '');
}

const STATUS_WORDS: Record<CollectRow['status'], string> = {
  'not-started': 'Not started',
  queued: 'Queued',
  sending: 'Sending',
  'handed-in': 'Handed in',
  failed: 'Failed',
};

export class HandinCollectPanel {
  readonly root: HTMLElement;
  #handins: Handins | null = null;
  readonly #lab: HTMLSelectElement;
  readonly #title: HTMLInputElement;
  readonly #deadline: HTMLInputElement;
  readonly #instructions: HTMLTextAreaElement;
  readonly #extensions: HTMLInputElement;
  readonly #maxMb: HTMLInputElement;
  readonly #late: HTMLInputElement;
  readonly #openButton: HTMLButtonElement;
  readonly #openError = messageLine('error', 'handin-open-error');
  readonly #notice = messageLine('notice', 'handin-collect-notice');
  readonly #list: HTMLDivElement;
  readonly #blocks = new Map<string, HTMLElement>();
  #labs: string[] = [];
  #timer: ReturnType<typeof setInterval> | null = null;
  readonly #redraw = coalesced(() => this.#render(), RENDER_EVERY_MS);

  constructor() {
    const ids = { lab: uniqueId('handin-lab'), title: uniqueId('handin-title'), deadline: uniqueId('handin-deadline'), instructions: uniqueId('handin-instr'), ext: uniqueId('handin-ext'), max: uniqueId('handin-max'), late: uniqueId('handin-late') };
    this.#lab = h('select', { id: ids.lab, class: 'field-input field-select', 'data-testid': 'handin-open-lab', required: true });
    this.#title = h('input', { id: ids.title, class: 'field-input', type: 'text', maxlength: 120, required: true, 'data-testid': 'handin-open-title', placeholder: 'e.g. Week 3: loops' });
    this.#deadline = h('input', { id: ids.deadline, class: 'field-input', type: 'datetime-local', step: 1, required: true, 'data-testid': 'handin-open-deadline' });
    this.#deadline.value = localInputValue(Date.now() + 45 * 60_000);
    this.#instructions = h('textarea', { id: ids.instructions, class: 'field-input', rows: 2, maxlength: 2000, 'data-testid': 'handin-open-instructions', placeholder: 'What to hand in (optional)' });
    this.#extensions = h('input', { id: ids.ext, class: 'field-input', type: 'text', 'data-testid': 'handin-open-extensions', placeholder: 'e.g. pdf, py (empty: any file)' });
    this.#maxMb = h('input', { id: ids.max, class: 'field-input', type: 'number', min: 1, step: 1, 'data-testid': 'handin-open-max-mb', placeholder: 'no limit' });
    this.#late = h('input', { id: ids.late, type: 'checkbox', 'data-testid': 'handin-open-late' });
    this.#openButton = h('button', { type: 'submit', class: 'btn btn-primary btn-small', 'data-testid': 'handin-open-submit' }, 'Open hand-in');
    const form = h(
      'form',
      { class: 'handin-open-form', 'data-testid': 'handin-open-form', novalidate: true },
      h('div', { class: 'field' }, h('label', { class: 'field-label', for: ids.title }, 'Title'), this.#title),
      h(
        'div',
        { class: 'actions actions-compact' },
        h('label', { class: 'field-label', for: ids.lab }, 'Lab'),
        this.#lab,
        h('label', { class: 'field-label', for: ids.deadline }, 'Deadline'),
        this.#deadline,
      ),
      h('div', { class: 'field' }, h('label', { class: 'field-label', for: ids.instructions }, 'Instructions'), this.#instructions),
      h(
        'div',
        { class: 'actions actions-compact' },
        h('label', { class: 'field-label', for: ids.ext }, 'File types'),
        this.#extensions,
        h('label', { class: 'field-label', for: ids.max }, 'Most per student (MB)'),
        this.#maxMb,
      ),
      h('label', { class: 'checkbox', for: ids.late }, this.#late, ' Take late work (marked late)'),
      h('div', { class: 'actions actions-compact' }, this.#openButton),
      this.#openError.element,
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.#open();
    });
    this.#list = h('div', { class: 'handin-collections' });
    this.root = h(
      'section',
      { class: 'card panel panel-collect', 'aria-labelledby': 'collect-title', 'data-testid': 'handin-collect' },
      h('h2', { id: 'collect-title', class: 'panel-title' }, 'Collect work'),
      h('details', { class: 'handin-open' }, h('summary', {}, 'Open a hand-in…'), form),
      this.#notice.element,
      this.#list,
    );
  }

  attach(handins: Handins): void {
    this.#handins = handins;
    // Progress changes many times a second per delivery: draw at most every 250 ms, so the
    // page's main thread (which also receives the data channels' bytes) stays free.
    handins.on('changed', () => this.#redraw.request());
    this.#timer ??= setInterval(() => this.#tick(), 1000);
    this.#render();
  }

  stop(): void {
    this.#redraw.cancel();
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** The labs to offer (as presence shows them); the server decides which the user may use. */
  setLabs(labs: readonly string[]): void {
    const next = [...new Set(labs)].filter((l) => l !== 'Other').sort((a, b) => a.localeCompare(b));
    if (next.join('\n') === this.#labs.join('\n')) return;
    const chosen = this.#lab.value;
    this.#labs = next;
    this.#lab.replaceChildren(...next.map((l) => h('option', { value: l, selected: l === chosen }, l)));
  }

  async #open(): Promise<void> {
    const handins = this.#handins;
    if (handins === null) return;
    this.#openError.clear();
    const title = this.#title.value.trim();
    const deadlineMs = new Date(this.#deadline.value).getTime();
    const lab = this.#lab.value;
    const maxMb = this.#maxMb.value.trim() === '' ? null : Number(this.#maxMb.value);
    const problem =
      lab === ''
        ? 'Pick the lab whose students hand in (it appears once one of its PCs is online).'
        : title === ''
          ? 'Give the hand-in a title, e.g. “Week 3: loops”.'
          : !Number.isFinite(deadlineMs)
            ? 'Pick the deadline: a date and a time.'
            : deadlineMs <= Date.now()
              ? 'The deadline must be in the future.'
              : maxMb !== null && (!Number.isFinite(maxMb) || maxMb <= 0)
                ? 'The most per student is a number of megabytes (or leave it empty for no limit).'
                : null;
    if (problem !== null) {
      this.#openError.show(problem);
      return;
    }
    this.#openButton.disabled = true;
    try {
      const extensions = parseExtensions(this.#extensions.value);
      await handins.open({
        lab,
        title,
        deadline: Math.floor(deadlineMs / 1000),
        ...(this.#instructions.value.trim() !== '' ? { instructions: this.#instructions.value.trim() } : {}),
        ...(extensions.length > 0 ? { extensions } : {}),
        ...(maxMb !== null ? { maxBytes: Math.round(maxMb * 1024 * 1024) } : {}),
        allowLate: this.#late.checked,
      });
      this.#title.value = '';
      this.#instructions.value = '';
      // The form folds away: the hand-in's table is what matters now.
      const details = this.#openButton.closest('details');
      if (details !== null) details.open = false;
      this.#notice.show(`“${title}” is open: every PC of ${lab} shows it now.`, 'success');
    } catch (error) {
      this.#openError.show(error instanceof Error ? error.message : String(error));
    } finally {
      this.#openButton.disabled = false;
    }
  }

  #render(): void {
    const handins = this.#handins;
    if (handins === null) return;
    const seen = new Set<string>();
    for (const c of handins.collections()) {
      seen.add(c.handin.handinId);
      let block = this.#blocks.get(c.handin.handinId);
      if (block === undefined) {
        block = h('div', { class: 'handin-collection', 'data-testid': 'handin-collection', 'data-handin-id': c.handin.handinId });
        this.#blocks.set(c.handin.handinId, block);
        this.#list.prepend(block);
      }
      this.#draw(block, c, handins);
    }
    for (const [id, block] of this.#blocks) {
      if (!seen.has(id)) {
        block.remove();
        this.#blocks.delete(id);
      }
    }
  }

  #tick(): void {
    for (const el of this.#list.querySelectorAll<HTMLElement>('[data-deadline]')) {
      el.textContent = countdownWords(Number(el.dataset['deadline']), Date.now() / 1000);
    }
  }

  #draw(block: HTMLElement, c: Collection, handins: Handins): void {
    const hd = c.handin;
    block.dataset['state'] = c.closed ? 'closed' : 'open';
    const count = (s: CollectRow['status']): number => c.rows.filter((r) => r.status === s).length;
    const late = c.rows.filter((r) => r.status === 'handed-in' && r.late).length;
    const summary = [
      `${count('handed-in')} handed in${late > 0 ? ` (${late} late)` : ''}`,
      `${count('sending')} sending`,
      `${count('queued')} queued`,
      count('failed') > 0 ? `${count('failed')} failed` : null,
      c.closed ? null : `${count('not-started')} not started`,
    ]
      .filter((x) => x !== null)
      .join(' · ');
    const buttons: HTMLElement[] = [];
    if (folderPickerAvailable()) {
      const save = h('button', { type: 'button', class: 'btn btn-primary btn-small', 'data-testid': 'handin-save-all', disabled: !c.rows.some((r) => r.kept) }, 'Save all…');
      save.addEventListener('click', () => void this.#saveAll(hd.handinId, handins));
      buttons.push(save);
    }
    const csv = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'data-testid': 'handin-csv' }, 'Export CSV');
    csv.addEventListener('click', () => {
      const safe = hd.title.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'hand-in';
      downloadFile(new Blob([collectionCsv(c)], { type: 'text/csv;charset=utf-8' }), `${safe}.csv`);
    });
    buttons.push(csv);
    if (!c.closed) {
      const close = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'handin-close' }, 'Close hand-in');
      close.addEventListener('click', () => {
        if (!window.confirm(`Close “${hd.title}”? Students can no longer hand in; what arrived stays here to save.`)) return;
        handins.close(hd.handinId).catch((error: unknown) => this.#notice.show(error instanceof Error ? error.message : String(error), 'warning'));
      });
      buttons.push(close);
    } else {
      const remove = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'handin-remove' }, 'Remove from this browser');
      remove.addEventListener('click', () => {
        if (!window.confirm(`Delete the files of “${hd.title}” from this browser? Save them first: they cannot be brought back.`)) return;
        handins.removeKept(hd.handinId).catch((error: unknown) => this.#notice.show(error instanceof Error ? error.message : String(error), 'warning'));
      });
      buttons.push(remove);
    }
    const deadline = h('span', { 'data-deadline': String(hd.deadline) }, countdownWords(hd.deadline, Date.now() / 1000));
    block.replaceChildren(
      h('h3', { class: 'section-title' }, `${hd.title} — ${hd.lab}${c.closed ? ' (closed)' : ''}`),
      h('p', { class: 'muted' }, `Due ${new Date(hd.deadline * 1000).toLocaleString()} (`, deadline, `)${hd.allowLate ? '; late work taken' : ''}`),
      h('p', { class: 'handin-summary', 'data-testid': 'handin-summary', role: 'status' }, summary),
      h('div', { class: 'actions actions-compact' }, ...buttons),
      c.rows.length === 0
        ? h('p', { class: 'muted empty' }, 'Nobody of this lab is online yet.')
        : h(
            'div',
            { class: 'table-scroll' },
            h(
              'table',
              { class: 'history-table handin-table' },
              h('thead', {}, h('tr', {}, ...['Student', 'Status', 'Files', 'Size', 'Received', 'Version'].map((t) => h('th', { scope: 'col' }, t)))),
              h('tbody', {}, ...c.rows.map((r) => this.#row(r))),
            ),
          ),
    );
  }

  #row(r: CollectRow): HTMLTableRowElement {
    const newest = r.versions.at(-1);
    const status =
      r.status === 'sending'
        ? `Sending ${formatPercent(r.bytes, r.totalBytes)}`
        : r.status === 'failed'
          ? `Failed: ${r.problem?.message ?? 'the files did not arrive'}`
          : r.status === 'handed-in' && r.late
            ? 'Handed in (late)'
            : STATUS_WORDS[r.status];
    const shown = r.status === 'handed-in' ? newest : undefined;
    return h(
      'tr',
      { 'data-testid': 'handin-row', 'data-username': r.username, 'data-status': r.status, 'data-version': String(newest?.version ?? 0), 'data-late': String(r.late) },
      h('td', {}, r.displayName, r.displayName !== r.username ? h('span', { class: 'muted' }, ` (${r.username})`) : null),
      h('td', {}, status),
      h('td', {}, shown !== undefined ? plural(shown.files.length, 'file') : ''),
      h('td', {}, shown !== undefined ? formatBytes(shown.totalBytes) : r.totalBytes > 0 ? formatBytes(r.totalBytes) : ''),
      h('td', {}, shown !== undefined ? new Date(shown.receivedAt * 1000).toLocaleTimeString() : ''),
      h('td', {}, newest !== undefined ? `${newest.version}${r.versions.length > 1 ? ` of ${r.versions.length}` : ''}${r.kept ? '' : ' (not in this browser)'}` : ''),
    );
  }

  async #saveAll(handinId: string, handins: Handins): Promise<void> {
    let folder: FileSystemDirectoryHandle;
    try {
      folder = await pickFolder();
    } catch {
      return; // The user closed the picker.
    }
    try {
      const n = await handins.saveAll(handinId, folder);
      this.#notice.show(`Saved ${plural(n, 'file')}, each student’s in a folder named after them.`, 'success');
    } catch (error) {
      this.#notice.show(`Could not save every file: ${error instanceof Error ? error.message : String(error)}`, 'warning');
    }
  }
}
