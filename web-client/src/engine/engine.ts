/**
 * The transfer engine: everything the client does besides drawing. It owns the signaling
 * connection, the ICE configuration and every transfer of this page, and tells its listener
 * (the UI, or a test) what changed. No DOM here (`npm run typecheck` checks it: see
 * scripts/check-engine.mjs): a received file is saved by handing it to the UI's `download`.
 *
 * Invariants:
 * - File bytes go only over the WebRTC data channel, never through the server.
 * - Every transfer ends exactly once (see Transfer.end), and a sender never reports
 *   `completed` before the receiver verified every file.
 * - A transfer outlives the signaling connection and the page: on every (re)connection the
 *   engine re-claims its live transfers (`transfer:resume`) before it signals for them, sends
 *   the end reports that could not be sent while offline, and after a page reload it brings
 *   back the transfers this browser stored (resume-store.ts) that no other tab holds.
 * - A selection too large for one request goes in parts (batches.ts), one transfer each, one
 *   after the other: the next part is requested when the previous one completed; a part that
 *   does not complete stops the send. The receiving engine asks its user once per send.
 * - A text (text.ts) is a transfer of one file, its bytes: the receiving engine accepts it by
 *   itself, and once it is verified reads it into the page (`text` event), deletes it from the
 *   disk, and never saves it as a file. Texts are kept in this page only: a page reload does not
 *   resume them.
 */

import { IncomingBatches, MAX_NAME_BYTES, cleanMime, nameTooLong, newBatchId, planParts } from './batches';
import { BroadcastManager } from './broadcast';
import { Emitter } from './emitter';
import { DEFAULT_CONCURRENCY, Handins } from './handins';
import { relayServers } from './ice';
import { OpfsSink, cleanUpAbandoned, opfsAvailable, readCheckpoint, removeStored, saveStoredToDirectory, storedFile } from './opfs';
import {
  type Announcement,
  type ExamState,
  type FileMeta,
  type FinishReport,
  type HandinTag,
  type IncomingRequest,
  type LabPolicyChange,
  type LabPolicyState,
  type PartInfo,
  type Peer,
  SignalingError,
  type TextInfo,
  decodeHandinTag,
} from './protocol';
import { type ResumeRecord, ResumeStore, deviceId } from './resume-store';
import { TEXT_FILE_NAME, TEXT_MIME, decodeText, encodeText, textProblem } from './text';
import type { SendTuning } from './sender';
import { type ConnectionState, type Presence, SignalingClient } from './signaling';
import { type FileStatus, Transfer, type TransferContext, type TransferSnapshot, canSendAgain } from './transfer';
import { ReceivingTransfer } from './transfer-receive';
import { SendingTransfer } from './transfer-send';

export type { ConnectionState, Presence } from './signaling';
export type { TransferSnapshot, TransferState, FileStatus, TransferProblem } from './transfer';
export { canSendAgain } from './transfer';

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
  /**
   * Offers a stored (disk-backed) file to the user as a download, `name` being its path in
   * the transfer. The UI does it (ui/saving.ts): the engine has no DOM.
   */
  download(file: File, name: string): void;
  signalingUrl?: string;
  tuning?: Partial<SendTuning>;
  /** How many hand-in deliveries this browser receives at once when it collects (default 4). */
  handinConcurrency?(): number;
}

export interface EngineEvents {
  connection: ConnectionState;
  presence: Presence;
  /** A transfer appeared or changed. */
  transfer: TransferSnapshot;
  /** A transfer was removed from the list (dismissed). */
  removed: string;
  /** Someone asks to send files; answer with accept()/decline(). */
  incoming: IncomingRequest;
  announcement: Announcement;
  /** An announcement was withdrawn (its id): stop showing it. */
  announcementWithdrawn: string;
  /** This device's lab went into exam mode or out of it (also told after each (re)connection). */
  exam: ExamState;
  /** A file could not be saved automatically (e.g. a pop-up blocker). */
  notice: string;
  /** A text arrived and was verified. */
  text: ReceivedText;
}

