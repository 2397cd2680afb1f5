/** ICE server lists: picking the relay (TURN) entries for relay-only connections. */

/** The TURN entries (only URLs of `transport` when given), for relay-only connections. */
export function relayServers(servers: readonly RTCIceServer[], mode: 'any' | 'udp' | 'tcp'): RTCIceServer[] {
  return servers.flatMap((s) => {
    const urls = [s.urls].flat().filter((u) => /^turns?:/.test(u) && (mode === 'any' || transportOf(u) === mode));
    return urls.length === 0 ? [] : [{ ...s, urls }];
  });
}

function transportOf(url: string): 'udp' | 'tcp' {
  if (url.startsWith('turns:')) return 'tcp';
  return /[?&]transport=tcp\b/.test(url) ? 'tcp' : 'udp';
}
