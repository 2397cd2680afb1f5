/**
 * One transfer, the part both sides share: its state machine, its RTCPeerConnection and data
 * channel, its interruptions, and what it reports to the server when it ends. The send side
 * (transfer-send.ts: `SendingTransfer`) and the receive side (transfer-receive.ts:
 * `ReceivingTransfer`) add what only they do; the offer/answer exchange is negotiation.ts.
 *
 *   sender:   requested → accepted → sending → completed | failed | cancelled
 *   receiver: requested → accepted → receiving → completed | failed | cancelled
 *
 * The sender creates the offer and the data channel; the receiver answers. Signaling goes
 * through the server (`signal`), bytes only through the channel. A transfer is `completed` on
 * both sides only when the receiver has stored every file and its SHA-256 matched the
 * sender's; a mismatch fails that file and the transfer (the sender can retry just those).
 *
 * Every way a transfer can stop — the user, the other side, the disk — ends in `end()`,
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

import { IceRecorder, diagnose } from './diagnose';
import { type ControlMessage, decodeControl, encodeControl } from './framing';
import { transferDigest } from './hash';
import { Negotiation, type NegotiationMessage, type NegotiationRole } from './negotiation';
import { type PathInfo, currentPath, watchPath } from './path';
import { RateMeter, spreadOverFiles } from './progress';
import type { FileMeta, FinishReport, HandinTag, PartInfo, Peer, TextInfo } from './protocol';
import { ReceiveError } from './receiver';
import type { SendTuning } from './sender';

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
  /** Set when the transfer carries a text (its one file is the text; text.ts), not files. */
  readonly text: TextInfo | null;
  /** Set when the transfer delivers a student's files to a hand-in (handin.ts). */
  readonly handin: HandinTag | null;
}

/**
 * Whether a transfer is a request of this page that was declined or expired (not one part of
 * a larger send): its files can be asked for again (`TransferEngine.sendAgain`).
 */
