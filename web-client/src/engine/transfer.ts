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
 * Every way a transfer can stop — the user, the other side, the network, the disk — ends in
 * `#end()`, which releases the connection, deletes partial data and reports once.
 */

import { ChannelClosedError } from './channel';
import { IceRecorder, diagnose } from './diagnose';
import { decodeControl, encodeControl } from './framing';
import { transferDigest } from './hash';
import { OpfsSink } from './opfs';
import { type PathInfo, currentPath, watchPath } from './path';
import { RateMeter, spreadOverFiles } from './progress';
import type { FileMeta, FinishReport, Peer } from './protocol';
import { FileReceiver, ReceiveError, type StoredFile } from './receiver';
import { DEFAULT_TUNING, FileSender, type OutgoingFile, type SendTuning } from './sender';

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
}

const TERMINAL: ReadonlySet<TransferState> = new Set(['completed', 'failed', 'cancelled']);
const CONNECT_TIMEOUT_MS = 30_000;
const STALL_TIMEOUT_MS = 45_000;
/** How long ICE may stay `disconnected` before the transfer gives up. */
const DISCONNECT_GRACE_MS = 8_000;
const TICK_MS = 250;
/** How long a closed channel waits for the server to say why before it counts as lost. */
const EXPLANATION_GRACE_MS = 2_000;

export class Transfer {
  readonly id: string;
  readonly direction: Direction;
  readonly createdAt = Date.now();
  #peer: Peer;
  readonly #ctx: TransferContext;
  readonly #files: FileMeta[];
  readonly #blobs: readonly Blob[];
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
  #remoteSet = false;
  #pendingCandidates: RTCIceCandidateInit[] = [];
  /** Signals that arrived before the connection existed (receiver: while fetching ICE servers). */
  #earlySignals: unknown[] = [];
  #sender: FileSender | null = null;
  #receiver: FileReceiver | null = null;
  #sink: OpfsSink | null = null;

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
  #senderDigests: string[] | null = null;
  #closedAfterDone = false;

  constructor(
    ctx: TransferContext,
    init: { id: string; direction: Direction; peer: Peer; files: readonly FileMeta[]; blobs?: readonly Blob[] },
  ) {
    this.#ctx = ctx;
    this.id = init.id;
    this.direction = init.direction;
    this.#peer = init.peer;
    this.#files = [...init.files];
    this.#blobs = init.blobs ?? [];
    this.#fileState = this.#files.map(() => 'waiting');
    this.#fileSha = this.#files.map(() => null);
    this.#awaitingAnswer = init.direction === 'receive';
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
    const perFile = spreadOverFiles(bytes, this.#files.map((f) => f.size));
    const total = this.totalBytes;
    const active = this.#state === 'sending' || this.#state === 'receiving';
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
    };
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
    return 0;
  }

  // ---- the handshake ----

