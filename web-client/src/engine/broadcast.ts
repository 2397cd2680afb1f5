/**
 * Broadcasts: one sender, many receivers, through a relay tree that the server plans and
 * repairs (docs/PROTOCOL.md, "Broadcasts"). No DOM here.
 *
 * The sender cuts its files into pieces, sends the SHA-256 of every piece (the manifest)
 * through the server, and serves its children in the tree. A receiver verifies every piece
 * against the manifest before it stores it (OPFS, broadcast-store.ts) and forwards it to its
 * own children at once (pipelined). A piece that does not match is dropped and reported: the
 * server flags that forwarder and gives this receiver another parent, which is asked for
 * everything still missing. When the parent leaves or stalls, the same happens. At the end
 * every file is hashed again from disk and compared with the sender's whole-file SHA-256.
 *
 * Invariants: only verified pieces are stored or forwarded; a receiver reports `done` only
 * when every file on disk matches; memory holds a few pieces, never a whole file.
 */

import { MAX_FILES_PER_REQUEST, MAX_NAME_BYTES, cleanMime, nameTooLong } from './batches';
import { BroadcastLink, type LinkRole } from './broadcast-link';
import { PieceForwarder, type PieceSource } from './broadcast-forward';
import { Manifest, PieceAssembler, PieceLayout, PieceSet, decodeLink, encodeLink } from './broadcast-pieces';
import { PieceStore } from './broadcast-store';
import { Emitter } from './emitter';
import { createSha256, transferDigest } from './hash';
import { storedFile } from './opfs';
import { type FileMeta, type Peer, type SignalMessage, decodeFiles, decodePeer, isRecord } from './protocol';

export type BroadcastTarget = { readonly lab: string } | { readonly all: true } | { readonly peers: readonly string[] };

export type RecipientState = 'asked' | 'waiting' | 'receiving' | 'done' | 'failed';

export interface RecipientView {
  readonly peer: Peer;
  readonly transferId: string;
  readonly state: RecipientState;
  readonly bytes: number;
  readonly totalBytes: number;
  readonly reason: string;
}

export interface OutgoingBroadcastView {
  readonly id: string;
  readonly files: readonly FileMeta[];
  readonly totalBytes: number;
  /** `hashing`: the manifest is being computed and sent. */
  readonly phase: 'hashing' | 'running' | 'ended';
  readonly hashedBytes: number;
  readonly recipients: readonly RecipientView[];
  readonly endedReason: string;
}

export type IncomingState = 'asked' | 'waiting' | 'receiving' | 'verifying' | 'done' | 'failed';

export interface IncomingBroadcastView {
  readonly id: string;
  readonly transferId: string;
  readonly from: Peer;
  readonly files: readonly FileMeta[];
  readonly totalBytes: number;
  readonly state: IncomingState;
  readonly bytes: number;
  /** Pieces that failed verification and were fetched again elsewhere. */
  readonly badPieces: number;
  /** Parents this receiver had (1 without repairs). */
  readonly parents: number;
  readonly problem: string | null;
}

export interface BroadcastEvents {
  outgoing: OutgoingBroadcastView;
  incoming: IncomingBroadcastView;
}

/** What the manager needs from the engine around it. */
export interface BroadcastContext {
  call(event: string, payload: unknown): Promise<Record<string, unknown>>;
  listen(event: string, handler: (v: unknown) => void): void;
  rtcConfig(): Promise<RTCConfiguration>;
  signal(linkId: string, to: string, data: unknown): Promise<void>;
  /** The user's "save received files automatically" setting, read when a broadcast arrives. */
  autoSave(): boolean;
  /** Offers a stored file to the user as a download (the UI does it: no DOM in the engine). */
  download(file: File, name: string): void;
  /** A file could not be saved automatically. */
  notice(text: string): void;
}

const STATUS_EVERY_MS = 1000;
const STALL_MS = 12_000;
const MANIFEST_PART = 512;
const EARLY_SIGNAL_MS = 15_000;

export class BroadcastError extends Error {
  override readonly name = 'BroadcastError';
}