/** A text that arrived (`text` event). */
export interface ReceivedText {
  readonly transferId: string;
  readonly from: Peer;
  readonly text: string;
  /** Its length as the sender counted it (what the log says). */
  readonly chars: number;
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
/** A running transfer's stored record is refreshed at most this often. */
const PERSIST_EVERY_MS = 2_000;
/** Ack codes after which a transfer cannot be re-claimed any more. */
const RESUME_FINAL = new Set(['transfer_ended', 'unknown_transfer', 'not_party', 'wrong_state']);
/** Refusals of a send's next part that pass: it is asked again after `PART_RETRY_MS`. */
const PART_RETRY = new Set(['rate_limited', 'too_many_pending', 'not_connected', 'timeout', 'peer_offline']);
const PART_RETRY_MS = 5_000;

/** A send in parts (batches.ts): its parts go one after the other. */
interface PartedSend {
  readonly batch: string;
  /** The receiver (its latest peer, when it reconnected). */
  peer: Peer;
  readonly parts: readonly { readonly files: readonly FileMeta[]; readonly blobs: readonly Blob[] }[];
  readonly totalFiles: number;
  readonly totalBytes: number;
  stopped: boolean;
  /** The user was told that the send waits for the server's request limit. */
  toldWaiting: boolean;
}

export class TransferEngine extends Emitter<EngineEvents> {
  readonly #options: EngineOptions;
  readonly #signaling: SignalingClient;
  readonly #transfers = new Map<string, Transfer>();
  /** Events for transfers this page does not know yet (an ack racing an event). */
  readonly #early = new Map<string, { at: number; apply: (t: Transfer) => void }[]>();
  #ice: { config: IceConfig | null; fetchedAt: number } | null = null;
  #iceFetch: Promise<IceConfig | null> | null = null;
  readonly #store = new ResumeStore();
  /** Counts signaling connections; a transfer may signal once claimed on the current one. */
  #epoch = 0;
  readonly #claimedIn = new Map<string, number>();
  /** End reports that could not be sent (signaling was down); sent after re-claiming. */
  readonly #unsentReports = new Map<string, { report: FinishReport; role: 'sender' | 'receiver' }>();
  readonly #persistedAt = new Map<string, number>();
  readonly #persistedVerified = new Map<string, string>();
  #restoring: Promise<void> = Promise.resolve();
  /** Sends in parts not finished yet, and the send each running part (by transfer id) belongs to. */
  readonly #sends = new Set<PartedSend>();
  readonly #partOf = new Map<string, PartedSend>();
  /** How this user answered the sends in parts that came in. */
  readonly #incomingSends = new IncomingBatches();
  /** Broadcasts this page sends or receives (broadcast.ts). */
  readonly broadcasts: BroadcastManager;
  /** Hand-ins this page hands in to or collects (handins.ts). */
  readonly handins: Handins;
  /** Texts that arrived, by transfer id (in this page only, never on disk). */
  readonly #texts = new Map<string, string>();
  /** Received texts read (or tried) once already. */
  readonly #textsTaken = new Set<string>();

