/**
 * The transfer engine: everything the client does besides drawing. It owns the signaling
 * connection, the ICE configuration and every transfer of this page, and tells its listener
 * (the UI, or a test) what changed. No DOM access here except through the transfer's OPFS
 * helpers (saving a received file is a download).
 *
 * Invariants:
 * - File bytes go only over the WebRTC data channel, never through the server.
 * - Every transfer ends exactly once (see Transfer.#end), and a sender never reports
 *   `completed` before the receiver verified every file.
 */

import { BroadcastManager } from './broadcast';
import { Emitter } from './emitter';
import { relayServers } from './ice';
import { cleanUpAbandoned, directorySaveAvailable, downloadStored, opfsAvailable, saveStoredToDirectory } from './opfs';
import {
  type Announcement,
  type FileMeta,
  type IncomingRequest,
  type Peer,
  SignalingError,
} from './protocol';
import type { SendTuning } from './sender';
import { type ConnectionState, SignalingClient } from './signaling';
import { Transfer, type TransferSnapshot } from './transfer';

export type { ConnectionState } from './signaling';
export type { TransferSnapshot, TransferState, FileStatus, TransferProblem } from './transfer';

export interface IceConfig {
  readonly iceServers: RTCIceServer[];
  /** Seconds the credentials stay valid. */
  readonly ttl: number;
}

export interface EngineOptions {
  /** `GET /api/ice-servers`; `null` when the server has none (404: an older server). */
  fetchIceServers(): Promise<IceConfig | null>;
  device: string;
  lab?: string | undefined;
  /**
   * Read at each new connection, so the settings toggle takes effect at once: `off`, or relay
   * only (`iceTransportPolicy: 'relay'`), optionally reaching the relay over one transport.
   */
  relayMode(): 'off' | 'any' | 'udp' | 'tcp';
  autoSave(): boolean;
  signalingUrl?: string;
  tuning?: Partial<SendTuning>;
}

export interface EngineEvents {
  connection: ConnectionState;
  presence: { self: Peer | null; peers: readonly Peer[] };
  /** A transfer appeared or changed. */
  transfer: TransferSnapshot;
  /** A transfer was removed from the list (dismissed). */
  removed: string;
  /** Someone asks to send files; answer with accept()/decline(). */
  incoming: IncomingRequest;
  announcement: Announcement;
  /** A file could not be saved automatically (e.g. a pop-up blocker). */
  notice: string;
}

/** A file (or a file in a folder) picked for sending. */
export interface PickedFile {
  /** Name, or relative path inside a picked/dropped folder. */
  readonly name: string;
  readonly blob: Blob;
  readonly mime: string;
}

export class TransferError extends Error {
  override readonly name = 'TransferError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const SIGNAL_BUFFER_MS = 15_000;

export class TransferEngine extends Emitter<EngineEvents> {
  readonly #options: EngineOptions;
  readonly #signaling: SignalingClient;
  readonly #transfers = new Map<string, Transfer>();
  /** Events for transfers this page does not know yet (an ack racing an event). */
  readonly #early = new Map<string, { at: number; apply: (t: Transfer) => void }[]>();
  #ice: { config: IceConfig | null; fetchedAt: number } | null = null;
  #iceFetch: Promise<IceConfig | null> | null = null;
  /** Broadcasts this page sends or receives (broadcast.ts). */
  readonly broadcasts: BroadcastManager;

