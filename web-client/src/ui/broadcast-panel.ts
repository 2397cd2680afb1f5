/**
 * Broadcasts on the home view: for users with `broadcast.send`, starting one (the chosen files
 * to a lab, or to all labs) and each recipient's live status; for everyone, the broadcasts
 * coming in — who sends what, accept/decline when the sender's role is not auto-accepted,
 * progress, and Save once verified.
 *
 * Test hooks: `broadcast-start`, `broadcast-target`, `broadcast-error`, `broadcast-out`
 * (`data-broadcast-id`, `data-phase`), `broadcast-recipient` (`data-username`, `data-state`,
 * `data-bytes`), `broadcast-in` (`data-broadcast-id`, `data-transfer-id`, `data-state`,
 * `data-bad-pieces`, `data-parents`), `broadcast-accept`, `broadcast-decline`, `broadcast-save`.
 */

import type { IncomingBroadcastView, OutgoingBroadcastView, RecipientView } from '../engine/broadcast';
import type { PickedFile, TransferEngine } from '../engine/engine';
import { SignalingError } from '../engine/protocol';
import { append, h, messageLine } from './dom';
import { formatBytes, plural } from './format';

export interface BroadcastPanelOptions {
  canSend: boolean;
  /** May broadcast to every lab (else only to the labs the server allows). */
  canSendAll: boolean;
  picked(): readonly PickedFile[];
  /** The broadcast started: the chosen files are on their way (clear the selection). */
  started(): void;
}

const ALL = '*all';

export class BroadcastPanel {
  readonly root: HTMLElement;
  readonly #o: BroadcastPanelOptions;
  #engine: TransferEngine | null = null;
  readonly #target: HTMLSelectElement;
  readonly #error = messageLine('error', 'broadcast-error');
  /** `#error` only says the connection was down. */
  #errorFromConnection = false;
  readonly #outList: HTMLDivElement;
  readonly #inList: HTMLDivElement;
  readonly #out = new Map<string, HTMLElement>();
  readonly #in = new Map<string, HTMLElement>();
  #labs: string[] = [];