  constructor(options: EngineOptions) {
    super();
    this.#options = options;
    this.#signaling = new SignalingClient({
      device: options.device,
      deviceId: deviceId(),
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
      download: (file, name) => options.download(file, name),
      notice: (text) => this.emit('notice', text),
    });
    this.handins = new Handins({
      call: (event, payload) => s.call(event, payload),
      listen: (event, handler) => s.listen(event, handler),
      startDelivery: (id, collector, files, tag) => this.#startDelivery(id, collector, files, tag),
      accept: (id) => this.accept(id),
      dismiss: (id) => this.dismiss(id),
      connected: () => s.connected,
      peers: () => s.peers,
      concurrency: () => options.handinConcurrency?.() ?? DEFAULT_CONCURRENCY,
    });
    this.handins.on('notice', (text) => this.emit('notice', text));
    this.#wire();
  }

  start(): void {
    this.#restoring = this.#restoreStored();
    if (opfsAvailable()) void this.handins.loadKept();
    this.#signaling.connect();
    void this.#iceConfig().catch(() => {});
  }

  /** Drops the signaling connection as a network fault would (it reconnects by itself). For tests. */
  dropSignaling(): void {
    this.#signaling.dropConnection();
  }

  /** Closes a transfer's data channel as a broken network path would (it resumes by itself). For tests. */
  dropConnection(id: string): void {
    this.#transfers.get(id)?.dropConnection();
  }

  /**
   * Ends every transfer and the connection, and deletes every received file still stored
   * (sign-out: on a shared lab PC the next user must not find them).
   */
  stop(): void {
    for (const send of this.#sends) send.stopped = true;
    this.#sends.clear();
    this.#partOf.clear();
    for (const t of this.#transfers.values()) {
      t.cancel();
      void t.discardStored();
      this.#store.remove(t.id);
    }
    this.broadcasts.stop();
    this.handins.stop();
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

  /**
   * Asks `peerId` to accept `files`; resolves with the new transfer's snapshot. More files
   * than one request can list go in parts (batches.ts): this resolves with the first part,
   * and the others follow by themselves, each when the previous one has completed.
   */
  async send(peerId: string, files: readonly PickedFile[]): Promise<TransferSnapshot> {
    const peer = this.#signaling.peer(peerId);
    if (peer === undefined) throw new TransferError('peer_offline', 'That computer is no longer online. Pick someone from the list.');
    if (files.length === 0) throw new TransferError('no_files', 'Choose at least one file to send.');
    const metas: FileMeta[] = files.map((f) => ({ name: f.name, size: f.blob.size, mime: cleanMime(f.mime) }));
    const long = nameTooLong(metas);
    if (long !== null) {
      throw new TransferError(
        'name_too_long',
        `“${long.name}” cannot be sent: its name, with its folders, is longer than ${MAX_NAME_BYTES} bytes. Rename it or move it up a folder, then try again.`,
      );
    }
    if (this.#options.relayMode() !== 'off') {
      // Fail before asking anyone when relay mode cannot work.
      await this.#rtcConfig();
    }
    const plan = planParts(peerId, metas);
    const blobs = files.map((f) => f.blob);
    let send: PartedSend | null = null;
    if (plan.length > 1) {
      send = {
        batch: newBatchId(),
        peer,
        parts: plan.map((indexes) => ({ files: indexes.map((i) => metas[i] as FileMeta), blobs: indexes.map((i) => blobs[i] as Blob) })),
        totalFiles: metas.length,
        totalBytes: metas.reduce((n, f) => n + f.size, 0),
        stopped: false,
        toldWaiting: false,
      };
    }
    if (send !== null) this.#sends.add(send);
    try {
      const first = send === null ? await this.#request(peer, metas, blobs, null) : await this.#requestPart(peer, send, 0);
      return first.snapshot();
    } catch (error) {
      if (send !== null) this.#sends.delete(send);
      throw requestError(error, peer);
    }
  }

  /**
   * Sends `text` to `peerId` (a note, a link): a transfer of one file, its UTF-8 bytes, over the
   * data channel. Resolves with the new transfer's snapshot.
   */
  async sendText(peerId: string, text: string): Promise<TransferSnapshot> {
    const peer = this.#signaling.peer(peerId);
    if (peer === undefined) throw new TransferError('peer_offline', 'That computer is no longer online. Pick someone from the list.');
    const problem = textProblem(text);
    if (problem !== null) throw new TransferError(problem.code, problem.message);
    if (this.#options.relayMode() !== 'off') await this.#rtcConfig();
    const { bytes, meta } = encodeText(text);
    try {
      return (await this.#requestText(peer, meta, new Blob([bytes], { type: TEXT_MIME }))).snapshot();
    } catch (error) {
      throw requestError(error, peer);
    }
  }

  async #requestText(peer: Peer, meta: TextInfo, blob: Blob): Promise<Transfer> {
    const id = await this.#signaling.requestText(peer.peerId, meta);
    const files: FileMeta[] = [{ name: TEXT_FILE_NAME, size: meta.bytes, mime: TEXT_MIME }];
    const transfer = new SendingTransfer(this.#context(), { id, peer, files, blobs: [blob], text: meta });
    this.#claimedIn.set(id, this.#epoch);
    this.#add(transfer);
    void this.#iceConfig().catch(() => {});
    return transfer;
  }

  /** The text that arrived with transfer `id`, while this page has it. */
  text(id: string): string | undefined {
    return this.#texts.get(id);
  }

  /** A hand-in's delivery (handins.ts) was offered: sends `files` as transfer `id`. */
  #startDelivery(id: string, collector: Peer, files: readonly PickedFile[], handin: HandinTag): void {
    const metas: FileMeta[] = files.map((f) => ({ name: f.name, size: f.blob.size, mime: cleanMime(f.mime) }));
    const transfer = new SendingTransfer(this.#context(), { id, peer: collector, files: metas, blobs: files.map((f) => f.blob), handin });
    this.#claimedIn.set(id, this.#epoch);
    this.#add(transfer);
    void this.#iceConfig().catch(() => {});
  }

  /** Sends `transfer:request` and adds the new transfer. */
  async #request(peer: Peer, files: readonly FileMeta[], blobs: readonly Blob[], part: PartInfo | null, send: PartedSend | null = null): Promise<Transfer> {
    const id = await this.#signaling.request(peer.peerId, files, part);
    const transfer = new SendingTransfer(this.#context(), { id, peer, files, blobs, part });
    this.#claimedIn.set(id, this.#epoch);
    // Before #add: events that came before the ack may end it at once.
    if (send !== null) this.#partOf.set(id, send);
    this.#add(transfer);
    void this.#iceConfig().catch(() => {});
    return transfer;
  }

  /** Requests part `index` (0-based) of `send`. */
  async #requestPart(peer: Peer, send: PartedSend, index: number): Promise<Transfer> {
    const part = send.parts[index];
    if (part === undefined) throw new TransferError('internal', 'No such part.');
    const info: PartInfo = { batch: send.batch, index: index + 1, count: send.parts.length, totalFiles: send.totalFiles, totalBytes: send.totalBytes };
    return this.#request(peer, part.files, part.blobs, info, send);
  }

  /** A part of a send ended: on to the next part when it completed, else the send stops. */
  #partEnded(t: Transfer): void {
    const send = this.#partOf.get(t.id);
    if (send === undefined || t.part === null) return;
    this.#partOf.delete(t.id);
    if (send.stopped) return;
    const next = t.part.index; // 0-based index of the next part
    if (t.state !== 'completed') {
      this.#stopSend(send, next, `part ${t.part.index} did not complete`);
    } else if (next < send.parts.length) {
      void this.#sendPart(send, next);
    } else {
      this.#sends.delete(send);
    }
  }

  /** Requests part `index` of `send` until it is under way; waits and asks again while the refusal passes. */
  async #sendPart(send: PartedSend, index: number): Promise<void> {
    // As long as an interrupted transfer would wait for the other side.
    const deadline = Date.now() + this.#signaling.resumeGraceSecs * 1000;
    for (;;) {
      if (send.stopped) return;
      const peer = this.#signaling.peer(send.peer.peerId) ?? this.#samePerson(send.peer);
      let code = 'not_connected';
      if (peer !== undefined && this.#signaling.connected) {
        send.peer = peer;
        try {
          await this.#requestPart(peer, send, index);
          return;
        } catch (error) {
          code = error instanceof SignalingError ? error.code : 'internal';
          if (!PART_RETRY.has(code)) {
            this.#stopSend(send, index, requestError(error, peer).message);
            return;
          }
        }
      }
      if (Date.now() > deadline) {
        this.#stopSend(send, index, `${send.peer.displayName}’s computer could not be reached`);
        return;
      }
      if (code === 'rate_limited' && !send.toldWaiting) {
        send.toldWaiting = true;
        this.emit('notice', `Sending to ${send.peer.displayName} in ${send.parts.length} parts: the server allows only so many requests a minute, so part ${index + 1} waits a moment. It goes on by itself.`);
      }
      await new Promise((resolve) => setTimeout(resolve, PART_RETRY_MS));
    }
  }

  /** Gives up the parts of `send` from `index` (0-based) on, and says so. */
  #stopSend(send: PartedSend, index: number, why: string): void {
    send.stopped = true;
    this.#sends.delete(send);
    const left = send.parts.slice(index);
    if (left.length === 0) return;
    const files = left.reduce((n, p) => n + p.files.length, 0);
    this.emit(
      'notice',
      `${left.length} of ${send.parts.length} parts (${files} ${files === 1 ? 'file' : 'files'}) of your send to ${send.peer.displayName} were not sent: ${why.replace(/\.$/, '')}. Send those files again if they are still needed.`,
    );
  }

  /** Sends again the files of a failed transfer that did not arrive intact. */
  async retry(id: string): Promise<TransferSnapshot> {
    return this.#resend(id, 'Nothing to retry.', (f) => f.state !== 'done');
  }

  /** Asks again for a request that was declined or expired: the same files to the same person. */
  async sendAgain(id: string): Promise<TransferSnapshot> {
    const t = this.#transfers.get(id);
    if (t === undefined || !canSendAgain(t.snapshot())) throw new TransferError('unknown_transfer', 'Only a declined or expired request can be sent again.');
    if (t instanceof SendingTransfer && t.blobs.length !== t.files.length) throw new TransferError('no_files', 'This page no longer has those files: choose them again.');
    return this.#resend(id, 'Nothing to send again.', () => true);
  }

  /** Sends the files of finished send `id` that `which` picks to its person's current device. */
  async #resend(id: string, nothing: string, which: (f: FileStatus) => boolean): Promise<TransferSnapshot> {
    const t = this.#transfers.get(id);
    if (!(t instanceof SendingTransfer) || !t.finished) throw new TransferError('unknown_transfer', nothing);
    const snap = t.snapshot();
    const files = snap.files
      .map((f, i) => ({ f, blob: t.blobs[i] }))
      .filter(({ f, blob }) => which(f) && blob !== undefined)
      .map(({ f, blob }) => ({ name: f.name, blob: blob as Blob, mime: f.mime }));
    const peer = this.#signaling.peer(t.peer.peerId) ?? this.#samePerson(t.peer);
    if (peer === undefined) throw new TransferError('peer_offline', `${t.peer.displayName}’s computer is not online any more.`);
    const blob = files[0]?.blob;
    if (t.text !== null && blob !== undefined) {
      try {
        return (await this.#requestText(peer, t.text, blob)).snapshot();
      } catch (error) {
        throw requestError(error, peer);
      }
    }
    return this.send(peer.peerId, files);
  }

  /** A sender restored after a page reload gets its files back (checked by name and size). */
  provideFiles(id: string, files: readonly PickedFile[]): void {
    const t = this.#transfers.get(id);
    if (!(t instanceof SendingTransfer)) throw new TransferError('unknown_transfer', 'That transfer is gone.');
    try {
      t.provideFiles(files.map((f) => ({ name: f.name, blob: f.blob })));
    } catch (error) {
      throw new TransferError('wrong_files', error instanceof Error ? error.message : String(error));
    }
  }

  async accept(id: string): Promise<void> {
    this.#answered(id, true);
    await this.#incoming(id)?.accept();
  }

  async decline(id: string): Promise<void> {
    this.#answered(id, false);
    await this.#incoming(id)?.decline();
  }

  /** The receiving transfer `id`, if this page has it. */
  #incoming(id: string): ReceivingTransfer | undefined {
    const t = this.#transfers.get(id);
    return t instanceof ReceivingTransfer ? t : undefined;
  }

  /** The user answered a request; for a part of a send, the send's later parts get the same answer. */
  #answered(id: string, accept: boolean): void {
    const t = this.#transfers.get(id);
    if (t?.part != null && t.direction === 'receive' && t.state === 'requested') this.#incomingSends.answered(t.peer.userId, t.part, accept);
  }

  cancel(id: string): void {
    this.#transfers.get(id)?.cancel();
  }

  /** Removes a finished transfer from the list and deletes the files it stored. */
  async dismiss(id: string): Promise<void> {
    const t = this.#transfers.get(id);
    if (t === undefined || !t.finished) return;
    this.#transfers.delete(id);
    this.#texts.delete(id);
    this.#textsTaken.delete(id);
    this.#store.remove(id);
    this.emit('removed', id);
    await t.discardStored();
  }

  /** Saves a received, verified file as a download. */
  async save(id: string, index: number): Promise<void> {
    const t = this.#incoming(id);
    const file = t?.files[index];
    if (t === undefined || file === undefined || !t.isStored(index)) {
      throw new TransferError('not_stored', 'That file is not available to save.');
    }
    this.#options.download(await storedFile(id, index), file.name);
  }

  /** Saves every verified file of a transfer into `folder` (the user picked it), keeping paths. */
  async saveAllToFolder(id: string, folder: FileSystemDirectoryHandle): Promise<void> {
    const t = this.#incoming(id);
    if (t === undefined) return;
    const files = t.files.flatMap((f, index) => (t.isStored(index) ? [{ index, name: f.name }] : []));
    await saveStoredToDirectory(id, files, folder);
  }

  // ---- internals ----

  #context(): TransferContext {
    return {
      rtcConfig: () => this.#rtcConfig(),
      signal: (transferId, to, data) => this.#signaling.signal(transferId, to, data),
      report: (report) => this.#report(report),
      respond: (transferId, accept) => this.#signaling.respond(transferId, accept),
      online: (transferId) => this.#signaling.connected && this.#claimedIn.get(transferId) === this.#epoch,
      changed: (t) => {
        const snap = t.snapshot();
        this.#persist(t, snap);
        this.handins.transfer(snap);
        this.emit('transfer', snap);
        if (t.finished) this.#partEnded(t);
        if (t.text !== null && t.direction === 'receive' && t.state === 'completed') void this.#textArrived(t, t.text);
      },
      fileReady: (t, index) => {
        // A text is shown, never saved as a file; a hand-in's files go to the student's folder.
        if (this.#options.autoSave() && t.text === null && t.handin === null) {
          const name = t.files[index]?.name ?? 'file';
          void storedFile(t.id, index)
            .then((file) => this.#options.download(file, name))
            .catch(() => this.emit('notice', `Could not save ${name} automatically; use its Save button.`));
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

  /** Sends an end report now, or after the next re-claim when signaling is down. */
  async #report(report: FinishReport): Promise<void> {
    const t = this.#transfers.get(report.transferId);
    const role = t?.direction === 'send' ? 'sender' : 'receiver';
    if (!this.#signaling.connected || this.#claimedIn.get(report.transferId) !== this.#epoch) {
      this.#unsentReports.set(report.transferId, { report, role });
      return;
    }
    try {
      await this.#signaling.finish(report);
    } catch (error) {
      if (error instanceof SignalingError && (error.code === 'not_connected' || error.code === 'timeout')) {
        this.#unsentReports.set(report.transferId, { report, role });
      } else {
        throw error;
      }
    }
  }

  /** Reads a text that arrived and was verified into the page, then deletes it from the disk. */
  async #textArrived(t: Transfer, info: TextInfo): Promise<void> {
    if (this.#textsTaken.has(t.id)) return;
    this.#textsTaken.add(t.id);
    try {
      const text = decodeText(await (await storedFile(t.id, 0)).arrayBuffer());
      this.#texts.set(t.id, text);
      this.emit('text', { transferId: t.id, from: t.peer, text, chars: info.chars });
    } catch {
      this.emit('notice', `A text from ${t.peer.displayName} arrived but could not be read from this browser’s storage. Ask them to send it again.`);
    } finally {
      await t.discardStored();
    }
  }

  /** Stores (or forgets) what a reload needs to resume `t`. */
  #persist(t: Transfer, snap: TransferSnapshot): void {
    // A text lives in this page only (the sender's text is not kept anywhere else).
    if (t.text !== null) return;
    if (t.finished) {
      this.#persistedVerified.delete(t.id);
      this.#persistedAt.delete(t.id);
      this.#store.remove(t.id);
      return;
    }
    if (!t.live) return;
    const now = Date.now();
    const last = this.#persistedAt.get(t.id);
    const verified = snap.files.map((f) => (f.state === 'done' || f.state === 'failed') && f.sha256 !== null ? { ok: f.state === 'done', sha256: f.sha256 } : null);
    const verifiedKey = JSON.stringify(verified);
    const verifiedChanged = this.#persistedVerified.get(t.id) !== verifiedKey;
    if (last !== undefined && !verifiedChanged && now - last < PERSIST_EVERY_MS) return;
    this.#persistedAt.set(t.id, now);
    this.#persistedVerified.set(t.id, verifiedKey);
    this.#store.put({
      id: t.id,
      direction: t.direction,
      peer: t.peer,
      files: t.files,
      verified: t.direction === 'receive' ? verified : [],
      createdAt: t.createdAt,
      updatedAt: now,
      graceSecs: this.#signaling.resumeGraceSecs,
      ...(t.handin !== null ? { handin: t.handin } : {}),
    });
  }

  /** After a page reload: brings back the transfers this browser stored and still may resume. */
  async #restoreStored(): Promise<void> {
    const { live, expired } = this.#store.prune(Date.now());
    for (const r of expired) await removeStored(r.id);
    const adopted = new Set<string>();
    for (const r of live) {
      if (this.#transfers.has(r.id)) continue;
      if (r.direction === 'receive' && !(await OpfsSink.claim(r.id))) continue; // another tab has it
      const t = await this.#restoredTransfer(r);
      if (t === null) continue;
      adopted.add(r.id);
      this.#add(t);
    }
    await cleanUpAbandoned(adopted);
  }

  async #restoredTransfer(r: ResumeRecord): Promise<Transfer | null> {
    if (r.direction === 'send') {
      return new SendingTransfer(this.#context(), { id: r.id, peer: r.peer, files: r.files, handin: decodeHandinTag(r.handin), restored: { createdAt: r.createdAt } });
    }
    const partial = await readCheckpoint(r.id);
    return new ReceivingTransfer(this.#context(), {
      id: r.id,
      peer: r.peer,
      files: r.files,
      handin: decodeHandinTag(r.handin),
      restored: { createdAt: r.createdAt, receive: { verified: r.files.map((_, i) => r.verified[i] ?? null), partial } },
    });
  }

  /** On every (re)connection: re-claim every live transfer, then send what could not be sent. */
  async #reclaim(): Promise<void> {
    // A new connection: transfers created from now on belong to it; older ones are claimed below.
    const epoch = ++this.#epoch;
    for (const t of this.#transfers.values()) {
      if (!t.finished && !t.live && this.#claimedIn.get(t.id) !== epoch) t.onConnectionLostBeforeAnswer();
    }
    await this.#restoring;
    if (epoch !== this.#epoch) return;
    const claims = [...this.#transfers.values()]
      .filter((t) => t.live && this.#claimedIn.get(t.id) !== epoch)
      .map(async (t) => {
        try {
          const ack = await this.#signaling.resume(t.id, t.direction === 'send' ? 'sender' : 'receiver');
          if (epoch !== this.#epoch) return;
          this.#claimedIn.set(t.id, epoch);
          t.onReclaimed(ack.peer);
        } catch (error) {
          if (error instanceof SignalingError && RESUME_FINAL.has(error.code)) {
            t.onResumeRefused(error.code, error.message);
            this.#store.remove(t.id);
          }
          // Otherwise (a timeout, the socket dropped again): the next connection tries again.
        }
      });
    await Promise.all(claims);
    for (const [id, { report, role }] of [...this.#unsentReports]) {
      if (epoch !== this.#epoch) return;
      try {
        if (this.#claimedIn.get(id) !== epoch) {
          await this.#signaling.resume(id, role);
          this.#claimedIn.set(id, epoch);
        }
        await this.#signaling.finish(report);
        this.#unsentReports.delete(id);
      } catch (error) {
        if (error instanceof SignalingError && (RESUME_FINAL.has(error.code) || error.code === 'invalid_payload')) this.#unsentReports.delete(id);
      }
    }
  }

  #wire(): void {
    const s = this.#signaling;
    s.on('connection', (state) => {
      if (state.kind === 'connected') {
        void this.#reclaim();
        this.handins.connected();
      }
      this.emit('connection', state);
    });
    s.on('paused', ({ transferId }) => this.#transfers.get(transferId)?.onPeerPaused());
    s.on('resumed', ({ transferId, peer }) => this.#transfers.get(transferId)?.onPeerResumed(peer));
    s.on('presence', (presence) => {
      // A device that reconnected has a new peer id: keep its transfers pointed at it.
      for (const t of this.#transfers.values()) {
        if (t.finished || s.peer(t.peer.peerId) !== undefined) continue;
        const again = this.#samePerson(t.peer);
        if (again !== undefined) t.updatePeer(again);
      }
      this.emit('presence', presence);
      this.handins.presenceChanged();
    });
    s.on('incoming', (request) => {
      if (this.#transfers.has(request.transferId)) return;
      const t = new ReceivingTransfer(this.#context(), {
        id: request.transferId,
        peer: request.from,
        files: request.files,
        part: request.part,
        text: request.text,
        handin: request.handin,
      });
      this.#claimedIn.set(t.id, this.#epoch);
      this.#add(t);
      // A hand-in's delivery waits its turn in the hand-in's queue: nothing to ask.
      if (request.handin !== null) {
        this.handins.delivery(t.snapshot());
        return;
      }
      // Fetch ICE servers now, so accepting connects at once.
      void this.#iceConfig().catch(() => {});
      // A text is taken at once and shown when it has arrived: there is nothing to decide
      // before reading it, and its sender stays in sight in the dialog that shows it.
      if (request.text !== null) {
        void t.accept();
        return;
      }
      // A later part of a send the user already answered is answered the same way.
      const decision = request.part === null ? 'ask' : this.#incomingSends.decide(request.from.userId, request.part, request.files.length, request.totalBytes);
      if (decision === 'accept') void t.accept();
      else if (decision === 'decline') void t.decline();
      else this.emit('incoming', request);
    });
    s.on('accepted', (id) =>
      this.#withTransfer(id, (t) => {
        if (t instanceof SendingTransfer) t.onAccepted();
      }),
    );
    s.on('declined', (id) =>
      this.#withTransfer(id, (t) => {
        if (t instanceof SendingTransfer) t.onDeclined();
      }),
    );
    s.on('expired', (id) => this.#withTransfer(id, (t) => t.onExpired()));
    s.on('cancelled', (c) => this.#withTransfer(c.transferId, (t) => t.onRemoteCancelled(c.reason, c.detail)));
    s.on('signal', (m) => {
      if (!this.broadcasts.onSignal(m)) this.#withTransfer(m.transferId, (t) => void t.onSignal(m.data));
    });
    s.on('announcement', (a) => this.emit('announcement', a));
    s.on('announcementWithdrawn', (id) => this.emit('announcementWithdrawn', id));
    s.on('exam', (state) => this.emit('exam', state));
  }

  /** Announces `text` (needs `announce`); resolves with the announcement's id. */
  announce(text: string, target: { lab: string } | { all: true }, ttlSecs: number): Promise<string> {
    return this.#signaling.announce(text, target, ttlSecs);
  }

  withdrawAnnouncement(id: string): Promise<void> {
    return this.#signaling.withdrawAnnouncement(id);
  }

  /** The labs whose exam mode and visibility this user may set (their responsible instructor, or an admin). */
  labPolicies(): Promise<LabPolicyState[]> {
    return this.#signaling.labPolicies();
  }

  /** Switches a lab's exam mode or sets its visibility; resolves with its policies after. */
  setLabPolicy(lab: string, change: LabPolicyChange): Promise<LabPolicyState> {
    return this.#signaling.setLabPolicy(lab, change);
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
    case 'exam_mode':
      return new TransferError(error.code, 'The lab is in exam mode: students cannot send or receive files one to one until the instructor ends it.');
    case 'text_too_long':
      return new TransferError(error.code, `This text is too long to send at once: ${error.message}.`);
    default:
      return new TransferError(error.code, error.message);
  }
}
