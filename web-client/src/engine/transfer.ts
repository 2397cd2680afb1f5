/**
 * One transfer, from either side: its state machine, its RTCPeerConnection and data channel,
 * and what it reports to the server when it ends.
 *
 *   sender:   requested → accepted → sending → completed | failed | cancelled
 *   receiver: requested → accepted → receiving → completed | failed | cancelled
 *
 * The sender creates the offer and the data channel; the receiver answers. Signaling goes
 * through the server (`signal`), bytes only through the channel. A transfer is `completed` on
 * both sides only when the receiver has stored every file and its SHA-256 matched the
 * sender's; a mismatch fails that file and the transfer (the sender can retry just those).
 *
 * Every way a transfer can stop — the user, the other side, the disk — ends in `#end()`,
 * which releases the connection, deletes partial data and reports once.
 *
 * An interruption is not a stop. When the connection is lost after it was open (the channel
 * closes, ICE fails, nothing arrives, the other page reloads), the transfer is *suspended*:
 * the receiver keeps what it stored and where it was, and the sender connects again (a new
 * RTCPeerConnection, a new numbered *session*) as soon as the other side is back; an ICE
 * restart is tried first while the connection itself survives. On each new channel the
 * receiver says where to go on (`ready`, framing.ts) and the sender seeks there, so nothing
 * that arrived is sent again. Signaling (the server) may come and go meanwhile: an open
 * channel keeps flowing without it. Only the server's `transfer:cancelled` (e.g.
 * `resume_expired`), a cancel, or a failure that a new connection cannot fix ends it.
 */

import { ChannelClosedError } from './channel';
import { IceRecorder, diagnose } from './diagnose';
import { decodeControl, encodeControl } from './framing';
import { transferDigest } from './hash';
import { Negotiation, type NegotiationMessage, type NegotiationRole } from './negotiation';
import { OpfsSink, removeStored } from './opfs';
import { type PathInfo, currentPath, watchPath } from './path';
import { RateMeter, spreadOverFiles } from './progress';
import type { FileMeta, FinishReport, PartInfo, Peer } from './protocol';
import { FileReceiver, type PartialFile, ReceiveError, type StoredFile } from './receiver';
import { DEFAULT_TUNING, FileSender, type OutgoingFile, type SendTuning, type StartPoint } from './sender';

export type TransferState = 'requested' | 'accepted' | 'sending' | 'receiving' | 'completed' | 'failed' | 'cancelled';
export type Direction = 'send' | 'receive';
export type FileState = 'waiting' | 'active' | 'verifying' | 'done' | 'failed';

export interface FileStatus {
  readonly name: string;
  readonly size: number;
  readonly mime: string;
  readonly bytes: number;
  readonly state: FileState;
  readonly sha256: string | null;
}

/** Why a transfer stopped, in words for the user: what happened and what to try. */
export interface TransferProblem {
  readonly code: string;
  readonly message: string;
}

export interface TransferSnapshot {
  readonly id: string;
  readonly direction: Direction;
  readonly peer: Peer;
  readonly state: TransferState;
  /** Receiving side only: the request still waits for the user's answer. */
  readonly awaitingAnswer: boolean;
  readonly files: readonly FileStatus[];
  readonly totalBytes: number;
  readonly bytes: number;
  readonly bytesPerSecond: number | null;
  readonly etaSeconds: number | null;
  readonly path: PathInfo | null;
  readonly problem: TransferProblem | null;
  /** Milliseconds from acceptance to an open data channel. */
  readonly setupMs: number | null;
  /** Milliseconds from an open channel to the end. */
  readonly durationMs: number | null;
  readonly createdAt: number;
  /** Interrupted: waiting for the other side (or the network) to come back. */
  readonly paused: boolean;
  /** Sender restored after a page reload: the files must be picked again to go on. */
  readonly needsFiles: boolean;
  /** Sender: file bytes handed to the data channel over all connections (re-sent ones too). */
  readonly wireBytes: number;
  /** How many times the transfer went on after an interruption. */
  readonly resumes: number;
  /** Set when this transfer is one part of a larger send (batches.ts). */
  readonly part: PartInfo | null;
}

/** What a receiver restored after a page reload starts from. */
export interface RestoredReceive {
  readonly verified: readonly ({ readonly ok: boolean; readonly sha256: string } | null)[];
  readonly partial: PartialFile | null;
}

/** What a transfer needs from the engine around it. */
export interface TransferContext {
  rtcConfig(): Promise<RTCConfiguration>;
  signal(transferId: string, to: string, data: unknown): Promise<void>;
  report(report: FinishReport): Promise<void>;
  respond(transferId: string, accept: boolean): Promise<void>;
  changed(transfer: Transfer): void;
  /** A received file was verified (auto-save hooks in here). */
  fileReady(transfer: Transfer, index: number): void;
  readonly tuning?: Partial<SendTuning>;
  readonly connectTimeoutMs?: number;
  readonly stallTimeoutMs?: number;
  /** The signaling connection is up and this transfer is held by this socket. */
  online(transferId: string): boolean;
}

const TERMINAL: ReadonlySet<TransferState> = new Set(['completed', 'failed', 'cancelled']);
const CONNECT_TIMEOUT_MS = 30_000;
const STALL_TIMEOUT_MS = 45_000;
/** How long ICE may stay `disconnected` before the connection counts as lost (then: a new one). */
const DISCONNECT_GRACE_MS = 15_000;
/** How long ICE stays `disconnected` before the sender tries an ICE restart. */
const ICE_RESTART_AFTER_MS = 2_500;
/** Backoff between reconnection attempts of the sender. */
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 15_000;
const TICK_MS = 250;
/** The receiver's session number before the sender's first signal says which it is. */
const FIRST_SESSION = -1;
/** How long a closed channel waits for the server to say why before it counts as lost. */
const EXPLANATION_GRACE_MS = 2_000;

