/**
 * The Socket.IO protocol as the client sees it (docs/PROTOCOL.md): the shapes of server
 * events and acks, decoded from `unknown` into typed values. Anything that does not decode is
 * dropped by the caller, so a newer or misbehaving server cannot crash the engine.
 *
 * The wire shapes come from the server's Rust types: `generated/` is written from them
 * (`signaling::protocol` in the appliance, checked by its tests), never by hand. The types
 * below are built on those, and the decoders read each field through `Unchecked<Wire type>`,
 * so a field the server renames stops this file from type-checking.
 */

import type { ExamSchedule as WireExamSchedule } from './generated/ExamSchedule';
import type { ExamState as WireExamState } from './generated/ExamState';
import type { FileMeta as WireFileMeta } from './generated/FileMeta';
import type { HandinDelivery } from './generated/HandinDelivery';
import type { HandinFile } from './generated/HandinFile';
import type { HandinOpened } from './generated/HandinOpened';
import type { HandinReceived } from './generated/HandinReceived';
import type { StudentReceipt } from './generated/StudentReceipt';
import type { LabPolicy as WireLabPolicy } from './generated/LabPolicy';
import type { LabPolicyState as WireLabPolicyState } from './generated/LabPolicyState';
import type { Part } from './generated/Part';
import type { PathKind as WirePathKind } from './generated/PathKind';
import type { Peer as WirePeer } from './generated/Peer';
import type { PolicyVisibility as WirePolicyVisibility } from './generated/PolicyVisibility';
import type { ServerEvent } from './generated/ServerEvent';
import type { SignalRelay } from './generated/SignalRelay';
import type { TextMeta } from './generated/TextMeta';
import type { TransferFinish } from './generated/TransferFinish';

export type { ServerEvent };

/** The name of every event the server emits. */
export type ServerEventName = ServerEvent['event'];

/** The payload of the server event named `E`. */
export type EventData<E extends ServerEventName> = Extract<ServerEvent, { event: E }>['data'];

/** The fields of a wire type, not checked yet: what a decoder reads out of `unknown`. */
type Unchecked<T> = { readonly [K in keyof T]?: unknown };

/**
 * This device's lab's exam mode (`presence:snapshot`'s `exam`, then `exam:state`): `on` while
 * the lab is in exam mode, `bound` when that keeps this device from one-to-one transfers (a
 * student's; instructors and admins are never bound).
 */
export type ExamState = Readonly<WireExamState>;

/**
 * A lab's visibility as `lab:policy` sets it: its own choice (`own`: its students see only
 * their lab; `all`: every lab that shows every lab), or `default` (the server's setting decides).
 */
export type PolicyVisibility = WirePolicyVisibility;

/** A lab's exam window, switched by the server: unix seconds. */
export type ExamSchedule = Readonly<WireExamSchedule>;

/** What `lab:policy` changes of a lab: its exam mode, its visibility, or both. */
export type LabPolicyChange = Readonly<Omit<WireLabPolicy, 'lab'>>;

/** One lab's policies (`lab:policy`'s ack, each lab of `lab:policies`). */
export interface LabPolicyState {
  readonly lab: string;
  readonly exam: boolean;
  readonly visibility: PolicyVisibility;
  /** Its exam window; null when it has none. */
  readonly schedule: ExamSchedule | null;
}

/** One connected device of a user. */
export type Peer = Readonly<WirePeer>;

/** A file as announced in `transfer:request` / `transfer:incoming`: a name, or a relative
 * path (`folder/sub/file.txt`) for folder transfers. */
export type FileMeta = Readonly<WireFileMeta>;

/** Which part of a larger send a request is (`part` of `transfer:request`; batches.ts). */
export type PartInfo = Readonly<Part>;

/** A text's size (UTF-8 bytes) and length (characters), as `transfer:request`'s `text` (text.ts). */
export type TextInfo = Readonly<TextMeta>;

