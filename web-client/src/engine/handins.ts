/**
 * Hand-ins (docs/PROTOCOL.md, "Hand-ins"): the client's side of both roles.
 *
 * **A student's browser** shows each hand-in open for its lab and hands in what the student
 * picked: `handin:submit`, then an ordinary transfer to the collecting browser (resumable,
 * SHA-256 verified). The picked files stay in this page until the receipt for them arrives,
 * so when the collecting browser is away (`collector_offline`, or it left while the delivery
 * waited in its queue, or the request expired there) the page sends again by itself — every
 * ~10 s and at once after reconnecting — until the deadline (the server adds a grace period
 * for who tried in time) or until it is closed. A re-submission replaces the earlier one
 * (the receipt names its version).
 *
 * **The collecting browser** takes deliveries a few at a time (`concurrency()`, a setting,
 * default 4): the others wait their turn, shown "queued" on both sides. Each delivery is
 * moved, once every file is verified, into the student's folder (handin-store.ts), and then
 * receipted (`handin:receipt`): the student sees "handed in" only for files this browser
 * keeps. It keeps the live table: every student with a receipt, a delivery under way or a
 * failure, and the lab's students online who have not started.
 *
 * No DOM here: the UI (ui/handin-panel.ts, ui/handin-collect.ts) draws what this reports.
 */

import type { PickedFile } from './engine';
import { Emitter } from './emitter';
import { type KeptDelivery, keepDelivery, keepHandin, keptDeliveries, keptHandins, removeKept, saveDeliveries } from './handin-store';
import {
  type Handin,
  type HandinTag,
  type Peer,
  type Receipt,
  SignalingError,
  type StudentReceiptRow,
  decodeHandin,
  decodePeer,
  decodeReceipt,
  decodeStudentReceipt,
  isRecord,
} from './protocol';
import type { TransferSnapshot } from './transfer';

/** How many deliveries the collecting browser receives at once, unless the setting says. */
export const DEFAULT_CONCURRENCY = 4;
/** How often a student's page tries again while the collecting browser is away (±50 %). */
export const RETRY_MS = 10_000;
/** What the server adds after the deadline for who tried in time (`GRACE_SECS`). */
export const GRACE_SECS = 15 * 60;

/** Transfer endings after which the student's page simply sends again. */
const SEND_AGAIN = new Set(['peer_left', 'expired', 'request_lapsed', 'resume_refused', 'resume_expired']);

/** What the hand-in module needs from the engine around it. */
export interface HandinHost {
  call(event: string, payload: unknown): Promise<Record<string, unknown>>;
  listen(event: string, handler: (v: unknown) => void): void;
  /** Starts the sending transfer `transferId` of `files` to `collector`. */
  startDelivery(transferId: string, collector: Peer, files: readonly PickedFile[], tag: HandinTag): void;
  accept(transferId: string): Promise<void>;
  /** Drops a finished transfer from the page and deletes what it stored. */
  dismiss(transferId: string): Promise<void>;
  connected(): boolean;
  /** The people online this page sees (for "not started"). */
  peers(): readonly Peer[];
  concurrency(): number;
}

/** Where a student's hand-in stands. */
export type SubmissionPhase =
  /** `handin:submit` is on its way. */
  | 'submitting'
  /** The collecting browser is away: this page sends again by itself when it is back. */
  | 'waiting'
  /** Waiting its turn at the collecting browser, which takes a few at a time. */
  | 'queued'
  | 'sending'
  /** Every file arrived and was verified; the receipt is on its way. */
  | 'delivered'
  | 'handed-in'
  | 'failed';

export interface Problem {
  readonly code: string;
  readonly message: string;
}

export interface Submission {
  readonly phase: SubmissionPhase;
  readonly files: readonly { readonly name: string; readonly size: number }[];
  readonly totalBytes: number;
  readonly bytes: number;
  readonly transferId: string | null;
  readonly problem: Problem | null;
}