export class Transfer {
  readonly id: string;
  readonly direction: Direction;
  readonly createdAt: number;
  /** Which part of a larger send this is, if it is one. */
  readonly part: PartInfo | null;
  #peer: Peer;
  readonly #ctx: TransferContext;
  readonly #files: FileMeta[];
  #blobs: readonly Blob[];
  #fileState: FileState[];
  #fileSha: (string | null)[];
  #state: TransferState = 'requested';
  #awaitingAnswer: boolean;
  #problem: TransferProblem | null = null;
  #path: PathInfo | null = null;

  readonly #abort = new AbortController();
  #pc: RTCPeerConnection | null = null;
  /** What ICE gathered and tried, to name the cause when it fails (diagnose.ts). */
  #ice: IceRecorder | null = null;
  #unwatchPath: (() => void) | null = null;
  #channel: RTCDataChannel | null = null;
  /** Aborted when the current connection is given up (stops its sender run). */
  #sessionAbort = new AbortController();
  /** The connection this side is on (the sender numbers them, increasing; signals carry it). */
  #session = 0;
  /** The offer/answer exchange of the current session (from before its connection exists). */
  #negotiation: Negotiation | null = null;
  #sender: FileSender | null = null;
  /** The channel the current sender run sends on (one run per channel). */
  #senderChannel: RTCDataChannel | null = null;
  /** The last channel whose opening was handled. */
  #openedChannel: RTCDataChannel | null = null;
  #receiver: FileReceiver | null = null;
  #sink: OpfsSink | null = null;
  /** Receiver restored after a reload: where it goes on. */
  #restored: RestoredReceive | null = null;

  /**
   * A channel was open once (or the transfer was restored after a reload): from then on a
   * connection that fails is an interruption to recover from, not a setup failure.
   */
  #connectedOnce = false;
  /** The connection was lost; waiting to connect again. */
  #suspended = false;
  /** The server said the other side's signaling is gone (it cannot be reached to reconnect). */
  #peerAway = false;
  #needsFiles = false;
  #reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #reconnectAttempts = 0;
  #resumes = 0;
  /** File bytes the sender handed to earlier connections. */
  #wirePast = 0;

  #acceptedAt: number | null = null;
  #openAt: number | null = null;
  #endedAt: number | null = null;
  readonly #meter = new RateMeter();
  #ticker: ReturnType<typeof setInterval> | null = null;
  #connectTimer: ReturnType<typeof setTimeout> | null = null;
  #disconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #restartTimer: ReturnType<typeof setTimeout> | null = null;
  #lastProgressAt = Date.now();
  #lastProgressBytes = 0;
  #reported = false;
  #senderDigests: (string | null)[] | null = null;
  #closedAfterDone = false;

  constructor(
    ctx: TransferContext,
    init: {
      id: string;
      direction: Direction;
      peer: Peer;
      files: readonly FileMeta[];
      blobs?: readonly Blob[];
      part?: PartInfo | null;
      /** A transfer this browser had before a page reload, to be resumed. */
      restored?: { createdAt: number; receive?: RestoredReceive };
    },
  ) {
    this.#ctx = ctx;
    this.id = init.id;
    this.direction = init.direction;
    this.part = init.part ?? null;
    this.#peer = init.peer;
    this.#files = [...init.files];
    this.#blobs = init.blobs ?? [];
    this.#fileState = this.#files.map(() => 'waiting');
    this.#fileSha = this.#files.map(() => null);
    this.#awaitingAnswer = init.direction === 'receive';
    this.createdAt = init.restored?.createdAt ?? Date.now();
    if (init.restored !== undefined) {
      this.#awaitingAnswer = false;
      this.#acceptedAt = Date.now();
      this.#suspended = true;
      this.#peerAway = true;
      this.#connectedOnce = true;
      this.#state = init.direction === 'send' ? 'sending' : 'receiving';
      this.#needsFiles = init.direction === 'send' && this.#blobs.length !== this.#files.length;
      const r = init.restored.receive;
      if (r !== undefined) {
        this.#restored = r;
        r.verified.forEach((v, i) => {
          if (v !== null) {
            this.#fileState[i] = v.ok ? 'done' : 'failed';
            this.#fileSha[i] = v.sha256;
          }
        });
      }
      this.#lastProgressAt = Date.now();
      this.#ticker = setInterval(() => this.#tick(), TICK_MS);
    }
  }

  get state(): TransferState {
    return this.#state;
  }

  get peer(): Peer {
    return this.#peer;
  }

