/**
 * The offer/answer exchange of one RTCPeerConnection, shared by transfers (transfer.ts) and
 * the links of a broadcast's relay tree (broadcast-link.ts): who offers, what is done with
 * each description and candidate the other side sends, and in which order.
 *
 * Roles are fixed: the side that creates the data channel is the *offerer* (a transfer's
 * sender, a broadcast link's parent) and makes every offer, the first one and those of an ICE
 * restart; the other side only answers. So two LabBeam browsers never offer at once, and an
 * offer that reaches the offerer anyway (a stale or foreign message: "glare") is ignored —
 * its own offer stands. Likewise the answerer ignores answers.
 *
 * Signals may come before the connection exists (the answerer is still fetching its ICE
 * servers when the offer arrives): they wait, in order, until `attach`. Candidates may come
 * before the remote description: they wait until it is set. Every operation on the
 * connection — applying what arrived, making an offer — runs one after the other, in the
 * order it was asked for, so a candidate never overtakes the description it belongs to.
 *
 * What is sent is `{sdp}` or `{candidate}`; the owner adds its own fields (a transfer's
 * session number) and delivers it. What the owner does about a failure is its business:
 * `failed` is told when something the other side sent cannot be applied; `offer`/`restart`
 * reject. After `close` nothing is applied, sent or reported any more.
 */

export type NegotiationRole = 'offerer' | 'answerer';

/** What one side sends the other through signaling. */
export type NegotiationMessage = { readonly sdp: RTCSessionDescriptionInit } | { readonly candidate: RTCIceCandidateInit };

/** The part of `RTCPeerConnection` a negotiation drives (a fake one in unit tests). */
export interface NegotiatedConnection {
  readonly localDescription: { toJSON(): RTCSessionDescriptionInit } | null;
  setLocalDescription(): Promise<void>;
  setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void>;
  addIceCandidate(candidate: RTCIceCandidateInit): Promise<void>;
  restartIce(): void;
  addEventListener(type: 'icecandidate', listener: (event: { readonly candidate: { toJSON(): RTCIceCandidateInit } | null }) => void): void;
}

export interface NegotiationPort {
  /** Delivers a message to the other side (its failures are the owner's to handle). */
  send(message: NegotiationMessage): void;
  /** A description or candidate from the other side could not be applied. */
  failed(error: unknown): void;
  /** Each well-formed message from the other side, as it is taken up (e.g. ICE diagnosis). */
  heard?(data: unknown): void;
}

export class Negotiation {
  readonly role: NegotiationRole;
  readonly #port: NegotiationPort;
  #pc: NegotiatedConnection | null = null;
  /** Signals that arrived before `attach`. */
  #early: unknown[] = [];
  /** Candidates that arrived before the first remote description. */
  #pending: RTCIceCandidateInit[] = [];
  #remoteSet = false;
  #closed = false;
  /** The tail of the operations on the connection: each waits for the one before. */
  #queue: Promise<void> = Promise.resolve();

  constructor(role: NegotiationRole, port: NegotiationPort) {
    this.role = role;
    this.#port = port;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The connection to negotiate, once it exists: its candidates are sent from now on, and the
   * signals that came before are applied, in order. Resolves when they have been.
   */
  attach(pc: NegotiatedConnection): Promise<void> {
    if (this.#closed || this.#pc !== null) return this.#queue;
    this.#pc = pc;
    pc.addEventListener('icecandidate', (event) => {
      if (event.candidate !== null && !this.#closed) this.#port.send({ candidate: event.candidate.toJSON() });
    });
    for (const data of this.#early.splice(0)) void this.receive(data);
    return this.#queue;
  }

  /** Offerer: makes an offer and sends it (the first one, or after `restartIce`). */
  offer(): Promise<void> {
    if (this.role !== 'offerer') return Promise.reject(new Error('Only the offerer makes offers.'));
    return this.#run(async (pc) => {
      await pc.setLocalDescription();
      this.#sendDescription(pc);
    });
  }

  /** Offerer: new ICE credentials over the same connection (its channel survives). */
  restart(): Promise<void> {
    if (this.role !== 'offerer') return Promise.reject(new Error('Only the offerer restarts ICE.'));
    return this.#run(async (pc) => {
      pc.restartIce();
      await pc.setLocalDescription();
      this.#sendDescription(pc);
    });
  }

  /** A signal from the other side: `{sdp}` or `{candidate}` (other fields are ignored). */
  receive(data: unknown): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#pc === null) {
      this.#early.push(data);
      return Promise.resolve();
    }
    const message = parseMessage(data);
    if (message === null) return this.#queue;
    return this.#run((pc) => this.#apply(pc, message, data)).catch((error: unknown) => {
      if (!this.#closed) this.#port.failed(error);
    });
  }

  /** Stops: nothing more is applied, sent or reported. */
  close(): void {
    this.#closed = true;
    this.#early = [];
    this.#pending = [];
  }

  async #apply(pc: NegotiatedConnection, message: NegotiationMessage, data: unknown): Promise<void> {
    this.#port.heard?.(data);
    if ('candidate' in message) {
      if (this.#remoteSet) await pc.addIceCandidate(message.candidate);
      else this.#pending.push(message.candidate);
      return;
    }
    const type = message.sdp.type;
    // Glare, or a stray message: each role takes only the other role's kind of description.
    if (type !== (this.role === 'offerer' ? 'answer' : 'offer')) return;
    await pc.setRemoteDescription(message.sdp);
    this.#remoteSet = true;
    for (const c of this.#pending.splice(0)) {
      if (this.#closed) return;
      await pc.addIceCandidate(c);
    }
    if (type === 'offer' && !this.#closed) {
      await pc.setLocalDescription();
      this.#sendDescription(pc);
    }
  }

  #sendDescription(pc: NegotiatedConnection): void {
    const sdp = pc.localDescription?.toJSON();
    if (sdp !== undefined && !this.#closed) this.#port.send({ sdp });
  }

  /** Queues `op` behind the operations asked for before it; rejects with its error. */
  #run(op: (pc: NegotiatedConnection) => Promise<void>): Promise<void> {
    const pc = this.#pc;
    if (pc === null) return Promise.reject(new Error('No connection to negotiate yet.'));
    const result = this.#queue.then(() => (this.#closed ? undefined : op(pc)));
    this.#queue = result.catch(() => {});
    return result;
  }
}

/** `{sdp: {type: offer|answer, …}}` or `{candidate: {…}}`; null for anything else. */
function parseMessage(data: unknown): NegotiationMessage | null {
  if (typeof data !== 'object' || data === null) return null;
  const { sdp, candidate } = data as { sdp?: unknown; candidate?: unknown };
  if (typeof sdp === 'object' && sdp !== null) {
    const type = (sdp as { type?: unknown }).type;
    return type === 'offer' || type === 'answer' ? { sdp: sdp as RTCSessionDescriptionInit } : null;
  }
  if (typeof candidate === 'object' && candidate !== null) return { candidate: candidate as RTCIceCandidateInit };
  return null;
}