/** A hand-in as a student's page shows it. */
export interface StudentHandin {
  readonly handin: Handin;
  readonly submission: Submission | null;
  /** The newest receipt: what counts. */
  readonly receipt: Receipt | null;
}

export type RowStatus = 'not-started' | 'queued' | 'sending' | 'handed-in' | 'failed';

/** One student in the collecting browser's table. */
export interface CollectRow {
  readonly username: string;
  readonly displayName: string;
  readonly status: RowStatus;
  /** Set while a delivery is under way: its progress. */
  readonly bytes: number;
  readonly totalBytes: number;
  /** The receipted versions, oldest first (the last counts). */
  readonly versions: readonly Receipt[];
  /** The newest version is kept in this browser (Save all writes it). */
  readonly kept: boolean;
  readonly problem: Problem | null;
  /** The delivery under way came after the deadline. */
  readonly late: boolean;
}

/** A hand-in this browser collects (or collected: it stays, to be saved, until removed). */
export interface Collection {
  readonly handin: Handin;
  /** Closed: nothing more arrives; its files stay here until removed. */
  readonly closed: boolean;
  readonly rows: readonly CollectRow[];
  readonly queued: number;
  readonly receiving: number;
}

export interface HandinEvents {
  /** Anything shown changed. */
  changed: void;
  /** A message for the user (a receipt that could not be sent, …). */
  notice: string;
}

interface Attempt {
  readonly handinId: string;
  files: readonly PickedFile[];
  phase: SubmissionPhase;
  transferId: string | null;
  bytes: number;
  problem: Problem | null;
  retry: ReturnType<typeof setTimeout> | null;
}

/** A delivery the collecting browser knows of (under way, or how it ended). */
interface Delivery {
  readonly handinId: string;
  readonly transferId: string;
  readonly from: Peer;
  readonly late: boolean;
  snapshot: TransferSnapshot;
}

export class Handins extends Emitter<HandinEvents> {
  readonly #host: HandinHost;
  /** Open hand-ins this page was told of, by id. */
  readonly #open = new Map<string, Handin>();
  /** Student: the newest receipt of each hand-in. */
  readonly #mine = new Map<string, Receipt>();
  readonly #attempts = new Map<string, Attempt>();
  /** Collector: every receipt of each collected hand-in, by student. */
  readonly #receipts = new Map<string, Map<string, Receipt[]>>();
  /** Collector: kept deliveries by transfer id. */
  readonly #kept = new Map<string, KeptDelivery>();
  readonly #deliveries = new Map<string, Delivery>();
  /** Collector: deliveries waiting their turn (arrival order), and those being received. */
  #queue: string[] = [];
  readonly #receiving = new Set<string>();
  /** Receipts being made (the transfer id), so one is made once. */
  readonly #finishing = new Set<string>();
  /** Collected hand-ins that closed (still listed, to be saved). */
  readonly #closedIds = new Set<string>();
  /** Hand-ins whose `handin.json` is written (once, however many deliveries end at once). */
  readonly #noted = new Map<string, Promise<void>>();

  constructor(host: HandinHost) {
    super();
    this.#host = host;
    host.listen('handin:opened', (v) => {
      const h = decodeHandin(v);
      if (h !== null) this.#opened(h);
    });
    host.listen('handin:closed', (v) => {
      if (isRecord(v) && typeof v['handinId'] === 'string') this.#closed(v['handinId']);
    });
    host.listen('handin:received', (v) => {
      const r = decodeReceipt(v);
      if (r !== null) this.#received(r);
    });
  }

