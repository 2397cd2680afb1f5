/**
 * The signed-in home: who is online (by lab), picking and dropping files to send (dropped on
 * a person: sent to them; anywhere else: chosen, page-drop.ts), the
 * transfers of this page with their progress, the history, announcements and settings.
 *
 * It owns the transfer engine for as long as the user is signed in (the view object outlives
 * visits to the account page, so transfers keep running) and renders what the engine reports;
 * it never talks to the server itself except through the engine and the API client.
 *
 * While the signaling connection is down, the people list is who was online when it was lost:
 * it is shown as such (`data-presence="stale"`, each person `data-online="false"`, Send off)
 * until the server's next snapshot. Once the connection is back, the messages that only said
 * it was down go away and the history is read again.
 *
 * Test hooks (docs/TEST-HOOKS.md): `peer-list`, `peer` (`data-username`, `data-peer-id`), `file-input`,
 * `incoming-accept`, `incoming-decline`, `transfer-status`; also `peer-list` `data-presence`
 * (`live`/`stale`), `peer` `data-online`, `folder-input`, `peer-send`,
 * `selection`, `selection-clear`, `connection-status` (`data-state`), `send-error`,
 * `announcement`, `settings-toggle`, `setting-relay`, `setting-autosave`,
 * `setting-notifications`, `setting-sound`, `setting-theme`, `setting-device`, `open-account`,
 * `connection-test`, `connection-test-result` (`data-state`, `data-verdict`), `connection-test-headline`,
 * `peer-send-text` (a person's "Text…"), `exam-indicator` (`data-bound`: shown while this
 * device's lab is in exam mode); the page-wide drop overlay's in page-drop.ts, the text
 * dialogs' in text-compose.ts and text-dialog.ts.
 */

import { type ApiClient, ApiError, type User } from '../api';
import { explain, relayAddress, testConnection } from '../engine/connection-test';
import { type ConnectionState, type PickedFile, TransferEngine, TransferError, type TransferSnapshot } from '../engine/engine';
import type { Announcement, ExamState, Peer } from '../engine/protocol';
import { h, messageLine, uniqueId } from './dom';
import { EXAM_SEND_OFF, examWords } from './exam-words';
import { AnnouncePanel } from './announce-panel';
import { BroadcastPanel } from './broadcast-panel';
import { formatBytes, formatWhen, plural } from './format';
import { HandinCollectPanel } from './handin-collect';
import { HandinPanel } from './handin-panel';
import { HistoryPanel } from './history-panel';
import { Chime, TabBadge } from './attention';
import { IncomingDialog } from './incoming-dialog';
import { LabPolicyPanel } from './lab-policy-panel';
import { PageDrop } from './page-drop';
import { dropTarget, fromFileList, mergeSelection } from './picking';
import { downloadFile, folderPickerAvailable, pickFolder } from './saving';
import { HANDIN_CONCURRENCY_MAX, type Settings, type Theme, applyTheme, browserName } from './settings';
import { TextCompose } from './text-compose';
import { TextDialog } from './text-dialog';
import type { View } from './shell';
import { TransferCard } from './transfer-card';

export interface HomeViewOptions {
  api: ApiClient;
  user: User;
  settings: Settings;
  /** The server refused the connection for good (session ended, revoked, password change). */
  onSessionEnded(code: string): void;
  onOpenAccount(): void;
}

export class HomeView implements View {
  readonly root: HTMLElement;
  readonly title = 'Send files';
  readonly #o: HomeViewOptions;
  #engine: TransferEngine;
  readonly #heading: HTMLHeadingElement;
  readonly #connection: HTMLParagraphElement;
  readonly #announcements: HTMLDivElement;
  /** Shown while this device's lab is in exam mode (`exam-indicator`). */
  readonly #examIndicator: HTMLParagraphElement;
  readonly #peerList: HTMLDivElement;
  readonly #peerEmpty: HTMLParagraphElement;
  readonly #peerStale: HTMLParagraphElement;
  readonly #fileInput: HTMLInputElement;
  readonly #folderInput: HTMLInputElement;
  readonly #selection: HTMLDivElement;
  readonly #sendError = messageLine('error', 'send-error');
  readonly #notice = messageLine('notice', 'home-notice');
  readonly #transferList: HTMLDivElement;
  readonly #transferEmpty: HTMLParagraphElement;
  readonly #cards = new Map<string, TransferCard>();
  readonly #history: HistoryPanel;
  readonly #incoming: IncomingDialog;
  /** The tab's title and icon badge while requests wait, and the chime when one arrives. */
  readonly #badge = new TabBadge();
  readonly #chime = new Chime();
  readonly #settingsPanel: HTMLElement;
  readonly #broadcast: BroadcastPanel;
  /** Writing announcements: only for users with `announce`. */
  readonly #announce: AnnouncePanel | null;
  /** Handing in (students), and collecting (users with `collect`). */
  readonly #handin: HandinPanel | null;
  readonly #collect: HandinCollectPanel | null;
  /** Exam mode and visibility of the user's labs: for instructors and admins. */
  readonly #labPolicy: LabPolicyPanel | null;
  /** Files dropped anywhere on the page become the selection. */
  readonly #pageDrop: PageDrop;
  /** Writing a text to a person, and the texts that arrived. */
  readonly #textCompose: TextCompose;
  readonly #textDialog = new TextDialog();
  #picked: PickedFile[] = [];
  /** A peer clicked with nothing picked: send to it once files are chosen. */
  #pickFor: string | null = null;
  #peers: readonly Peer[] = [];
  /** `#peers` came from the current connection (see `Presence.live`). */
  #presenceLive = false;
  /** The connection was lost since it was last up. */
  #lostConnection = false;
  /** The code of the error `#sendError` shows, if it has one. */
  #sendErrorCode: string | null = null;
  readonly #announced = new Set<string>();
  /** This device's lab's exam mode, as the server last said. */
  #exam: ExamState | null = null;

