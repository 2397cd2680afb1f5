/**
 * One edge of a broadcast's relay tree: an RTCPeerConnection and its data channel between a
 * parent (which makes the offer and the channel) and a child. Signaling goes through the
 * server's `signal` event with the link id as the transfer id; the server relays it only
 * between the link's two ends, and only while the link is current. The offer/answer exchange
 * itself is negotiation.ts, as for a transfer.
 */

import { Negotiation, type NegotiationMessage } from './negotiation';

export type LinkRole = 'parent' | 'child';

export interface LinkContext {
  rtcConfig(): Promise<RTCConfiguration>;
  signal(linkId: string, to: string, data: unknown): Promise<void>;
}

export interface LinkHandlers {
  open(channel: RTCDataChannel): void;
  message(data: string | ArrayBuffer): void;
  /** The connection could not be made or was lost (not called after `close()`). */
  lost(why: string): void;
}

const CONNECT_TIMEOUT_MS = 30_000;
const DISCONNECT_GRACE_MS = 6_000;

export class BroadcastLink {
  readonly id: string;
  readonly role: LinkRole;
  readonly peerId: string;
  readonly #ctx: LinkContext;
  readonly #on: LinkHandlers;
  readonly #negotiation: Negotiation;
  #pc: RTCPeerConnection | null = null;
  #channel: RTCDataChannel | null = null;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(init: { id: string; role: LinkRole; peerId: string }, ctx: LinkContext, on: LinkHandlers) {
    this.id = init.id;
    this.role = init.role;
    this.peerId = init.peerId;
    this.#ctx = ctx;
    this.#on = on;
    this.#negotiation = new Negotiation(init.role === 'parent' ? 'offerer' : 'answerer', {
      send: (message) => void this.#send(message),
      failed: (error) => console.warn('LabBeam: a broadcast signaling message failed', error),
    });
  }

  get channel(): RTCDataChannel | null {
    return this.#channel;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async connect(): Promise<void> {
    let config: RTCConfiguration;
    try {
      config = await this.#ctx.rtcConfig();
    } catch (error) {
      this.#lose(`no connection settings: ${String(error)}`);
      return;
    }
    if (this.#closed) return;
    const pc = new RTCPeerConnection(config);
    this.#pc = pc;
    this.#timer = setTimeout(() => {
      if (this.#channel?.readyState !== 'open') this.#lose('the connection could not be made in time');
    }, CONNECT_TIMEOUT_MS);
    let grace: ReturnType<typeof setTimeout> | null = null;
    pc.addEventListener('connectionstatechange', () => {
      const s = pc.connectionState;
      if (s === 'failed') this.#lose('the connection failed');
      else if (s === 'disconnected' && grace === null) {
        grace = setTimeout(() => {
          grace = null;
          if (pc.connectionState !== 'connected') this.#lose('the connection was lost');
        }, DISCONNECT_GRACE_MS);
      } else if (s === 'connected' && grace !== null) {
        clearTimeout(grace);
        grace = null;
      }
    });
    if (this.role === 'parent') {
      this.#use(pc.createDataChannel('labbeam-broadcast', { ordered: true }));
      void this.#negotiation.attach(pc);
      try {
        await this.#negotiation.offer();
      } catch {
        this.#lose('the connection could not be set up');
      }
    } else {
      pc.addEventListener('datachannel', (e) => this.#use(e.channel));
      await this.#negotiation.attach(pc);
    }
  }

  /** A description or candidate from the other end (kept until the connection exists). */
  async onSignal(data: unknown): Promise<void> {
    if (this.#closed) return;
    await this.#negotiation.receive(data);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#negotiation.close();
    if (this.#timer !== null) clearTimeout(this.#timer);
    try {
      this.#channel?.close();
    } catch {
      // Already closed.
    }
    this.#pc?.close();
  }

  #use(channel: RTCDataChannel): void {
    if (this.#channel !== null) {
      channel.close();
      return;
    }
    this.#channel = channel;
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('open', () => {
      if (this.#timer !== null) clearTimeout(this.#timer);
      if (!this.#closed) this.#on.open(channel);
    });
    channel.addEventListener('message', (e: MessageEvent<string | ArrayBuffer>) => {
      if (!this.#closed) this.#on.message(e.data);
    });
    channel.addEventListener('close', () => this.#lose('the other computer closed the connection'));
  }

  #lose(why: string): void {
    if (this.#closed) return;
    this.close();
    this.#on.lost(why);
  }

  async #send(data: NegotiationMessage): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#ctx.signal(this.id, this.peerId, data);
    } catch (error) {
      // A link replaced or ended meanwhile (`unknown_transfer`): nothing to deliver to.
      console.debug('LabBeam: a broadcast signaling message was not delivered', error);
    }
  }
}