  /** The hand-ins this page hands in to (not those it collects), oldest first. */
  student(): StudentHandin[] {
    return [...this.#open.values()]
      .filter((h) => !h.collecting && !this.#closedIds.has(h.handinId))
      .map((h) => ({ handin: h, submission: this.#submission(h.handinId), receipt: this.#mine.get(h.handinId) ?? null }));
  }

  /** The hand-ins this browser collects, oldest first. */
  collections(): Collection[] {
    return [...this.#open.values()].filter((h) => h.collecting).map((h) => this.#collection(h));
  }

  /** Opens a hand-in (needs `collect`); this browser collects it. Resolves with its id. */
  async open(request: {
    lab: string;
    title: string;
    deadline: number;
    instructions?: string;
    extensions?: readonly string[];
    maxBytes?: number;
    allowLate?: boolean;
  }): Promise<string> {
    const ack = await this.#host.call('handin:open', request);
    const id = ack['handinId'];
    if (typeof id !== 'string') throw new SignalingError('unexpected_response', 'The server did not say which hand-in it opened.');
    return id;
  }

  async close(handinId: string): Promise<void> {
    await this.#host.call('handin:close', { handinId });
  }

  /**
   * Hands in `files` (a new submission replaces one not receipted yet). Problems the page can
   * see before asking (a file type the hand-in does not take, too much) are thrown at once.
   */
  async handIn(handinId: string, files: readonly PickedFile[]): Promise<void> {
    const h = this.#open.get(handinId);
    if (h === undefined) throw new SignalingError('handin_closed', 'This hand-in is closed.');
    if (files.length === 0) throw new SignalingError('no_files', 'Choose at least one file to hand in.');
    const problem = submissionProblem(h, files.map((f) => ({ name: f.name, size: f.blob.size })), Date.now() / 1000);
    if (problem !== null) throw new SignalingError(problem.code, problem.message);
    this.#stopAttempt(handinId);
    const attempt: Attempt = { handinId, files: [...files], phase: 'submitting', transferId: null, bytes: 0, problem: null, retry: null };
    this.#attempts.set(handinId, attempt);
    await this.#submit(attempt);
  }

  /** Forgets a submission that failed (its files too). */
  clearSubmission(handinId: string): void {
    this.#stopAttempt(handinId);
    this.#attempts.delete(handinId);
    this.emit('changed', undefined);
  }

  /** Writes every student's newest kept delivery of `handinId` into `folder`; returns the file count. */
  async saveAll(handinId: string, folder: FileSystemDirectoryHandle): Promise<number> {
    return saveDeliveries(this.#newestKept(handinId), folder);
  }

  /** Deletes what this browser kept of a closed hand-in, and forgets it. */
  async removeKept(handinId: string): Promise<void> {
    if (!this.#closedIds.has(handinId)) throw new SignalingError('handin_open', 'Close the hand-in first: students may still be handing in.');
    await removeKept(handinId);
    for (const [id, d] of this.#kept) if (d.handinId === handinId) this.#kept.delete(id);
    this.#open.delete(handinId);
    this.#closedIds.delete(handinId);
    this.#receipts.delete(handinId);
    this.emit('changed', undefined);
  }

  /** Lists the hand-ins this browser kept files of and that closed since (after a reload). */
  async loadKept(): Promise<void> {
    for (const h of await keptHandins()) {
      if (this.#open.has(h.handinId)) continue;
      this.#open.set(h.handinId, { ...h, collecting: true });
      this.#closedIds.add(h.handinId);
      this.#noted.set(h.handinId, Promise.resolve());
      for (const d of await keptDeliveries(h.handinId)) this.#kept.set(d.transferId, d);
      void this.#loadCollection(h);
    }
    this.emit('changed', undefined);
  }

  /** The table as CSV (one line per student: the newest version, or the state). */
  csv(handinId: string): string {
    const h = this.#open.get(handinId);
    if (h === undefined) return '';
    return collectionCsv(this.#collection(h));
  }

  // ---- from the engine ----

  /** A delivery to a hand-in this browser collects (`transfer:incoming` with `handin`). */
  delivery(t: TransferSnapshot): void {
    if (t.handin === null || this.#deliveries.has(t.id)) return;
    this.#deliveries.set(t.id, { handinId: t.handin.handinId, transferId: t.id, from: t.peer, late: t.handin.late, snapshot: t });
    if (t.state === 'requested') this.#queue.push(t.id);
    else if (!isFinished(t)) this.#receiving.add(t.id);
    this.#pump();
    this.emit('changed', undefined);
  }

  /** A transfer changed: a delivery (either side) moves on. */
  transfer(t: TransferSnapshot): void {
    if (t.handin === null) return;
    if (t.direction === 'receive') this.#collectorTransfer(t);
    else this.#studentTransfer(t);
  }

  /** The signaling connection is up again. */
  connected(): void {
    for (const a of this.#attempts.values()) if (a.phase === 'waiting') this.#scheduleRetry(a, 300);
    // Pending requests were cancelled when the old connection went; the server tells again.
    this.#queue = this.#queue.filter((id) => this.#deliveries.get(id)?.snapshot.state === 'requested');
    for (const h of this.#open.values()) if (h.collecting) void this.#loadCollection(h);
  }

  /** Presence changed ("not started" follows it). */
  presenceChanged(): void {
    if ([...this.#open.values()].some((h) => h.collecting)) this.emit('changed', undefined);
  }

  stop(): void {
    for (const a of this.#attempts.values()) if (a.retry !== null) clearTimeout(a.retry);
    this.#attempts.clear();
    this.removeAllListeners();
  }

  // ---- student ----

  #submission(handinId: string): Submission | null {
    const a = this.#attempts.get(handinId);
    if (a === undefined) return null;
    return {
      phase: a.phase,
      files: a.files.map((f) => ({ name: f.name, size: f.blob.size })),
      totalBytes: a.files.reduce((n, f) => n + f.blob.size, 0),
      bytes: a.bytes,
      transferId: a.transferId,
      problem: a.problem,
    };
  }

  async #submit(a: Attempt): Promise<void> {
    if (this.#attempts.get(a.handinId) !== a) return;
    const h = this.#open.get(a.handinId);
    if (h === undefined) return;
    a.phase = 'submitting';
    a.problem = null;
    this.emit('changed', undefined);
    const files = a.files.map((f) => ({ name: f.name, size: f.blob.size, mime: f.mime }));
    try {
      const ack = await this.#host.call('handin:submit', { handinId: a.handinId, files });
      const transferId = ack['transferId'];
      const collector = decodePeer(ack['collector']);
      if (typeof transferId !== 'string' || collector === null) throw new SignalingError('unexpected_response', 'The server did not say where the files go.');
      if (this.#attempts.get(a.handinId) !== a) return;
      a.transferId = transferId;
      a.phase = 'queued';
      a.bytes = 0;
      const late = Date.now() / 1000 > h.deadline;
      this.#host.startDelivery(transferId, collector, a.files, { handinId: a.handinId, late });
    } catch (error) {
      if (this.#attempts.get(a.handinId) !== a) return;
      const code = error instanceof SignalingError ? error.code : 'internal';
      const message = error instanceof Error ? error.message : String(error);
      if (code === 'collector_offline' || code === 'not_connected' || code === 'timeout' || code === 'rate_limited' || code === 'too_many_pending') {
        a.phase = 'waiting';
        a.problem = { code, message: waitingWords(code, h) };
        this.#scheduleRetry(a);
      } else {
        a.phase = 'failed';
        a.problem = { code, message };
      }
    }
    this.emit('changed', undefined);
  }

  #scheduleRetry(a: Attempt, ms = RETRY_MS * (0.5 + Math.random())): void {
    if (a.retry !== null) clearTimeout(a.retry);
    a.retry = setTimeout(() => {
      a.retry = null;
      if (a.phase !== 'waiting') return;
      const h = this.#open.get(a.handinId);
      if (h === undefined) return;
      // After the deadline (and the grace for who tried in time) the server refuses: say so once.
      if (!h.allowLate && Date.now() / 1000 > h.deadline + GRACE_SECS) {
        a.phase = 'failed';
        a.problem = { code: 'deadline_passed', message: `The deadline passed while ${h.collector || 'the instructor'}’s browser was away, so the files were not handed in. Ask ${h.collector || 'your instructor'}.` };
        this.emit('changed', undefined);
        return;
      }
      if (!this.#host.connected()) {
        this.#scheduleRetry(a);
        return;
      }
      void this.#submit(a);
    }, ms);
  }

  #stopAttempt(handinId: string): void {
    const a = this.#attempts.get(handinId);
    if (a?.retry != null) clearTimeout(a.retry);
  }

  #studentTransfer(t: TransferSnapshot): void {
    const a = t.handin === null ? undefined : this.#attempts.get(t.handin.handinId);
    if (a === undefined || a.transferId !== t.id) return;
    if (a.phase === 'handed-in') return;
    if (t.state === 'requested') a.phase = 'queued';
    else if (t.state === 'accepted' || t.state === 'sending') a.phase = 'sending';
    else if (t.state === 'completed') a.phase = this.#mine.get(a.handinId)?.transferId === t.id ? 'handed-in' : 'delivered';
    else if (t.problem !== null && SEND_AGAIN.has(t.problem.code)) {
      // The collecting browser went away before taking it: send again when it is back.
      const h = this.#open.get(a.handinId);
      a.phase = 'waiting';
      a.transferId = null;
      a.problem = { code: t.problem.code, message: h === undefined ? t.problem.message : waitingWords('collector_offline', h) };
      this.#scheduleRetry(a, 1000);
      void this.#host.dismiss(t.id);
    } else {
      a.phase = 'failed';
      a.problem = t.problem ?? { code: 'failed', message: 'The files did not arrive. Try again.' };
    }
    a.bytes = t.bytes;
    this.emit('changed', undefined);
  }

  #received(r: Receipt): void {
    const before = this.#mine.get(r.handinId);
    if (before === undefined || r.version >= before.version) this.#mine.set(r.handinId, r);
    const a = this.#attempts.get(r.handinId);
    if (a !== undefined && a.transferId === r.transferId) {
      // Handed in: the page no longer needs the files.
      this.#stopAttempt(r.handinId);
      this.#attempts.delete(r.handinId);
      void this.#host.dismiss(r.transferId);
    }
    this.emit('changed', undefined);
  }

  // ---- both ----

  #opened(h: Handin): void {
    const known = this.#open.get(h.handinId);
    this.#open.set(h.handinId, h);
    this.#closedIds.delete(h.handinId);
    if (h.collecting) void this.#loadCollection(h);
    // The collecting browser is back (it connects again): anyone waiting may try now.
    const a = this.#attempts.get(h.handinId);
    if (a !== undefined && a.phase === 'waiting') this.#scheduleRetry(a, 500);
    if (known === undefined || known.collecting !== h.collecting) this.emit('changed', undefined);
  }

  #closed(handinId: string): void {
    // A collected hand-in stays listed (to save its files) until removed from this browser.
    if (this.#open.get(handinId)?.collecting === true) this.#closedIds.add(handinId);
    else this.#open.delete(handinId);
    this.#stopAttempt(handinId);
    this.#attempts.delete(handinId);
    this.#mine.delete(handinId);
    this.emit('changed', undefined);
  }

  // ---- collecting ----

  /** Reads every receipt and what this browser kept; receipts anything kept but not receipted. */
  async #loadCollection(h: Handin): Promise<void> {
    let rows: StudentReceiptRow[] = [];
    try {
      const ack = await this.#host.call('handin:receipts', { handinId: h.handinId });
      rows = (Array.isArray(ack['receipts']) ? ack['receipts'] : []).map(decodeStudentReceipt).filter((r): r is StudentReceiptRow => r !== null);
    } catch {
      return; // Not connected, or closed meanwhile: the next connection reads them.
    }
    const byStudent = new Map<string, Receipt[]>();
    for (const r of rows) byStudent.set(r.username, [...(byStudent.get(r.username) ?? []), r]);
    this.#receipts.set(h.handinId, byStudent);
    const receipted = new Set(rows.map((r) => r.transferId));
    for (const d of await keptDeliveries(h.handinId)) {
      this.#kept.set(d.transferId, d);
      if (!receipted.has(d.transferId)) await this.#sendReceipt(d);
    }
    this.emit('changed', undefined);
  }

  #pump(): void {
    const limit = Math.max(1, this.#host.concurrency());
    while (this.#receiving.size < limit && this.#queue.length > 0) {
      const id = this.#queue.shift() as string;
      const d = this.#deliveries.get(id);
      if (d === undefined || d.snapshot.state !== 'requested') continue;
      this.#receiving.add(id);
      void this.#host.accept(id);
    }
  }

  #collectorTransfer(t: TransferSnapshot): void {
    const d = this.#deliveries.get(t.id);
    if (d === undefined) {
      // Restored after a page reload: it was being received.
      if (t.handin !== null && t.state !== 'requested' && !isFinished(t)) {
        this.#deliveries.set(t.id, { handinId: t.handin.handinId, transferId: t.id, from: t.peer, late: t.handin.late, snapshot: t });
        this.#receiving.add(t.id);
        this.emit('changed', undefined);
      }
      return;
    }
    d.snapshot = t;
    if (isFinished(t)) {
      this.#receiving.delete(t.id);
      this.#queue = this.#queue.filter((id) => id !== t.id);
      if (t.state === 'completed') void this.#keep(d);
      this.#pump();
    }
    this.emit('changed', undefined);
  }

  /** Moves a verified delivery into the student's folder, then receipts it. */
  async #keep(d: Delivery): Promise<void> {
    if (this.#finishing.has(d.transferId) || this.#kept.has(d.transferId)) return;
    this.#finishing.add(d.transferId);
    const kept: KeptDelivery = {
      handinId: d.handinId,
      username: d.from.username,
      displayName: d.from.displayName,
      transferId: d.transferId,
      files: d.snapshot.files.map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 ?? '' })),
      late: d.late,
      keptAt: Date.now(),
    };
    try {
      const h = this.#open.get(d.handinId);
      if (h !== undefined) {
        // Only what lists the hand-in after it closed: the files matter more than this note.
        let noting = this.#noted.get(h.handinId);
        if (noting === undefined) {
          noting = keepHandin(h).catch(() => {
            this.#noted.delete(h.handinId);
          });
          this.#noted.set(h.handinId, noting);
        }
        await noting;
      }
      await keepDelivery(kept);
      this.#kept.set(d.transferId, kept);
      this.#deliveries.delete(d.transferId);
      await this.#host.dismiss(d.transferId);
      await this.#sendReceipt(kept);
    } catch (error) {
      this.emit('notice', `${d.from.displayName}’s files arrived but could not be kept in this browser (${error instanceof Error ? error.message : String(error)}). Ask them to hand in again.`);
    } finally {
      this.#finishing.delete(d.transferId);
      this.emit('changed', undefined);
    }
  }

  async #sendReceipt(d: KeptDelivery): Promise<void> {
    try {
      const ack = await this.#host.call('handin:receipt', { transferId: d.transferId, files: d.files });
      const version = typeof ack['version'] === 'number' ? ack['version'] : 1;
      const receipt: Receipt = {
        handinId: d.handinId,
        transferId: d.transferId,
        version,
        files: d.files,
        totalBytes: d.files.reduce((n, f) => n + f.size, 0),
        receivedAt: Math.floor(d.keptAt / 1000),
        late: d.late,
      };
      const byStudent = this.#receipts.get(d.handinId) ?? new Map<string, Receipt[]>();
      this.#receipts.set(d.handinId, byStudent);
      const versions = (byStudent.get(d.username) ?? []).filter((r) => r.transferId !== d.transferId);
      byStudent.set(d.username, [...versions, receipt].sort((a, b) => a.version - b.version));
    } catch (error) {
      // Not connected: receipted when this page reads the hand-in again (next connection).
      if (error instanceof SignalingError && error.code !== 'not_connected' && error.code !== 'timeout') {
        this.emit('notice', `The receipt for ${d.displayName}’s files was refused: ${error.message}`);
      }
    }
  }

  #newestKept(handinId: string): KeptDelivery[] {
    const receipts = this.#receipts.get(handinId) ?? new Map<string, Receipt[]>();
    const out: KeptDelivery[] = [];
    const byStudent = new Map<string, KeptDelivery[]>();
    for (const d of this.#kept.values()) if (d.handinId === handinId) byStudent.set(d.username, [...(byStudent.get(d.username) ?? []), d]);
    for (const [username, kept] of byStudent) {
      const newest = receipts.get(username)?.at(-1);
      const current = kept.find((d) => d.transferId === newest?.transferId) ?? kept.sort((a, b) => a.keptAt - b.keptAt).at(-1);
      if (current !== undefined) out.push(current);
    }
    return out.sort((a, b) => a.username.localeCompare(b.username));
  }

  #collection(h: Handin): Collection {
    const rows = new Map<string, CollectRow>();
    const receipts = this.#receipts.get(h.handinId) ?? new Map<string, Receipt[]>();
    const names = new Map<string, string>();
    for (const d of this.#kept.values()) if (d.handinId === h.handinId) names.set(d.username, d.displayName);
    for (const [username, versions] of receipts) {
      const newest = versions.at(-1);
      rows.set(username, {
        username,
        displayName: names.get(username) ?? username,
        status: 'handed-in',
        bytes: newest?.totalBytes ?? 0,
        totalBytes: newest?.totalBytes ?? 0,
        versions,
        kept: newest !== undefined && this.#kept.has(newest.transferId),
        problem: null,
        late: newest?.late ?? false,
      });
    }
    let queued = 0;
    let receiving = 0;
    const deliveries = [...this.#deliveries.values()].filter((d) => d.handinId === h.handinId).sort((a, b) => a.snapshot.createdAt - b.snapshot.createdAt);
    for (const d of deliveries) {
      const t = d.snapshot;
      const before = rows.get(d.from.username);
      const base = { username: d.from.username, displayName: d.from.displayName, versions: before?.versions ?? [], kept: before?.kept ?? false, late: d.late };
      if (t.state === 'requested') {
        queued++;
        rows.set(d.from.username, { ...base, status: 'queued', bytes: 0, totalBytes: t.totalBytes, problem: null });
      } else if (!isFinished(t) || (t.state === 'completed' && !this.#kept.has(t.id))) {
        receiving++;
        rows.set(d.from.username, { ...base, status: 'sending', bytes: t.bytes, totalBytes: t.totalBytes, problem: null });
      } else if (t.state !== 'completed' && (before === undefined || before.status !== 'handed-in')) {
        rows.set(d.from.username, { ...base, status: 'failed', bytes: t.bytes, totalBytes: t.totalBytes, problem: t.problem ?? { code: 'failed', message: 'The files did not arrive.' } });
      }
    }
    for (const p of this.#closedIds.has(h.handinId) ? [] : this.#host.peers()) {
      if (p.lab !== h.lab || rows.has(p.username) || p.username === h.collector || !isStudentRole(p.role)) continue;
      rows.set(p.username, { username: p.username, displayName: p.displayName, status: 'not-started', bytes: 0, totalBytes: 0, versions: [], kept: false, problem: null, late: false });
    }
    const order: Record<RowStatus, number> = { sending: 0, queued: 1, failed: 2, 'not-started': 3, 'handed-in': 4 };
    const sorted = [...rows.values()].sort((a, b) => order[a.status] - order[b.status] || a.username.localeCompare(b.username));
    return { handin: h, closed: this.#closedIds.has(h.handinId), rows: sorted, queued, receiving };
  }
}

function isFinished(t: TransferSnapshot): boolean {
  return t.state === 'completed' || t.state === 'failed' || t.state === 'cancelled';
}

/** Instructors and admins are not listed as "not started". */
function isStudentRole(role: string): boolean {
  return role !== 'admin' && role !== 'instructor';
}

function waitingWords(code: string, h: Handin): string {
  const who = h.collector === '' ? 'the instructor' : h.collector;
  if (code === 'collector_offline' || code === 'peer_left' || code === 'expired') {
    return `Waiting for ${who}’s browser: your files go by themselves as soon as it is back. Keep this page open.`;
  }
  if (code === 'rate_limited' || code === 'too_many_pending') return 'The server asks to wait a moment; your files go by themselves shortly.';
  return 'Not connected to the LabBeam server right now; your files go by themselves when it is back. Keep this page open.';
}

/** What the hand-in would refuse, checked before asking; null when it looks fine. */
export function submissionProblem(h: Handin, files: readonly { name: string; size: number }[], nowSecs: number): Problem | null {
  if (nowSecs > h.deadline && !h.allowLate) {
    return { code: 'deadline_passed', message: 'The deadline has passed and this hand-in does not take late work.' };
  }
  if (h.extensions.length > 0) {
    for (const f of files) {
      const base = f.name.split('/').pop() ?? f.name;
      const dot = base.lastIndexOf('.');
      const ext = dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
      if (!h.extensions.includes(ext)) {
        return { code: 'extension_not_allowed', message: `“${f.name}” cannot be handed in: this hand-in takes only ${h.extensions.map((e) => `.${e}`).join(', ')} files.` };
      }
    }
  }
  const total = files.reduce((n, f) => n + f.size, 0);
  if (h.maxBytes !== null && total > h.maxBytes) {
    return { code: 'handin_too_large', message: `These files are ${bytesWords(total)}; this hand-in takes at most ${bytesWords(h.maxBytes)} per student.` };
  }
  return null;
}

function bytesWords(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

const STATUS_WORDS: Record<RowStatus, string> = {
  'not-started': 'not started',
  queued: 'queued',
  sending: 'sending',
  'handed-in': 'handed in',
  failed: 'failed',
};

function csvField(v: string | number): string {
  const s = String(v);
  // Quote what a spreadsheet would split or read as a formula.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) || safe !== s ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** The collecting browser's table as CSV: student, status, version, late, files, bytes, received, SHA-256s. */
export function collectionCsv(c: Collection): string {
  const lines = [['username', 'name', 'status', 'version', 'late', 'files', 'bytes', 'received_at', 'problem', 'files_sha256'].join(',')];
  for (const r of c.rows) {
    const newest = r.versions.at(-1);
    const handedIn = r.status === 'handed-in' && newest !== undefined;
    lines.push(
      [
        r.username,
        r.displayName,
        STATUS_WORDS[r.status],
        newest?.version ?? '',
        handedIn ? (newest.late ? 'yes' : 'no') : '',
        handedIn ? newest.files.length : '',
        handedIn ? newest.totalBytes : r.totalBytes || '',
        handedIn ? new Date(newest.receivedAt * 1000).toISOString() : '',
        r.problem?.message ?? '',
        handedIn ? newest.files.map((f) => `${f.name}:${f.sha256}`).join(' ') : '',
      ]
        .map(csvField)
        .join(','),
    );
  }
  return lines.join('\r\n') + '\r\n';
}

/** A student's receipt as a small text file. */
export function receiptText(h: Handin, r: Receipt, student: string): string {
  const when = new Date(r.receivedAt * 1000).toISOString();
  const lines = [
    `LabBeam hand-in receipt`,
    ``,
    `Hand-in:   ${h.title} (${h.lab})`,
    `Collected: ${h.collector}`,
    `Student:   ${student}`,
    `Version:   ${r.version} (the current one; a later hand-in replaces it)`,
    `Received:  ${when}${r.late ? ' (late)' : ' (on time)'}`,
    `Deadline:  ${new Date(h.deadline * 1000).toISOString()}`,
    `Transfer:  ${r.transferId}`,
    ``,
    `Files (${r.files.length}, ${r.totalBytes} bytes), verified by the collecting browser:`,
    ...r.files.map((f) => `  ${f.sha256}  ${f.size.toString().padStart(12)}  ${f.name}`),
    ``,
  ];
  return lines.join('\n');
}