/** Links this device holds as a parent (serving children), shared by sender and receiver. */
interface ChildLinksOwner {
  readonly ctx: BroadcastContext;
  readonly count: number;
  readonly source: PieceSource;
  register(l: BroadcastLink): void;
  unregister(id: string): void;
}

class ChildLinks {
  readonly #links = new Map<string, { link: BroadcastLink; forwarder: PieceForwarder | null }>();
  readonly #abort = new AbortController();
  readonly owner: ChildLinksOwner;

  constructor(owner: ChildLinksOwner) {
    this.owner = owner;
  }

  get size(): number {
    return this.#links.size;
  }

  add(linkId: string, peerId: string): void {
    let forwarder: PieceForwarder | null = null;
    const link = new BroadcastLink({ id: linkId, role: 'parent', peerId }, this.owner.ctx, {
      open: (channel) => {
        const f = new PieceForwarder(channel, this.owner.count, this.owner.source, this.#abort.signal);
        f.onError(() => this.remove(linkId));
        forwarder = f;
        const entry = this.#links.get(linkId);
        if (entry !== undefined) entry.forwarder = f;
      },
      message: (data) => {
        if (typeof data !== 'string') return;
        const m = decodeLink(data);
        if (m?.t === 'need') forwarder?.setNeed(m.ranges);
      },
      // The child reports the loss to the server, which re-attaches it.
      lost: () => this.remove(linkId),
    });
    this.#links.set(linkId, { link, forwarder });
    this.owner.register(link);
    void link.connect();
  }

  remove(linkId: string): void {
    const e = this.#links.get(linkId);
    if (e === undefined) return;
    this.#links.delete(linkId);
    e.link.close();
    this.owner.unregister(linkId);
  }

  available(n: number): void {
    for (const e of this.#links.values()) e.forwarder?.available(n);
  }

  closeAll(): void {
    this.#abort.abort(new Error('ended'));
    for (const id of [...this.#links.keys()]) this.remove(id);
  }
}

class OutgoingBroadcast {
  readonly id: string;
  readonly files: readonly FileMeta[];
  readonly #blobs: readonly Blob[];
  readonly #layout: PieceLayout;
  readonly #m: BroadcastManager;
  readonly recipients = new Map<string, RecipientView>();
  phase: 'hashing' | 'running' | 'ended' = 'hashing';
  hashedBytes = 0;
  endedReason = '';
  readonly children: ChildLinks;

  constructor(m: BroadcastManager, id: string, files: readonly FileMeta[], blobs: readonly Blob[], pieceBytes: number) {
    this.#m = m;
    this.id = id;
    this.files = files;
    this.#blobs = blobs;
    this.#layout = new PieceLayout(files.map((f) => f.size), pieceBytes);
    const layout = this.#layout;
    this.children = new ChildLinks({
      ctx: m.ctx,
      count: layout.count,
      source: {
        // Links come only once the whole manifest is sent: every piece is at hand.
        has: () => true,
        read: async (n) => {
          const p = layout.piece(n);
          const blob = this.#blobs[p.file] ?? new Blob();
          return new Uint8Array(await blob.slice(p.offset, p.offset + p.size).arrayBuffer());
        },
      },
      register: (l) => m.registerLink(l),
      unregister: (id) => m.unregisterLink(id),
    });
  }

  view(): OutgoingBroadcastView {
    return {
      id: this.id,
      files: this.files,
      totalBytes: this.#layout.totalBytes,
      phase: this.phase,
      hashedBytes: this.hashedBytes,
      recipients: [...this.recipients.values()],
      endedReason: this.endedReason,
    };
  }

  /** Hashes every piece (and every whole file) and sends the manifest, part by part. */
  async sendManifest(): Promise<void> {
    const layout = this.#layout;
    for (const [file, blob] of this.#blobs.entries()) {
      const whole = await createSha256();
      let part: string[] = [];
      let first = 0;
      const pieces = layout.piecesOf(file);
      for (let i = 0; i < pieces; i += 1) {
        const p = layout.piece(layout.firstOf(file) + i);
        const bytes = new Uint8Array(await blob.slice(p.offset, p.offset + p.size).arrayBuffer());
        if (bytes.byteLength !== p.size) throw new BroadcastError(`${this.files[file]?.name ?? 'A file'} changed while it was being read.`);
        const h = await createSha256();
        h.update(bytes);
        part.push(h.digestHex());
        whole.update(bytes);
        this.hashedBytes += bytes.byteLength;
        const last = i + 1 === pieces;
        if (part.length === MANIFEST_PART || last) {
          await this.#m.ctx.call('broadcast:manifest', { broadcastId: this.id, file, first, hashes: part, ...(last ? { sha256: whole.digestHex() } : {}) });
          first += part.length;
          part = [];
          this.#m.changedOut(this);
        }
      }
      if (pieces === 0) {
        await this.#m.ctx.call('broadcast:manifest', { broadcastId: this.id, file, first: 0, hashes: [], sha256: whole.digestHex() });
      }
    }
    if (this.phase === 'hashing') this.phase = 'running';
    this.#m.changedOut(this);
  }

  end(reason: string): void {
    this.phase = 'ended';
    this.endedReason = reason;
    this.children.closeAll();
    this.#m.changedOut(this);
  }
}

class IncomingBroadcast {
  readonly id: string;
  readonly transferId: string;
  readonly from: Peer;
  readonly files: readonly FileMeta[];
  readonly layout: PieceLayout;
  readonly manifest: Manifest;
  readonly have: PieceSet;
  readonly #m: BroadcastManager;
  state: IncomingState;
  problem: string | null = null;
  badPieces = 0;
  parents = 0;
  #store: PieceStore | null = null;
  #parent: BroadcastLink | null = null;
  #assembler: PieceAssembler;
  #verifying: Promise<void> = Promise.resolve();
  #bytes = 0;
  #reportedBytes = -1;
  #lastPieceAt = Date.now();
  #startedAt: number | null = null;
  #ticker: ReturnType<typeof setInterval> | null = null;
  readonly children: ChildLinks;

  constructor(m: BroadcastManager, offer: Offer) {
    this.#m = m;
    this.id = offer.broadcastId;
    this.transferId = offer.transferId;
    this.from = offer.from;
    this.files = offer.files;
    this.layout = new PieceLayout(offer.files.map((f) => f.size), offer.pieceBytes);
    this.manifest = new Manifest(this.layout);
    this.have = new PieceSet(this.layout.count);
    this.#assembler = new PieceAssembler(offer.pieceBytes);
    this.state = offer.autoAccept ? 'waiting' : 'asked';
    this.children = new ChildLinks({
      ctx: m.ctx,
      count: this.layout.count,
      source: {
        has: (n) => this.have.has(n),
        read: (n) => {
          if (this.#store === null) return Promise.reject(new Error('nothing stored'));
          return this.#store.read(this.layout.piece(n));
        },
      },
      register: (l) => m.registerLink(l),
      unregister: (id) => m.unregisterLink(id),
    });
    if (offer.autoAccept) this.#begin();
  }

  get finished(): boolean {
    return this.state === 'done' || this.state === 'failed';
  }

  view(): IncomingBroadcastView {
    return {
      id: this.id,
      transferId: this.transferId,
      from: this.from,
      files: this.files,
      totalBytes: this.layout.totalBytes,
      state: this.state,
      bytes: this.state === 'done' ? this.layout.totalBytes : this.#bytes,
      badPieces: this.badPieces,
      parents: this.parents,
      problem: this.problem,
    };
  }

  async accept(): Promise<void> {
    if (this.state !== 'asked') return;
    this.state = 'waiting';
    this.#begin();
    this.#m.changedIn(this);
    try {
      await this.#m.ctx.call('broadcast:respond', { broadcastId: this.id, accept: true });
    } catch (error) {
      this.#fail(`Could not accept: ${messageOf(error)}`, false);
    }
  }

  async decline(): Promise<void> {
    if (this.state !== 'asked') return;
    this.state = 'failed';
    this.problem = 'You declined this broadcast.';
    this.#m.changedIn(this);
    await this.#m.ctx.call('broadcast:respond', { broadcastId: this.id, accept: false }).catch(() => {});
  }

  #begin(): void {
    this.#store = new PieceStore(this.transferId);
    this.#store.allocate(this.layout.sizes).catch((error: unknown) => this.#fail(messageOf(error), true));
    this.#ticker = setInterval(() => this.#tick(), STATUS_EVERY_MS);
  }

  /** `broadcast:link` with this device as the child: a (new) parent. */
  setParent(linkId: string, peerId: string): void {
    if (this.finished) return;
    this.#parent?.close();
    if (this.#parent !== null) this.#m.unregisterLink(this.#parent.id);
    this.#assembler = new PieceAssembler(this.layout.pieceBytes);
    this.parents += 1;
    this.#lastPieceAt = Date.now();
    const link: BroadcastLink = new BroadcastLink({ id: linkId, role: 'child', peerId }, this.#m.ctx, {
      open: (channel) => {
        this.#startedAt ??= Date.now();
        if (this.state === 'waiting') this.state = 'receiving';
        channel.send(encodeLink({ t: 'need', ranges: this.have.missingRanges() }));
        this.#m.changedIn(this);
      },
      message: (data) => this.#onMessage(link, data),
      lost: () => this.#parentProblem(link, 'lost'),
    });
    this.#parent = link;
    this.#m.registerLink(link);
    void link.connect();
  }

  #onMessage(link: BroadcastLink, data: string | ArrayBuffer): void {
    if (link !== this.#parent || this.finished) return;
    try {
      let piece: { n: number; bytes: Uint8Array } | null;
      if (typeof data === 'string') {
        const m = decodeLink(data);
        if (m?.t !== 'piece' || m.n >= this.layout.count) throw new Error('an unexpected message');
        if (m.size !== this.layout.piece(m.n).size) throw new Error('a piece of the wrong size');
        piece = this.#assembler.begin(m.n, m.size);
      } else {
        piece = this.#assembler.push(data);
      }
      if (piece !== null) {
        const p = piece;
        this.#verifying = this.#verifying.then(() => this.#verify(link, p.n, p.bytes));
      }
    } catch (error) {
      // A parent that breaks the protocol is treated like one that sends bad pieces.
      console.warn('LabBeam: broadcast parent broke the protocol', error);
      this.#parentProblem(link, 'bad_piece');
    }
  }

  async #verify(link: BroadcastLink, n: number, bytes: Uint8Array): Promise<void> {
    if (this.finished || this.have.has(n)) return;
    const h = await createSha256();
    h.update(bytes);
    if (h.digestHex() !== this.manifest.hashOf(n)) {
      this.badPieces += 1;
      this.#m.changedIn(this);
      this.#parentProblem(link, 'bad_piece', n);
      return;
    }
    const store = this.#store;
    if (store === null) return;
    const ref = this.layout.piece(n);
    // The store keeps the piece at hand at once, so children can be served right away.
    const stored = store.put(ref, bytes);
    this.have.add(n);
    this.#bytes += ref.size;
    this.#lastPieceAt = Date.now();
    this.children.available(n);
    try {
      await stored;
    } catch (error) {
      this.#fail(messageOf(error), true);
      return;
    }
    if (this.have.complete) await this.#finish();
  }

  /** The parent is lost, stalls, or sent a bad piece: tell the server, which moves us. */
  #parentProblem(link: BroadcastLink, kind: 'lost' | 'stalled' | 'bad_piece', piece?: number): void {
    if (this.finished || link !== this.#parent) return;
    if (kind !== 'stalled') {
      link.close();
      this.#m.unregisterLink(link.id);
      this.#parent = null;
    }
    this.#lastPieceAt = Date.now();
    void this.#m.ctx
      .call('broadcast:problem', { broadcastId: this.id, linkId: link.id, kind, ...(piece !== undefined ? { piece } : {}) })
      .catch((error: unknown) => console.warn('LabBeam: a broadcast problem report failed', error));
  }

  async #finish(): Promise<void> {
    const store = this.#store;
    if (store === null || this.finished) return;
    this.state = 'verifying';
    this.#m.changedIn(this);
    const digests: string[] = [];
    for (let f = 0; f < this.files.length; f += 1) {
      const sha = await store.digest(f).catch(() => '');
      if (sha !== this.manifest.fileSha(f)) {
        this.#fail(`${this.files[f]?.name ?? 'A file'} does not match the sender’s checksum on disk.`, true);
        return;
      }
      digests.push(sha);
    }
    this.state = 'done';
    this.#parent?.close();
    this.#m.changedIn(this);
    if (this.#m.ctx.autoSave()) {
      this.files.forEach((f, index) => {
        void this.save(index).catch(() => this.#m.ctx.notice(`Could not save ${f.name} automatically; use its Save button.`));
      });
    }
    const digest = await transferDigest(digests);
    await this.#m.ctx
      .call('broadcast:status', {
        broadcastId: this.id,
        state: 'done',
        bytes: this.layout.totalBytes,
        sha256: digest,
        ...(this.#startedAt !== null ? { durationMs: Date.now() - this.#startedAt } : {}),
      })
      .catch((error: unknown) => console.warn('LabBeam: the broadcast result was not delivered', error));
  }

  #tick(): void {
    if (this.finished || this.state === 'asked') return;
    if (this.#bytes !== this.#reportedBytes && this.state !== 'verifying') {
      this.#reportedBytes = this.#bytes;
      void this.#m.ctx.call('broadcast:status', { broadcastId: this.id, state: 'receiving', bytes: this.#bytes }).catch(() => {});
      this.#m.changedIn(this);
    }
    const parent = this.#parent;
    if (parent !== null && parent.channel?.readyState === 'open' && !this.have.complete && Date.now() - this.#lastPieceAt > STALL_MS) {
      this.#parentProblem(parent, 'stalled');
    }
  }

  #fail(message: string, report: boolean): void {
    if (this.finished) return;
    this.state = 'failed';
    this.problem = message;
    this.#close();
    this.#m.changedIn(this);
    if (report) {
      void this.#m.ctx.call('broadcast:status', { broadcastId: this.id, state: 'failed', bytes: this.#bytes, reason: message.slice(0, 500) }).catch(() => {});
    }
  }

  #close(): void {
    if (this.#ticker !== null) clearInterval(this.#ticker);
    this.#ticker = null;
    this.#parent?.close();
    this.#parent = null;
    this.children.closeAll();
  }

  /** `broadcast:ended`: the broadcast is over (finished, cancelled, or the sender left). */
  ended(reason: string): void {
    if (!this.finished) {
      this.state = 'failed';
      this.problem = reason === 'expired' ? 'You did not answer in time.' : `The broadcast stopped: ${reason}.`;
    }
    this.#close();
    if (this.state === 'done') this.#store?.close();
    else void this.#store?.dispose();
    this.#m.changedIn(this);
  }

  async save(index: number): Promise<void> {
    const f = this.files[index];
    if (this.state !== 'done' || f === undefined) throw new BroadcastError('That file is not available to save.');
    this.#m.ctx.download(await storedFile(this.transferId, index), f.name);
  }

  async discard(): Promise<void> {
    this.#close();
    await this.#store?.dispose();
  }
}

interface Offer {
  broadcastId: string;
  transferId: string;
  from: Peer;
  files: FileMeta[];
  pieceBytes: number;
  autoAccept: boolean;
}

function decodeOffer(v: unknown): Offer | null {
  if (!isRecord(v)) return null;
  const from = decodePeer(v['from']);
  const files = decodeFiles(v['files']);
  const { broadcastId, transferId, pieceBytes, autoAccept } = v;
  if (from === null || files === null || typeof broadcastId !== 'string' || typeof transferId !== 'string') return null;
  if (typeof pieceBytes !== 'number' || !Number.isSafeInteger(pieceBytes) || pieceBytes <= 0) return null;
  return { broadcastId, transferId, from, files, pieceBytes, autoAccept: autoAccept === true };
}

function decodeRecipient(v: unknown): RecipientView | null {
  if (!isRecord(v)) return null;
  const peer = decodePeer(v['peer']);
  const state = v['state'];
  if (peer === null || typeof v['transferId'] !== 'string' || typeof state !== 'string') return null;
  if (!['asked', 'waiting', 'receiving', 'done', 'failed'].includes(state)) return null;
  return {
    peer,
    transferId: v['transferId'],
    state: state as RecipientState,
    bytes: typeof v['bytes'] === 'number' ? v['bytes'] : 0,
    totalBytes: typeof v['totalBytes'] === 'number' ? v['totalBytes'] : 0,
    reason: typeof v['reason'] === 'string' ? v['reason'] : '',
  };
}

export class BroadcastManager extends Emitter<BroadcastEvents> {
  readonly ctx: BroadcastContext;
  readonly #out = new Map<string, OutgoingBroadcast>();
  readonly #in = new Map<string, IncomingBroadcast>();
  readonly #links = new Map<string, BroadcastLink>();
  readonly #early = new Map<string, { at: number; data: unknown[] }>();

  constructor(ctx: BroadcastContext) {
    super();
    this.ctx = ctx;
    ctx.listen('broadcast:offer', (v) => this.#onOffer(v));
    ctx.listen('broadcast:manifest', (v) => this.#onManifest(v));
    ctx.listen('broadcast:link', (v) => this.#onLink(v));
    ctx.listen('broadcast:unlink', (v) => {
      if (!isRecord(v) || typeof v['broadcastId'] !== 'string' || typeof v['linkId'] !== 'string') return;
      const b = this.#out.get(v['broadcastId']) ?? this.#in.get(v['broadcastId']);
      b?.children.remove(v['linkId']);
    });
    ctx.listen('broadcast:progress', (v) => {
      if (!isRecord(v) || typeof v['broadcastId'] !== 'string') return;
      const b = this.#out.get(v['broadcastId']);
      const r = decodeRecipient(v);
      if (b === undefined || r === null) return;
      b.recipients.set(r.peer.peerId, r);
      this.changedOut(b);
    });
    ctx.listen('broadcast:ended', (v) => {
      if (!isRecord(v) || typeof v['broadcastId'] !== 'string') return;
      const reason = typeof v['reason'] === 'string' ? v['reason'] : 'ended';
      this.#out.get(v['broadcastId'])?.end(reason);
      this.#in.get(v['broadcastId'])?.ended(reason);
    });
  }

  /** Starts a broadcast of `files` to `target`; resolves once the server accepted it. */
  async start(target: BroadcastTarget, files: readonly { name: string; blob: Blob; mime: string }[]): Promise<OutgoingBroadcastView> {
    if (files.length === 0) throw new BroadcastError('Choose at least one file to broadcast.');
    // The server's limits; a larger list would not even reach it (64 KiB message cap).
    if (files.length > MAX_FILES_PER_REQUEST) {
      throw new BroadcastError(`A broadcast carries at most ${MAX_FILES_PER_REQUEST} files (${files.length} chosen). Broadcast them in several goes, or as an archive (.zip).`);
    }
    const metas: FileMeta[] = files.map((f) => ({ name: f.name, size: f.blob.size, mime: cleanMime(f.mime) }));
    const long = nameTooLong(metas);
    if (long !== null) throw new BroadcastError(`“${long.name}” cannot be sent: its name, with its folders, is longer than ${MAX_NAME_BYTES} bytes.`);
    const ack = await this.ctx.call('broadcast:start', { target, files: metas });
    const id = ack['broadcastId'];
    const pieceBytes = ack['pieceBytes'];
    if (typeof id !== 'string' || typeof pieceBytes !== 'number') throw new BroadcastError('The server sent an answer the app cannot read.');
    const b = new OutgoingBroadcast(this, id, metas, files.map((f) => f.blob), pieceBytes);
    for (const r of Array.isArray(ack['recipients']) ? ack['recipients'] : []) {
      const view = decodeRecipient(r);
      if (view !== null) b.recipients.set(view.peer.peerId, view);
    }
    this.#out.set(id, b);
    this.changedOut(b);
    b.sendManifest().catch((error: unknown) => {
      void this.ctx.call('broadcast:cancel', { broadcastId: id }).catch(() => {});
      b.end(`could not read the files: ${messageOf(error)}`);
    });
    return b.view();
  }

  cancel(id: string): void {
    if (this.#out.has(id)) void this.ctx.call('broadcast:cancel', { broadcastId: id }).catch(() => {});
  }

  async accept(id: string): Promise<void> {
    await this.#in.get(id)?.accept();
  }

  async decline(id: string): Promise<void> {
    await this.#in.get(id)?.decline();
  }

  async save(id: string, index: number): Promise<void> {
    const b = this.#in.get(id);
    if (b === undefined) throw new BroadcastError('That broadcast is gone.');
    await b.save(index);
  }

  incoming(): IncomingBroadcastView[] {
    return [...this.#in.values()].map((b) => b.view());
  }

  outgoing(): OutgoingBroadcastView[] {
    return [...this.#out.values()].map((b) => b.view());
  }

  /** Routes a `signal` for a link of this page; false when it is not one. */
  onSignal(m: SignalMessage): boolean {
    const link = this.#links.get(m.transferId);
    if (link !== undefined) {
      void link.onSignal(m.data);
      return true;
    }
    if (!m.transferId.includes('-')) return false;
    // A link this page has not created yet (its `broadcast:link` is on its way).
    const now = Date.now();
    for (const [k, e] of this.#early) if (now - e.at > EARLY_SIGNAL_MS) this.#early.delete(k);
    const e = this.#early.get(m.transferId) ?? { at: now, data: [] };
    e.data.push(m.data);
    this.#early.set(m.transferId, e);
    return true;
  }

  stop(): void {
    for (const b of this.#out.values()) b.end('signed out');
    for (const b of this.#in.values()) void b.discard();
    this.removeAllListeners();
  }

  // ---- used by the sessions ----

  registerLink(link: BroadcastLink): void {
    this.#links.set(link.id, link);
    const early = this.#early.get(link.id);
    if (early !== undefined) {
      this.#early.delete(link.id);
      for (const d of early.data) void link.onSignal(d);
    }
  }

  unregisterLink(id: string): void {
    this.#links.delete(id);
  }

  changedOut(b: OutgoingBroadcast): void {
    this.emit('outgoing', b.view());
  }

  changedIn(b: IncomingBroadcast): void {
    this.emit('incoming', b.view());
  }

  #onOffer(v: unknown): void {
    const offer = decodeOffer(v);
    if (offer === null || this.#in.has(offer.broadcastId)) return;
    const b = new IncomingBroadcast(this, offer);
    this.#in.set(offer.broadcastId, b);
    this.changedIn(b);
  }

  #onManifest(v: unknown): void {
    if (!isRecord(v) || typeof v['broadcastId'] !== 'string') return;
    const b = this.#in.get(v['broadcastId']);
    const { file, first, hashes, sha256 } = v;
    if (b === undefined || typeof file !== 'number' || typeof first !== 'number' || !Array.isArray(hashes)) return;
    try {
      b.manifest.add({ file, first, hashes: hashes.filter((h): h is string => typeof h === 'string'), sha256: typeof sha256 === 'string' ? sha256 : null });
    } catch (error) {
      console.warn('LabBeam: a broadcast manifest part was refused', error);
    }
  }

  #onLink(v: unknown): void {
    if (!isRecord(v)) return;
    const { broadcastId, linkId, role, peer } = v;
    if (typeof broadcastId !== 'string' || typeof linkId !== 'string' || typeof peer !== 'string') return;
    if (role !== 'parent' && role !== 'child') return;
    const r: LinkRole = role;
    if (r === 'child') {
      this.#in.get(broadcastId)?.setParent(linkId, peer);
      return;
    }
    const b = this.#out.get(broadcastId) ?? this.#in.get(broadcastId);
    b?.children.add(linkId, peer);
  }
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message.replace(/\.$/, '');
  return String(error);
}
