/**
 * The one place the browser client talks to the LabBeam server's HTTP API.
 *
 * Owns the wire format: request shape (same-origin session cookie, JSON bodies), decoding of
 * answers into typed values (snake_case on the wire, camelCase in the client), and mapping of
 * every failure — `{"error":{"code","message"}}` bodies, non-JSON answers, network failures,
 * timeouts — to one `ApiError` type, so views only ever handle `ApiError`.
 *
 * Invariants:
 * - No DOM access here: views call this module and render what it returns, and it can be
 *   exercised with a fake `fetch`.
 * - The session lives in the server's HttpOnly cookie. The token in the login answer is not kept
 *   anywhere script-readable (no storage), so an injected script cannot lift it.
 */

import type { ConnectionPaths } from './engine/connection-test';

/** A signed-in account, as the client uses it. */
export interface User {
  readonly id: number;
  readonly username: string;
  readonly displayName: string;
  readonly role: string;
  readonly permissions: readonly string[];
  /** The account has a temporary password: every other endpoint refuses it until it is changed. */
  readonly mustChangePassword: boolean;
  /** Who checks the password: `local`, or `ldap`/`oidc` (changed there, not here). */
  readonly source: string;
}

/** An OpenID provider of the campus, as the sign-in page offers it. */
export interface SignInProvider {
  readonly id: string;
  readonly name: string;
  /** Where the browser goes to sign in there (a path of this server). */
  readonly startUrl: string;
}

/** Error codes the server documents, plus the ones this module makes for failures without a body. */
export type ApiErrorCode =
  | 'invalid_request'
  | 'invalid_credentials'
  | 'account_disabled'
  | 'too_many_attempts'
  | 'unauthenticated'
  | 'password_change_required'
  | 'weak_password'
  | 'csrf_required'
  | 'busy'
  | 'network_error'
  | 'timeout'
  | 'unexpected_response'
  // Codes added by later server versions still reach the views, with their human message.
  | (string & {});

/** Any failed API call. `status` is 0 when no HTTP answer arrived (network error, timeout). */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly status: number,
    /** Seconds to wait before retrying, from the `Retry-After` header; `null` when absent. */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
}

/** The subset of `fetch` this module needs, so tests can pass a fake. */
export type FetchFn = (input: string, init: RequestInit) => Promise<Response>;

export interface ApiClientOptions {
  fetch?: FetchFn;
  /** How long one request may take before it fails with `timeout`. */
  timeoutMs?: number;
  /**
   * Called with every `unauthenticated` or `password_change_required` error, before the calling
   * view sees it: the session's owner decides once what that means for the whole app, instead of
   * each view handling it. Login attempts are excluded (their 401 means wrong credentials).
   */
  onAuthError?: (error: ApiError) => void;
}

const DEFAULT_TIMEOUT_MS = 20_000;

export class ApiClient {
  readonly #fetch: FetchFn;
  readonly #timeoutMs: number;
  readonly #onAuthError: ((error: ApiError) => void) | undefined;

  constructor(options: ApiClientOptions = {}) {
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#onAuthError = options.onAuthError;
  }

