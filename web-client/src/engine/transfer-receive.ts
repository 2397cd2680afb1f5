/**
 * The receive side of a transfer: the user's answer, a connection that answers the sender's
 * offers (of whichever session the sender opened last), and the files: each chunk goes to the
 * disk (OPFS, opfs.ts) through a `FileReceiver`, each file is verified and answered with
 * `verified`. What both sides share is transfer.ts.
 *
 * On each new channel it speaks first: what it already has, then where to go on (`ready`,
 * framing.ts). After a page reload it starts from the worker's checkpoint (`RestoredReceive`).
 * It never opens a connection itself: after an interruption it waits for the sender's.
 */

import { OpfsSink, removeStored } from './opfs';
import { FileReceiver, type PartialFile, ReceiveError, type StoredFile } from './receiver';
import { type SideMessage, Transfer, type TransferContext, type TransferInit, messageOf, problemOf, signalSession } from './transfer';

/** What a receiver restored after a page reload starts from. */
export interface RestoredReceive {
  readonly verified: readonly ({ readonly ok: boolean; readonly sha256: string } | null)[];
  readonly partial: PartialFile | null;
}

/** The session number before the sender's first signal says which it is. */
const FIRST_SESSION = -1;

export class ReceivingTransfer extends Transfer {
  /** Gives the last `verified` messages time to leave before the connection goes. */
  protected readonly lingerMs = 3000;
  protected readonly retryAdvice = 'Ask the sender to send them again.';
  #receiver: FileReceiver | null = null;
  #sink: OpfsSink | null = null;
  /** Restored after a reload: where it goes on. */
  readonly #restored: RestoredReceive | null;

  constructor(ctx: TransferContext, init: TransferInit & { readonly restored?: { readonly createdAt: number; readonly receive?: RestoredReceive } }) {
    super(ctx, 'receive', init);
    this.awaitingAnswer = init.restored === undefined;
    const r = init.restored?.receive ?? null;
    this.#restored = r;
    r?.verified.forEach((v, i) => {
      if (v !== null) {
        this.fileState[i] = v.ok ? 'done' : 'failed';
        this.fileSha[i] = v.sha256;
      }
    });
  }

  protected bytesMoved(): number {
    if (this.#receiver !== null) return this.#receiver.receivedBytes;
    if (this.#restored !== null) {
      const start = this.#restoredStart();
      return this.files.slice(0, start.index).reduce((n, f) => n + f.size, 0) + (start.partial?.offset ?? 0);
    }
    return 0;
  }

  // ---- the answer ----

  /** The user accepted. */
  async accept(): Promise<void> {
    if (this.state !== 'requested' || !this.awaitingAnswer) return;
    this.awaitingAnswer = false;
    this.markAccepted();
    // The sender starts signaling as soon as it learns of the acceptance, so the connection
    // must be ready for its offer first; signals arriving meanwhile are kept. It adopts the
    // number of the sender's first connection (see onSignal).
    const connecting = this.#connect(FIRST_SESSION);
    try {
      await this.ctx.respond(this.id, true);
    } catch (error) {
      this.end('cancelled', problemOf('accept_failed', `Could not accept: ${messageOf(error)}`), false);
      return;
    }
    await connecting;
  }

  /** The user declined. */
  async decline(): Promise<void> {
    if (this.state !== 'requested' || !this.awaitingAnswer) return;
    this.awaitingAnswer = false;
    this.end('cancelled', problemOf('declined', 'You declined this transfer.'), false);
    try {
      await this.ctx.respond(this.id, false);
    } catch {
      // Expired or cancelled meanwhile: declined all the same.
    }
  }

  onExpired(): void {
    this.end('cancelled', problemOf('expired', 'You did not answer in time, so the request expired. Ask the sender to send again.'), false);
  }

  onConnectionLostBeforeAnswer(): void {
    if (this.finished || this.accepted) return;
    const message = 'The connection to the LabBeam server dropped before you answered, so the request lapsed. Ask the sender to send again.';
    this.end('cancelled', problemOf('request_lapsed', message), false);
  }

  /** A request not answered yet is declined; anything later is cancelled. */
  override cancel(): void {
    if (this.awaitingAnswer && !this.finished) {
      void this.decline();
      return;
    }
    super.cancel();
  }

  // ---- the connection ----

  /** A newer session is the sender's new connection (only it opens them): answer on a new one here. */
  override async onSignal(data: unknown): Promise<void> {
    const session = signalSession(data);
    if (this.finished || session === null) return;
    // The first connection was made before the sender's number was known: it is that one.
    if (this.session === FIRST_SESSION && this.negotiating) this.session = session;
    if (session > this.session) {
      if ((data as { sdp?: { type?: unknown } }).sdp?.type === 'offer') await this.#connect(session, data);
      return;
    }
    await super.onSignal(data);
  }

  /** A connection ready for the sender's `offer` of `session` (kept while the ICE servers are fetched). */
  async #connect(session: number, offer?: unknown): Promise<void> {
    const negotiation = this.beginSession(session, 'answerer');
    if (offer !== undefined) void negotiation.receive(offer);
    let config: RTCConfiguration;
    try {
      config = await this.ctx.rtcConfig();
    } catch (error) {
      if (!this.connectedOnce) this.end('failed', problemOf('no_relay', messageOf(error)), true);
      return;
    }
    if (!this.isCurrent(negotiation)) return;
    const pc = this.newConnection(config);
    pc.addEventListener('datachannel', (event) => this.useChannel(event.channel, pc));
    await negotiation.attach(pc);
  }

