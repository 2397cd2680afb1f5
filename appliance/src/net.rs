//! The client's address of an HTTP request or socket: the connection's peer, or, when that
//! peer is a configured `trusted_proxies` entry, the address the proxy reports in
//! `X-Forwarded-For`. Everything that limits or records by address (login throttling, the
//! audit log, sessions, lab matching) asks this module, so all of them see the same client.
//!
//! Plain functions on addresses and headers only: no state, no other module of the crate.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address: the connection's, or, when that is a trusted proxy, the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy. Entries left of it were
/// written by the client (or by proxies we do not know) and could be anything.
pub fn client_addr(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |a: &IpAddr| trusted.iter().any(|n| n.contains(a));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else { return peer };
    header
        .split(',')
        .rev()
        .filter_map(|s| s.trim().parse::<IpAddr>().ok().map(|a| a.to_canonical()))
        .find(|a| !is_trusted(a))
        .unwrap_or(peer)
}

/// Every `X-Forwarded-For` line of a request joined in order (a proxy may add its own line
/// after the client's instead of appending to it), or `None` without any.
pub fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let lines: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    (!lines.is_empty()).then(|| lines.join(","))
}

/// `client_addr` of a request's peer and headers.
pub fn request_client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    client_addr(peer, forwarded_for(headers).as_deref(), trusted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forwarded_for_is_used_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.9.0.0/16".parse().unwrap()];
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            client_addr(proxy, Some("1.2.3.4, 10.0.2.5, 10.9.0.1"), &trusted),
            "10.0.2.5".parse::<IpAddr>().unwrap()
        );
        let stranger: IpAddr = "10.0.2.8".parse().unwrap();
        assert_eq!(client_addr(stranger, Some("10.0.2.5"), &trusted), stranger);
        assert_eq!(client_addr(proxy, Some("garbage"), &trusted), proxy);
        assert_eq!(client_addr(proxy, None, &trusted), proxy);
        // An IPv4-mapped peer is the IPv4 proxy.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(client_addr(mapped, Some("10.0.2.5"), &trusted), "10.0.2.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn every_forwarded_for_line_counts_and_the_last_one_wins() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(forwarded_for(&h), None);
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.2.5"));
        assert_eq!(forwarded_for(&h).as_deref(), Some("6.6.6.6,10.0.2.5"));
        assert_eq!(request_client_addr(proxy, &h, &trusted), "10.0.2.5".parse::<IpAddr>().unwrap());
        assert_eq!(request_client_addr(proxy, &h, &[]), proxy);
    }
}
