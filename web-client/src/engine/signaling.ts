/**
 * The signaling connection: Socket.IO to the LabBeam server (same origin), carrying presence,
 * the transfer handshake and WebRTC offer/answer/ICE — never file bytes.
 *
 * Owns the socket and the presence list. Authentication is the HttpOnly session cookie, sent
 * by the browser on the same-origin websocket upgrade, so no token is kept here. The server
 * gives a reconnecting device a new peer id and a fresh `presence:snapshot`, which replaces
 * the list wholesale (the server does not recover connection state): the engine then
 * re-claims its transfers (`transfer:resume`), identified as the same device by `deviceId`.
 * While the connection is down the list is what was known when it was lost: nobody's
 * leaving reaches this page then, so the list is reported as not `live` until that snapshot.
 *
 * Reconnection is socket.io-client's, configured explicitly: exponential backoff from 0.5 s
 * to 10 s with ±50 % jitter, without end. A server that closes the connection itself
 * (`io server disconnect`, e.g. when it shuts down) is retried once by hand: a revoked session
 * then gets its final `connect_error`. A refusal because the user has too many devices (or this
 * browser too many tabs) connected is retried by hand every ~15 s, until there is room; one
 * because the server's database is away for a moment (`store_unavailable`) every ~3 s.
 */

import { io, type Socket } from 'socket.io-client';

import { Emitter } from './emitter';
import {
  type Announcement,
  type CancelNotice,
  type ExamState,
  type FileMeta,
  type FinishReport,
  type IncomingRequest,
  type LabPolicyChange,
  type LabPolicyState,
  type PartInfo,
  type Peer,
  type SignalMessage,
  type TextInfo,
  SignalingError,
  checkAck,
  decodeAnnouncement,
  decodeCancel,
  decodeExamState,
  decodeIncoming,
  decodeLabPolicy,
  decodePeer,
  decodeSignal,
  decodeTransferId,
  isRecord,
} from './protocol';

/** socket.io-client's reconnection, set explicitly (see above). */
export const RECONNECTION = {
  reconnection: true,
  reconnectionAttempts: Infinity,
  reconnectionDelay: 500,
  reconnectionDelayMax: 10_000,
  randomizationFactor: 0.5,
} as const;

/** `transfer:resume`'s ack. */
export interface ResumeAck {
  readonly role: 'sender' | 'receiver';
  readonly files: readonly FileMeta[];
  /** The other side, or `null` while it is away. */
  readonly peer: Peer | null;
}

export type ConnectionState =
  | { readonly kind: 'connecting' }
  | { readonly kind: 'connected' }
  | { readonly kind: 'reconnecting' }
  /** Refused for good (`unauthenticated`, `session_revoked`, …): sign in again. */
  | { readonly kind: 'refused'; readonly code: string }
  /** Refused for now: the user has too many devices connected (`too_many_devices`) or this device too many tabs (`too_many_connections`); retried by itself. */
  | { readonly kind: 'crowded'; readonly code: string };

export interface SignalingEvents {
  connection: ConnectionState;
  /**
   * The whole presence list changed (snapshot, join or leave), or stopped being `live`: the
   * connection was lost, and the list is who was online then, until the next snapshot.
   */
  presence: Presence;
  incoming: IncomingRequest;
  accepted: string;
  declined: string;
  expired: string;
  cancelled: CancelNotice;
  signal: SignalMessage;
  announcement: Announcement;
  /** An announcement was withdrawn before it ended (its id). */
  announcementWithdrawn: string;
  /** This device's lab's exam mode, from each snapshot and when it changes (`exam:state`). */
  exam: ExamState;
  /** The other side of a transfer lost its signaling connection (`peerId`: its old id). */
  paused: { transferId: string; peerId: string };
  /** Both sides hold the transfer again; `peer` is the other side's current device. */
  resumed: { transferId: string; peer: Peer };
}

export interface Presence {
  readonly self: Peer | null;
  readonly peers: readonly Peer[];
  /** False while the connection is down (or not yet up): `peers` may have left since. */
  readonly live: boolean;
}

export interface SignalingOptions {
  /** The name the user gave this device; '' for none (the server names it). */
  device: string;
  /** This browser's own id (resume-store.ts), so it can re-claim its transfers. */
  deviceId?: string;
  lab?: string | undefined;
  /** Default: the page's own origin. */
  url?: string;
  ackTimeoutMs?: number;
}