  protected opened(channel: RTCDataChannel): void {
    // The receiver must be ready before this returns to the event loop: the sender's first
    // messages can be dispatched right after `open`, and nothing may be dropped meanwhile.
    // It speaks first: what it has, then where to go on.
    const receiver = this.#startReceiver();
    this.fileState.forEach((s, index) => {
      const sha256 = this.fileSha[index];
      if ((s === 'done' || s === 'failed') && sha256 !== null && sha256 !== undefined) {
        this.sendControl({ t: 'verified', index, ok: s === 'done', sha256 }, channel);
      }
    });
    const at = receiver.resumePoint;
    this.sendControl({ t: 'ready', index: at.index, offset: at.offset }, channel);
  }

  // ---- receiving ----

  #restoredStart(): { index: number; partial: PartialFile | null } {
    const r = this.#restored;
    if (r === null) return { index: 0, partial: null };
    let index = r.verified.findIndex((v) => v === null);
    if (index < 0) index = this.files.length;
    const partial = r.partial !== null && r.partial.index === index ? r.partial : null;
    return { index, partial };
  }

  #startReceiver(): FileReceiver {
    if (this.#receiver !== null) return this.#receiver;
    this.setState('receiving');
    const sink = new OpfsSink(this.id);
    this.#sink = sink;
    sink.onError((error) => {
      if (!this.finished) this.end('failed', problemOf('disk_error', error.message), true);
    });
    const receiver = new FileReceiver(
      this.files,
      sink,
      { verified: (index, ok, stored) => this.#onVerified(index, ok, stored) },
      this.#restoredStart(),
    );
    receiver.onSinkError((error) => {
      if (!this.finished) this.end('failed', problemOf('disk_error', messageOf(error)), true);
    });
    this.#receiver = receiver;
    return receiver;
  }

  protected onChunk(data: ArrayBuffer): void {
    if (this.#receiver === null) throw new ReceiveError('protocol', 'Data arrived before the transfer started.');
    const before = this.#receiver.currentIndex;
    this.#receiver.chunk(data);
    if (before !== null && this.fileState[before] === 'waiting') this.fileState[before] = 'active';
  }

  protected onControl(message: SideMessage): void {
    if (message.t === 'verified') return; // only the receiver verifies
    if (message.t === 'ready') throw new ReceiveError('protocol', 'The sender sent a message only a receiver sends.');
    if (this.#receiver === null) throw new ReceiveError('protocol', 'A file arrived before the transfer started.');
    this.#receiver.control(message);
    const i = this.#receiver.currentIndex;
    if (message.t === 'file' && i !== null) this.fileState[i] = 'active';
    if (message.t === 'eof') this.fileState[message.index] = 'verifying';
    this.changed();
  }

  #onVerified(index: number, ok: boolean, stored: StoredFile): void {
    if (this.finished) return;
    this.fileState[index] = ok ? 'done' : 'failed';
    this.fileSha[index] = stored.sha256;
    this.sendControl({ t: 'verified', index, ok, sha256: stored.sha256 });
    this.changed();
    if (ok) this.ctx.fileReady(this, index);
    if (this.fileState.every((s) => s === 'done' || s === 'failed')) {
      void this.complete(this.fileSha.map((s) => s ?? ''));
    }
  }

  // ---- the end ----

  protected ended(state: 'completed' | 'failed' | 'cancelled', keep: readonly number[]): void {
    if (state === 'completed') this.#sink?.release();
    else if (this.#sink !== null) void this.#sink.discard(keep);
    else if (this.#restored !== null) void removeStored(this.id);
  }

  override async discardStored(): Promise<void> {
    if (this.#sink !== null) await this.#sink.dispose();
    else await removeStored(this.id);
  }

  /** The file at `index` is verified and stored, ready to save. */
  isStored(index: number): boolean {
    return this.fileState[index] === 'done' && this.state !== 'cancelled';
  }
}