  /** The signed-in user; fails with `unauthenticated` when there is no valid session. */
  async me(): Promise<User> {
    return decodeUser(await this.#request('GET', '/api/me'));
  }

  /** Opens a session (the server sets the cookie) and returns its user. */
  async login(username: string, password: string): Promise<User> {
    const answer = await this.#request('POST', '/api/auth/login', { username, password }, { reportAuthErrors: false });
    return decodeUser(field(answer, 'user'));
  }

  /** Revokes the session server-side. */
  /**
   * Ends the session. Returns the identity provider's end-session URL when the session came from
   * one (the caller sends the browser there, so the provider's session ends too), else `null`.
   */
  async logout(): Promise<string | null> {
    const answer = await this.#request('POST', '/api/auth/logout', {});
    const url = field(answer, 'endSessionUrl');
    return typeof url === 'string' && url.startsWith('https://') ? url : null;
  }

  /** The campus identity providers people may sign in with ("Sign in with …" buttons). */
  async signInProviders(): Promise<SignInProvider[]> {
    return decodeProviders(await this.#request('GET', '/api/auth/providers', undefined, { reportAuthErrors: false }));
  }

  /** Fails with `invalid_credentials` when `currentPassword` is wrong, `weak_password` when the server refuses the new one. */
  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    await this.#request('POST', '/api/me/password', {
      current_password: currentPassword,
      new_password: newPassword,
    });
  }

  /**
   * STUN/TURN servers for WebRTC, with short-lived TURN credentials. `null` when this server
   * has no such endpoint (404); connections inside the lab then work without them.
   */
  async iceServers(): Promise<IceServerList | null> {
    let answer: unknown;
    try {
      answer = await this.#request('GET', '/api/ice-servers');
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
    return decodeIceServers(answer);
  }

  /**
   * Sends a "Test my connection" result for the Health page; answers with the lab the
   * server placed this PC in and its verdict for the administrator.
   */
  async connectionTest(device: string, paths: ConnectionPaths): Promise<{ lab: string; verdict: string }> {
    const answer = await this.#request('POST', '/api/connection-tests', { device, paths });
    const test = field(answer, 'test');
    const lab = field(test, 'lab');
    const verdict = field(field(test, 'verdict'), 'words');
    if (typeof lab !== 'string' || typeof verdict !== 'string') throw malformed('a connection test');
    return { lab, verdict };
  }

  /**
   * The caller's own transfer history (sent and received), newest first (one page). Own
   * also for admins, whom the server otherwise answers with everyone's.
   */
  async transfers(limit = 50): Promise<TransferRecord[]> {
    const answer = await this.#request('GET', `/api/transfers?scope=own&limit=${limit}`);
    const rows = field(answer, 'transfers');
    if (!Array.isArray(rows)) throw malformed('a transfer history');
    return rows.map(decodeTransferRecord).filter((r): r is TransferRecord => r !== null);
  }

  async #request(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    { reportAuthErrors = true }: { reportAuthErrors?: boolean } = {},
  ): Promise<unknown> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    // The session cookie authenticates these calls; the server wants this header on every
    // call that changes something, as proof that the request is not a cross-site form.
    if (method !== 'GET') headers['X-LabBeam-CSRF'] = '1';
    const init: RequestInit = {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      signal: AbortSignal.timeout(this.#timeoutMs),
    };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }

    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(path, init);
      text = await response.text();
    } catch (cause) {
      throw transportError(cause);
    }

    const payload = parseJson(text);
    if (response.ok) {
      if (payload === undefined) {
        throw new ApiError('unexpected_response', `The server sent an answer the app cannot read (${method} ${path}).`, response.status);
      }
      return payload;
    }

    const error = errorFromAnswer(response, payload);
    if (reportAuthErrors && (error.code === 'unauthenticated' || error.code === 'password_change_required')) {
      this.#onAuthError?.(error);
    }
    throw error;
  }
}

function transportError(cause: unknown): ApiError {
  if (cause instanceof DOMException && (cause.name === 'TimeoutError' || cause.name === 'AbortError')) {
    return new ApiError('timeout', 'The LabBeam server did not answer in time. Try again.', 0);
  }
  return new ApiError('network_error', 'Cannot reach the LabBeam server. Check the network connection and try again.', 0);
}

function errorFromAnswer(response: Response, payload: unknown): ApiError {
  const retryAfter = parseRetryAfter(response.headers.get('Retry-After'), Date.now());
  const error = isRecord(payload) ? payload['error'] : undefined;
  if (isRecord(error) && typeof error['code'] === 'string' && typeof error['message'] === 'string') {
    return new ApiError(error['code'], error['message'], response.status, retryAfter);
  }
  const statusText = response.statusText ? ` ${response.statusText}` : '';
  return new ApiError(
    'unexpected_response',
    `The server answered ${response.status}${statusText}. Try again, or ask the lab's administrator if it persists.`,
    response.status,
    retryAfter,
  );
}

/** `Retry-After` is either delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(header: string | null, nowMs: number): number | null {
  if (header === null) return null;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number.parseInt(value, 10);
  const at = Date.parse(value);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - nowMs) / 1000));
}

function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(value: unknown, name: string): unknown {
  return isRecord(value) ? value[name] : undefined;
}

function malformed(what: string): ApiError {
  return new ApiError('unexpected_response', `The server sent ${what} the app cannot read.`, 200);
}

/**
 * Strict on what identifies the account, lenient on the rest so an older server
 * (no `must_change_password`) still works.
 */