  constructor(options: EngineOptions) {
    super();
    this.#options = options;
    this.#signaling = new SignalingClient({
      device: options.device,
      lab: options.lab,
      ...(options.signalingUrl !== undefined ? { url: options.signalingUrl } : {}),
    });
    const s = this.#signaling;
    this.broadcasts = new BroadcastManager({
      call: (event, payload) => s.call(event, payload),
      listen: (event, handler) => s.listen(event, handler),
      rtcConfig: () => this.#rtcConfig(),
      signal: (linkId, to, data) => s.signal(linkId, to, data),
      autoSave: () => options.autoSave(),
      notice: (text) => this.emit('notice', text),
    });
    this.#wire();
  }

  start(): void {
    void cleanUpAbandoned();
    this.#signaling.connect();
    void this.#iceConfig().catch(() => {});
  }

  /**
   * Ends every transfer and the connection, and deletes every received file still stored
   * (sign-out: on a shared lab PC the next user must not find them).
   */
  stop(): void {
    for (const t of this.#transfers.values()) {
      t.cancel();
      void t.discardStored();
    }
    this.broadcasts.stop();
    this.#signaling.close();
    this.removeAllListeners();
  }

  get self(): Peer | null {
    return this.#signaling.self;
  }

  get peers(): readonly Peer[] {
    return this.#signaling.peers;
  }

  get canReceiveToDisk(): boolean {
    return opfsAvailable();
  }

  /** Some transfer is still under way (leaving the page would stop it). */
  get busy(): boolean {
    return [...this.#transfers.values()].some((t) => !t.finished && !(t.direction === 'receive' && t.state === 'requested'));
  }

  transfers(): TransferSnapshot[] {
    return [...this.#transfers.values()].map((t) => t.snapshot());
  }

  transfer(id: string): TransferSnapshot | undefined {
    return this.#transfers.get(id)?.snapshot();
  }

  /** Asks `peerId` to accept `files`; resolves with the new transfer's snapshot. */
  async send(peerId: string, files: readonly PickedFile[]): Promise<TransferSnapshot> {
    const peer = this.#signaling.peer(peerId);
    if (peer === undefined) throw new TransferError('peer_offline', 'That computer is no longer online. Pick someone from the list.');
    if (files.length === 0) throw new TransferError('no_files', 'Choose at least one file to send.');
    const metas: FileMeta[] = files.map((f) => ({ name: f.name, size: f.blob.size, mime: f.mime }));
    if (this.#options.relayMode() !== 'off') {
      // Fail before asking anyone when relay mode cannot work.
      await this.#rtcConfig();
    }
    let id: string;
    try {
      id = await this.#signaling.request(peerId, metas);
    } catch (error) {
      throw requestError(error, peer);
    }
    const transfer = new Transfer(this.#context(), {
      id,
      direction: 'send',
      peer,
      files: metas,
      blobs: files.map((f) => f.blob),
    });
    this.#add(transfer);
    void this.#iceConfig().catch(() => {});
    return transfer.snapshot();
  }

  /** Sends again the files of a failed transfer that did not arrive intact. */
  async retry(id: string): Promise<TransferSnapshot> {
    const t = this.#transfers.get(id);
    if (t === undefined || t.direction !== 'send' || !t.finished) throw new TransferError('unknown_transfer', 'Nothing to retry.');
    const snap = t.snapshot();
    const files = snap.files
      .map((f, i) => ({ f, blob: t.blobs[i] }))
      .filter(({ f, blob }) => f.state !== 'done' && blob !== undefined)
      .map(({ f, blob }) => ({ name: f.name, blob: blob as Blob, mime: f.mime }));
    const peer = this.#signaling.peer(t.peer.peerId) ?? this.#samePerson(t.peer);
    if (peer === undefined) throw new TransferError('peer_offline', `${t.peer.displayName}’s computer is not online any more.`);
    return this.send(peer.peerId, files);
  }

  async accept(id: string): Promise<void> {
    await this.#transfers.get(id)?.accept();
  }

  async decline(id: string): Promise<void> {
    await this.#transfers.get(id)?.decline();
  }

  cancel(id: string): void {
    this.#transfers.get(id)?.cancel();
  }

  /** Removes a finished transfer from the list and deletes the files it stored. */
  async dismiss(id: string): Promise<void> {
    const t = this.#transfers.get(id);
    if (t === undefined || !t.finished) return;
    this.#transfers.delete(id);
    this.emit('removed', id);
    await t.discardStored();
  }

  /** Saves a received, verified file as a download. */
  async save(id: string, index: number): Promise<void> {
    const t = this.#transfers.get(id);
    const file = t?.files[index];
    if (t === undefined || file === undefined || !t.isStored(index)) {
      throw new TransferError('not_stored', 'That file is not available to save.');
    }
    await downloadStored(id, index, file.name);
  }

  get canSaveToFolder(): boolean {
    return directorySaveAvailable();
  }

  /** Saves every verified file of a transfer into a folder the user picks, keeping paths. */
  async saveAllToFolder(id: string): Promise<void> {
    const t = this.#transfers.get(id);
    if (t === undefined) return;
    const files = t.files.flatMap((f, index) => (t.isStored(index) ? [{ index, name: f.name }] : []));
    await saveStoredToDirectory(id, files);
  }

  // ---- internals ----

  #context(): ConstructorParameters<typeof Transfer>[0] {
    return {
      rtcConfig: () => this.#rtcConfig(),
      signal: (transferId, to, data) => this.#signaling.signal(transferId, to, data),
      report: (report) => this.#signaling.finish(report),
      respond: (transferId, accept) => this.#signaling.respond(transferId, accept),
      changed: (t) => this.emit('transfer', t.snapshot()),
      fileReady: (t, index) => {
        if (this.#options.autoSave()) {
          const name = t.files[index]?.name ?? 'file';
          void downloadStored(t.id, index, name).catch(() => this.emit('notice', `Could not save ${name} automatically; use its Save button.`));
        }
      },
      ...(this.#options.tuning !== undefined ? { tuning: this.#options.tuning } : {}),
    };
  }

  #add(transfer: Transfer): void {
    this.#transfers.set(transfer.id, transfer);
    this.emit('transfer', transfer.snapshot());
    const early = this.#early.get(transfer.id);
    if (early !== undefined) {
      this.#early.delete(transfer.id);
      for (const e of early) e.apply(transfer);
    }
  }

  /** Runs `apply` on the transfer now, or when it appears (shortly). */
  #withTransfer(id: string, apply: (t: Transfer) => void): void {
    const t = this.#transfers.get(id);
    if (t !== undefined) {
      apply(t);
      return;
    }
    const now = Date.now();
    for (const [key, list] of this.#early) {
      if (list.every((e) => now - e.at > SIGNAL_BUFFER_MS)) this.#early.delete(key);
    }
    const list = this.#early.get(id) ?? [];
    list.push({ at: now, apply });
    this.#early.set(id, list);
  }

  #samePerson(peer: Peer): Peer | undefined {
    return this.#signaling.peers.find((p) => p.userId === peer.userId && p.device === peer.device);
  }

  #wire(): void {
    const s = this.#signaling;
    s.on('connection', (state) => this.emit('connection', state));
    s.on('presence', (presence) => {
      // A device that reconnected has a new peer id: keep its transfers pointed at it.
      for (const t of this.#transfers.values()) {
        if (t.finished || s.peer(t.peer.peerId) !== undefined) continue;
        const again = this.#samePerson(t.peer);
        if (again !== undefined) t.updatePeer(again);
      }
      this.emit('presence', presence);
    });
    s.on('incoming', (request) => {
      if (this.#transfers.has(request.transferId)) return;
      const t = new Transfer(this.#context(), {
        id: request.transferId,
        direction: 'receive',
        peer: request.from,
        files: request.files,
      });
      this.#add(t);
      // Fetch ICE servers now, so accepting connects at once.
      void this.#iceConfig().catch(() => {});
      this.emit('incoming', request);
    });
    s.on('accepted', (id) => this.#withTransfer(id, (t) => t.onAccepted()));
    s.on('declined', (id) => this.#withTransfer(id, (t) => t.onDeclined()));
    s.on('expired', (id) => this.#withTransfer(id, (t) => t.onExpired()));
    s.on('cancelled', (c) => this.#withTransfer(c.transferId, (t) => t.onRemoteCancelled(c.reason, c.detail)));
    s.on('signal', (m) => {
      if (!this.broadcasts.onSignal(m)) this.#withTransfer(m.transferId, (t) => void t.onSignal(m.data));
    });
    s.on('announcement', (a) => this.emit('announcement', a));
  }

  async #iceConfig(): Promise<IceConfig | null> {
    const cached = this.#ice;
    // Refresh when half the credentials' lifetime is gone (and at least every 10 minutes
    // when the server has none, in case a relay was turned on).
    const maxAgeMs = cached?.config !== null && cached?.config !== undefined ? (cached.config.ttl * 1000) / 2 : 600_000;
    if (cached !== null && Date.now() - cached.fetchedAt < maxAgeMs) return cached.config;
    this.#iceFetch ??= this.#options
      .fetchIceServers()
      .then((config) => {
        this.#ice = { config, fetchedAt: Date.now() };
        return config;
      })
      .finally(() => {
        this.#iceFetch = null;
      });
    return this.#iceFetch;
  }

  async #rtcConfig(): Promise<RTCConfiguration> {
    let ice: IceConfig | null;
    try {
      ice = await this.#iceConfig();
    } catch {
      // Without the list, direct connections in the lab still work.
      ice = null;
    }
    const mode = this.#options.relayMode();
    if (mode === 'off') return { iceServers: ice?.iceServers ?? [] };
    const iceServers = relayServers(ice?.iceServers ?? [], mode);
    const hasTurn = iceServers.length > 0;
    if (!hasTurn) {
      throw new TransferError(
        'no_relay',
        '“Always use the relay” is on, but this LabBeam server offers no relay. Turn the setting off, or ask the administrator to enable the TURN relay.',
      );
    }
    return { iceServers, iceTransportPolicy: 'relay' };
  }
}

function requestError(error: unknown, peer: Peer): TransferError {
  if (!(error instanceof SignalingError)) return new TransferError('internal', 'Something unexpected went wrong. Reload the page and try again.');
  const who = peer.displayName;
  switch (error.code) {
    case 'file_too_large':
      return new TransferError(error.code, `${error.message}. Split it into smaller parts or ask the administrator about the size limit.`);
    case 'peer_offline':
      return new TransferError(error.code, `${who}’s computer is not online any more.`);
    case 'peer_cannot_receive':
      return new TransferError(error.code, `${who} may not receive files (their role does not allow it).`);
    case 'too_many_pending':
      return new TransferError(error.code, 'You have too many requests waiting for an answer. Wait for them to be answered or to expire.');
    case 'rate_limited':
      return new TransferError(error.code, 'Too many requests in a short time. Wait a moment, then try again.');
    case 'forbidden':
      return new TransferError(error.code, `You may not send files: ${error.message}`);
    default:
      return new TransferError(error.code, error.message);
  }
}