/** Refusals that last until one of the user's other connections closes. */
const CROWDED = new Set(['too_many_devices', 'too_many_connections']);
/** How long a crowded-out connection waits before it tries again (±50 %). */
export const CROWDED_RETRY_MS = 15_000;
/** Refusals of a moment: the server's database is away (a restart); retried by itself. */
const TRANSIENT = new Set(['store_unavailable']);
/** How long a connection refused for a moment waits before it tries again (±50 %). */
export const TRANSIENT_RETRY_MS = 3_000;

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
  /** The list came from the current connection's snapshot. */
  #live = false;
  #graceSecs = 900;
  #closed = false;
  #crowdedRetry: ReturnType<typeof setTimeout> | null = null;

  constructor(options: SignalingOptions) {
    super();
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    const auth: Record<string, string> = {};
    if (options.device !== '') auth['device'] = options.device;
    if (options.lab !== undefined && options.lab !== '') auth['lab'] = options.lab;
    if (options.deviceId !== undefined) auth['deviceId'] = options.deviceId;
    const opts = { transports: ['websocket'], auth, withCredentials: true, autoConnect: false, timeout: 10_000, ...RECONNECTION };
    this.#socket = options.url === undefined ? io(opts) : io(options.url, opts);
    this.#wire();
  }

  get self(): Peer | null {
    return this.#self;
  }

  get peers(): readonly Peer[] {
    return [...this.#peers.values()];
  }

  /** Whether `peers` is current (see `Presence.live`). */
  get presenceLive(): boolean {
    return this.#live;
  }

  peer(peerId: string): Peer | undefined {
    return this.#peers.get(peerId);
  }

  get connected(): boolean {
    return this.#socket.connected;
  }

  /** The server's resume grace period (seconds), from the last snapshot. */
  get resumeGraceSecs(): number {
    return this.#graceSecs;
  }

  /**
   * Drops the signaling connection as a network fault would (the transport closes) and lets
   * the normal reconnection bring it back. For fault-injection tests.
   */
  dropConnection(): void {
    this.#socket.io.engine?.close();
  }

  connect(): void {
    this.emit('connection', { kind: 'connecting' });
    this.#socket.connect();
  }

  close(): void {
    this.#closed = true;
    if (this.#crowdedRetry !== null) clearTimeout(this.#crowdedRetry);
    this.#socket.close();
    this.removeAllListeners();
  }

  /** Asks `to` to accept `files` (`part` of a larger send); resolves with the transfer id. */
  async request(to: string, files: readonly FileMeta[], part: PartInfo | null = null): Promise<string> {
    const ack = await this.#call('transfer:request', part === null ? { to, files } : { to, files, part });
    const id = ack['transferId'];
    if (typeof id !== 'string') throw new SignalingError('unexpected_response', 'The server sent no transfer id.');
    return id;
  }

  /** `transfer:request` for a text: only its size and length go to the server. */
  async requestText(to: string, text: TextInfo): Promise<string> {
    const ack = await this.#call('transfer:request', { to, text: { bytes: text.bytes, chars: text.chars } });
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

  /** Re-claims this device's side of a transfer (after a reconnection or a reload). */
  /** Announces `text` to a lab or to every lab for `ttlSecs`; resolves with its id. */
  async announce(text: string, target: { lab: string } | { all: true }, ttlSecs: number): Promise<string> {
    const ack = await this.#call('announce', { text, target, ttlSecs });
    const id = ack['id'];
    if (typeof id !== 'number') throw new SignalingError('unexpected_response', 'The server did not say which announcement it made.');
    return String(id);
  }

  /** Ends an announcement now, on every screen that shows it. */
  async withdrawAnnouncement(id: string): Promise<void> {
    await this.#call('announce:withdraw', { id: Number(id) });
  }

  /** The labs whose policies this user may set (`lab:policies`), by name. */
  async labPolicies(): Promise<LabPolicyState[]> {
    const ack = await this.#call('lab:policies', {});
    const labs = Array.isArray(ack['labs']) ? ack['labs'] : [];
    return labs.map(decodeLabPolicy).filter((l): l is LabPolicyState => l !== null);
  }

  /** Changes a lab's exam mode or visibility (`lab:policy`); resolves with its policies after. */
  async setLabPolicy(lab: string, change: LabPolicyChange): Promise<LabPolicyState> {
    const state = decodeLabPolicy(await this.#call('lab:policy', { lab, ...change }));
    if (state === null) throw new SignalingError('unexpected_response', 'The server did not say what the lab’s policies are now.');
    return state;
  }

  async resume(transferId: string, role: 'sender' | 'receiver'): Promise<ResumeAck> {
    const ack = await this.#call('transfer:resume', { transferId, role });
    const files = Array.isArray(ack['files']) ? ack['files'] : [];
    const decoded: FileMeta[] = [];
    for (const f of files) {
      if (isRecord(f) && typeof f['name'] === 'string' && typeof f['size'] === 'number') {
        decoded.push({ name: f['name'], size: f['size'], mime: typeof f['mime'] === 'string' ? f['mime'] : '' });
      }
    }
    return { role: ack['role'] === 'sender' ? 'sender' : 'receiver', files: decoded, peer: decodePeer(ack['peer']) };
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
      this.emit('connection', { kind: 'reconnecting' });
      if (this.#live) {
        this.#live = false;
        this.#presenceChanged();
      }
      // socket.io-client does not reconnect by itself after the server closed the socket:
      // that is a revoked session (the retry then gets a final `connect_error`) or a server
      // shutting down (the retry, with backoff, finds it back).
      if (reason === 'io server disconnect' && !this.#closed) {
        const delay = RECONNECTION.reconnectionDelay * (1 + Math.random() * RECONNECTION.randomizationFactor);
        setTimeout(() => {
          if (!this.#closed && !s.connected) s.connect();
        }, delay);
      }
    });
    s.on('connect_error', (error: Error & { data?: unknown }) => {
      const code = isRecord(error.data) && typeof error.data['code'] === 'string' ? error.data['code'] : error.message;
      if (FINAL_REFUSALS.has(code)) {
        s.close();
        this.emit('connection', { kind: 'refused', code });
      } else if (CROWDED.has(code) || TRANSIENT.has(code)) {
        // socket.io-client does not retry a refusal by the server: try again by hand.
        const crowded = CROWDED.has(code);
        this.emit('connection', crowded ? { kind: 'crowded', code } : { kind: 'reconnecting' });
        if (this.#crowdedRetry !== null) clearTimeout(this.#crowdedRetry);
        const wait = crowded ? CROWDED_RETRY_MS : TRANSIENT_RETRY_MS;
        const delay = wait * (1 - RECONNECTION.randomizationFactor + Math.random() * 2 * RECONNECTION.randomizationFactor);
        this.#crowdedRetry = setTimeout(() => {
          this.#crowdedRetry = null;
          if (!this.#closed && !s.connected) s.connect();
        }, delay);
      } else {
        this.emit('connection', { kind: 'reconnecting' });
      }
    });
    s.on('presence:snapshot', (v: unknown) => {
      if (!isRecord(v)) return;
      this.#self = decodePeer(v['self']);
      this.#live = true;
      if (typeof v['resumeGraceSecs'] === 'number' && v['resumeGraceSecs'] > 0) this.#graceSecs = v['resumeGraceSecs'];
      this.#peers = new Map();
      for (const p of Array.isArray(v['peers']) ? v['peers'] : []) {
        const peer = decodePeer(p);
        if (peer !== null) this.#peers.set(peer.peerId, peer);
      }
      this.#presenceChanged();
      const exam = decodeExamState(v['exam']);
      if (exam !== null) this.emit('exam', exam);
    });
    s.on('exam:state', (v: unknown) => {
      const exam = decodeExamState(v);
      if (exam !== null) this.emit('exam', exam);
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
    s.on('transfer:paused', (v: unknown) => {
      if (isRecord(v) && typeof v['transferId'] === 'string' && typeof v['peerId'] === 'string') {
        this.emit('paused', { transferId: v['transferId'], peerId: v['peerId'] });
      }
    });
    s.on('transfer:resumed', (v: unknown) => {
      const peer = isRecord(v) ? decodePeer(v['peer']) : null;
      if (isRecord(v) && typeof v['transferId'] === 'string' && peer !== null) this.emit('resumed', { transferId: v['transferId'], peer });
    });
    s.on('signal', (v: unknown) => {
      const m = decodeSignal(v);
      if (m !== null) this.emit('signal', m);
    });
    s.on('announcement', (v: unknown) => {
      const a = decodeAnnouncement(v);
      if (a !== null) this.emit('announcement', a);
    });
    s.on('announcement:withdrawn', (v: unknown) => {
      if (isRecord(v) && typeof v['id'] === 'number') this.emit('announcementWithdrawn', String(v['id']));
    });
  }

  #presenceChanged(): void {
    this.emit('presence', { self: this.#self, peers: this.peers, live: this.#live });
  }
}