export function decodeProviders(value: unknown): SignInProvider[] {
  const list = field(value, 'providers');
  if (!Array.isArray(list)) throw malformed('providers');
  return list.flatMap((p: unknown) => {
    const id = field(p, 'id');
    const name = field(p, 'name');
    const startUrl = field(p, 'startUrl');
    // Only this server's own paths: the button never leads anywhere else directly.
    if (typeof id !== 'string' || typeof name !== 'string' || typeof startUrl !== 'string') return [];
    if (!startUrl.startsWith('/api/auth/oidc/')) return [];
    return [{ id, name, startUrl }];
  });
}

export function decodeUser(value: unknown): User {
  if (!isRecord(value)) throw malformed('an account record');
  const { id, username, display_name: displayName, role, permissions, must_change_password: mustChange, source } = value;
  if (typeof id !== 'number' || typeof username !== 'string' || typeof role !== 'string') {
    throw malformed('an account record');
  }
  return {
    id,
    username,
    displayName: typeof displayName === 'string' && displayName.trim() !== '' ? displayName : username,
    role,
    permissions: Array.isArray(permissions) ? permissions.filter((p): p is string => typeof p === 'string') : [],
    mustChangePassword: mustChange === true,
    // Older servers do not say: their accounts are all local.
    source: typeof source === 'string' ? source : 'local',
  };
}

export interface IceServerList {
  readonly iceServers: RTCIceServer[];
  /** Seconds the credentials stay valid. */
  readonly ttl: number;
}

export function decodeIceServers(value: unknown): IceServerList {
  const list = field(value, 'iceServers');
  if (!Array.isArray(list)) throw malformed('an ICE server list');
  const iceServers: RTCIceServer[] = [];
  for (const entry of list) {
    if (!isRecord(entry)) continue;
    const urls = entry['urls'];
    const urlList = typeof urls === 'string' ? [urls] : Array.isArray(urls) ? urls.filter((u): u is string => typeof u === 'string') : [];
    if (urlList.length === 0) continue;
    const server: RTCIceServer = { urls: urlList };
    if (typeof entry['username'] === 'string') server.username = entry['username'];
    if (typeof entry['credential'] === 'string') server.credential = entry['credential'];
    iceServers.push(server);
  }
  const ttl = field(value, 'ttl');
  return { iceServers, ttl: typeof ttl === 'number' && ttl > 0 ? ttl : 3600 };
}

/** One row of the transfer log, as the history shows it. */
export interface TransferRecord {
  readonly id: string;
  /** Account ids; `null` once that account was deleted. */
  readonly senderId: number | null;
  readonly receiverId: number | null;
  readonly senderUsername: string;
  readonly receiverUsername: string;
  readonly senderDevice: string;
  readonly receiverDevice: string;
  readonly files: readonly { name: string; size: number }[];
  readonly fileCount: number;
  readonly totalBytes: number;
  readonly bytes: number;
  readonly status: string;
  readonly path: string;
  /** Unix seconds. */
  readonly requestedAt: number;
  readonly durationMs: number | null;
  readonly failureReason: string;
  /** The length of the text the transfer carried; null for files. */
  readonly textChars: number | null;
}

export function decodeTransferRecord(value: unknown): TransferRecord | null {
  if (!isRecord(value) || typeof value['id'] !== 'string') return null;
  const s = (k: string): string => (typeof value[k] === 'string' ? (value[k] as string) : '');
  const n = (k: string): number => (typeof value[k] === 'number' ? (value[k] as number) : 0);
  const files = Array.isArray(value['files'])
    ? value['files'].flatMap((f) =>
        isRecord(f) && typeof f['name'] === 'string' ? [{ name: f['name'], size: typeof f['size'] === 'number' ? f['size'] : 0 }] : [],
      )
    : [];
  return {
    id: value['id'],
    senderId: typeof value['sender_id'] === 'number' ? value['sender_id'] : null,
    receiverId: typeof value['receiver_id'] === 'number' ? value['receiver_id'] : null,
    senderUsername: s('sender_username'),
    receiverUsername: s('receiver_username'),
    senderDevice: s('sender_device'),
    receiverDevice: s('receiver_device'),
    files,
    fileCount: n('file_count') || files.length,
    totalBytes: n('total_bytes'),
    bytes: n('bytes'),
    status: s('status'),
    path: s('path'),
    requestedAt: n('requested_at'),
    durationMs: typeof value['duration_ms'] === 'number' ? value['duration_ms'] : null,
    failureReason: s('failure_reason'),
    textChars: typeof value['text_chars'] === 'number' ? value['text_chars'] : null,
  };
}
