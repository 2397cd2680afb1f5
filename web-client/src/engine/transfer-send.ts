/**
 * The send side of a transfer: it connects (it makes every offer and numbers the sessions),
 * reconnects after an interruption, and sends the files from where the receiver says it is
 * (`ready`, framing.ts). What both sides share is transfer.ts.
 *
 * After an interruption it tries an ICE restart first while the connection survives, then a
 * new connection as soon as the other side can be reached, with backoff. A sender restored
 * after a page reload has lost its `File`s: it waits until the same files are picked again.
 */

import { ChannelClosedError } from './channel';
import type { Peer } from './protocol';
import { ReceiveError } from './receiver';
import { DEFAULT_TUNING, FileSender, type OutgoingFile, type StartPoint } from './sender';
import { type FileState, type SideMessage, Transfer, type TransferContext, type TransferInit, messageOf, problemOf } from './transfer';

/** How long ICE stays `disconnected` before the sender tries an ICE restart. */
const ICE_RESTART_AFTER_MS = 2_500;
/** Backoff between reconnection attempts. */
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 15_000;

export class SendingTransfer extends Transfer {
  protected readonly lingerMs = 200;
  protected readonly retryAdvice = 'Use “Retry failed files” to send just those again.';
  #blobs: readonly Blob[];
  #needsFiles: boolean;
  #sender: FileSender | null = null;
  /** The channel the current sender run sends on (one run per channel). */
  #senderChannel: RTCDataChannel | null = null;
  /** File bytes handed to earlier connections. */
  #wirePast = 0;
  /** The digests of the last run, once it sent every file; completion waits for `verified`. */
  #digests: (string | null)[] | null = null;
  #reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #reconnectAttempts = 0;
  #restartTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(ctx: TransferContext, init: TransferInit & { readonly blobs?: readonly Blob[] }) {
    super(ctx, 'send', init);
    this.#blobs = init.blobs ?? [];
    this.#needsFiles = init.restored !== undefined && this.#blobs.length !== init.files.length;
  }

  /** The sender's own blobs, for a retry. */
  get blobs(): readonly Blob[] {
    return this.#blobs;
  }

  protected override get needsFiles(): boolean {
    return this.#needsFiles;
  }

  protected override get wireBytes(): number {
    return this.#wirePast + (this.#sender?.queuedBytes ?? 0);
  }

  protected bytesMoved(): number {
    return this.#sender?.sentBytes ?? 0;
  }

  /** All files are marked active at once; show them as waiting / sent by their bytes. */
  protected override shownFileState(i: number, bytes: number): FileState {
    const state = this.fileState[i] ?? 'waiting';
    const size = this.files[i]?.size ?? 0;
    if (state !== 'active') return state;
    if (bytes === 0 && size > 0) return 'waiting';
    return bytes >= size ? 'verifying' : 'active';
  }

  // ---- the handshake ----

  /** The receiver accepted; connect and send. */
  onAccepted(): void {
    if (this.state !== 'requested') return;
    this.markAccepted();
    void this.#openSession();
  }

  /** The receiver declined. */
  onDeclined(): void {
    this.end('cancelled', problemOf('declined', `${this.peer.displayName} declined the transfer.`), false);
  }

  onExpired(): void {
    this.end('cancelled', problemOf('expired', `${this.peer.displayName} did not answer in time. Send again when they are at their computer.`), false);
  }

  onConnectionLostBeforeAnswer(): void {
    if (this.finished || this.accepted) return;
    const message = 'The connection to the LabBeam server dropped before an answer came, so the request was withdrawn. Send it again.';
    this.end('cancelled', problemOf('request_lapsed', message), false);
  }

  /** Both sides hold the transfer again: reconnect if the connection was lost. */
  override onPeerResumed(peer: Peer): void {
    super.onPeerResumed(peer);
    if (this.finished) return;
    this.#reconnectAttempts = 0;
    this.#kickReconnect();
  }

  override onReclaimed(peer: Peer | null): void {
    super.onReclaimed(peer);
    if (peer !== null) this.#kickReconnect();
  }

  /** Restored after a reload: the same files, picked again (checked by name and size). */
  provideFiles(blobs: readonly { name: string; blob: Blob }[]): void {
    if (!this.#needsFiles || this.finished) return;
    const picked = [...blobs];
    const matched: Blob[] = [];
    for (const f of this.files) {
      const base = f.name.split('/').pop() ?? f.name;
      const i = picked.findIndex((p) => (p.name === f.name || p.name.split('/').pop() === base) && p.blob.size === f.size);
      if (i < 0) throw new Error(`“${f.name}” (${f.size} bytes) is not among the picked files. Pick the same files as before.`);
      matched.push(picked[i]?.blob ?? new Blob());
      picked.splice(i, 1);
    }
    this.#blobs = matched;
    this.#needsFiles = false;
    this.#kickReconnect();
    this.changed();
  }

  // ---- the connection ----

  /** A new connection (the first, or after an interruption). */
  async #openSession(): Promise<void> {
    if (this.finished) return;
    // Numbers only grow, also across a reload of this page (the receiver may still be on an
    // earlier connection of ours): the clock, or one more than the last.
    const negotiation = this.beginSession(Math.max(this.session + 1, Date.now()), 'offerer');
    let config: RTCConfiguration;
    try {
      config = await this.ctx.rtcConfig();
    } catch (error) {
      if (!this.connectedOnce) this.end('failed', problemOf('no_relay', messageOf(error)), true);
      else this.lost();
      return;
    }
    if (!this.isCurrent(negotiation)) return;
    const pc = this.newConnection(config);
    this.useChannel(pc.createDataChannel('labbeam-files', { ordered: true }), pc);
    void negotiation.attach(pc);
    try {
      await negotiation.offer();
    } catch (error) {
      if (this.isCurrent(negotiation)) this.setupFailed(error);
    }
  }

  protected opened(): void {
    this.#reconnectAttempts = 0;
    // Nothing is sent before the receiver's `ready` says from where.
    this.setState('sending');
  }

  /** Tries an ICE restart meanwhile (new candidates over the same connection). */
  protected override iceDisconnected(pc: RTCPeerConnection): void {
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.isCurrentConnection(pc) && pc.connectionState !== 'connected') void this.#restartIce();
    }, ICE_RESTART_AFTER_MS);
  }

  /** The sender gives a connection up when ICE does not come back: it makes a new one. */
  protected override iceGone(): void {
    this.lost();
  }

  protected override stopDisconnectTimers(): void {
    super.stopDisconnectTimers();
    if (this.#restartTimer !== null) clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
  }

  async #restartIce(): Promise<void> {
    if (this.finished || !this.ctx.online(this.id) || this.peerAway) return;
    try {
      await this.restartIce();
    } catch {
      // The disconnect timer gives the connection up and opens a new one.
    }
  }

  // ---- interruptions ----

  protected override interrupted(): void {
    this.#scheduleReconnect();
  }

  /** Reconnects now if it can (the other side is there, the files are at hand). */
  #kickReconnect(): void {
    if (!this.suspended || this.finished) return;
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
    if (!this.suspended || this.finished || this.#needsFiles) return;
    if (!this.ctx.online(this.id) || this.peerAway) {
      // Signaling (ours or theirs) is away: `onReclaimed`/`onPeerResumed` kick again; poll
      // meanwhile in case the news was missed.
      this.#scheduleReconnect();
      return;
    }
    this.#reconnectAttempts += 1;
    // A connection that does not open is given up by its connect timer (→ lost → retry).
    void this.#openSession();
  }

  // ---- sending ----

  protected onChunk(): void {
    throw new ReceiveError('protocol', 'The receiver sent file data, which only a sender sends.');
  }

  protected onControl(message: SideMessage): void {
    if (message.t === 'verified') {
      if (this.fileState[message.index] === undefined) return;
      this.fileState[message.index] = message.ok ? 'done' : 'failed';
      this.fileSha[message.index] = message.sha256;
      this.changed();
      this.#maybeDone();
    } else if (message.t === 'ready') {
      const files = this.files;
      if (message.index > files.length || (message.index < files.length && message.offset > (files[message.index]?.size ?? 0))) {
        throw new ReceiveError('protocol', 'The receiver asked to go on from a point past the end of the files.');
      }
      void this.#run({ index: message.index, offset: message.offset });
    } else {
      throw new ReceiveError('protocol', 'The receiver sent a message only a sender sends.');
    }
  }

  /** Sends from `start` on the current channel (one run per channel). */
  async #run(start: StartPoint): Promise<void> {
    const channel = this.channel;
    if (channel === null || this.#senderChannel === channel) return;
    this.#senderChannel = channel;
    if (this.#sender !== null) this.#wirePast += this.#sender.queuedBytes;
    const files: OutgoingFile[] = this.files.map((f, i) => ({ name: f.name, blob: this.#blobs[i] ?? new Blob() }));
    const abort = this.connectionSignal;
    const sender = new FileSender(channel, files, anySignal(this.endSignal, abort), { ...DEFAULT_TUNING, ...this.ctx.tuning }, start);
    this.#sender = sender;
    this.fileState = this.fileState.map((s, i) => (i >= start.index && s !== 'done' && s !== 'failed' ? 'active' : s));
    try {
      const digests = await sender.run();
      if (this.finished || channel !== this.channel) return;
      this.#digests = digests.map((d, i) => d ?? this.fileSha[i] ?? null);
      this.fileSha = [...this.#digests];
      this.fileState = this.fileState.map((s) => (s === 'active' ? 'verifying' : s));
      this.changed();
      this.#maybeDone();
    } catch (error) {
      if (this.finished || channel !== this.channel) return; // a connection already given up
      if (abort.aborted || error instanceof ChannelClosedError) {
        this.lost();
        return;
      }
      this.end('failed', problemOf('read_failed', `Could not read a file on this computer: ${messageOf(error)}. Check the file still exists, then send again.`), true);
    }
  }

  /** Completes once every file was sent and the receiver verified (or failed) each. */
  #maybeDone(): void {
    if (this.#digests === null || this.fileState.some((s) => s === 'active' || s === 'verifying' || s === 'waiting')) return;
    void this.complete(this.#digests.map((d, i) => d ?? this.fileSha[i] ?? ''));
  }

  protected ended(): void {
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
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