  constructor(options: HomeViewOptions) {
    this.#o = options;
    this.#heading = h('h1', { class: 'visually-hidden', tabindex: -1 }, 'Send and receive files');
    this.#connection = h('p', { class: 'connection', role: 'status', 'data-testid': 'connection-status' });
    this.#announcements = h('div', { class: 'announcements', 'aria-live': 'polite' });
    this.#examIndicator = h('p', { class: 'exam-indicator', role: 'status', 'data-testid': 'exam-indicator', hidden: true });

    // ---- sending: pick files, then a person ----
    this.#fileInput = h('input', { type: 'file', multiple: true, id: uniqueId('file-input'), class: 'visually-hidden', 'data-testid': 'file-input' });
    this.#folderInput = h('input', { type: 'file', id: uniqueId('folder-input'), class: 'visually-hidden', 'data-testid': 'folder-input' });
    this.#folderInput.webkitdirectory = true;
    this.#fileInput.addEventListener('change', () => this.#picked_(fromFileList(this.#fileInput.files), this.#fileInput));
    this.#folderInput.addEventListener('change', () => this.#picked_(fromFileList(this.#folderInput.files), this.#folderInput));
    this.#selection = h('div', { class: 'selection', 'data-testid': 'selection', 'aria-live': 'polite' });
    const dropZone = h(
      'div',
      { class: 'drop-zone' },
      h('p', { class: 'drop-hint' }, 'Drop files or folders on a person below to send them at once, or anywhere else on this page to choose them. You can also pick them here:'),
      h(
        'div',
        { class: 'actions actions-compact' },
        h('label', { class: 'btn btn-secondary btn-small', for: this.#fileInput.id }, 'Choose files…'),
        this.#fileInput,
        h('label', { class: 'btn btn-secondary btn-small', for: this.#folderInput.id }, 'Choose a folder…'),
        this.#folderInput,
      ),
      this.#selection,
    );
    for (const input of [this.#fileInput, this.#folderInput]) {
      // The label is the visible control; keep keyboard focus visible on it.
      input.addEventListener('focus', () => input.previousElementSibling?.classList.add('focus-ring'));
      input.addEventListener('blur', () => input.previousElementSibling?.classList.remove('focus-ring'));
    }
    this.#dropTarget(dropZone, (files) => this.#choose(files));

    this.#peerList = h('div', { class: 'peer-list', 'data-testid': 'peer-list', 'aria-label': 'People online' });
    this.#peerEmpty = h('p', { class: 'muted empty' }, PEERS_UNKNOWN);
    this.#peerStale = h('p', { class: 'message message-warning peer-stale-note', 'data-testid': 'peer-list-stale', hidden: true }, PEERS_STALE);

    // ---- transfers ----
    this.#transferList = h('div', { class: 'transfer-list' });
    this.#transferEmpty = h('p', { class: 'muted empty' }, 'Files you send or receive appear here, with their progress.');

    this.#history = new HistoryPanel(options.api, options.user);
    this.#incoming = new IncomingDialog({
      answer: (id, accept) => void (accept ? this.#engine.accept(id) : this.#engine.decline(id)),
      changed: (count, arrived) => {
        this.#badge.set(count);
        if (arrived && options.settings.values.sound) this.#chime.play();
      },
    });
    this.#settingsPanel = this.#buildSettings();
    const perms = options.user.permissions;
    this.#announce = perms.includes('announce')
      ? new AnnouncePanel({ from: options.user.displayName, canSendAll: perms.includes('users.manage') })
      : null;
    this.#collect = perms.includes('collect') ? new HandinCollectPanel() : null;
    this.#handin = this.#collect === null ? new HandinPanel({ student: `${options.user.displayName} (${options.user.username})` }) : null;
    this.#labPolicy = perms.includes('broadcast.send') || perms.includes('users.manage') ? new LabPolicyPanel() : null;
    this.#broadcast = new BroadcastPanel({
      canSend: perms.includes('broadcast.send'),
      canSendAll: perms.includes('users.manage'),
      picked: () => this.#picked,
      started: () => {
        this.#picked = [];
        this.#renderSelection();
        this.#renderPeers();
      },
    });

    this.#textCompose = new TextCompose({
      send: async (peerId, text) => {
        this.#clearSendError();
        await this.#engine.sendText(peerId, text);
      },
    });
    this.#pageDrop = new PageDrop({
      // Not while the account page is shown instead, nor under a modal dialog.
      active: () => this.root.isConnected && document.querySelector('dialog[open]') === null,
      canBroadcast: perms.includes('broadcast.send'),
      dropped: (files) => this.#choose(files),
      failed: () => this.#showSendError(new Error('Could not read what was dropped. Try “Choose files…” instead.')),
    });

    const settingsToggle = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'aria-expanded': 'false', 'aria-controls': 'settings-panel', 'data-testid': 'settings-toggle' }, 'Settings');
    settingsToggle.addEventListener('click', () => {
      const open = this.#settingsPanel.hidden;
      this.#settingsPanel.hidden = !open;
      settingsToggle.setAttribute('aria-expanded', String(open));
    });
    const account = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'open-account' }, 'Your account');
    account.addEventListener('click', () => options.onOpenAccount());

    this.root = h(
      'div',
      { class: 'home' },
      this.#heading,
      h('div', { class: 'home-bar' }, this.#connection, h('div', { class: 'home-bar-actions' }, settingsToggle, account)),
      this.#settingsPanel,
      this.#examIndicator,
      this.#announcements,
      this.#notice.element,
      this.#incoming.waiting,
      h(
        'div',
        { class: 'home-grid' },
        this.#handin?.root ?? null,
        h(
          'section',
          { class: 'card panel panel-send', 'aria-labelledby': 'send-title' },
          h('h2', { id: 'send-title', class: 'panel-title' }, 'Send files'),
          dropZone,
          this.#sendError.element,
          h('h3', { class: 'section-title' }, 'People online'),
          this.#peerStale,
          this.#peerList,
          this.#peerEmpty,
        ),
        this.#broadcast.root,
        this.#announce?.root ?? null,
        this.#collect?.root ?? null,
        this.#labPolicy?.root ?? null,
        h(
          'section',
          { class: 'card panel panel-transfers', 'aria-labelledby': 'transfers-title' },
          h('h2', { id: 'transfers-title', class: 'panel-title' }, 'Transfers'),
          this.#transferList,
          this.#transferEmpty,
        ),
        this.#history.root,
      ),
      this.#incoming.element,
      this.#textCompose.element,
      this.#textDialog.element,
      this.#pageDrop.element,
      this.#pageDrop.announcement,
    );

    applyTheme(options.settings.values.theme);
    this.#engine = this.#createEngine();
    this.#renderSelection();
    this.#renderPeers();
  }

  focus(): void {
    this.#heading.focus();
  }

  start(): void {
    this.#engine.start();
    this.#pageDrop.attach(document);
    void this.#history.load();
    window.addEventListener('beforeunload', this.#onBeforeUnload);
    // Fault-injection hooks for tests (tests/browser, the NAT/fault harness): drop the
    // signaling connection, or a transfer's data channel, as a network fault would; both
    // recover by themselves.
    (window as unknown as { labbeamTest?: unknown }).labbeamTest = {
      dropSignaling: () => this.#engine.dropSignaling(),
      dropConnection: (transferId: string) => this.#engine.dropConnection(transferId),
      /** How many incoming-request chimes were started (the sound itself cannot be checked). */
      chimes: () => this.#chime.played,
    };
  }

  stop(): void {
    window.removeEventListener('beforeunload', this.#onBeforeUnload);
    this.#pageDrop.detach();
    this.#engine.stop();
    this.#handin?.stop();
    this.#collect?.stop();
    this.#incoming.stop();
    this.#badge.stop();
    this.#chime.stop();
  }

  /** Closing the page interrupts running transfers (they resume if it is reopened in time): let the browser ask first. */
  readonly #onBeforeUnload = (event: BeforeUnloadEvent): void => {
    if (this.#engine.busy) event.preventDefault();
  };

  // ---- engine ----

  #createEngine(): TransferEngine {
    const { api, settings } = this.#o;
    const engine = new TransferEngine({
      fetchIceServers: () => api.iceServers(),
      device: settings.values.deviceName,
      relayMode: () => settings.relayMode,
      autoSave: () => settings.values.autoSave,
      download: downloadFile,
      handinConcurrency: () => settings.values.handinConcurrency,
    });
    engine.on('connection', (state) => this.#onConnection(state));
    engine.on('presence', ({ self, peers, live }) => {
      this.#peers = peers;
      this.#presenceLive = live;
      const labs = [...peers.map((p) => p.lab), ...(self !== null ? [self.lab] : [])];
      this.#broadcast.setLabs(labs);
      this.#announce?.setLabs(labs);
      this.#collect?.setLabs(labs);
      this.#renderPeers();
      if (live) this.#onConnection({ kind: 'connected' });
    });
    engine.on('transfer', (t) => this.#onTransfer(t));
    engine.on('removed', (id) => {
      this.#cards.get(id)?.root.remove();
      this.#cards.delete(id);
      this.#transferEmpty.hidden = this.#cards.size > 0;
    });
    engine.on('incoming', (request) => {
      this.#incoming.push(request);
      const files = request.part?.totalFiles ?? request.files.length;
      const bytes = request.part?.totalBytes ?? request.totalBytes;
      this.#notify(`${request.from.displayName} wants to send you ${plural(files, 'file')}`, `${formatBytes(bytes)} — open LabBeam to accept or decline.`);
    });
    engine.on('text', (received) => {
      this.#textDialog.push(received);
      if (this.#o.settings.values.sound) this.#chime.play();
      this.#notify(`${received.from.displayName} sent you a text`, `${plural(received.chars, 'character')} — open LabBeam to read it.`);
    });
    engine.on('announcement', (a) => this.#showAnnouncement(a));
    engine.on('announcementWithdrawn', (id) => {
      for (const el of this.#announcements.querySelectorAll<HTMLElement>('[data-testid="announcement"]')) {
        if (el.dataset['announcementId'] === id) el.remove();
      }
    });
    engine.on('notice', (text) => this.#notice.show(text, 'warning'));
    engine.on('exam', (state) => this.#onExam(state));
    this.#broadcast.attach(engine);
    this.#announce?.attach(engine);
    this.#handin?.attach(engine.handins);
    this.#collect?.attach(engine.handins);
    this.#labPolicy?.attach(engine);
    return engine;
  }

  /** Shows or hides the exam indicator, and turns one-to-one sending off while bound. */
  #onExam(state: ExamState): void {
    this.#exam = state;
    const words = examWords(state);
    this.#examIndicator.hidden = words === null;
    this.#examIndicator.textContent = words ?? '';
    this.#examIndicator.setAttribute('data-bound', String(state.bound));
    this.#renderPeers();
  }

  #onConnection(state: ConnectionState): void {
    const self = this.#engine.self;
    this.#connection.setAttribute('data-state', state.kind);
    switch (state.kind) {
      case 'connecting':
        this.#connection.textContent = 'Connecting to LabBeam…';
        break;
      case 'connected':
        this.#connection.textContent =
          self === null ? 'Online.' : `Online as “${self.device}” in ${self.lab}.${this.#o.settings.forceRelay ? ' Relay mode is on.' : ''}`;
        this.#connectionBack();
        break;
      case 'reconnecting':
        this.#connection.textContent = 'Connection to the LabBeam server lost — reconnecting… Transfers already running continue.';
        this.#lostConnection = true;
        break;
      case 'crowded':
        this.#connection.textContent =
          state.code === 'too_many_connections'
            ? 'LabBeam is open in too many tabs of this browser. Close the tabs you do not need; this one connects by itself as soon as there is room.'
            : 'You are connected to LabBeam from too many computers at once. Close LabBeam (or sign out) on one you no longer use; this page connects by itself as soon as there is room.';
        this.#lostConnection = true;
        break;
      case 'refused':
        this.#o.onSessionEnded(state.code);
        break;
    }
  }

  /**
   * The connection is up: messages that only said it was down go, and a history that could
   * not be read (or that transfers ending meanwhile changed) is read again.
   */
  #connectionBack(): void {
    const lost = this.#lostConnection;
    this.#lostConnection = false;
    if (this.#sendErrorCode !== null && CONNECTION_ERRORS.has(this.#sendErrorCode)) this.#clearSendError();
    this.#broadcast.connectionBack();
    if (lost || this.#history.failed) void this.#history.load();
  }

  #showSendError(error: unknown): void {
    this.#sendErrorCode = error instanceof TransferError ? error.code : null;
    this.#sendError.show(errorText(error));
  }

  #clearSendError(): void {
    this.#sendErrorCode = null;
    this.#sendError.clear();
  }

  #onTransfer(t: TransferSnapshot): void {
    // Deliveries to a hand-in this browser collects are in its table, not cards.
    if (t.handin !== null && t.direction === 'receive') return;
    let card = this.#cards.get(t.id);
    const before = card?.root.getAttribute('data-state') ?? null;
    if (card === undefined) {
      card = new TransferCard(t, {
        cancel: (id) => this.#engine.cancel(id),
        save: (id, index) => void this.#engine.save(id, index).catch((e: unknown) => this.#notice.show(errorText(e), 'warning')),
        saveFolder: (id) =>
          void pickFolder()
            .then((folder) => this.#engine.saveAllToFolder(id, folder))
            .catch((e: unknown) => {
              // The user closed the folder picker: nothing to say.
              if (!(e instanceof DOMException && e.name === 'AbortError')) this.#notice.show(errorText(e), 'warning');
            }),
        retry: (id) => void this.#engine.retry(id).catch((e: unknown) => this.#showSendError(e)),
        // The new request gets a card of its own; the old one goes.
        sendAgain: (id) =>
          void this.#engine
            .sendAgain(id)
            .then(() => this.#engine.dismiss(id))
            .catch((e: unknown) => this.#showSendError(e)),
        repick: (id, files) => {
          try {
            this.#engine.provideFiles(id, files.map((f) => ({ name: f.name, blob: f, mime: f.type })));
          } catch (e) {
            this.#notice.show(errorText(e), 'warning');
          }
        },
        dismiss: (id) => void this.#engine.dismiss(id),
        showText: (id) => {
          const text = this.#engine.text(id);
          const t = this.#engine.transfer(id);
          if (text !== undefined && t?.text != null) this.#textDialog.push({ transferId: id, from: t.peer, text, chars: t.text.chars });
        },
        canSaveToFolder: folderPickerAvailable(),
      });
      this.#cards.set(t.id, card);
      this.#transferList.prepend(card.root);
      this.#transferEmpty.hidden = true;
    } else {
      card.update(t);
    }
    const finished = t.state === 'completed' || t.state === 'failed' || t.state === 'cancelled';
    if (finished && before !== t.state) {
      this.#incoming.withdraw(t.id);
      this.#history.soon();
      // A send in parts: once, when its last part arrived.
      // (A text says so itself, with its dialog.)
      if (t.state === 'completed' && t.direction === 'receive' && t.text === null && (t.part === null || t.part.index === t.part.count)) {
        this.#notify(`Files from ${t.peer.displayName} arrived`, `${plural(t.part?.totalFiles ?? t.files.length, 'file')}, ${formatBytes(t.part?.totalBytes ?? t.totalBytes)}, verified.`);
      }
    }
  }

  // ---- picking and sending ----

  #picked_(files: PickedFile[], input: HTMLInputElement | null): void {
    if (input !== null) input.value = '';
    if (files.length === 0) return;
    this.#clearSendError();
    const target = this.#pickFor;
    this.#pickFor = null;
    if (target !== null) {
      void this.#send(target, files);
      return;
    }
    this.#picked = mergeSelection(this.#picked, files);
    this.#renderSelection();
    this.#renderPeers();
  }

  /**
   * Dropped files (on the page or the "Choose files" area) join the selection: a drop always
   * means "choose these", never "send to the person whose Send… opened the picker".
   */
  #choose(files: PickedFile[]): void {
    this.#pickFor = null;
    this.#picked_(files, null);
  }

  async #send(peerId: string, files: PickedFile[]): Promise<void> {
    this.#clearSendError();
    try {
      await this.#engine.send(peerId, files);
      if (files === this.#picked) {
        this.#picked = [];
        this.#renderSelection();
        this.#renderPeers();
      }
    } catch (error) {
      this.#showSendError(error);
    }
  }

  #renderSelection(): void {
    if (this.#picked.length === 0) {
      this.#selection.replaceChildren(h('p', { class: 'muted' }, 'No files chosen. You can also click Send next to a person to choose files for them.'));
      return;
    }
    const total = this.#picked.reduce((sum, f) => sum + f.blob.size, 0);
    const clear = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'selection-clear' }, 'Clear');
    clear.addEventListener('click', () => {
      this.#picked = [];
      this.#renderSelection();
      this.#renderPeers();
    });
    const shown = this.#picked.slice(0, 6);
    this.#selection.replaceChildren(
      h(
        'div',
        { class: 'selection-summary' },
        h('p', {}, h('strong', {}, `${plural(this.#picked.length, 'file')} chosen`), ` · ${formatBytes(total)}`, h('span', { class: 'muted' }, ' — now pick a person below.')),
        clear,
      ),
      h(
        'ul',
        { class: 'selection-files' },
        ...shown.map((f) => h('li', {}, h('span', { class: 'file-name' }, f.name), h('span', { class: 'file-size' }, formatBytes(f.blob.size)))),
        this.#picked.length > shown.length ? h('li', { class: 'muted' }, `and ${plural(this.#picked.length - shown.length, 'more file')}`) : null,
      ),
    );
  }

  #renderPeers(): void {
    const byLab = new Map<string, Peer[]>();
    for (const p of [...this.#peers].sort((a, b) => a.displayName.localeCompare(b.displayName) || a.device.localeCompare(b.device))) {
      const list = byLab.get(p.lab) ?? [];
      list.push(p);
      byLab.set(p.lab, list);
    }
    const labs = [...byLab.keys()].sort((a, b) => (a === 'Other' ? 1 : b === 'Other' ? -1 : a.localeCompare(b)));
    const hasFiles = this.#picked.length > 0;
    const live = this.#presenceLive;
    this.#peerList.setAttribute('data-presence', live ? 'live' : 'stale');
    this.#peerEmpty.hidden = this.#peers.length > 0;
    this.#peerEmpty.textContent = live ? PEERS_NONE : PEERS_UNKNOWN;
    this.#peerStale.hidden = live || this.#peers.length === 0;
    this.#peerList.replaceChildren(
      ...labs.map((lab) => {
        const headingId = uniqueId('lab');
        return h(
          'section',
          { class: 'lab-group', 'aria-labelledby': headingId },
          h('h4', { class: 'lab-name', id: headingId }, lab, h('span', { class: 'lab-count' }, ` · ${byLab.get(lab)?.length ?? 0}`)),
          h('ul', { class: 'peers' }, ...(byLab.get(lab) ?? []).map((p) => this.#peerItem(p, hasFiles))),
        );
      }),
    );
  }

  #peerItem(p: Peer, hasFiles: boolean): HTMLLIElement {
    const live = this.#presenceLive;
    // Exam mode refuses every one-to-one transfer from this device: say so on the buttons.
    const examOff = this.#exam?.bound === true;
    const label = hasFiles ? `Send ${plural(this.#picked.length, 'file')}` : 'Send…';
    const send = h(
      'button',
      { type: 'button', class: `btn ${hasFiles ? 'btn-primary' : 'btn-secondary'} btn-small`, 'data-testid': 'peer-send', 'aria-label': `${label} to ${p.displayName} (${p.device})`, disabled: !live || examOff, title: examOff ? EXAM_SEND_OFF : null },
      label,
    );
    const text = h(
      'button',
      { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'peer-send-text', 'aria-label': `Send a text or link to ${p.displayName} (${p.device})`, disabled: !live || examOff, title: examOff ? EXAM_SEND_OFF : null },
      'Text…',
    );
    text.addEventListener('click', () => this.#textCompose.open(p));
    send.addEventListener('click', () => {
      if (this.#picked.length > 0) {
        void this.#send(p.peerId, this.#picked);
      } else {
        this.#pickFor = p.peerId;
        this.#fileInput.click();
      }
    });
    const item = h(
      'li',
      { class: live ? 'peer' : 'peer peer-stale', 'data-testid': 'peer', 'data-username': p.username, 'data-peer-id': p.peerId, 'data-online': String(live) },
      h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(p.displayName)),
      h(
        'span',
        { class: 'peer-who' },
        h(
          'span',
          { class: 'peer-name' },
          p.displayName,
          p.role !== 'student' && p.role !== '' ? h('span', { class: 'role-badge' }, p.role) : null,
          live ? null : h('span', { class: 'role-badge' }, 'maybe offline'),
        ),
        h('span', { class: 'peer-device muted' }, `${p.device}${p.username !== p.displayName ? ` · ${p.username}` : ''}`),
      ),
      h('span', { class: 'peer-actions' }, text, send),
    );
    this.#dropTarget(item, (files) => void this.#send(p.peerId, files));
    return item;
  }

  /** Makes `element` accept dropped files and folders. */
  #dropTarget(element: HTMLElement, onFiles: (files: PickedFile[]) => void): void {
    dropTarget(element, onFiles, () => this.#showSendError(new Error('Could not read what was dropped. Try “Choose files…” instead.')));
  }

  // ---- announcements and notifications ----

  #showAnnouncement(a: Announcement): void {
    if (this.#announced.has(a.id)) return;
    this.#announced.add(a.id);
    const dismiss = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'aria-label': 'Dismiss announcement' }, 'Dismiss');
    const item = h(
      'div',
      { class: 'announcement', role: 'note', 'data-testid': 'announcement', 'data-announcement-id': a.id },
      h('span', { class: 'announcement-icon', 'aria-hidden': 'true' }, '📣'),
      h('p', { class: 'announcement-text' }, h('strong', {}, a.from === '' ? 'Announcement' : a.from), ` · ${formatWhen(a.at)} — `, a.text),
      dismiss,
    );
    dismiss.addEventListener('click', () => item.remove());
    this.#announcements.prepend(item);
    this.#notify(`Announcement from ${a.from}`, a.text);
  }

  #notify(title: string, body: string): void {
    if (!this.#o.settings.values.notifications || typeof Notification === 'undefined') return;
    if (Notification.permission !== 'granted' || document.visibilityState === 'visible') return;
    try {
      const n = new Notification(title, { body, icon: '/favicon.svg', tag: title });
      n.addEventListener('click', () => {
        window.focus();
        n.close();
      });
    } catch {
      // Some platforms only allow notifications from a service worker.
    }
  }

  // ---- settings ----

  #buildSettings(): HTMLElement {
    const { settings } = this.#o;
    const v = settings.values;
    const status = messageLine('notice', 'settings-status');

    const deviceId = uniqueId('device');
    const device = h('input', { type: 'text', class: 'field-input', id: deviceId, maxlength: 64, value: v.deviceName, placeholder: 'e.g. PC 14', 'data-testid': 'setting-device', autocomplete: 'off', 'aria-describedby': `${deviceId}-hint` });
    device.addEventListener('change', () => {
      const name = device.value.trim().slice(0, 64);
      device.value = name;
      if (name === settings.values.deviceName) return;
      settings.set('deviceName', name);
      if (this.#restartEngineIfIdle()) status.show('Saved. Others now see this computer under the new name.', 'success');
      else status.show('Saved. The new name applies once the running transfers have finished and the page is reloaded.', 'info');
    });

    const relay = checkbox('setting-relay', 'Always use the relay', settings.forceRelay, 'Sends through the LabBeam server’s TURN relay instead of directly. Slower; for diagnosing network problems.');
    relay.input.disabled = settings.relayFromUrl;
    relay.input.addEventListener('change', () => {
      settings.set('forceRelay', relay.input.checked);
      this.#onConnection({ kind: this.#engine.self === null ? 'connecting' : 'connected' });
    });

    const autoSave = checkbox('setting-autosave', 'Save received files automatically', v.autoSave, 'Each file is downloaded as soon as it has arrived and been verified.');
    autoSave.input.addEventListener('change', () => settings.set('autoSave', autoSave.input.checked));

    const notificationsSupported = typeof Notification !== 'undefined';
    const notify = checkbox('setting-notifications', 'Desktop notifications', v.notifications && notificationsSupported && Notification.permission === 'granted', 'Tells you about incoming files while LabBeam is in the background.');
    notify.input.disabled = !notificationsSupported;
    notify.input.addEventListener('change', () => {
      if (!notify.input.checked) {
        settings.set('notifications', false);
        return;
      }
      void Notification.requestPermission().then((permission) => {
        const granted = permission === 'granted';
        notify.input.checked = granted;
        settings.set('notifications', granted);
        if (!granted) status.show('The browser did not allow notifications. Allow them in the site settings (the icon left of the address), then try again.', 'warning');
      });
    });

    const sound = checkbox('setting-sound', 'Sound for incoming files', v.sound, 'A short chime when someone wants to send you files.');
    sound.input.addEventListener('change', () => settings.set('sound', sound.input.checked));

    const concurrencyId = uniqueId('handin-concurrency');
    const concurrency = h('input', { type: 'number', class: 'field-input', id: concurrencyId, min: 1, max: HANDIN_CONCURRENCY_MAX, step: 1, value: String(v.handinConcurrency), 'data-testid': 'setting-handin-concurrency', 'aria-describedby': `${concurrencyId}-hint` });
    concurrency.addEventListener('change', () => {
      const n = Math.round(Number(concurrency.value));
      if (Number.isFinite(n) && n >= 1 && n <= HANDIN_CONCURRENCY_MAX) settings.set('handinConcurrency', n);
      else concurrency.value = String(settings.values.handinConcurrency);
    });

    const themeId = uniqueId('theme');
    const theme = h(
      'select',
      { id: themeId, class: 'field-input field-select', 'data-testid': 'setting-theme' },
      ...(['system', 'light', 'dark'] as const).map((t) => h('option', { value: t, selected: t === v.theme }, t === 'system' ? 'Like the system' : t === 'light' ? 'Light' : 'Dark')),
    );
    theme.addEventListener('change', () => {
      const value = theme.value as Theme;
      settings.set('theme', value);
      applyTheme(value);
    });

    const testId = uniqueId('connection-test');
    const testButton = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'data-testid': 'connection-test', 'aria-describedby': `${testId}-hint` }, 'Test my connection');
    const testResult = h('div', { class: 'connection-test-result', 'data-testid': 'connection-test-result', 'aria-live': 'polite', hidden: true });
    testButton.addEventListener('click', () => void this.#testConnection(testButton, testResult));

    return h(
      'section',
      { class: 'card settings', id: 'settings-panel', hidden: true, 'aria-labelledby': 'settings-title' },
      h('h2', { id: 'settings-title', class: 'panel-title' }, 'Settings'),
      status.element,
      h(
        'div',
        { class: 'settings-grid' },
        h('div', { class: 'field' }, h('label', { class: 'field-label', for: device.id }, 'This computer’s name'), device, h('p', { class: 'field-hint', id: `${deviceId}-hint` }, 'Shown to others next to your name. Left empty, this computer is named by its address (“PC .14”). On a lab PC that an administrator named, that name is shown instead.')),
        h('div', { class: 'field' }, h('label', { class: 'field-label', for: themeId }, 'Appearance'), theme),
        this.#o.user.permissions.includes('collect')
          ? h('div', { class: 'field' }, h('label', { class: 'field-label', for: concurrencyId }, 'Hand-ins received at once'), concurrency, h('p', { class: 'field-hint', id: `${concurrencyId}-hint` }, `When you collect a hand-in, this many students’ files arrive at the same time; the others wait their turn (“queued”). Lower it on a slow PC or network (1 to ${HANDIN_CONCURRENCY_MAX}).`))
          : null,
        relay.wrapper,
        autoSave.wrapper,
        sound.wrapper,
        notify.wrapper,
      ),
      h(
        'div',
        { class: 'field connection-test' },
        testButton,
        h('p', { class: 'field-hint', id: `${testId}-hint` }, 'Checks what this PC reaches on the LabBeam server: direct connections, and the relay over UDP, TCP and TLS. The result is shown here and sent to the administrator.'),
        testResult,
      ),
    );
  }

  /** "Test my connection": gathers against the server's STUN/TURN, shows the result in words and reports it. */
  async #testConnection(button: HTMLButtonElement, result: HTMLElement): Promise<void> {
    const { api, settings } = this.#o;
    button.disabled = true;
    result.hidden = false;
    result.setAttribute('data-state', 'running');
    result.removeAttribute('data-verdict');
    result.replaceChildren(h('p', {}, 'Testing… this takes up to 15 seconds.'));
    try {
      let servers: RTCIceServer[] = [];
      try {
        servers = (await api.iceServers())?.iceServers ?? [];
      } catch (error) {
        // No relay on this server: the test still says what works without one.
        if (!(error instanceof ApiError && error.code === 'turn_unavailable')) throw error;
      }
      const paths = await testConnection(servers);
      const words = explain(paths, relayAddress(servers));
      const label = { ok: 'works', failed: 'blocked', not_offered: 'not offered' } as const;
      const rows: [string, keyof typeof paths][] = [
        ['Direct connections', 'direct'],
        ['UDP to the server (STUN)', 'stun'],
        ['Relay over UDP', 'relay_udp'],
        ['Relay over TCP', 'relay_tcp'],
        ['Relay over TLS', 'relay_tls'],
      ];
      let sent: string;
      try {
        const name = this.#engine.self?.device ?? (settings.values.deviceName !== '' ? settings.values.deviceName : browserName());
        const answer = await api.connectionTest(name, paths);
        sent = `Sent to the administrator’s Health page (lab: ${answer.lab}).`;
      } catch (error) {
        sent = `Not sent to the administrator: ${errorText(error)}`;
      }
      result.setAttribute('data-verdict', words.code);
      result.replaceChildren(
        h('p', { class: 'connection-test-headline', 'data-testid': 'connection-test-headline' }, words.headline),
        h('p', {}, words.advice),
        h('ul', { class: 'connection-test-paths' }, ...rows.map(([name, key]) => h('li', { 'data-path': key, 'data-result': paths[key] }, `${name}: ${label[paths[key]]}`))),
        h('p', { class: 'field-hint', 'data-testid': 'connection-test-sent' }, sent),
      );
      result.setAttribute('data-state', 'done');
    } catch (error) {
      result.setAttribute('data-state', 'failed');
      result.replaceChildren(h('p', { class: 'message message-error' }, `The test could not run: ${errorText(error)}`));
    } finally {
      button.disabled = false;
    }
  }

  /** Reconnects under the new device name when no transfer is running. */
  #restartEngineIfIdle(): boolean {
    if (this.#engine.transfers().some((t) => t.state !== 'completed' && t.state !== 'failed' && t.state !== 'cancelled')) return false;
    this.#engine.stop();
    for (const card of this.#cards.values()) card.root.remove();
    this.#cards.clear();
    this.#transferEmpty.hidden = false;
    this.#engine = this.#createEngine();
    this.#engine.start();
    return true;
  }
}