  constructor(options: BroadcastPanelOptions) {
    this.#o = options;
    this.#target = h('select', { class: 'field-input field-select', 'data-testid': 'broadcast-target', 'aria-label': 'Broadcast to' });
    const start = h('button', { type: 'button', class: 'btn btn-primary btn-small', 'data-testid': 'broadcast-start' }, 'Broadcast chosen files');
    start.addEventListener('click', () => void this.#start());
    this.#outList = h('div', { class: 'broadcast-list' });
    this.#inList = h('div', { class: 'broadcast-list' });
    this.root = h(
      'section',
      { class: 'card panel panel-broadcast', 'aria-labelledby': 'broadcast-title' },
      h('h2', { id: 'broadcast-title', class: 'panel-title' }, 'Broadcasts'),
      options.canSend
        ? h('div', { class: 'actions actions-compact' }, h('span', {}, 'Send the chosen files to every computer of'), this.#target, start)
        : null,
      this.#error.element,
      this.#outList,
      this.#inList,
    );
    this.root.hidden = !options.canSend;
    this.setLabs([]);
  }

  /** The labs to offer as targets (from presence). */
  setLabs(labs: readonly string[]): void {
    const unique = [...new Set(labs)].sort((a, b) => a.localeCompare(b));
    if (unique.join('\n') === this.#labs.join('\n')) return;
    this.#labs = unique;
    const selected = this.#target.value;
    this.#target.replaceChildren(
      ...unique.map((lab) => h('option', { value: lab, selected: lab === selected }, lab)),
      ...(this.#o.canSendAll ? [h('option', { value: ALL, selected: selected === ALL }, 'All labs')] : []),
    );
  }

  attach(engine: TransferEngine): void {
    this.#engine = engine;
    engine.broadcasts.on('outgoing', (b) => this.#renderOut(b));
    engine.broadcasts.on('incoming', (b) => this.#renderIn(b));
  }

  /** The signaling connection is up again: an error that only said it was down goes. */
  connectionBack(): void {
    if (!this.#errorFromConnection) return;
    this.#errorFromConnection = false;
    this.#error.clear();
  }

  async #start(): Promise<void> {
    this.#error.clear();
    this.#errorFromConnection = false;
    const engine = this.#engine;
    const files = this.#o.picked();
    if (engine === null) return;
    if (files.length === 0) {
      this.#error.show('Choose the files to broadcast first.');
      return;
    }
    const value = this.#target.value;
    if (value === '') {
      this.#error.show('Nobody is online to broadcast to.');
      return;
    }
    try {
      await engine.broadcasts.start(value === ALL ? { all: true } : { lab: value }, files);
      this.#o.started();
    } catch (error) {
      this.#error.show(error instanceof Error && error.message !== '' ? error.message : 'The broadcast could not start.');
      this.#errorFromConnection = error instanceof SignalingError && (error.code === 'not_connected' || error.code === 'timeout');
    }
  }

  #renderOut(b: OutgoingBroadcastView): void {
    let el = this.#out.get(b.id);
    if (el === undefined) {
      el = h('div', { class: 'broadcast broadcast-out', 'data-testid': 'broadcast-out', 'data-broadcast-id': b.id });
      this.#out.set(b.id, el);
      this.#outList.prepend(el);
    }
    el.setAttribute('data-phase', b.phase);
    const recipients = [...b.recipients].sort((x, y) => x.peer.displayName.localeCompare(y.peer.displayName));
    const done = recipients.filter((r) => r.state === 'done').length;
    const cancel = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'broadcast-cancel' }, 'Stop');
    cancel.addEventListener('click', () => this.#engine?.broadcasts.cancel(b.id));
    const phase =
      b.phase === 'hashing'
        ? `preparing checksums (${percent(b.hashedBytes, b.totalBytes)})`
        : b.phase === 'running'
          ? `${done} of ${recipients.length} done`
          : `ended: ${b.endedReason}`;
    el.replaceChildren(
      h('p', {}, h('strong', {}, filesLabel(b.files)), ` · ${formatBytes(b.totalBytes)} · ${phase} `, b.phase !== 'ended' ? cancel : null),
      h('ul', { class: 'broadcast-recipients' }, ...recipients.map((r) => recipientItem(r))),
    );
  }

  #renderIn(b: IncomingBroadcastView): void {
    let el = this.#in.get(b.id);
    if (el === undefined) {
      el = h('div', { class: 'broadcast broadcast-in', 'data-testid': 'broadcast-in', 'data-broadcast-id': b.id, 'data-transfer-id': b.transferId });
      this.#in.set(b.id, el);
      this.#inList.prepend(el);
      this.root.hidden = false;
    }
    el.setAttribute('data-state', b.state);
    el.setAttribute('data-bad-pieces', String(b.badPieces));
    el.setAttribute('data-parents', String(b.parents));
    const from = b.from.role !== '' && b.from.role !== 'student' ? `${b.from.displayName} (${b.from.role})` : b.from.displayName;
    const actions: HTMLElement[] = [];
    if (b.state === 'asked') {
      const accept = h('button', { type: 'button', class: 'btn btn-primary btn-small', 'data-testid': 'broadcast-accept' }, 'Accept');
      const decline = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'data-testid': 'broadcast-decline' }, 'Decline');
      accept.addEventListener('click', () => void this.#engine?.broadcasts.accept(b.id));
      decline.addEventListener('click', () => void this.#engine?.broadcasts.decline(b.id));
      actions.push(accept, decline);
    }
    if (b.state === 'done') {
      b.files.forEach((f, index) => {
        const save = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'data-testid': 'broadcast-save' }, `Save ${f.name}`);
        save.addEventListener('click', () => void this.#engine?.broadcasts.save(b.id, index).catch((e: unknown) => this.#error.show(String(e))));
        actions.push(save);
      });
    }
    const status =
      b.state === 'asked'
        ? 'wants to send this to your lab'
        : b.state === 'done'
          ? 'arrived and verified'
          : b.state === 'failed'
            ? `stopped: ${b.problem ?? 'unknown reason'}`
            : b.state === 'verifying'
              ? 'checking the files on disk'
              : `${b.state} ${percent(b.bytes, b.totalBytes)}`;
    el.replaceChildren();
    append(
      el,
      h('p', {}, h('strong', {}, from), ` broadcasts ${filesLabel(b.files)} (${formatBytes(b.totalBytes)}) — ${status}`),
      h('progress', { max: Math.max(1, b.totalBytes), value: b.bytes }),
      b.badPieces > 0 ? h('p', { class: 'muted' }, `${plural(b.badPieces, 'damaged piece')} from another computer dropped and fetched again.`) : null,
      actions.length > 0 ? h('div', { class: 'actions actions-compact' }, ...actions) : null,
    );
  }
}

function recipientItem(r: RecipientView): HTMLLIElement {
  const words =
    r.state === 'receiving'
      ? `receiving ${percent(r.bytes, r.totalBytes)}`
      : r.state === 'failed'
        ? `failed: ${r.reason}`
        : r.state === 'asked'
          ? 'asked'
          : r.state === 'done' && r.reason !== ''
            ? `done (${r.reason})`
            : r.state;
  return h(
    'li',
    { 'data-testid': 'broadcast-recipient', 'data-username': r.peer.username, 'data-state': r.state, 'data-bytes': r.bytes },
    h('span', { class: 'peer-name' }, r.peer.displayName),
    ` · ${r.peer.device} · ${words}`,
  );
}

function percent(bytes: number, total: number): string {
  return `${total === 0 ? 100 : Math.floor((bytes / total) * 100)}%`;
}

function filesLabel(files: readonly { name: string }[]): string {
  return files.length === 1 ? (files[0]?.name ?? '') : plural(files.length, 'file');
}
