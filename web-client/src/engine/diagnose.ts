/**
 * Why a connection could not be set up, in plain words, from what ICE gathered and tried:
 * the candidate types this browser gathered (and through which relay transport), the ones
 * the other browser sent, whether each STUN/TURN server answered (`icecandidateerror`: 701
 * means unreachable, a STUN error code means it answered and refused), and whether the other
 * browser answered at all.
 *
 * `IceRecorder` collects the evidence from a live `RTCPeerConnection` and the signals of the
 * other side; `diagnose` is pure and turns it into a `{code, message}` for the transfer card.
 */

export type RelayTransport = 'udp' | 'tcp' | 'tls';
/** A server's role in the configuration, by URL. */
type ServerKind = 'stun' | RelayTransport;

export interface ServerOutcome {
  /** Answered with a candidate (`ok`), answered with a STUN error (`refused`, with its code), or not reached. */
  readonly status: 'ok' | 'refused' | 'unreachable' | 'unknown';
  readonly code?: number;
}

export interface IceEvidence {
  readonly relayForced: boolean;
  /** Which STUN/TURN transports the configuration offers. */
  readonly offered: ReadonlySet<ServerKind>;
  /** Candidate types gathered here: host, srflx, prflx, and relay-udp / relay-tcp / relay-tls. */
  readonly local: ReadonlySet<string>;
  /** Candidate types the other browser sent: host, srflx, prflx, relay. */
  readonly remote: ReadonlySet<string>;
  /** Whether the other browser sent any description or candidate. */
  readonly remoteAnswered: boolean;
  /** What became of each offered server kind. */
  readonly servers: ReadonlyMap<ServerKind, ServerOutcome>;
}

export interface Diagnosis {
  readonly code: string;
  readonly message: string;
}

export function serverKind(url: string): ServerKind | null {
  if (/^stuns?:/.test(url)) return 'stun';
  if (url.startsWith('turns:')) return 'tls';
  if (url.startsWith('turn:')) return /[?&]transport=tcp\b/.test(url) ? 'tcp' : 'udp';
  return null;
}

/** The `typ` of an SDP candidate line (`candidate:… typ relay …`). */
export function candidateType(line: string): string | null {
  const m = /\btyp (host|srflx|prflx|relay)\b/.exec(line);
  return m ? (m[1] ?? null) : null;
}

const LABEL: Record<RelayTransport, string> = { udp: 'TURN/UDP', tcp: 'TURN/TCP', tls: 'TURN/TLS' };

export function diagnose(e: IceEvidence, peerName: string): Diagnosis {
  const offersRelay = e.offered.has('udp') || e.offered.has('tcp') || e.offered.has('tls');
  const localRelay = [...e.local].some((t) => t.startsWith('relay'));
  const remoteRelay = e.remote.has('relay');

  if (!e.remoteAnswered) {
    return {
      code: 'peer_offline',
      message: `${peerName}’s computer did not answer the connection setup: it seems to be offline, asleep, or its LabBeam page is closed. Try again when it is back.`,
    };
  }

  if (offersRelay && !localRelay) {
    const causes: string[] = [];
    const refused = ([...e.servers.entries()] as [ServerKind, ServerOutcome][]).filter(([k, o]) => k !== 'stun' && o.status === 'refused');
    const auth = refused.find(([, o]) => o.code === 401 || o.code === 438);
    const full = refused.find(([, o]) => o.code === 486 || o.code === 508);
    if (auth) causes.push('the relay refused this computer’s credentials (sign out and in again)');
    if (full) causes.push('the relay has no room left (too many connections)');
    const udpSeen = e.local.has('srflx') || e.local.has('relay-udp');
    if ((e.offered.has('udp') || e.offered.has('stun')) && !udpSeen && !auth && !full) causes.push('UDP blocked');
    for (const t of ['tcp', 'tls'] as const) {
      if (e.offered.has(t) && e.servers.get(t)?.status !== 'refused') causes.push(`${LABEL[t]} unreachable`);
    }
    const what = causes.length > 0 ? listOf(causes) : 'the relay did not answer';
    const tlsHint = e.offered.has('tls') ? ' TURN over TLS also needs the LabBeam server’s certificate to be trusted by this computer.' : '';
    return {
      code: 'relay_unreachable',
      message: `Could not connect to ${peerName}’s computer: this computer cannot reach the LabBeam relay (${what}). Ask the lab’s administrator to let UDP 3478, or TCP to the relay’s ports, out to the LabBeam server.${tlsHint}`,
    };
  }

  if (offersRelay && !remoteRelay) {
    const only = e.remote.size === 0 ? 'no usable address' : `only ${[...e.remote].map(plainType).join(' and ')} addresses`;
    return {
      code: 'peer_network',
      message: `Could not connect to ${peerName}’s computer: its network lets nothing through to the LabBeam relay (it offered ${only}), so it is unreachable from here. Its network probably blocks UDP and TURN over TCP/TLS; ask the lab’s administrator.`,
    };
  }

  if (e.relayForced) {
    return {
      code: 'relay_path_failed',
      message: `Both computers reached the LabBeam relay, but the relay could not pass data between them. Turn off “Always use the relay” in Settings, or ask the lab’s administrator to check the relay (labbeam doctor).`,
    };
  }

  if (offersRelay) {
    return {
      code: 'relay_path_failed',
      message: `Could not connect to ${peerName}’s computer: neither directly nor through the LabBeam relay, although both computers reached the relay. A firewall may block it: ask the lab’s administrator to run “labbeam doctor”, then try again.`,
    };
  }

  return {
    code: 'no_direct_path',
    message: `Could not connect to ${peerName}’s computer directly, and this server offers no relay. Check that both computers are on the lab network, or ask the administrator to enable the TURN relay.`,
  };
}