const PEERS_NONE = 'Nobody else is online in your lab right now. People appear here as soon as they open LabBeam.';
const PEERS_UNKNOWN = 'Who is online shows here once this page is connected to the LabBeam server.';
const PEERS_STALE = 'Not connected: the people below were online when the connection was lost and may have left since. The list updates once LabBeam reconnects.';
/** Error codes that only say the signaling connection was down. */
const CONNECTION_ERRORS = new Set(['not_connected', 'timeout']);

function checkbox(testId: string, label: string, checked: boolean, hint: string): { wrapper: HTMLDivElement; input: HTMLInputElement } {
  const id = uniqueId(testId);
  const input = h('input', { type: 'checkbox', id, class: 'check-input', checked, 'data-testid': testId, 'aria-describedby': `${id}-hint` });
  const wrapper = h('div', { class: 'check' }, input, h('div', {}, h('label', { for: id, class: 'check-label' }, label), h('p', { class: 'field-hint', id: `${id}-hint` }, hint)));
  return { wrapper, input };
}

function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter((p) => p !== '');
  const letters = parts.length > 1 ? `${parts[0]?.[0] ?? ''}${parts[parts.length - 1]?.[0] ?? ''}` : name.slice(0, 2);
  return letters.toUpperCase();
}

function errorText(error: unknown): string {
  if (error instanceof TransferError) return error.message;
  if (error instanceof Error && error.message !== '') return error.message;
  return 'Something unexpected went wrong. Try again.';
}
