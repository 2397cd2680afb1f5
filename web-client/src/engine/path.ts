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
