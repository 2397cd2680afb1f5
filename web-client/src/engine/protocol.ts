/**
 * The Socket.IO protocol as the client sees it (docs/PROTOCOL.md): the shapes of server
 * events and acks, decoded from `unknown` into typed values. Anything that does not decode is
 * dropped by the caller, so a newer or misbehaving server cannot crash the engine.
 */

/** One connected device of a user. */
export interface Peer {
  readonly peerId: string;
  readonly userId: number;
  readonly username: string;
  readonly displayName: string;
  readonly role: string;
  readonly lab: string;
  readonly device: string;
}

/** A file as announced in `transfer:request` / `transfer:incoming`. */
export interface FileMeta {
  /** A name, or a relative path (`folder/sub/file.txt`) for folder transfers. */
  readonly name: string;
  readonly size: number;
  readonly mime: string;
}

/** Which part of a larger send a request is (`part` of `transfer:request`; batches.ts). */
export interface PartInfo {
  /** The send's id, the same in each of its parts. */
  readonly batch: string;
  /** 1-based. */
  readonly index: number;
  readonly count: number;
  /** Files and bytes of the whole send. */
  readonly totalFiles: number;
  readonly totalBytes: number;
}

export interface IncomingRequest {
  readonly transferId: string;
  readonly from: Peer;
  readonly files: readonly FileMeta[];
  readonly totalBytes: number;
  readonly broadcastId: string | null;
  /** Set when the request is one part of a larger send. */
  readonly part: PartInfo | null;
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

/** `transfer:cancelled`: `reason` is `cancelled`, `failed` or `peer_left`; `detail` is the other side's words. */
export interface CancelNotice {
  readonly transferId: string;
  readonly reason: string;
  readonly detail: string;
}

export interface SignalMessage {
  readonly transferId: string;
  readonly from: string;
  readonly data: unknown;
}

export type PathKind = 'direct' | 'relay';

/** What each side reports with `transfer:finish`. */
export interface FinishReport {
  readonly transferId: string;
  readonly status: 'completed' | 'failed' | 'cancelled';
  readonly bytes: number;
  readonly sha256: string;
  readonly path?: PathKind;
  readonly durationMs?: number;
  readonly reason?: string;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const str = (v: unknown): v is string => typeof v === 'string';
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function decodePeer(v: unknown): Peer | null {
  if (!isRecord(v)) return null;
  const { peerId, userId, username, displayName, role, lab, device } = v;
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
    if (!isRecord(f) || !str(f['name']) || !num(f['size']) || f['size'] < 0) return null;
    files.push({ name: f['name'], size: f['size'], mime: str(f['mime']) ? f['mime'] : '' });
  }
  return files;
}

export function decodeIncoming(v: unknown): IncomingRequest | null {
  if (!isRecord(v) || !str(v['transferId'])) return null;
  const from = decodePeer(v['from']);
  const files = decodeFiles(v['files']);
  if (from === null || files === null) return null;
  const total = num(v['totalBytes']) ? v['totalBytes'] : files.reduce((sum, f) => sum + f.size, 0);
  return {
    transferId: v['transferId'],
    from,
    files,
    totalBytes: total,
    broadcastId: str(v['broadcastId']) ? v['broadcastId'] : null,
    part: decodePart(v['part']),
  };
}

export function decodePart(v: unknown): PartInfo | null {
  if (!isRecord(v)) return null;
  const { batch, index, count, totalFiles, totalBytes } = v;
  if (!str(batch) || !num(index) || !num(count) || !num(totalFiles) || !num(totalBytes)) return null;
  if (!Number.isInteger(index) || !Number.isInteger(count) || index < 1 || index > count) return null;
  return { batch, index, count, totalFiles, totalBytes };
}

export function decodeTransferId(v: unknown): string | null {
  return isRecord(v) && str(v['transferId']) ? v['transferId'] : null;
}

export function decodeCancel(v: unknown): CancelNotice | null {
  if (!isRecord(v) || !str(v['transferId'])) return null;
  return {
    transferId: v['transferId'],
    reason: str(v['reason']) ? v['reason'] : 'cancelled',
    detail: str(v['detail']) ? v['detail'] : '',
  };
}

export function decodeSignal(v: unknown): SignalMessage | null {
  if (!isRecord(v) || !str(v['transferId']) || !str(v['from'])) return null;
  return { transferId: v['transferId'], from: v['from'], data: v['data'] };
}

export function decodeAnnouncement(v: unknown): Announcement | null {
  if (!isRecord(v) || !str(v['text'])) return null;
  return {
    id: str(v['id']) ? v['id'] : num(v['id']) ? String(v['id']) : `${String(v['at'])}:${v['text']}`,
    from: str(v['from']) ? v['from'] : '',
    text: v['text'],
    at: num(v['at']) ? v['at'] : Math.floor(Date.now() / 1000),
    lab: str(v['lab']) ? v['lab'] : null,
    expiresAt: num(v['expiresAt']) ? v['expiresAt'] : null,
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
