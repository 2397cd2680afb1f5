/**
 * "Test my connection": what this browser reaches on the LabBeam server's STUN and TURN.
 * One gathering per way of connecting, side by side: host and server-reflexive candidates
 * against STUN (direct connections, UDP to the server), and relay candidates through TURN
 * over UDP, TCP and TLS, each relay-only with that transport's URLs alone. A relay candidate
 * means the relay accepted this PC's credentials and allocated a port over that transport,
 * which is what a relayed transfer needs. `explain` turns the result into plain words.
 *
 * The result goes to the server (`POST /api/connection-tests`), which lists it per lab on
 * the portal's Health page.
 */

import { serverKind } from './diagnose';

export type PathResult = 'ok' | 'failed' | 'not_offered';

/** The five ways, named as the server stores them. */
export interface ConnectionPaths {
  direct: PathResult;
  stun: PathResult;
  relay_udp: PathResult;
  relay_tcp: PathResult;
  relay_tls: PathResult;
}

/** How long one gathering may take: a blocked TURN/TCP or TLS server is given up on by then. */
const GATHER_TIMEOUT_MS = 15_000;

type Kind = 'stun' | 'udp' | 'tcp' | 'tls';

/** The entries of `servers` with only the URLs of `kind`. */
function only(servers: readonly RTCIceServer[], kind: Kind): RTCIceServer[] {
  return servers.flatMap((s) => {
    const urls = [s.urls].flat().filter((u) => serverKind(u) === kind);
    return urls.length === 0 ? [] : [{ ...s, urls }];
  });
}

/** The candidate types (`host`, `srflx`, `relay`) one gathering with `config` yields. */
async function gather(config: RTCConfiguration, timeoutMs: number): Promise<Set<string>> {
  const pc = new RTCPeerConnection(config);
  const types = new Set<string>();
  try {
    pc.createDataChannel('connection-test');
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      pc.onicecandidate = (e) => {
        if (e.candidate === null) {
          clearTimeout(timer);
          resolve();
        } else if (e.candidate.type) {
          types.add(e.candidate.type);
        }
      };
    });
    await pc.setLocalDescription(await pc.createOffer());
    await done;
  } finally {
    pc.close();
  }
  return types;
}

/** Runs the test against `servers` (the list of `GET /api/ice-servers`; empty without a relay). */
export async function testConnection(servers: readonly RTCIceServer[], timeoutMs = GATHER_TIMEOUT_MS): Promise<ConnectionPaths> {
  const stun = only(servers, 'stun');
  const relay = async (kind: Kind): Promise<PathResult> => {
    const list = only(servers, kind);
    if (list.length === 0) return 'not_offered';
    const types = await gather({ iceServers: list, iceTransportPolicy: 'relay' }, timeoutMs);
    return types.has('relay') ? 'ok' : 'failed';
  };
  const [local, udp, tcp, tls] = await Promise.all([gather({ iceServers: stun }, timeoutMs), relay('udp'), relay('tcp'), relay('tls')]);
  return {
    direct: local.has('host') ? 'ok' : 'failed',
    // UDP to the server works when STUN maps an address, and also when TURN over UDP
    // allocated (Chromium drops a server-reflexive candidate equal to a host address).
    stun: stun.length === 0 ? 'not_offered' : local.has('srflx') || udp === 'ok' ? 'ok' : 'failed',
    relay_udp: udp,
    relay_tcp: tcp,
    relay_tls: tls,
  };
}

/** Where the relay is, from the `turn:` URLs: `{ host, udpPort, tlsPort }`. */
export function relayAddress(servers: readonly RTCIceServer[]): { host: string; port: string; tlsPort: string } | null {
  let host = '';
  let port = '';
  let tlsPort = '';
  for (const url of servers.flatMap((s) => [s.urls].flat())) {
    const m = /^turns?:(\[[^\]]+\]|[^:?]+)(?::(\d+))?/.exec(url);
    if (!m) continue;
    host = m[1] ?? host;
    if (url.startsWith('turns:')) tlsPort = m[2] ?? '5349';
    else port = m[2] ?? '3478';
  }
  return host === '' ? null : { host, port: port || '3478', tlsPort: tlsPort || '5349' };
}

export interface Explanation {
  /** `all`, `relay_tcp_tls_only`, `relay_partial`, `no_relay`, `relay_off`, `relay_only`. */
  readonly code: string;
  readonly headline: string;
  readonly advice: string;
}

/** The result in plain words for the person at this PC, and what the administrator should open. */
export function explain(p: ConnectionPaths, relay: { host: string; port: string; tlsPort: string } | null): Explanation {
  const where = relay === null ? 'the LabBeam server' : relay.host;
  const udpPort = relay?.port ?? '3478';
  const tlsPort = relay?.tlsPort ?? '5349';
  const relays: [string, PathResult][] = [
    ['UDP', p.relay_udp],
    ['TCP', p.relay_tcp],
    ['TLS', p.relay_tls],
  ];
  const working = relays.filter(([, r]) => r === 'ok').map(([n]) => n);
  const failed = relays.filter(([, r]) => r === 'failed').map(([n]) => n);
  const direct = p.direct === 'ok' ? 'Direct connections to PCs on this network can work.' : 'This PC has no network address for direct connections.';
  if (working.length === 0 && failed.length === 0) {
    return {
      code: 'relay_off',
      headline: 'This LabBeam server has no relay.',
      advice: `${direct} PCs that cannot reach each other directly cannot exchange files; the administrator can turn the relay on.`,
    };
  }
  if (working.length === 0) {
    return {
      code: 'no_relay',
      headline: 'This PC cannot reach the LabBeam relay at all.',
      advice: `${direct} Transfers to PCs it cannot reach directly will fail. Ask the administrator to open UDP ${udpPort} (and the relay’s UDP ports), or at least TCP ${udpPort} or ${tlsPort}, from this room to ${where}.`,
    };
  }
  if (p.relay_udp === 'failed') {
    const tls = p.relay_tls === 'failed' ? ' TURN over TLS failed too: this PC may not trust the LabBeam server’s certificate.' : '';
    return {
      code: 'relay_tcp_tls_only',
      headline: `Relay over ${working.join('/')} only: UDP to the LabBeam server is blocked from this PC.`,
      advice: `Transfers still work, through the relay, but slower. Ask the administrator to open UDP ${udpPort} and the relay’s UDP ports to ${where} from this room.${tls}`,
    };
  }
  if (failed.length > 0) {
    const tls = failed.includes('TLS') ? ' For TLS, this PC may not trust the LabBeam server’s certificate.' : '';
    return {
      code: 'relay_partial',
      headline: `The relay works over ${working.join('/')}; ${failed.join('/')} failed.`,
      advice: `${direct} Transfers work.${tls}`,
    };
  }
  if (p.direct !== 'ok') {
    return { code: 'relay_only', headline: `The relay works over ${working.join('/')}.`, advice: `${direct} Transfers go through the relay.` };
  }
  return {
    code: 'all',
    headline: `Everything works from this PC: direct connections and the relay over ${working.join('/')}.`,
    advice: 'Nothing to do.',
  };
}
