/**
 * Which network path a connection actually uses, read from `RTCPeerConnection.getStats()`:
 * the selected candidate pair's local and remote candidates. A relay candidate on either end
 * means the bytes go through the TURN relay; its `relayProtocol` says how this browser reaches
 * the relay (udp, tcp or tls).
 */

import type { PathKind } from './protocol';

export interface PathInfo {
  readonly kind: PathKind;
  /** Transport between this browser and the next hop: the relay, or the other browser. */
  readonly protocol: 'udp' | 'tcp' | 'tls';
  readonly localType: string;
  readonly remoteType: string;
  /** Round-trip time of the pair in milliseconds, when the browser measured it. */
  readonly rttMs: number | null;
}

type Stat = Record<string, unknown> & { readonly id: string; readonly type: string };

/** Pure: works on the values of an `RTCStatsReport` (or any list of stats objects). */
export function pathFromStats(stats: Iterable<Stat>): PathInfo | null {
  const byId = new Map<string, Stat>();
  for (const s of stats) byId.set(s.id, s);

  let pair: Stat | undefined;
  for (const s of byId.values()) {
    if (s.type === 'transport' && typeof s['selectedCandidatePairId'] === 'string') {
      pair = byId.get(s['selectedCandidatePairId']);
      if (pair !== undefined) break;
    }
  }
  if (pair === undefined) {
    // Browsers without `selectedCandidatePairId`: the nominated, succeeded pair.
    for (const s of byId.values()) {
      if (s.type === 'candidate-pair' && s['state'] === 'succeeded' && (s['nominated'] === true || s['selected'] === true)) {
        pair = s;
        break;
      }
    }
  }
  if (pair === undefined) return null;
  const local = byId.get(String(pair['localCandidateId']));
  const remote = byId.get(String(pair['remoteCandidateId']));
  if (local === undefined || remote === undefined) return null;

  const localType = String(local['candidateType'] ?? '');
  const remoteType = String(remote['candidateType'] ?? '');
  const relayed = localType === 'relay' || remoteType === 'relay';
  const rawProtocol = localType === 'relay' ? local['relayProtocol'] : local['protocol'];
  const protocol = rawProtocol === 'tcp' || rawProtocol === 'tls' ? rawProtocol : 'udp';
  const rtt = pair['currentRoundTripTime'];
  return {
    kind: relayed ? 'relay' : 'direct',
    protocol,
    localType,
    remoteType,
    rttMs: typeof rtt === 'number' ? Math.round(rtt * 1000) : null,
  };
}

export async function currentPath(pc: RTCPeerConnection): Promise<PathInfo | null> {
  try {
    const report = await pc.getStats();
    return pathFromStats(report.values() as Iterable<Stat>);
  } catch {
    return null;
  }
}

export function describePath(path: PathInfo): string {
  const proto = path.protocol.toUpperCase();
  return path.kind === 'relay' ? `through the relay (${proto})` : `direct (${proto})`;
}

/**
 * Follows the connection's path: calls `onChange` now and whenever the selected candidate pair
 * changes kind or transport (ICE may start on a relay pair that answered first and move to a
 * direct one a moment later). Returns the function that stops following.
 */
export function watchPath(pc: RTCPeerConnection, onChange: (path: PathInfo) => void): () => void {
  let last = '';
  let stopped = false;
  const read = async (): Promise<void> => {
    const path = await currentPath(pc);
    if (stopped || path === null) return;
    const key = `${path.kind}/${path.protocol}/${path.localType}/${path.remoteType}`;
    if (key === last) return;
    last = key;
    onChange(path);
  };
  const listener = (): void => void read();
  const ice = pc.sctp?.transport.iceTransport ?? null;
  ice?.addEventListener('selectedcandidatepairchange', listener);
  // Browsers without the event: look again now and then.
  const timer = setInterval(listener, 5000);
  listener();
  return () => {
    stopped = true;
    ice?.removeEventListener('selectedcandidatepairchange', listener);
    clearInterval(timer);
  };
}
