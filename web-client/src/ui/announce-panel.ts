/**
 * Writing announcements, for users with `announce` (instructors to the labs they are
 * responsible for, admins to any lab or every lab): the text, the lab, how long late joiners
 * still see it, a preview exactly as the room will see it, Send; the announcements sent from
 * this page, each with Withdraw (it disappears from every screen at once).
 *
 * Test hooks: `announce-panel`, `announce-text`, `announce-target`, `announce-ttl`,
 * `announce-preview`, `announce-send`, `announce-error`, `announce-sent`
 * (`data-announcement-id`, `data-state`: `live` or `withdrawn`), `announce-withdraw`.
 */

import type { TransferEngine } from '../engine/engine';
import { SignalingError } from '../engine/protocol';
import { h, messageLine, uniqueId } from './dom';

export interface AnnouncePanelOptions {
  /** The writer's display name, for the preview. */
  from: string;
  /** May address every lab at once (`users.manage`). */
  canSendAll: boolean;
}

/** Longest announcement the server keeps, in characters. */
export const MAX_ANNOUNCEMENT_CHARS = 500;
const ALL = '*all';
const LIFETIMES: readonly [number, string][] = [
  [15 * 60, '15 minutes'],
  [3600, '1 hour'],
  [3 * 3600, '3 hours'],
  [86_400, 'until tomorrow (24 hours)'],
];

export class AnnouncePanel {
  readonly root: HTMLElement;
  readonly #o: AnnouncePanelOptions;
  #engine: TransferEngine | null = null;
  readonly #text: HTMLTextAreaElement;
  readonly #target: HTMLSelectElement;
  readonly #ttl: HTMLSelectElement;
  readonly #preview: HTMLParagraphElement;
  readonly #send: HTMLButtonElement;
  readonly #error = messageLine('error', 'announce-error');
  readonly #sent: HTMLUListElement;
  readonly #items = new Map<string, HTMLLIElement>();
  #labs: string[] = [];

  constructor(options: AnnouncePanelOptions) {
    this.#o = options;
    const textId = uniqueId('announce-text');
    const targetId = uniqueId('announce-target');
    const ttlId = uniqueId('announce-ttl');
    this.#text = h('textarea', { id: textId, class: 'field-input', rows: 2, maxlength: MAX_ANNOUNCEMENT_CHARS, 'data-testid': 'announce-text', placeholder: 'e.g. The exam starts at 10:15; put your bags at the front.' });
    this.#target = h('select', { id: targetId, class: 'field-input field-select', 'data-testid': 'announce-target' });
    this.#ttl = h(
      'select',
      { id: ttlId, class: 'field-input field-select', 'data-testid': 'announce-ttl' },
      ...LIFETIMES.map(([secs, label]) => h('option', { value: String(secs), selected: secs === 3600 }, label)),
    );
    this.#preview = h('p', { class: 'announcement-text announce-preview', 'data-testid': 'announce-preview', 'aria-live': 'polite' });
    this.#send = h('button', { type: 'button', class: 'btn btn-primary btn-small', 'data-testid': 'announce-send', disabled: true }, 'Announce');
    this.#sent = h('ul', { class: 'announce-sent-list', 'aria-label': 'Your announcements' });
    this.#text.addEventListener('input', () => this.#update());
    this.#target.addEventListener('change', () => this.#update());
    this.#send.addEventListener('click', () => void this.#announce());
    this.root = h(
      'section',
      { class: 'card panel panel-announce', 'aria-labelledby': 'announce-title', 'data-testid': 'announce-panel' },
      h('h2', { id: 'announce-title', class: 'panel-title' }, 'Announce'),
      h('div', { class: 'field' }, h('label', { class: 'field-label', for: textId }, 'Tell the room'), this.#text),
      h(
        'div',
        { class: 'actions actions-compact' },
        h('label', { class: 'field-label', for: targetId }, 'To'),
        this.#target,
        h('label', { class: 'field-label', for: ttlId }, 'Shown to late joiners for'),
        this.#ttl,
      ),
      h('div', { class: 'announcement announce-preview-box' }, h('span', { class: 'announcement-icon', 'aria-hidden': 'true' }, '📣'), this.#preview),
      h('div', { class: 'actions actions-compact' }, this.#send),
      this.#error.element,
      this.#sent,
    );
    this.setLabs([]);
    this.#update();
  }

  /** The labs to offer (from presence; the server refuses labs the user is not responsible for). */
  setLabs(labs: readonly string[]): void {
    const unique = [...new Set(labs)].filter((l) => l !== 'Other').sort((a, b) => a.localeCompare(b));
    if (unique.join('\n') === this.#labs.join('\n')) return;
    this.#labs = unique;
    const selected = this.#target.value;
    this.#target.replaceChildren(
      ...unique.map((lab) => h('option', { value: lab, selected: lab === selected }, lab)),
      ...(this.#o.canSendAll ? [h('option', { value: ALL, selected: selected === ALL }, 'Every lab')] : []),
    );
    this.#update();
  }

  attach(engine: TransferEngine): void {
    this.#engine = engine;
    engine.on('announcementWithdrawn', (id) => this.#markWithdrawn(id));
  }

  #update(): void {
    const text = this.#text.value.trim();
    const to = this.#target.value === ALL ? 'every lab' : this.#target.value;
    this.#preview.replaceChildren(
      h('strong', {}, this.#o.from),
      ` · now — ${text === '' ? '…' : text}`,
    );
    this.#preview.title = to === '' ? '' : `To ${to}`;
    this.#send.disabled = text === '' || this.#target.value === '';
  }

  async #announce(): Promise<void> {
    const engine = this.#engine;
    const text = this.#text.value.trim();
    if (engine === null || text === '' || this.#target.value === '') return;
    const target = this.#target.value === ALL ? ({ all: true } as const) : { lab: this.#target.value };
    const ttl = Number(this.#ttl.value);
    this.#send.disabled = true;
    this.#error.clear();
    try {
      const id = await engine.announce(text, target, ttl);
      this.#text.value = '';
      this.#addSent(id, text, 'lab' in target ? target.lab : 'every lab', ttl);
    } catch (error) {
      this.#error.show(error instanceof SignalingError || error instanceof Error ? error.message : 'The announcement could not be sent.');
    } finally {
      this.#update();
    }
  }

  #addSent(id: string, text: string, to: string, ttl: number): void {
    const until = new Date(Date.now() + ttl * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const withdraw = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'announce-withdraw' }, 'Withdraw');
    const state = h('span', { class: 'muted' }, `to ${to}, shown until ${until}`);
    const item = h('li', { 'data-testid': 'announce-sent', 'data-announcement-id': id, 'data-state': 'live' }, h('span', {}, text), ' ', state, ' ', withdraw);
    withdraw.addEventListener('click', () => {
      withdraw.disabled = true;
      this.#engine?.withdrawAnnouncement(id).then(
        () => this.#markWithdrawn(id),
        (error: unknown) => {
          withdraw.disabled = false;
          this.#error.show(error instanceof Error ? error.message : 'The announcement could not be withdrawn.');
        },
      );
    });
    this.#items.set(id, item);
    this.#sent.prepend(item);
  }

  #markWithdrawn(id: string): void {
    const item = this.#items.get(id);
    if (item === undefined || item.dataset['state'] === 'withdrawn') return;
    item.dataset['state'] = 'withdrawn';
    item.querySelector('button')?.remove();
    item.append(h('span', { class: 'muted' }, ' (withdrawn)'));
  }
}