function listOf(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

function plainType(t: string): string {
  return t === 'host' ? 'local' : t === 'srflx' || t === 'prflx' ? 'public' : t;
}

/** Collects `IceEvidence` from a connection and the other side's signals. */
export class IceRecorder {
  readonly #relayForced: boolean;
  readonly #offered = new Set<ServerKind>();
  readonly #local = new Set<string>();
  readonly #remote = new Set<string>();
  readonly #servers = new Map<ServerKind, ServerOutcome>();
  #remoteAnswered = false;

  constructor(config: RTCConfiguration) {
    this.#relayForced = config.iceTransportPolicy === 'relay';
    for (const server of config.iceServers ?? []) {
      for (const url of [server.urls].flat()) {
        const kind = serverKind(url);
        if (kind !== null) this.#offered.add(kind);
      }
    }
  }

  watch(pc: RTCPeerConnection): void {
    pc.addEventListener('icecandidate', (event) => {
      const c = event.candidate;
      if (c === null || c.candidate === '') return;
      this.localCandidate(c.type ?? candidateType(c.candidate), relayProtocolOf(c, (event as { url?: string | null }).url ?? null));
    });
    pc.addEventListener('icecandidateerror', (event) => {
      const e = event as RTCPeerConnectionIceErrorEvent;
      this.serverError(e.url, e.errorCode);
    });
  }

  localCandidate(type: string | null, relayProtocol: RelayTransport | null): void {
    if (type === null) return;
    if (type === 'relay') {
      const t = relayProtocol ?? 'udp';
      this.#local.add(`relay-${t}`);
      this.#servers.set(t, { status: 'ok' });
    } else {
      this.#local.add(type);
      if (type === 'srflx') this.#servers.set('stun', { status: 'ok' });
    }
  }

  serverError(url: string, code: number): void {
    const kind = serverKind(url);
    if (kind === null || this.#servers.get(kind)?.status === 'ok') return;
    const status = code >= 300 && code < 700 ? 'refused' : 'unreachable';
    this.#servers.set(kind, { status, code });
  }

  /** A signal from the other browser: `{sdp}` or `{candidate}`. */
  remoteSignal(data: unknown): void {
    if (typeof data !== 'object' || data === null) return;
    const d = data as { sdp?: { sdp?: string }; candidate?: { candidate?: string } | null };
    if (d.sdp !== undefined) {
      this.#remoteAnswered = true;
      for (const line of (d.sdp.sdp ?? '').split(/\r?\n/)) {
        const t = line.startsWith('a=candidate:') ? candidateType(line) : null;
        if (t !== null) this.#remote.add(t);
      }
    } else if (d.candidate !== undefined && d.candidate !== null) {
      this.#remoteAnswered = true;
      const t = candidateType(d.candidate.candidate ?? '');
      if (t !== null) this.#remote.add(t);
    }
  }

  evidence(): IceEvidence {
    const servers = new Map(this.#servers);
    for (const k of this.#offered) if (!servers.has(k)) servers.set(k, { status: 'unknown' });
    return {
      relayForced: this.#relayForced,
      offered: new Set(this.#offered),
      local: new Set(this.#local),
      remote: new Set(this.#remote),
      remoteAnswered: this.#remoteAnswered,
      servers,
    };
  }
}

function relayProtocolOf(c: RTCIceCandidate, url: string | null): RelayTransport | null {
  const p = (c as { relayProtocol?: unknown }).relayProtocol;
  if (p === 'udp' || p === 'tcp' || p === 'tls') return p;
  const kind = url === null ? null : serverKind(url);
  return kind === 'stun' ? null : kind;
}