export function canSendAgain(t: TransferSnapshot): boolean {
  const code = t.problem?.code;
  return t.direction === 'send' && t.state === 'cancelled' && t.part === null && !t.needsFiles && (code === 'declined' || code === 'expired');
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

/** What both sides are made from. */
export interface TransferInit {
  readonly id: string;
  readonly peer: Peer;
  readonly files: readonly FileMeta[];
  readonly part?: PartInfo | null;
  /** The transfer carries a text, not files (text.ts). */
  readonly text?: TextInfo | null;
  /** The transfer delivers a student's files to a hand-in (handin.ts). */
  readonly handin?: HandinTag | null;
  /** A transfer this browser had before a page reload, to be resumed. */
  readonly restored?: { readonly createdAt: number };
}

/** A control message of the data channel other than `cancel` (which both sides treat alike). */
export type SideMessage = Exclude<ControlMessage, { t: 'cancel' }>;

const TERMINAL: ReadonlySet<TransferState> = new Set(['completed', 'failed', 'cancelled']);
const CONNECT_TIMEOUT_MS = 30_000;
const STALL_TIMEOUT_MS = 45_000;
/** How long ICE may stay `disconnected` before the connection counts as lost (then: a new one). */
const DISCONNECT_GRACE_MS = 15_000;
const TICK_MS = 250;
/** How long a closed channel waits for the server to say why before it counts as lost. */
const EXPLANATION_GRACE_MS = 2_000;

export abstract class Transfer {
  readonly id: string;
  readonly direction: Direction;
  readonly createdAt: number;
  /** Which part of a larger send this is, if it is one. */
  readonly part: PartInfo | null;
  /** Set when this transfer carries a text, not files. */
  readonly text: TextInfo | null;
  /** Set when this transfer delivers to a hand-in. */
  readonly handin: HandinTag | null;
  protected readonly ctx: TransferContext;
  /** Each file's progress, as both sides see it (the sender learns `done` from `verified`). */
  protected fileState: FileState[];
  protected fileSha: (string | null)[];
  /** Receiving side: the request still waits for the user's answer. */
  protected awaitingAnswer = false;
  #peer: Peer;
  readonly #files: FileMeta[];
  #state: TransferState = 'requested';
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
  /** The last channel whose opening was handled. */
  #openedChannel: RTCDataChannel | null = null;

  /**
   * A channel was open once (or the transfer was restored after a reload): from then on a
   * connection that fails is an interruption to recover from, not a setup failure.
   */
  #connectedOnce = false;
  /** The connection was lost; waiting to connect again. */
  #suspended = false;
  /** The server said the other side's signaling is gone (it cannot be reached to reconnect). */
  #peerAway = false;
  #resumes = 0;

  #acceptedAt: number | null = null;
  #openAt: number | null = null;
  #endedAt: number | null = null;
  readonly #meter = new RateMeter();
  #ticker: ReturnType<typeof setInterval> | null = null;
  #connectTimer: ReturnType<typeof setTimeout> | null = null;
  #disconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #lastProgressAt = Date.now();
  #lastProgressBytes = 0;
  #reported = false;
  #closedAfterDone = false;

  protected constructor(ctx: TransferContext, direction: Direction, init: TransferInit) {
    this.ctx = ctx;
    this.id = init.id;
    this.direction = direction;
    this.part = init.part ?? null;
    this.text = init.text ?? null;
    this.handin = init.handin ?? null;
    this.#peer = init.peer;
    this.#files = [...init.files];
    this.fileState = this.#files.map(() => 'waiting');
    this.fileSha = this.#files.map(() => null);
    this.createdAt = init.restored?.createdAt ?? Date.now();
    if (init.restored !== undefined) {
      this.#acceptedAt = Date.now();
      this.#suspended = true;
      this.#peerAway = true;
      this.#connectedOnce = true;
      this.#state = direction === 'send' ? 'sending' : 'receiving';
      this.#lastProgressAt = Date.now();
      this.#ticker = setInterval(() => this.#tick(), TICK_MS);
    }
  }

  // ---- what each side adds ----

  /** File bytes sent or received so far (all files together), before completion. */
  protected abstract bytesMoved(): number;
  /** A data channel opened (the first, or a new one after an interruption). */
  protected abstract opened(channel: RTCDataChannel): void;
  /** A binary message: file bytes. */
  protected abstract onChunk(data: ArrayBuffer): void;
  /** A control message other than `cancel`. Throwing `ReceiveError` fails the transfer. */
  protected abstract onControl(message: SideMessage): void;
  /**
   * The transfer ended (`end`): what this side releases or deletes. `keep`: the files verified
   * before a failure, which stay to be saved.
   */
  protected abstract ended(state: 'completed' | 'failed' | 'cancelled', keep: readonly number[]): void;
  /** How long a completed transfer keeps its connection, for its last messages to leave. */
  protected abstract readonly lingerMs: number;
  /** What to do about files that arrived damaged, in the words of this side. */
  protected abstract readonly retryAdvice: string;

  /** The request expired unanswered (`transfer:expired`). */
  abstract onExpired(): void;
  /**
   * The signaling connection dropped while this request waited for an answer: the server
   * cancelled it (requests do not outlive their sender's connection).
   */
  abstract onConnectionLostBeforeAnswer(): void;

  /** The connection was just lost and the transfer suspended (the sender connects again). */
  protected interrupted(): void {}

  /** ICE lost its path, which may come back by itself (the sender tries an ICE restart). */
  protected iceDisconnected(_pc: RTCPeerConnection): void {}

  /**
   * ICE stayed disconnected for the grace period. The sender decides when to give a
   * connection up (its ICE restart may still bring this one back); by default this side only
   * shows that it waits.
   */
  protected iceGone(): void {
    this.#suspended = true;
    this.changed();
  }

  /** The timers of a disconnection stop (it ended, or the connection went). */
  protected stopDisconnectTimers(): void {
    if (this.#disconnectTimer !== null) clearTimeout(this.#disconnectTimer);
    this.#disconnectTimer = null;
  }

  /** How a file is shown (the sender refines `active` by its bytes). */
  protected shownFileState(i: number, _bytes: number): FileState {
    return this.fileState[i] ?? 'waiting';
  }

  /** Sender: file bytes handed to the data channel over all connections (re-sent ones too). */
  protected get wireBytes(): number {
    return 0;
  }

  /** Sender restored after a page reload: the files must be picked again to go on. */
  protected get needsFiles(): boolean {
    return false;
  }

  // ---- what both sides are ----

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

  get totalBytes(): number {
    return this.#files.reduce((sum, f) => sum + f.size, 0);
  }

  /** The other device reconnected under a new peer id. */
  updatePeer(peer: Peer): void {
    this.#peer = peer;
  }

  snapshot(): TransferSnapshot {
    const bytes = this.#bytesDone();
    const perFile = spreadOverFiles(bytes, this.#files.map((f) => f.size));
    const total = this.totalBytes;
    const active = (this.#state === 'sending' || this.#state === 'receiving') && !this.#suspended;
    return {
      id: this.id,
      direction: this.direction,
      peer: this.#peer,
      state: this.#state,
      awaitingAnswer: this.awaitingAnswer,
      files: this.#files.map((f, i) => ({
        name: f.name,
        size: f.size,
        mime: f.mime,
        bytes: this.fileState[i] === 'done' ? f.size : (perFile[i] ?? 0),
        state: this.shownFileState(i, perFile[i] ?? 0),
        sha256: this.fileSha[i] ?? null,
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
      needsFiles: this.needsFiles && !this.finished,
      wireBytes: this.wireBytes,
      resumes: this.#resumes,
      part: this.part,
      text: this.text,
      handin: this.handin,
    };
  }

  #bytesDone(): number {
    return this.#state === 'completed' ? this.totalBytes : this.bytesMoved();
  }

  // ---- for the sides ----

  /** Accepted (by the user here, or by the other side): connecting comes next. */
  protected get accepted(): boolean {
    return this.#acceptedAt !== null;
  }

  protected markAccepted(): void {
    this.#acceptedAt = Date.now();
    this.setState('accepted');
  }

  protected get suspended(): boolean {
    return this.#suspended;
  }

  protected get peerAway(): boolean {
    return this.#peerAway;
  }

  protected get connectedOnce(): boolean {
    return this.#connectedOnce;
  }

  /** The current data channel (null between connections). */
  protected get channel(): RTCDataChannel | null {
    return this.#channel;
  }

  /** Aborts when the current connection is given up. */
  protected get connectionSignal(): AbortSignal {
    return this.#sessionAbort.signal;
  }

  /** Aborts when the transfer ends. */
  protected get endSignal(): AbortSignal {
    return this.#abort.signal;
  }

  protected get session(): number {
    return this.#session;
  }

  protected set session(session: number) {
    this.#session = session;
  }

  /** An exchange is under way for the current session (its connection may not exist yet). */
  protected get negotiating(): boolean {
    return this.#negotiation !== null;
  }

  /** `negotiation` is the current session's and the transfer goes on. */
  protected isCurrent(negotiation: Negotiation): boolean {
    return !this.finished && negotiation === this.#negotiation;
  }

  protected isCurrentConnection(pc: RTCPeerConnection): boolean {
    return pc === this.#pc;
  }

  protected setState(state: TransferState): void {
    this.#state = state;
    this.changed();
  }

  protected changed(): void {
    this.ctx.changed(this);
  }

  // ---- messages from the server ----

  /** The server says the other side stopped (`transfer:cancelled`). */
  onRemoteCancelled(reason: string, detail: string): void {
    const who = this.#peer.displayName;
    this.awaitingAnswer = false;
    if (reason === 'peer_left') {
      this.end('cancelled', problemOf('peer_left', `${who} went offline before the transfer started. Try again when they are back online.`), false);
    } else if (reason === 'resume_expired') {
      this.end('failed', problemOf('resume_expired', `${who}’s computer did not come back in time, so the interrupted transfer was given up. Send the files again when both computers are online.`), false);
    } else if (reason === 'exam_mode') {
      this.end('cancelled', problemOf('exam_mode', 'The lab is now in exam mode, so files cannot be sent or received one to one. The transfer was stopped; broadcasts from the instructor still arrive.'), false);
    } else if (reason === 'failed') {
      this.end('failed', problemOf('remote_failed', `${who}’s browser stopped the transfer${detail === '' ? '' : `: ${plainDetail(detail)}`}. Try sending again.`), false);
    } else {
      this.end('cancelled', problemOf('remote_cancelled', `${who} cancelled the transfer.`), false);
    }
  }

  /** The server cannot resume this transfer any more (it ended, or it is not this device's). */
  onResumeRefused(code: string, message: string): void {
    if (this.finished) return;
    const text =
      code === 'transfer_ended'
        ? `This transfer already ended while this computer was away (${message.replace(/\.$/, '')}). Send the files again if they are still needed.`
        : `This transfer can no longer be resumed: ${message.replace(/\.$/, '')}. Send the files again if they are still needed.`;
    this.end('failed', problemOf('resume_refused', text), false);
  }

  /** The other side's signaling connection is gone (`transfer:paused`). */
  onPeerPaused(): void {
    if (this.finished) return;
    this.#peerAway = true;
    this.changed();
  }

  /** Both sides hold the transfer again (`transfer:resumed`). */
  onPeerResumed(peer: Peer): void {
    if (this.finished) return;
    this.#peer = peer;
    this.#peerAway = false;
    this.changed();
  }

  /** This side re-claimed the transfer after its own reconnection; `peer` is null while the other is away. */
  onReclaimed(peer: Peer | null): void {
    if (this.finished) return;
    if (peer === null) {
      this.#peerAway = true;
    } else {
      this.#peer = peer;
      this.#peerAway = false;
    }
    this.changed();
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
    this.sendControl({ t: 'cancel', reason: 'cancelled by the user' });
    this.end('cancelled', problemOf('cancelled', 'You cancelled this transfer.'), true);
  }

  /**
   * An SDP or ICE message from the other side, `{s: session, sdp | candidate}`. One from an
   * older session belongs to a connection given up; only the sender opens newer ones (the
   * receiver answers them, see there).
   */
  async onSignal(data: unknown): Promise<void> {
    const session = signalSession(data);
    if (this.finished || session !== this.#session) return;
    await this.#negotiation?.receive(data);
  }

  // ---- the connection ----

  /** Gives the current connection up and starts the exchange of `session`, in `role`. */
  protected beginSession(session: number, role: NegotiationRole): Negotiation {
    this.#teardown();
    this.#session = session;
    const negotiation = new Negotiation(role, {
      send: (message) => void this.#signal(message),
      failed: (error) => {
        if (this.isCurrent(negotiation)) this.setupFailed(error);
      },
      heard: (data) => this.#ice?.remoteSignal(data),
    });
    this.#negotiation = negotiation;
    return negotiation;
  }

  /** The exchange broke down: a first connection fails, a later one is lost (and made again). */
  protected setupFailed(error: unknown): void {
    if (!this.#connectedOnce) this.end('failed', problemOf('signaling_failed', `Could not set up the connection: ${messageOf(error)}. Try again.`), true);
    else this.lost();
  }

  /** The RTCPeerConnection of the current session, watched until it opens, fails or goes. */
  protected newConnection(config: RTCConfiguration): RTCPeerConnection {
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
      if (!this.#connectedOnce) this.end('failed', connectProblem(this.#peer, config, this.#ice), true);
      else this.lost();
    }, this.ctx.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
    return pc;
  }

  /** Offerer: new ICE credentials over the current connection (its channel survives). */
  protected restartIce(): Promise<void> {
    return this.#negotiation?.restart() ?? Promise.resolve();
  }

  async #signal(data: NegotiationMessage): Promise<void> {
    if (this.finished) return;
    try {
      await this.ctx.signal(this.id, this.#peer.peerId, { s: this.#session, ...data });
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
      this.stopDisconnectTimers();
      if (this.#suspended && this.#channel?.readyState === 'open') {
        // The path came back by itself (or through the ICE restart): the channel survived.
        this.#suspended = false;
        this.#resumes += 1;
        this.changed();
      }
      void this.#readPath();
    } else if (state === 'failed') {
      this.stopDisconnectTimers();
      if (!this.#connectedOnce) this.end('failed', connectProblem(this.#peer, config, this.#ice), true);
      else this.lost();
    } else if (state === 'disconnected' && this.#disconnectTimer === null) {
      // The path may come back by itself (new candidates over the same connection: the
      // channel and its data survive).
      this.iceDisconnected(pc);
      this.#disconnectTimer = setTimeout(() => {
        this.#disconnectTimer = null;
        if (this.finished || pc !== this.#pc || pc.connectionState === 'connected') return;
        this.iceGone();
      }, DISCONNECT_GRACE_MS);
    }
  }

  async #readPath(): Promise<void> {
    const pc = this.#pc;
    if (pc === null) return;
    const path = await currentPath(pc);
    if (path !== null) {
      this.#path = path;
      this.changed();
    }
  }

  /** Takes `channel` (of the current connection) as this transfer's data channel. */
  protected useChannel(channel: RTCDataChannel, pc: RTCPeerConnection): void {
    if (pc !== this.#pc || (this.#channel !== null && this.#channel !== channel)) {
      channel.close();
      return;
    }
    this.#channel = channel;
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('open', () => {
      if (channel === this.#channel) this.#onOpen(channel);
    });
    channel.addEventListener('close', () => {
      if (channel === this.#channel) this.#onChannelClosed(channel);
    });
    channel.addEventListener('message', (event: MessageEvent<string | ArrayBuffer>) => {
      if (channel === this.#channel) this.#onMessage(event.data);
    });
    if (channel.readyState === 'open') this.#onOpen(channel);
  }

  #onOpen(channel: RTCDataChannel): void {
    // Chromium may hand over a channel that is already open and still fire `open` for it.
    if (this.finished || this.#openedChannel === channel) return;
    this.#openedChannel = channel;
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    if (this.#suspended) this.#resumes += 1;
    this.#suspended = false;
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
        this.changed();
      });
    }
    this.opened(channel);
    this.changed();
  }

  #tick(): void {
    if (this.finished) return;
    const now = Date.now();
    const bytes = this.#bytesDone();
    this.#meter.sample(bytes, now);
    if (this.#suspended || bytes !== this.#lastProgressBytes || this.#waitingForNothing()) {
      this.#lastProgressBytes = bytes;
      this.#lastProgressAt = now;
    } else if (now - this.#lastProgressAt > (this.ctx.stallTimeoutMs ?? STALL_TIMEOUT_MS)) {
      // Nothing moves on an open channel: give this connection up and open a new one.
      console.warn(`LabBeam: nothing arrived for ${Math.round((now - this.#lastProgressAt) / 1000)} s; connecting again`);
      this.#lastProgressAt = now;
      this.lost();
      return;
    }
    this.changed();
  }

  /** True while no bytes are expected (verification of the last file is under way). */
  #waitingForNothing(): boolean {
    return this.fileState.some((s) => s === 'verifying') && this.#bytesDone() === this.totalBytes;
  }

  // ---- interruptions ----

  /**
   * The connection is lost: keep everything that arrived, close the connection, and (sender)
   * connect again once the other side can be reached.
   */
  protected lost(): void {
    if (this.finished || this.#closedAfterDone || (this.#suspended && this.#pc === null)) return;
    this.#suspended = true;
    this.#teardown();
    this.changed();
    this.interrupted();
  }

  /** Closes the current connection without treating its events as news. */
  #teardown(): void {
    this.#sessionAbort.abort(new Error('connection replaced'));
    this.#unwatchPath?.();
    this.#unwatchPath = null;
    this.stopDisconnectTimers();
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

  // ---- messages from the other browser ----

  #onMessage(data: string | ArrayBuffer): void {
    if (this.finished) return;
    try {
      if (typeof data !== 'string') {
        this.onChunk(data);
        return;
      }
      const message = decodeControl(data);
      if (message === null) throw new ReceiveError('protocol', 'The other browser sent a message this version does not understand.');
      if (message.t === 'cancel') {
        this.end('cancelled', problemOf('remote_cancelled', `${this.#peer.displayName} cancelled the transfer.`), false);
      } else {
        this.onControl(message);
      }
    } catch (error) {
      const code = error instanceof ReceiveError ? error.code : 'protocol';
      this.sendControl({ t: 'cancel', reason: messageOf(error) });
      this.end('failed', problemOf(code, `${messageOf(error)} The transfer was stopped; try sending again.`), true);
    }
  }

  #onChannelClosed(channel: RTCDataChannel): void {
    if (this.finished || this.#closedAfterDone) return;
    // A cancel from the other side travels behind up to a few MiB of queued chunks, and its
    // connection may close before they arrive; the server's `transfer:cancelled` says why.
    // Wait a moment for it before calling the connection lost (and connecting again).
    setTimeout(() => {
      if (!this.finished && channel === this.#channel) this.lost();
    }, EXPLANATION_GRACE_MS);
  }

  /** Sends a control message if the channel is open; a channel going away loses it quietly. */
  protected sendControl(message: ControlMessage, channel: RTCDataChannel | null = this.#channel): void {
    try {
      if (channel?.readyState === 'open') channel.send(encodeControl(message));
    } catch {
      // The channel is going away; the server-side report still tells the other side.
    }
  }

  // ---- the end ----

  /** Every file was verified or failed: completed, or failed naming the damaged files. */
  protected async complete(digests: string[]): Promise<void> {
    if (this.finished) return;
    const failedFiles = this.#files.filter((_, i) => this.fileState[i] === 'failed').map((f) => f.name);
    if (failedFiles.length > 0) {
      const list = failedFiles.slice(0, 3).join(', ') + (failedFiles.length > 3 ? ` and ${failedFiles.length - 3} more` : '');
      this.end('failed', problemOf('hash_mismatch', `${list} arrived damaged (the checksum did not match) and ${failedFiles.length === 1 ? 'was' : 'were'} not kept. ${this.retryAdvice}`), true);
      return;
    }
    const digest = await transferDigest(digests);
    this.end('completed', null, true, digest);
  }

  /**
   * The one way out: sets the final state, stops timers and the connection, deletes partial
   * data (a completed receiver keeps its verified files until dismissed), reports once.
   */
  protected end(state: 'completed' | 'failed' | 'cancelled', problem: TransferProblem | null, report: boolean, digest = ''): void {
    if (this.finished) return;
    const bytes = this.#bytesDone();
    this.#endedAt = Date.now();
    this.#problem = problem;
    this.awaitingAnswer = false;
    this.#suspended = false;
    this.#abort.abort(new Error(problem?.message ?? state));
    if (this.#ticker !== null) clearInterval(this.#ticker);
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.stopDisconnectTimers();
    if (state !== 'completed') {
      this.fileState = this.fileState.map((s) => (s === 'done' ? s : 'failed'));
    }
    this.#state = state;

    if (state === 'completed') {
      this.#closedAfterDone = true;
      this.ended(state, []);
      setTimeout(() => this.#closeConnection(), this.lingerMs);
    } else {
      this.#closeConnection();
      // Partial data goes; files that were verified before a failure stay, to be saved.
      const keep = state === 'failed' ? this.fileState.flatMap((s, i) => (s === 'done' ? [i] : [])) : [];
      if (state === 'cancelled') this.fileState = this.fileState.map(() => 'failed');
      this.ended(state, keep);
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
      void this.ctx.report(finish).catch(() => {
        // `unknown_transfer`: the other side's report already ended it; nothing to add.
      });
    }
    this.changed();
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

  /** Deletes what this transfer stored (a receiver's files) — when the user dismisses it. */
  async discardStored(): Promise<void> {
    // A sender stores nothing.
  }
}

/** The session a signal belongs to (its `s`, or 1 without one); null when it is no object. */
export function signalSession(data: unknown): number | null {
  if (typeof data !== 'object' || data === null) return null;
  const s = (data as { s?: unknown }).s;
  return typeof s === 'number' && Number.isSafeInteger(s) && s > 0 ? s : 1;
}

export function problemOf(code: string, message: string): TransferProblem {
  return { code, message };
}

export function messageOf(error: unknown): string {
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
