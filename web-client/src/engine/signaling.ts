/**
 * The signaling connection: Socket.IO to the LabBeam server (same origin), carrying presence,
 * the transfer handshake and WebRTC offer/answer/ICE — never file bytes.
 *
 * Owns the socket and the presence list. Authentication is the HttpOnly session cookie, sent
 * by the browser on the same-origin websocket upgrade, so no token is kept here. The server
 * gives a reconnecting device a new peer id and a fresh `presence:snapshot`, which replaces
 * the list wholesale (the server does not recover connection state).
 */

import { io, type Socket } from 'socket.io-client';

import { Emitter } from './emitter';
import {
  type Announcement,
  type CancelNotice,
  type FileMeta,
  type FinishReport,
  type IncomingRequest,
  type Peer,
  type SignalMessage,
  SignalingError,
  checkAck,
  decodeAnnouncement,
  decodeCancel,
  decodeIncoming,
  decodePeer,
  decodeSignal,
  decodeTransferId,
  isRecord,
} from './protocol';

export type ConnectionState =
  | { readonly kind: 'connecting' }
  | { readonly kind: 'connected' }
  | { readonly kind: 'reconnecting' }
  /** Refused for good (`unauthenticated`, `session_revoked`, …): sign in again. */
  | { readonly kind: 'refused'; readonly code: string };

export interface SignalingEvents {
  connection: ConnectionState;
  /** The whole presence list changed (snapshot, join or leave). */
  presence: { self: Peer | null; peers: readonly Peer[] };
  incoming: IncomingRequest;
  accepted: string;
  declined: string;
  expired: string;
  cancelled: CancelNotice;
  signal: SignalMessage;
  announcement: Announcement;
}

export interface SignalingOptions {
  device: string;
  lab?: string | undefined;
  /** Default: the page's own origin. */
  url?: string;
  ackTimeoutMs?: number;
}

/** Connection refusals that no retry will fix. */
const FINAL_REFUSALS = new Set([
  'unauthenticated',
  'invalid_token',
  'session_expired',
  'session_revoked',
  'account_disabled',
  'password_change_required',
]);

export class SignalingClient extends Emitter<SignalingEvents> {
  readonly #socket: Socket;
  readonly #ackTimeoutMs: number;
  #self: Peer | null = null;
  #peers = new Map<string, Peer>();

  constructor(options: SignalingOptions) {
    super();
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    const auth: Record<string, string> = { device: options.device };
    if (options.lab !== undefined && options.lab !== '') auth['lab'] = options.lab;
    const opts = { transports: ['websocket'], auth, withCredentials: true, autoConnect: false };
    this.#socket = options.url === undefined ? io(opts) : io(options.url, opts);
    this.#wire();
  }

  get self(): Peer | null {
    return this.#self;
  }

  get peers(): readonly Peer[] {
    return [...this.#peers.values()];
  }

  peer(peerId: string): Peer | undefined {
    return this.#peers.get(peerId);
  }

  get connected(): boolean {
    return this.#socket.connected;
  }

  connect(): void {
    this.emit('connection', { kind: 'connecting' });
    this.#socket.connect();
  }

  close(): void {
    this.#socket.close();
    this.removeAllListeners();
  }

  /** Asks `to` to accept `files`; resolves with the transfer id. */
  async request(to: string, files: readonly FileMeta[]): Promise<string> {
    const ack = await this.#call('transfer:request', { to, files });
    const id = ack['transferId'];
    if (typeof id !== 'string') throw new SignalingError('unexpected_response', 'The server sent no transfer id.');
    return id;
  }

  async respond(transferId: string, accept: boolean): Promise<void> {
    await this.#call('transfer:respond', { transferId, accept });
  }

  async signal(transferId: string, to: string, data: unknown): Promise<void> {
    await this.#call('signal', { transferId, to, data });
  }

  async finish(report: FinishReport): Promise<void> {
    await this.#call('transfer:finish', report);
  }

  /** Any client→server event with its ack (broadcast.ts uses this for its events). */
  async call(event: string, payload: unknown): Promise<Record<string, unknown>> {
    return this.#call(event, payload);
  }

  /** Listens to a server event by name (payloads are `unknown`: decode them). */
  listen(event: string, handler: (v: unknown) => void): void {
    this.#socket.on(event, handler);
  }

  async #call(event: string, payload: unknown): Promise<Record<string, unknown>> {
    if (!this.#socket.connected) {
      throw new SignalingError('not_connected', 'Not connected to the LabBeam server right now. Wait for it to reconnect, then try again.');
    }
    let ack: unknown;
    try {
      ack = await this.#socket.timeout(this.#ackTimeoutMs).emitWithAck(event, payload);
    } catch {
      throw new SignalingError('timeout', 'The LabBeam server did not answer in time. Try again.');
    }
    return checkAck(ack);
  }

  #wire(): void {
    const s = this.#socket;
    s.on('connect', () => this.emit('connection', { kind: 'connected' }));
    s.on('disconnect', (reason) => {
      // The server drops sockets of ended sessions; the client would otherwise retry forever.
      if (reason === 'io server disconnect') {
        this.emit('connection', { kind: 'refused', code: 'session_revoked' });
        return;
      }
      this.emit('connection', { kind: 'reconnecting' });
    });
    s.on('connect_error', (error: Error & { data?: unknown }) => {
      const code = isRecord(error.data) && typeof error.data['code'] === 'string' ? error.data['code'] : error.message;
      if (FINAL_REFUSALS.has(code)) {
        s.close();
        this.emit('connection', { kind: 'refused', code });
      } else {
        this.emit('connection', { kind: 'reconnecting' });
      }
    });
    s.on('presence:snapshot', (v: unknown) => {
      if (!isRecord(v)) return;
      this.#self = decodePeer(v['self']);
      this.#peers = new Map();
      for (const p of Array.isArray(v['peers']) ? v['peers'] : []) {
        const peer = decodePeer(p);
        if (peer !== null) this.#peers.set(peer.peerId, peer);
      }
      this.#presenceChanged();
    });
    s.on('presence:joined', (v: unknown) => {
      const peer = decodePeer(v);
      if (peer === null || peer.peerId === this.#self?.peerId) return;
      this.#peers.set(peer.peerId, peer);
      this.#presenceChanged();
    });
    s.on('presence:left', (v: unknown) => {
      if (isRecord(v) && typeof v['peerId'] === 'string' && this.#peers.delete(v['peerId'])) this.#presenceChanged();
    });
    s.on('transfer:incoming', (v: unknown) => {
      const r = decodeIncoming(v);
      if (r !== null) this.emit('incoming', r);
    });
    for (const [event, name] of [
      ['transfer:accepted', 'accepted'],
      ['transfer:declined', 'declined'],
      ['transfer:expired', 'expired'],
    ] as const) {
      s.on(event, (v: unknown) => {
        const id = decodeTransferId(v);
        if (id !== null) this.emit(name, id);
      });
    }
    s.on('transfer:cancelled', (v: unknown) => {
      const c = decodeCancel(v);
      if (c !== null) this.emit('cancelled', c);
    });
    s.on('signal', (v: unknown) => {
      const m = decodeSignal(v);
      if (m !== null) this.emit('signal', m);
    });
    s.on('announcement', (v: unknown) => {
      const a = decodeAnnouncement(v);
      if (a !== null) this.emit('announcement', a);
    });
  }

  #presenceChanged(): void {
    this.emit('presence', { self: this.#self, peers: this.peers });
  }
}