  get finished(): boolean {
    return TERMINAL.has(this.#state);
  }

  /** Accepted and not finished: the server holds it for this device, to be re-claimed. */
  get live(): boolean {
    return !this.finished && this.#acceptedAt !== null;
  }

  get files(): readonly FileMeta[] {
    return this.#files;
  }

  /** The sender's own blobs, for a retry. */
  get blobs(): readonly Blob[] {
    return this.#blobs;
  }

  /** The other device reconnected under a new peer id. */
  updatePeer(peer: Peer): void {
    this.#peer = peer;
  }

  snapshot(): TransferSnapshot {
    const bytes = this.#bytesDone();
    const perFile = this.#perFileBytes(bytes);
    const total = this.totalBytes;
    const active = (this.#state === 'sending' || this.#state === 'receiving') && !this.#suspended;
    return {
      id: this.id,
      direction: this.direction,
      peer: this.#peer,
      state: this.#state,
      awaitingAnswer: this.#awaitingAnswer,
      files: this.#files.map((f, i) => ({
        name: f.name,
        size: f.size,
        mime: f.mime,
        bytes: this.#fileState[i] === 'done' ? f.size : (perFile[i] ?? 0),
        state: this.#shownFileState(i, perFile[i] ?? 0),
        sha256: this.#fileSha[i] ?? null,
      })),
      totalBytes: total,
      bytes,
      bytesPerSecond: active ? this.#meter.bytesPerSecond : null,
      etaSeconds: active ? this.#meter.etaSeconds(total - bytes) : null,
      path: this.#path,
      problem: this.#problem,
      setupMs: this.#acceptedAt !== null && this.#openAt !== null ? this.#openAt - this.#acceptedAt : null,
      durationMs: this.#openAt === null ? null : (this.#endedAt ?? Date.now()) - this.#openAt,
      createdAt: this.createdAt,
      paused: this.#suspended && !this.finished,
      needsFiles: this.#needsFiles && !this.finished,
      wireBytes: this.#wirePast + (this.#sender?.queuedBytes ?? 0),
      resumes: this.#resumes,
      part: this.part,
    };
  }

  /** Bytes per file for a running total (files are sent in order). */
  #perFileBytes(bytes: number): number[] {
    return spreadOverFiles(bytes, this.#files.map((f) => f.size));
  }

  /** The sender marks all files active at once; show them as waiting / sent by their bytes. */
  #shownFileState(i: number, bytes: number): FileState {
    const state = this.#fileState[i] ?? 'waiting';
    const size = this.#files[i]?.size ?? 0;
    if (state !== 'active' || this.direction !== 'send') return state;
    if (bytes === 0 && size > 0) return 'waiting';
    return bytes >= size ? 'verifying' : 'active';
  }

  get totalBytes(): number {
    return this.#files.reduce((sum, f) => sum + f.size, 0);
  }

  #bytesDone(): number {
    if (this.#state === 'completed') return this.totalBytes;
    if (this.#sender !== null) return this.#sender.sentBytes;
    if (this.#receiver !== null) return this.#receiver.receivedBytes;
    if (this.#restored !== null) {
      const start = this.#restoredStart();
      return this.#files.slice(0, start.index).reduce((n, f) => n + f.size, 0) + (start.partial?.offset ?? 0);
    }
    return 0;
  }

  // ---- the handshake ----

  /** Sender: the receiver accepted; connect and send. */
  onAccepted(): void {
    if (this.direction !== 'send' || this.#state !== 'requested') return;
    this.#acceptedAt = Date.now();
    this.#setState('accepted');
    void this.#openSession();
  }

  /** Receiver: the user accepted. */
  async accept(): Promise<void> {
    if (this.direction !== 'receive' || this.#state !== 'requested' || !this.#awaitingAnswer) return;
    this.#awaitingAnswer = false;
    this.#acceptedAt = Date.now();
    this.#setState('accepted');
    // The sender starts signaling as soon as it learns of the acceptance, so the connection
    // must be ready for its offer first; signals arriving meanwhile are kept. It adopts the
    // number of the sender's first connection (see onSignal).
    this.#session = FIRST_SESSION;
    const connecting = this.#connectReceiver();
    try {
      await this.#ctx.respond(this.id, true);
    } catch (error) {
      this.#end('cancelled', problemOf('accept_failed', `Could not accept: ${messageOf(error)}`), false);
      return;
    }
    await connecting;
  }

  /** Receiver: the user declined. */
  async decline(): Promise<void> {
    if (this.direction !== 'receive' || this.#state !== 'requested' || !this.#awaitingAnswer) return;
    this.#awaitingAnswer = false;
    this.#end('cancelled', problemOf('declined', 'You declined this transfer.'), false);
    try {
      await this.#ctx.respond(this.id, false);
    } catch {
      // Expired or cancelled meanwhile: declined all the same.
    }
  }

  /** Sender: the receiver declined. */
  onDeclined(): void {
    this.#end('cancelled', problemOf('declined', `${this.#peer.displayName} declined the transfer.`), false);
  }

  onExpired(): void {
    const message =
      this.direction === 'send'
        ? `${this.#peer.displayName} did not answer within a minute. Try again when they are at their computer.`
        : 'You did not answer in time, so the request expired. Ask the sender to send again.';
    this.#awaitingAnswer = false;
    this.#end('cancelled', problemOf('expired', message), false);
  }

  /** The server says the other side stopped (`transfer:cancelled`). */
  onRemoteCancelled(reason: string, detail: string): void {
    const who = this.#peer.displayName;
    this.#awaitingAnswer = false;
    if (reason === 'peer_left') {
      this.#end('cancelled', problemOf('peer_left', `${who} went offline before the transfer started. Try again when they are back online.`), false);
    } else if (reason === 'resume_expired') {
      this.#end('failed', problemOf('resume_expired', `${who}’s computer did not come back in time, so the interrupted transfer was given up. Send the files again when both computers are online.`), false);
    } else if (reason === 'failed') {
      this.#end('failed', problemOf('remote_failed', `${who}’s browser stopped the transfer${detail === '' ? '' : `: ${plainDetail(detail)}`}. Try sending again.`), false);
    } else {
      this.#end('cancelled', problemOf('remote_cancelled', `${who} cancelled the transfer.`), false);
    }
  }

  /** The server cannot resume this transfer any more (it ended, or it is not this device's). */
  onResumeRefused(code: string, message: string): void {
    if (this.finished) return;
    const text =
      code === 'transfer_ended'
        ? `This transfer already ended while this computer was away (${message.replace(/\.$/, '')}). Send the files again if they are still needed.`
        : `This transfer can no longer be resumed: ${message.replace(/\.$/, '')}. Send the files again if they are still needed.`;
    this.#end('failed', problemOf('resume_refused', text), false);
  }

  /**
   * The signaling connection dropped while this request waited for an answer: the server
   * cancelled it (requests do not outlive their sender's connection).
   */
  onConnectionLostBeforeAnswer(): void {
    if (this.finished || this.#acceptedAt !== null) return;
    const message =
      this.direction === 'send'
        ? 'The connection to the LabBeam server dropped before an answer came, so the request was withdrawn. Send it again.'
        : 'The connection to the LabBeam server dropped before you answered, so the request lapsed. Ask the sender to send again.';
    this.#end('cancelled', problemOf('request_lapsed', message), false);
  }

  /** The other side's signaling connection is gone (`transfer:paused`). */
  onPeerPaused(): void {
    if (this.finished) return;
    this.#peerAway = true;
    this.#changed();
  }

  /** Both sides hold the transfer again (`transfer:resumed`): reconnect if the connection was lost. */
  onPeerResumed(peer: Peer): void {
    if (this.finished) return;
    this.#peer = peer;
    this.#peerAway = false;
    this.#reconnectAttempts = 0;
    this.#kickReconnect();
    this.#changed();
  }

  /** This side re-claimed the transfer after its own reconnection; `peer` is null while the other is away. */
  onReclaimed(peer: Peer | null): void {
    if (this.finished) return;
    if (peer === null) {
      this.#peerAway = true;
    } else {
      this.#peer = peer;
      this.#peerAway = false;
      this.#kickReconnect();
    }
    this.#changed();
  }

  /** Sender restored after a reload: the same files, picked again (checked by name and size). */
  provideFiles(blobs: readonly { name: string; blob: Blob }[]): void {
    if (this.direction !== 'send' || !this.#needsFiles || this.finished) return;
    const picked = [...blobs];
    const matched: Blob[] = [];
    for (const f of this.#files) {
      const base = f.name.split('/').pop() ?? f.name;
      const i = picked.findIndex((p) => (p.name === f.name || p.name.split('/').pop() === base) && p.blob.size === f.size);
      if (i < 0) throw new Error(`“${f.name}” (${f.size} bytes) is not among the picked files. Pick the same files as before.`);
      matched.push(picked[i]?.blob ?? new Blob());
      picked.splice(i, 1);
    }
    this.#blobs = matched;
    this.#needsFiles = false;
    this.#kickReconnect();
    this.#changed();
  }

  /** Closes the data channel as a broken network path would (fault-injection tests). */
  dropConnection(): void {
    try {
      this.#channel?.close();
    } catch {
      // Already closed.
    }
  }

  /** The user stops the transfer (any state). */
  cancel(): void {
    if (this.finished) return;
    if (this.direction === 'receive' && this.#awaitingAnswer) {
      void this.decline();
      return;
    }
    this.#sendControlQuietly({ t: 'cancel', reason: 'cancelled by the user' });
    this.#end('cancelled', problemOf('cancelled', 'You cancelled this transfer.'), true);
  }

  /** An SDP or ICE message from the other side, `{s: session, sdp | candidate}`. */
  async onSignal(data: unknown): Promise<void> {
    if (this.finished) return;
    if (typeof data !== 'object' || data === null) return;
    const d = data as { s?: unknown; sdp?: { type?: unknown } };
    const session = typeof d.s === 'number' && Number.isSafeInteger(d.s) && d.s > 0 ? d.s : 1;
    // The receiver's first connection was made before the sender's number was known.
    if (this.#session === FIRST_SESSION && this.direction === 'receive' && this.#negotiation !== null) this.#session = session;
    if (session < this.#session) return; // from a connection given up
    if (session > this.#session) {
      // Only the sender opens connections: a newer session is its new offer.
      if (this.direction !== 'receive' || d.sdp?.type !== 'offer') return;
      this.#teardown();
      this.#session = session;
      const connecting = this.#connectReceiver();
      void this.#negotiation?.receive(data);
      await connecting;
      return;
    }
    await this.#negotiation?.receive(data);
  }

  // ---- the connection ----

  /** Sender: a new connection (the first, or after an interruption). */
  async #openSession(): Promise<void> {
    if (this.finished) return;
    this.#teardown();
    // Numbers only grow, also across a reload of this page (the receiver may still be on an
    // earlier connection of ours): the clock, or one more than the last.
    this.#session = Math.max(this.#session + 1, Date.now());
    const negotiation = this.#negotiate('offerer');
    let config: RTCConfiguration;
    try {
      config = await this.#ctx.rtcConfig();
    } catch (error) {
      if (!this.#connectedOnce) this.#end('failed', problemOf('no_relay', messageOf(error)), true);
      else this.#lost();
      return;
    }
    if (this.finished || negotiation !== this.#negotiation) return;
    const pc = this.#newConnection(config);
    const channel = pc.createDataChannel('labbeam-files', { ordered: true });
    this.#useChannel(channel, pc);
    void negotiation.attach(pc);
    try {
      await negotiation.offer();
    } catch (error) {
      if (this.finished || negotiation !== this.#negotiation) return;
      this.#setupFailed(error);
    }
  }

  /** Receiver: a connection ready for the sender's offer of the current session. */
  #connectReceiver(): Promise<void> {
    // Made now, so that the offer is kept while the ICE servers are fetched.
    const negotiation = this.#negotiate('answerer');
    const run = async (): Promise<void> => {
      let config: RTCConfiguration;
      try {
        config = await this.#ctx.rtcConfig();
      } catch (error) {
        if (!this.#connectedOnce) this.#end('failed', problemOf('no_relay', messageOf(error)), true);
        return;
      }
      if (this.finished || negotiation !== this.#negotiation) return;
      const pc = this.#newConnection(config);
      pc.addEventListener('datachannel', (event) => this.#useChannel(event.channel, pc));
      await negotiation.attach(pc);
    };
    return run();
  }

  /** The exchange of the session about to start; the one before is given up. */
  #negotiate(role: NegotiationRole): Negotiation {
    this.#negotiation?.close();
    const negotiation = new Negotiation(role, {
      send: (message) => void this.#signal(message),
      failed: (error) => {
        if (!this.finished && negotiation === this.#negotiation) this.#setupFailed(error);
      },
      heard: (data) => this.#ice?.remoteSignal(data),
    });
    this.#negotiation = negotiation;
    return negotiation;
  }

  /** The exchange broke down: a first connection fails, a later one is lost (and made again). */
  #setupFailed(error: unknown): void {
    if (!this.#connectedOnce) this.#end('failed', problemOf('signaling_failed', `Could not set up the connection: ${messageOf(error)}. Try again.`), true);
    else this.#lost();
  }

  #newConnection(config: RTCConfiguration): RTCPeerConnection {
    const pc = new RTCPeerConnection(config);
    this.#pc = pc;
    this.#ice = new IceRecorder(config);
    this.#ice.watch(pc);
    this.#sessionAbort = new AbortController();
    pc.addEventListener('connectionstatechange', () => {
      if (pc === this.#pc) this.#onConnectionState(pc, config);
    });
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = null;
      if (this.finished || pc !== this.#pc || this.#channel?.readyState === 'open') return;
      if (!this.#connectedOnce) this.#end('failed', connectProblem(this.#peer, config, this.#ice), true);
      else this.#lost();
    }, this.#ctx.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
    return pc;
  }

  async #signal(data: NegotiationMessage): Promise<void> {
    if (this.finished) return;
    try {
      await this.#ctx.signal(this.id, this.#peer.peerId, { s: this.#session, ...data });
    } catch (error) {
      // A lost candidate is survivable (others get through); a lost SDP ends in the connect
      // timeout, which then tries again (or says what to try, for the first connection).
      console.warn('LabBeam: a signaling message was not delivered', error);
    }
  }

  #onConnectionState(pc: RTCPeerConnection, config: RTCConfiguration): void {
    if (this.finished) return;
    const state = pc.connectionState;
    if (state === 'connected') {
      this.#clearDisconnectTimers();
      if (this.#suspended && this.#channel?.readyState === 'open') {
        // The path came back by itself (or through the ICE restart): the channel survived.
        this.#suspended = false;
        this.#resumes += 1;
        this.#changed();
      }
      void this.#readPath();
    } else if (state === 'failed') {
      this.#clearDisconnectTimers();
      if (!this.#connectedOnce) this.#end('failed', connectProblem(this.#peer, config, this.#ice), true);
      else this.#lost();
    } else if (state === 'disconnected' && this.#disconnectTimer === null) {
      // The path may come back by itself; the sender also tries an ICE restart meanwhile
      // (new candidates over the same connection: the channel and its data survive).
      if (this.direction === 'send') {
        this.#restartTimer = setTimeout(() => {
          this.#restartTimer = null;
          if (pc === this.#pc && pc.connectionState !== 'connected') void this.#restartIce();
        }, ICE_RESTART_AFTER_MS);
      }
      this.#disconnectTimer = setTimeout(() => {
        this.#disconnectTimer = null;
        if (this.finished || pc !== this.#pc || pc.connectionState === 'connected') return;
        if (this.direction === 'send') {
          this.#lost();
        } else {
          // The sender decides when to give a connection up (its ICE restart may still bring
          // this one back); the receiver only shows that it waits.
          this.#suspended = true;
          this.#changed();
        }
      }, DISCONNECT_GRACE_MS);
    }
  }

  async #restartIce(): Promise<void> {
    if (this.finished || !this.#ctx.online(this.id) || this.#peerAway) return;
    try {
      await this.#negotiation?.restart();
    } catch {
      // The disconnect timer gives the connection up and opens a new one.
    }
  }

  #clearDisconnectTimers(): void {
    if (this.#disconnectTimer !== null) clearTimeout(this.#disconnectTimer);
    if (this.#restartTimer !== null) clearTimeout(this.#restartTimer);
    this.#disconnectTimer = null;
    this.#restartTimer = null;
  }

  async #readPath(): Promise<void> {
    const pc = this.#pc;
    if (pc === null) return;
    const path = await currentPath(pc);
    if (path !== null) {
      this.#path = path;
      this.#changed();
    }
  }

  #useChannel(channel: RTCDataChannel, pc: RTCPeerConnection): void {
    if (pc !== this.#pc || (this.#channel !== null && this.#channel !== channel)) {
      channel.close();
      return;
    }
    this.#channel = channel;
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('open', () => {
      if (channel === this.#channel) void this.#onOpen(channel);
    });
    channel.addEventListener('close', () => {
      if (channel === this.#channel) this.#onChannelClosed(channel);
    });
    channel.addEventListener('message', (event: MessageEvent<string | ArrayBuffer>) => {
      if (channel === this.#channel) this.#onMessage(event.data);
    });
    if (channel.readyState === 'open') void this.#onOpen(channel);
  }

  async #onOpen(channel: RTCDataChannel): Promise<void> {
    // Chromium may hand over a channel that is already open and still fire `open` for it.
    if (this.finished || this.#openedChannel === channel) return;
    this.#openedChannel = channel;
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    if (this.#suspended) this.#resumes += 1;
    this.#suspended = false;
    this.#reconnectAttempts = 0;
    this.#lastProgressAt = Date.now();
    if (this.#openAt === null) this.#openAt = Date.now();
    this.#connectedOnce = true;
    this.#ticker ??= setInterval(() => this.#tick(), TICK_MS);
    this.#unwatchPath?.();
    this.#unwatchPath = null;
    const pc = this.#pc;
    if (pc !== null) {
      this.#unwatchPath = watchPath(pc, (path) => {
        if (pc !== this.#pc) return;
        this.#path = path;
        this.#changed();
      });
    }
    if (this.direction === 'receive') {
      // The receiver must be ready before this returns to the event loop: the sender's first
      // messages can be dispatched right after `open`, and nothing may be dropped meanwhile.
      // It speaks first: what it has, then where to go on.
      const receiver = this.#startReceiver();
      this.#fileState.forEach((s, index) => {
        const sha256 = this.#fileSha[index];
        if ((s === 'done' || s === 'failed') && sha256 !== null && sha256 !== undefined) {
          this.#sendControlQuietly({ t: 'verified', index, ok: s === 'done', sha256 }, channel);
        }
      });
      const at = receiver.resumePoint;
      this.#sendControlQuietly({ t: 'ready', index: at.index, offset: at.offset }, channel);
    } else {
      this.#setState('sending');
    }
    this.#changed();
  }

  #tick(): void {
    if (this.finished) return;
    const now = Date.now();
    const bytes = this.#bytesDone();
    this.#meter.sample(bytes, now);
    if (this.#suspended || bytes !== this.#lastProgressBytes || this.#waitingForNothing()) {
      this.#lastProgressBytes = bytes;
      this.#lastProgressAt = now;
    } else if (now - this.#lastProgressAt > (this.#ctx.stallTimeoutMs ?? STALL_TIMEOUT_MS)) {
      // Nothing moves on an open channel: give this connection up and open a new one.
      console.warn(`LabBeam: nothing arrived for ${Math.round((now - this.#lastProgressAt) / 1000)} s; connecting again`);
      this.#lastProgressAt = now;
      this.#lost();
      return;
    }
    this.#changed();
  }

  /** True while no bytes are expected (verification of the last file is under way). */
  #waitingForNothing(): boolean {
    return this.#fileState.some((s) => s === 'verifying') && this.#bytesDone() === this.totalBytes;
  }

  // ---- interruptions ----

  /**
   * The connection is lost: keep everything that arrived, close the connection, and (sender)
   * connect again once the other side can be reached.
   */
  #lost(): void {
    if (this.finished || this.#closedAfterDone || (this.#suspended && this.#pc === null)) return;
    this.#suspended = true;
    this.#teardown();
    this.#changed();
    if (this.direction === 'send') this.#scheduleReconnect();
  }

  /** Closes the current connection without treating its events as news. */
  #teardown(): void {
    this.#sessionAbort.abort(new Error('connection replaced'));
    this.#unwatchPath?.();
    this.#unwatchPath = null;
    this.#clearDisconnectTimers();
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    const channel = this.#channel;
    const pc = this.#pc;
    this.#channel = null;
    this.#pc = null;
    this.#negotiation?.close();
    this.#negotiation = null;
    try {
      channel?.close();
    } catch {
      // Already closed.
    }
    pc?.close();
  }

  /** Sender: reconnects now if it can (the other side is there, the files are at hand). */
  #kickReconnect(): void {
    if (this.direction !== 'send' || !this.#suspended || this.finished) return;
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    this.#tryReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#reconnectTimer !== null || this.finished) return;
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this.#reconnectAttempts);
    const delay = base * (0.5 + Math.random() * 0.5);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      this.#tryReconnect();
    }, delay);
  }

  #tryReconnect(): void {
    if (this.direction !== 'send' || !this.#suspended || this.finished || this.#needsFiles) return;
    if (!this.#ctx.online(this.id) || this.#peerAway) {
      // Signaling (ours or theirs) is away: `onReclaimed`/`onPeerResumed` kick again; poll
      // meanwhile in case the news was missed.
      this.#scheduleReconnect();
      return;
    }
    this.#reconnectAttempts += 1;
    void this.#openSession().then(() => {
      // A connection that does not open is given up by its connect timer (→ #lost → retry).
    });
  }

  // ---- sending ----

  async #runSender(start: StartPoint): Promise<void> {
    const channel = this.#channel;
    if (channel === null || this.direction !== 'send' || this.#senderChannel === channel) return;
    this.#senderChannel = channel;
    if (this.#sender !== null) this.#wirePast += this.#sender.queuedBytes;
    const files: OutgoingFile[] = this.#files.map((f, i) => ({ name: f.name, blob: this.#blobs[i] ?? new Blob() }));
    const abort = this.#sessionAbort.signal;
    const sender = new FileSender(channel, files, anySignal(this.#abort.signal, abort), { ...DEFAULT_TUNING, ...this.#ctx.tuning }, start);
    this.#sender = sender;
    this.#fileState = this.#fileState.map((s, i) => (i >= start.index && s !== 'done' && s !== 'failed' ? 'active' : s));
    try {
      const digests = await sender.run();
      if (this.finished || channel !== this.#channel) return;
      this.#senderDigests = digests.map((d, i) => d ?? this.#fileSha[i] ?? null);
      this.#fileSha = [...this.#senderDigests];
      this.#fileState = this.#fileState.map((s) => (s === 'active' ? 'verifying' : s));
      this.#changed();
      this.#maybeSenderDone();
    } catch (error) {
      if (this.finished || channel !== this.#channel) return; // a connection already given up
      if (abort.aborted || error instanceof ChannelClosedError) {
        this.#lost();
        return;
      }
      this.#end('failed', problemOf('read_failed', `Could not read a file on this computer: ${messageOf(error)}. Check the file still exists, then send again.`), true);
    }
  }

  #maybeSenderDone(): void {
    if (this.#senderDigests === null || this.#fileState.some((s) => s === 'active' || s === 'verifying' || s === 'waiting')) return;
    void this.#complete(this.#senderDigests.map((d, i) => d ?? this.#fileSha[i] ?? ''));
  }

  // ---- receiving ----

  #restoredStart(): { index: number; partial: PartialFile | null } {
    const r = this.#restored;
    if (r === null) return { index: 0, partial: null };
    let index = r.verified.findIndex((v) => v === null);
    if (index < 0) index = this.#files.length;
    const partial = r.partial !== null && r.partial.index === index ? r.partial : null;
    return { index, partial };
  }

  #startReceiver(): FileReceiver {
    if (this.#receiver !== null) return this.#receiver;
    this.#setState('receiving');
    const sink = new OpfsSink(this.id);
    this.#sink = sink;
    sink.onError((error) => {
      if (!this.finished) this.#end('failed', problemOf('disk_error', error.message), true);
    });
    const receiver = new FileReceiver(
      this.#files,
      sink,
      { verified: (index, ok, stored) => this.#onVerified(index, ok, stored) },
      this.#restoredStart(),
    );
    receiver.onSinkError((error) => {
      if (!this.finished) this.#end('failed', problemOf('disk_error', messageOf(error)), true);
    });
    this.#receiver = receiver;
    return receiver;
  }

  #onVerified(index: number, ok: boolean, stored: StoredFile): void {
    if (this.finished) return;
    this.#fileState[index] = ok ? 'done' : 'failed';
    this.#fileSha[index] = stored.sha256;
    this.#sendControlQuietly({ t: 'verified', index, ok, sha256: stored.sha256 });
    this.#changed();
    if (ok) this.#ctx.fileReady(this, index);
    if (this.#fileState.every((s) => s === 'done' || s === 'failed')) {
      void this.#complete(this.#fileSha.map((s) => s ?? ''));
    }
  }

  // ---- messages from the other browser ----

  #onMessage(data: string | ArrayBuffer): void {
    if (this.finished) return;
    try {
      if (typeof data !== 'string') {
        if (this.#receiver === null) throw new ReceiveError('protocol', 'Data arrived before the transfer started.');
        const before = this.#receiver.currentIndex;
        this.#receiver.chunk(data);
        if (before !== null && this.#fileState[before] === 'waiting') this.#fileState[before] = 'active';
        return;
      }
      const message = decodeControl(data);
      if (message === null) throw new ReceiveError('protocol', 'The other browser sent a message this version does not understand.');
      if (message.t === 'cancel') {
        this.#end('cancelled', problemOf('remote_cancelled', `${this.#peer.displayName} cancelled the transfer.`), false);
      } else if (message.t === 'verified') {
        if (this.direction !== 'send' || this.#fileState[message.index] === undefined) return;
        this.#fileState[message.index] = message.ok ? 'done' : 'failed';
        this.#fileSha[message.index] = message.sha256;
        this.#changed();
        this.#maybeSenderDone();
      } else if (message.t === 'ready') {
        if (this.direction !== 'send') throw new ReceiveError('protocol', 'The sender sent a message only a receiver sends.');
        if (message.index > this.#files.length || (message.index < this.#files.length && message.offset > (this.#files[message.index]?.size ?? 0))) {
          throw new ReceiveError('protocol', 'The receiver asked to go on from a point past the end of the files.');
        }
        void this.#runSender({ index: message.index, offset: message.offset });
      } else {
        if (this.#receiver === null) throw new ReceiveError('protocol', 'A file arrived before the transfer started.');
        this.#receiver.control(message);
        const i = this.#receiver.currentIndex;
        if (message.t === 'file' && i !== null) this.#fileState[i] = 'active';
        if (message.t === 'eof') this.#fileState[message.index] = 'verifying';
        this.#changed();
      }
    } catch (error) {
      const code = error instanceof ReceiveError ? error.code : 'protocol';
      this.#sendControlQuietly({ t: 'cancel', reason: messageOf(error) });
      this.#end('failed', problemOf(code, `${messageOf(error)} The transfer was stopped; try sending again.`), true);
    }
  }

  #onChannelClosed(channel: RTCDataChannel): void {
    if (this.finished || this.#closedAfterDone) return;
    // A cancel from the other side travels behind up to a few MiB of queued chunks, and its
    // connection may close before they arrive; the server's `transfer:cancelled` says why.
    // Wait a moment for it before calling the connection lost (and connecting again).
    setTimeout(() => {
      if (!this.finished && channel === this.#channel) this.#lost();
    }, EXPLANATION_GRACE_MS);
  }

  #sendControlQuietly(message: Parameters<typeof encodeControl>[0], channel: RTCDataChannel | null = this.#channel): void {
    try {
      if (channel?.readyState === 'open') channel.send(encodeControl(message));
    } catch {
      // The channel is going away; the server-side report still tells the other side.
    }
  }

  // ---- the end ----

  async #complete(digests: string[]): Promise<void> {
    if (this.finished) return;
    const failedFiles = this.#files.filter((_, i) => this.#fileState[i] === 'failed').map((f) => f.name);
    if (failedFiles.length > 0) {
      const list = failedFiles.slice(0, 3).join(', ') + (failedFiles.length > 3 ? ` and ${failedFiles.length - 3} more` : '');
      const retry = this.direction === 'send' ? 'Use “Retry failed files” to send just those again.' : 'Ask the sender to send them again.';
      this.#end('failed', problemOf('hash_mismatch', `${list} arrived damaged (the checksum did not match) and ${failedFiles.length === 1 ? 'was' : 'were'} not kept. ${retry}`), true);
      return;
    }
    const digest = await transferDigest(digests);
    this.#end('completed', null, true, digest);
  }

  /**
   * The one way out: sets the final state, stops timers and the connection, deletes partial
   * data (a completed receiver keeps its verified files until dismissed), reports once.
   */
  #end(state: 'completed' | 'failed' | 'cancelled', problem: TransferProblem | null, report: boolean, digest = ''): void {
    if (this.finished) return;
    const bytes = this.#bytesDone();
    this.#endedAt = Date.now();
    this.#problem = problem;
    this.#awaitingAnswer = false;
    this.#suspended = false;
    this.#abort.abort(new Error(problem?.message ?? state));
    if (this.#ticker !== null) clearInterval(this.#ticker);
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#clearDisconnectTimers();
    if (state !== 'completed') {
      this.#fileState = this.#fileState.map((s) => (s === 'done' ? s : 'failed'));
    }
    this.#state = state;

    if (state === 'completed') {
      this.#closedAfterDone = true;
      this.#sink?.release();
      // Give the last `verified` messages time to leave before the connection goes.
      setTimeout(() => this.#closeConnection(), this.direction === 'receive' ? 3000 : 200);
    } else {
      this.#closeConnection();
      // Partial data goes; files that were verified before a failure stay, to be saved.
      const keep = state === 'failed' ? this.#fileState.flatMap((s, i) => (s === 'done' ? [i] : [])) : [];
      if (state === 'cancelled') this.#fileState = this.#fileState.map(() => 'failed');
      if (this.#sink !== null) void this.#sink.discard(keep);
      else if (this.direction === 'receive' && this.#restored !== null) void removeStored(this.id);
    }

    if (report && !this.#reported) {
      this.#reported = true;
      const finish: FinishReport = {
        transferId: this.id,
        status: state,
        bytes: state === 'completed' ? this.totalBytes : bytes,
        sha256: digest,
        ...(this.#path !== null ? { path: this.#path.kind } : {}),
        ...(this.#openAt !== null ? { durationMs: this.#endedAt - this.#openAt } : {}),
        ...(problem !== null ? { reason: `${problem.code}: ${problem.message}`.slice(0, 500) } : {}),
      };
      void this.#ctx.report(finish).catch(() => {
        // `unknown_transfer`: the other side's report already ended it; nothing to add.
      });
    }
    this.#changed();
  }

  #closeConnection(): void {
    this.#unwatchPath?.();
    this.#negotiation?.close();
    try {
      this.#channel?.close();
    } catch {
      // Already closed.
    }
    this.#pc?.close();
  }

  /** Deletes what this transfer stored (the receiver's files) — when the user dismisses it. */
  async discardStored(): Promise<void> {
    if (this.#sink !== null) await this.#sink.dispose();
    else if (this.direction === 'receive') await removeStored(this.id);
  }

  /** Receiver: the file at `index` is verified and stored, ready to save. */
  isStored(index: number): boolean {
    return this.direction === 'receive' && this.#fileState[index] === 'done' && this.#state !== 'cancelled';
  }

  #setState(state: TransferState): void {
    this.#state = state;
    this.#changed();
  }

  #changed(): void {
    this.#ctx.changed(this);
  }
}

/** Aborts when either signal does. */
function anySignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  const c = new AbortController();
  const on = (s: AbortSignal): void => c.abort(s.reason);
  if (a.aborted) on(a);
  else if (b.aborted) on(b);
  else {
    a.addEventListener('abort', () => on(a), { once: true });
    b.addEventListener('abort', () => on(b), { once: true });
  }
  return c.signal;
}

function problemOf(code: string, message: string): TransferProblem {
  return { code, message };
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message.replace(/\.$/, '');
  return String(error);
}

/** The other side's `reason` is `code: message`; show the message. */
function plainDetail(detail: string): string {
  const i = detail.indexOf(': ');
  return (i > 0 && /^[a-z_]+$/.test(detail.slice(0, i)) ? detail.slice(i + 2) : detail).replace(/\.$/, '');
}

function connectProblem(peer: Peer, config: RTCConfiguration, ice: IceRecorder | null): TransferProblem {
  if (ice !== null) return diagnose(ice.evidence(), peer.displayName);
  const relayForced = config.iceTransportPolicy === 'relay';
  const hasTurn = (config.iceServers ?? []).some((s) => [s.urls].flat().some((u) => u.startsWith('turn')));
  let message: string;
  if (relayForced) {
    message = `Could not reach ${peer.displayName}’s computer through the LabBeam relay. Turn off “Always use the relay” in Settings, or ask the lab’s administrator to check the relay (labbeam doctor).`;
  } else if (hasTurn) {
    message = `Could not connect to ${peer.displayName}’s computer, not even through the relay. A firewall may block it: ask the lab’s administrator to run “labbeam doctor”, then try again.`;
  } else {
    message = `Could not connect to ${peer.displayName}’s computer directly, and this server offers no relay. Check that both computers are on the lab network, or ask the administrator to enable the TURN relay.`;
  }
  return problemOf('ice_failed', message);
}