export interface IncomingRequest {
  readonly transferId: string;
  readonly from: Peer;
  readonly files: readonly FileMeta[];
  readonly totalBytes: number;
  readonly broadcastId: string | null;
  /** Set when the request is one part of a larger send. */
  readonly part: PartInfo | null;
  /**
   * When the request expires unanswered, in ms since the epoch by this computer's clock
   * (from the server's `expiresInSecs` and the moment it arrived); null from a server that
   * does not say.
   */
  readonly expiresAt: number | null;
  /** Set when the request carries a text (its one file is the text), not files. */
  readonly text: TextInfo | null;
  /** Set when the request delivers a student's files to a hand-in this browser collects. */
  readonly handin: HandinTag | null;
}

/** Which hand-in a transfer delivers to, and whether it came after the deadline. */
export type HandinTag = Readonly<HandinDelivery>;

/**
 * An open hand-in (`handin:opened`): `deadline` in unix seconds, `extensions` lowercase
 * without the dot (empty: any file), `maxBytes` null for no limit per student, `collecting`
 * true on the one browser that receives its files.
 */
export interface Handin {
  readonly handinId: string;
  readonly lab: string;
  readonly title: string;
  readonly deadline: number;
  readonly instructions: string;
  readonly extensions: readonly string[];
  readonly maxBytes: number | null;
  readonly allowLate: boolean;
  readonly collector: string;
  readonly collecting: boolean;
}

/** A file of a receipt: what the collecting browser verified. */
export type ReceiptFile = Readonly<HandinFile>;

/** A student's receipt (`handin:received`, and each row of `handin:receipts`). */
export interface Receipt {
  readonly handinId: string;
  readonly transferId: string;
  /** 1 for the first hand-in, 2 for the re-submission that replaced it, …: the highest counts. */
  readonly version: number;
  readonly files: readonly ReceiptFile[];
  readonly totalBytes: number;
  /** Unix seconds. */
  readonly receivedAt: number;
  readonly late: boolean;
}

/** A row of `handin:receipts`: a receipt and whose it is. */
export interface StudentReceiptRow extends Receipt {
  readonly username: string;
}

export interface Announcement {
  readonly id: string;
  readonly from: string;
  readonly text: string;
  /** Unix seconds. */
  readonly at: number;
  readonly lab: string | null;
  readonly expiresAt: number | null;
}

/** `transfer:cancelled`: `reason` is a `CancelReason` (`cancelled`, `failed`, `peer_left`,
 * `resume_expired`, `exam_mode`), kept as text so a newer server's reason still reads; `detail` is the
 * other side's words. */
export interface CancelNotice {
  readonly transferId: string;
  readonly reason: string;
  readonly detail: string;
}

export type SignalMessage = Readonly<SignalRelay>;

export type PathKind = WirePathKind;

/** What each side reports with `transfer:finish`. */
export type FinishReport = Readonly<TransferFinish>;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const str = (v: unknown): v is string => typeof v === 'string';
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function decodePeer(v: unknown): Peer | null {
  if (!isRecord(v)) return null;
  const { peerId, userId, username, displayName, role, lab, device }: Unchecked<WirePeer> = v;
  if (!str(peerId) || !num(userId) || !str(username)) return null;
  return {
    peerId,
    userId,
    username,
    displayName: str(displayName) && displayName !== '' ? displayName : username,
    role: str(role) ? role : '',
    lab: str(lab) && lab !== '' ? lab : 'Other',
    device: str(device) ? device : '',
  };
}

export function decodeFiles(v: unknown): FileMeta[] | null {
  if (!Array.isArray(v)) return null;
  const files: FileMeta[] = [];
  for (const f of v) {
    if (!isRecord(f)) return null;
    const { name, size, mime }: Unchecked<WireFileMeta> = f;
    if (!str(name) || !num(size) || size < 0) return null;
    files.push({ name, size, mime: str(mime) ? mime : '' });
  }
  return files;
}