  /** Sender: the receiver accepted; connect and send. */
  onAccepted(): void {
    if (this.direction !== 'send' || this.#state !== 'requested') return;
    this.#acceptedAt = Date.now();
    this.#setState('accepted');
    void this.#connect();
  }

  /** Receiver: the user accepted. */
  async accept(): Promise<void> {
    if (this.direction !== 'receive' || this.#state !== 'requested' || !this.#awaitingAnswer) return;
    this.#awaitingAnswer = false;
    this.#acceptedAt = Date.now();
    this.#setState('accepted');
    // The sender starts signaling as soon as it learns of the acceptance, so the connection
    // must be ready for its offer first; signals arriving meanwhile are kept.
    const connecting = this.#connect();
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
    } else if (reason === 'failed') {
      this.#end('failed', problemOf('remote_failed', `${who}’s browser stopped the transfer${detail === '' ? '' : `: ${plainDetail(detail)}`}. Try sending again.`), false);
    } else {
      this.#end('cancelled', problemOf('remote_cancelled', `${who} cancelled the transfer.`), false);
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

  /** An SDP or ICE message from the other side. */
  async onSignal(data: unknown): Promise<void> {
    if (this.finished) return;
    const pc = this.#pc;
    if (pc === null) {
      this.#earlySignals.push(data);
      return;
    }
    this.#ice?.remoteSignal(data);
    if (typeof data !== 'object' || data === null) return;
    const d = data as { sdp?: RTCSessionDescriptionInit; candidate?: RTCIceCandidateInit | null };
    try {
      if (d.sdp !== undefined) {
        await pc.setRemoteDescription(d.sdp);
        this.#remoteSet = true;
        for (const c of this.#pendingCandidates.splice(0)) await pc.addIceCandidate(c);
        if (d.sdp.type === 'offer') {
          await pc.setLocalDescription();
          await this.#signal({ sdp: pc.localDescription?.toJSON() });
        }
      } else if (d.candidate !== undefined && d.candidate !== null) {
        if (this.#remoteSet) await pc.addIceCandidate(d.candidate);
        else this.#pendingCandidates.push(d.candidate);
      }
    } catch (error) {
      if (!this.finished) this.#end('failed', problemOf('signaling_failed', `Could not set up the connection: ${messageOf(error)}. Try again.`), true);
    }
  }

  // ---- the connection ----

  async #connect(): Promise<void> {
    let config: RTCConfiguration;
    try {
      config = await this.#ctx.rtcConfig();
    } catch (error) {
      this.#end('failed', problemOf('no_relay', messageOf(error)), true);
      return;
    }
    if (this.finished) return;
    const pc = new RTCPeerConnection(config);
    this.#pc = pc;
    this.#ice = new IceRecorder(config);
    this.#ice.watch(pc);
    pc.addEventListener('icecandidate', (event) => {
      if (event.candidate !== null) void this.#signal({ candidate: event.candidate.toJSON() });
    });
    pc.addEventListener('connectionstatechange', () => this.#onConnectionState(pc.connectionState, config));
    this.#connectTimer = setTimeout(() => {
      if (this.#openAt === null && !this.finished) this.#end('failed', connectProblem(this.#peer, config, this.#ice), true);
    }, this.#ctx.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);

    if (this.direction === 'send') {
      const channel = pc.createDataChannel('labbeam-files', { ordered: true });
      this.#useChannel(channel);
      try {
        await pc.setLocalDescription();
        await this.#signal({ sdp: pc.localDescription?.toJSON() });
      } catch (error) {
        if (!this.finished) this.#end('failed', problemOf('signaling_failed', `Could not set up the connection: ${messageOf(error)}. Try again.`), true);
      }
    } else {
      pc.addEventListener('datachannel', (event) => this.#useChannel(event.channel));
      for (const s of this.#earlySignals.splice(0)) await this.onSignal(s);
    }
  }

  async #signal(data: unknown): Promise<void> {
    if (this.finished) return;
    try {
      await this.#ctx.signal(this.id, this.#peer.peerId, data);
    } catch (error) {
      // A lost candidate is survivable (others get through); a lost SDP ends in the connect
      // timeout, which says what to try.
      console.warn('LabBeam: a signaling message was not delivered', error);
    }
  }

  #onConnectionState(state: RTCPeerConnectionState, config: RTCConfiguration): void {
    if (this.finished) return;
    if (state === 'connected') {
      if (this.#disconnectTimer !== null) clearTimeout(this.#disconnectTimer);
      this.#disconnectTimer = null;
      void this.#readPath();
    } else if (state === 'failed') {
      if (this.#openAt === null) this.#end('failed', connectProblem(this.#peer, config, this.#ice), true);
      else this.#onChannelClosed();
    } else if (state === 'disconnected' && this.#disconnectTimer === null) {
      this.#disconnectTimer = setTimeout(() => {
        this.#disconnectTimer = null;
        if (!this.finished && this.#pc?.connectionState !== 'connected') this.#end('failed', lostProblem(this.#peer), true);
      }, DISCONNECT_GRACE_MS);
    }
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

  #useChannel(channel: RTCDataChannel): void {
    if (this.#channel !== null) {
      channel.close();
      return;
    }
    this.#channel = channel;
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('open', () => void this.#onOpen());
    channel.addEventListener('close', () => this.#onChannelClosed());
    channel.addEventListener('message', (event: MessageEvent<string | ArrayBuffer>) => this.#onMessage(event.data));
    if (channel.readyState === 'open') void this.#onOpen();
  }

  async #onOpen(): Promise<void> {
    if (this.finished || this.#openAt !== null) return;
    this.#openAt = Date.now();
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#lastProgressAt = Date.now();
    this.#ticker = setInterval(() => this.#tick(), TICK_MS);
    // The receiver must be ready before this returns to the event loop: the sender's first
    // messages can be dispatched right after `open`, and nothing may be dropped meanwhile.
    if (this.direction === 'receive') this.#startReceiver();
    const pc = this.#pc;
    if (pc !== null) {
      this.#unwatchPath = watchPath(pc, (path) => {
        this.#path = path;
        this.#changed();
      });
    }
    if (this.direction === 'send') await this.#runSender();
  }

  #tick(): void {
    if (this.finished) return;
    const now = Date.now();
    const bytes = this.#bytesDone();
    this.#meter.sample(bytes, now);
    if (bytes !== this.#lastProgressBytes || this.#waitingForNothing()) {
      this.#lastProgressBytes = bytes;
      this.#lastProgressAt = now;
    } else if (now - this.#lastProgressAt > (this.#ctx.stallTimeoutMs ?? STALL_TIMEOUT_MS)) {
      this.#end('failed', problemOf('stalled', `Nothing arrived from ${this.#peer.displayName}’s computer for ${Math.round((now - this.#lastProgressAt) / 1000)} seconds. The connection seems to hang; try sending again.`), true);
      return;
    }
    this.#changed();
  }

  /** True while no bytes are expected (verification of the last file is under way). */
  #waitingForNothing(): boolean {
    return this.#fileState.some((s) => s === 'verifying') && this.#bytesDone() === this.totalBytes;
  }

  // ---- sending ----

  async #runSender(): Promise<void> {
    const channel = this.#channel;
    if (channel === null) return;
    this.#setState('sending');
    const files: OutgoingFile[] = this.#files.map((f, i) => ({ name: f.name, blob: this.#blobs[i] ?? new Blob() }));
    const sender = new FileSender(channel, files, this.#abort.signal, { ...DEFAULT_TUNING, ...this.#ctx.tuning });
    this.#sender = sender;
    this.#fileState = this.#fileState.map(() => 'active');
    try {
      this.#senderDigests = await sender.run();
      this.#fileSha = [...this.#senderDigests];
      this.#fileState = this.#fileState.map((s) => (s === 'active' ? 'verifying' : s));
      this.#changed();
      this.#maybeSenderDone();
    } catch (error) {
      if (this.finished) return;
      if (error instanceof ChannelClosedError) this.#end('failed', lostProblem(this.#peer), true);
      else this.#end('failed', problemOf('read_failed', `Could not read a file on this computer: ${messageOf(error)}. Check the file still exists, then send again.`), true);
    }
  }

  #maybeSenderDone(): void {
    if (this.#senderDigests === null || this.#fileState.some((s) => s === 'active' || s === 'verifying' || s === 'waiting')) return;
    void this.#complete(this.#senderDigests);
  }

  // ---- receiving ----

  #startReceiver(): void {
    this.#setState('receiving');
    const sink = new OpfsSink(this.id);
    this.#sink = sink;
    sink.onError((error) => {
      if (!this.finished) this.#end('failed', problemOf('disk_error', error.message), true);
    });
    const receiver = new FileReceiver(this.#files, sink, {
      verified: (index, ok, stored) => this.#onVerified(index, ok, stored),
    });
    receiver.onSinkError((error) => {
      if (!this.finished) this.#end('failed', problemOf('disk_error', messageOf(error)), true);
    });
    this.#receiver = receiver;
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
        this.#changed();
        this.#maybeSenderDone();
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

  #onChannelClosed(): void {
    if (this.finished || this.#closedAfterDone) return;
    // A cancel from the other side travels behind up to a few MiB of queued chunks, and its
    // connection may close before they arrive; the server's `transfer:cancelled` says why.
    // Wait a moment for it before calling the connection lost.
    setTimeout(() => {
      if (!this.finished) this.#end('failed', lostProblem(this.#peer), true);
    }, EXPLANATION_GRACE_MS);
  }

  #sendControlQuietly(message: Parameters<typeof encodeControl>[0]): void {
    try {
      if (this.#channel?.readyState === 'open') this.#channel.send(encodeControl(message));
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
    this.#abort.abort(new Error(problem?.message ?? state));
    if (this.#ticker !== null) clearInterval(this.#ticker);
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    if (this.#disconnectTimer !== null) clearTimeout(this.#disconnectTimer);
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
    try {
      this.#channel?.close();
    } catch {
      // Already closed.
    }
    this.#pc?.close();
  }

  /** Deletes what this transfer stored (the receiver's files) — when the user dismisses it. */
  async discardStored(): Promise<void> {
    await this.#sink?.dispose();
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

function lostProblem(peer: Peer): TransferProblem {
  return problemOf(
    'connection_lost',
    `The connection to ${peer.displayName}’s computer was lost: the page was closed, or the computer went offline or to sleep. Send the files again when both are online.`,
  );
}
