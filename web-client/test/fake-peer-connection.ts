// An in-memory stand-in for the signaling side of RTCPeerConnection, for the negotiation tests.
// It keeps the states of the offer/answer exchange and refuses what a browser refuses: an offer
// while it has one of its own out (glare), an answer it did not ask for, a candidate before any
// remote description or for ICE credentials the remote description does not have. Unlike a
// browser it does not queue its own operations: each runs when called and takes its time (a
// description twice `delayMs`, a candidate `delayMs`), so a test sees whether the caller keeps
// them in order.

import type { NegotiatedConnection } from '../src/engine/negotiation';

type State = 'stable' | 'have-local-offer' | 'have-remote-offer';
type CandidateListener = (event: { readonly candidate: { toJSON(): RTCIceCandidateInit } | null }) => void;

let nextUfrag = 1;

/** The ICE username fragment of a description (`a=ice-ufrag:`). */
export function ufragOf(sdp: string | undefined): string | null {
  return /a=ice-ufrag:(\S+)/.exec(sdp ?? '')?.[1] ?? null;
}

export class FakePeerConnection implements NegotiatedConnection {
  signalingState: State = 'stable';
  localDescription: { type: RTCSdpType; sdp: string; toJSON(): RTCSessionDescriptionInit } | null = null;
  remoteDescription: RTCSessionDescriptionInit | null = null;
  /** Every operation, in the order it completed: `local offer`, `remote answer`, `candidate <ufrag>`, … */
  readonly log: string[] = [];
  /** Milliseconds a candidate takes to apply (a description: twice as long). */
  delayMs: number;
  #ufrag = `u${nextUfrag++}`;
  #restartAsked = false;
  /** The remote ufrag the last answer was made for (a new one means an ICE restart). */
  #answeredUfrag: string | null = null;
  readonly #listeners: CandidateListener[] = [];

  constructor(delayMs = 0) {
    this.delayMs = delayMs;
  }

  get ufrag(): string {
    return this.#ufrag;
  }

  async setLocalDescription(): Promise<void> {
    await this.#wait(2);
    let type: RTCSdpType;
    if (this.signalingState === 'have-remote-offer') {
      const remote = ufragOf(this.remoteDescription?.sdp);
      if (this.#answeredUfrag !== null && remote !== this.#answeredUfrag) this.#ufrag = `u${nextUfrag++}`;
      this.#answeredUfrag = remote;
      type = 'answer';
      this.signalingState = 'stable';
    } else {
      if (this.#restartAsked) this.#ufrag = `u${nextUfrag++}`;
      this.#restartAsked = false;
      type = 'offer';
      this.signalingState = 'have-local-offer';
    }
    const sdp = `v=0\r\na=ice-ufrag:${this.#ufrag}\r\n`;
    this.localDescription = { type, sdp, toJSON: () => ({ type, sdp }) };
    this.log.push(`local ${type}`);
  }

  async setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
    await this.#wait(2);
    if (description.type === 'offer' && this.signalingState === 'have-local-offer') {
      throw new DOMException('Called in wrong state: have-local-offer', 'InvalidStateError');
    }
    if (description.type === 'answer' && this.signalingState !== 'have-local-offer') {
      throw new DOMException(`Called in wrong state: ${this.signalingState}`, 'InvalidStateError');
    }
    this.signalingState = description.type === 'offer' ? 'have-remote-offer' : 'stable';
    this.remoteDescription = description;
    this.log.push(`remote ${description.type}`);
  }

  async addIceCandidate(candidate: RTCIceCandidateInit): Promise<void> {
    await this.#wait(1);
    if (this.remoteDescription === null) throw new DOMException('The remote description was null', 'InvalidStateError');
    const remote = ufragOf(this.remoteDescription.sdp);
    if (candidate.usernameFragment != null && candidate.usernameFragment !== remote) {
      throw new DOMException(`Unknown ufrag (${candidate.usernameFragment})`, 'OperationError');
    }
    this.log.push(`candidate ${candidate.usernameFragment ?? '?'}`);
  }

  restartIce(): void {
    this.#restartAsked = true;
  }

  addEventListener(_type: 'icecandidate', listener: CandidateListener): void {
    this.#listeners.push(listener);
  }

  /** ICE found a local candidate (of the current credentials). */
  gather(port = 50000): void {
    const init: RTCIceCandidateInit = { candidate: `candidate:1 1 udp 1 10.0.0.1 ${port} typ host`, sdpMid: '0', usernameFragment: this.#ufrag };
    for (const l of this.#listeners) l({ candidate: { toJSON: () => init } });
  }

  /** ICE finished gathering (the null candidate). */
  endOfCandidates(): void {
    for (const l of this.#listeners) l({ candidate: null });
  }

  #wait(times: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.delayMs * times));
  }
}