export function decodeIncoming(v: unknown, now = Date.now()): IncomingRequest | null {
  if (!isRecord(v)) return null;
  const w: Unchecked<EventData<'transfer:incoming'>> = v;
  if (!str(w.transferId)) return null;
  const from = decodePeer(w.from);
  const files = decodeFiles(w.files);
  if (from === null || files === null) return null;
  const total = num(w.totalBytes) ? w.totalBytes : files.reduce((sum, f) => sum + f.size, 0);
  const text = decodeTextInfo(w.text);
  return {
    transferId: w.transferId,
    from,
    files,
    totalBytes: total,
    broadcastId: str(v['broadcastId']) ? v['broadcastId'] : null,
    part: decodePart(w.part),
    expiresAt: num(w.expiresInSecs) && w.expiresInSecs >= 0 ? now + w.expiresInSecs * 1000 : null,
    // A text travels as exactly one file of its size; anything else is offered as files.
    text: text !== null && files.length === 1 && files[0]?.size === text.bytes ? text : null,
    handin: decodeHandinTag(w.handin),
  };
}

export function decodeHandinTag(v: unknown): HandinTag | null {
  if (!isRecord(v)) return null;
  const { handinId, late }: Unchecked<HandinDelivery> = v;
  return str(handinId) ? { handinId, late: late === true } : null;
}

export function decodeHandin(v: unknown): Handin | null {
  if (!isRecord(v)) return null;
  const w: Unchecked<HandinOpened> = v;
  if (!str(w.handinId) || !str(w.lab) || !str(w.title) || !num(w.deadline)) return null;
  return {
    handinId: w.handinId,
    lab: w.lab,
    title: w.title,
    deadline: w.deadline,
    instructions: str(w.instructions) ? w.instructions : '',
    extensions: Array.isArray(w.extensions) ? w.extensions.filter(str) : [],
    maxBytes: num(w.maxBytes) && w.maxBytes > 0 ? w.maxBytes : null,
    allowLate: w.allowLate === true,
    collector: str(w.collector) ? w.collector : '',
    collecting: w.collecting === true,
  };
}

/** A receipt's files, `[{name, size, sha256}]`; null when any does not decode. */
export function decodeReceiptFiles(v: unknown): ReceiptFile[] | null {
  if (!Array.isArray(v)) return null;
  const files: ReceiptFile[] = [];
  for (const f of v) {
    if (!isRecord(f)) return null;
    const { name, size, sha256 }: Unchecked<HandinFile> = f;
    if (!str(name) || !num(size) || !str(sha256)) return null;
    files.push({ name, size, sha256 });
  }
  return files;
}

export function decodeReceipt(v: unknown): Receipt | null {
  if (!isRecord(v)) return null;
  const w: Unchecked<HandinReceived> = v;
  const files = decodeReceiptFiles(w.files);
  if (!str(w.handinId) || !str(w.transferId) || !num(w.version) || files === null) return null;
  return {
    handinId: w.handinId,
    transferId: w.transferId,
    version: w.version,
    files,
    totalBytes: num(w.totalBytes) ? w.totalBytes : files.reduce((n, f) => n + f.size, 0),
    receivedAt: num(w.receivedAt) ? w.receivedAt : Math.floor(Date.now() / 1000),
    late: w.late === true,
  };
}

export function decodeStudentReceipt(v: unknown): StudentReceiptRow | null {
  const receipt = decodeReceipt(v);
  if (receipt === null || !isRecord(v)) return null;
  const { username }: Unchecked<StudentReceipt> = v;
  return str(username) ? { ...receipt, username } : null;
}

export function decodeTextInfo(v: unknown): TextInfo | null {
  if (!isRecord(v)) return null;
  const { bytes, chars }: Unchecked<TextMeta> = v;
  if (!num(bytes) || !num(chars) || !Number.isInteger(bytes) || !Number.isInteger(chars) || bytes < 1 || chars < 1) return null;
  return { bytes, chars };
}

export function decodePart(v: unknown): PartInfo | null {
  if (!isRecord(v)) return null;
  const { batch, index, count, totalFiles, totalBytes }: Unchecked<Part> = v;
  if (!str(batch) || !num(index) || !num(count) || !num(totalFiles) || !num(totalBytes)) return null;
  if (!Number.isInteger(index) || !Number.isInteger(count) || index < 1 || index > count) return null;
  return { batch, index, count, totalFiles, totalBytes };
}

/** The transfer of `transfer:accepted`, `transfer:declined` or `transfer:expired`. */
export function decodeTransferId(v: unknown): string | null {
  if (!isRecord(v)) return null;
  const { transferId }: Unchecked<EventData<'transfer:accepted'>> = v;
  return str(transferId) ? transferId : null;
}

export function decodeCancel(v: unknown): CancelNotice | null {
  if (!isRecord(v)) return null;
  const { transferId, reason, detail }: Unchecked<EventData<'transfer:cancelled'>> = v;
  if (!str(transferId)) return null;
  return {
    transferId,
    reason: str(reason) ? reason : 'cancelled',
    detail: str(detail) ? detail : '',
  };
}

export function decodeSignal(v: unknown): SignalMessage | null {
  if (!isRecord(v)) return null;
  const { transferId, from, data }: Unchecked<EventData<'signal'>> = v;
  if (!str(transferId) || !str(from)) return null;
  return { transferId, from, data };
}

/** An `ExamState`; null when it is not one (a server too old to say sends none). */
export function decodeExamState(v: unknown): ExamState | null {
  if (!isRecord(v)) return null;
  const { lab, on, bound }: Unchecked<WireExamState> = v;
  if (typeof on !== 'boolean') return null;
  return { lab: str(lab) ? lab : '', on, bound: on && bound === true };
}

/** A `LabPolicyState`; null when it is not one. An unknown visibility reads as `default`. */
export function decodeLabPolicy(v: unknown): LabPolicyState | null {
  if (!isRecord(v)) return null;
  const { lab, exam, visibility, schedule }: Unchecked<WireLabPolicyState> = v;
  if (!str(lab) || lab === '' || typeof exam !== 'boolean') return null;
  let window: ExamSchedule | null = null;
  if (isRecord(schedule)) {
    const { from, until }: Unchecked<WireExamSchedule> = schedule;
    if (num(from) && num(until) && until > from) window = { from, until };
  }
  return { lab, exam, visibility: visibility === 'own' || visibility === 'all' ? visibility : 'default', schedule: window };
}

export function decodeAnnouncement(v: unknown): Announcement | null {
  if (!isRecord(v)) return null;
  const { id, from, text, at, lab, expiresAt }: Unchecked<EventData<'announcement'>> = v;
  if (!str(text)) return null;
  return {
    id: str(id) ? id : num(id) ? String(id) : `${String(at)}:${text}`,
    from: str(from) ? from : '',
    text,
    at: num(at) ? at : Math.floor(Date.now() / 1000),
    lab: str(lab) ? lab : null,
    expiresAt: num(expiresAt) ? expiresAt : null,
  };
}

/** An ack error, `{error:{code,message}}`, as a thrown value. */
export class SignalingError extends Error {
  override readonly name = 'SignalingError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** `{ok:true,...}` → the ack; `{error}` → throws `SignalingError`. */
export function checkAck(ack: unknown): Record<string, unknown> {
  if (isRecord(ack)) {
    const error = ack['error'];
    if (isRecord(error)) {
      throw new SignalingError(str(error['code']) ? error['code'] : 'internal', str(error['message']) ? error['message'] : 'The server refused this.');
    }
    if (ack['ok'] === true) return ack;
  }
  throw new SignalingError('unexpected_response', 'The server sent an answer the app cannot read.');
}
