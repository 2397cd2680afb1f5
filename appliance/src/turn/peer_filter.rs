//! The peer filter: which peer addresses a relay may send to (and hear from). A TURN relay
//! is a door; this module decides where the door leads. It is an allow-list:
//!
//! 1. the address is first canonicalised: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
//!    (`::a.b.c.d`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`) and Teredo (`2001::/32`)
//!    forms are judged as the IPv4 address they carry;
//! 2. the appliance's own live relay addresses are allowed (relay to relay: two PCs that
//!    both need TURN);
//! 3. always refused: unspecified, `0.0.0.0/8`, loopback, link-local (cloud metadata
//!    included), multicast, broadcast, special-purpose ranges (documentation, benchmarking,
//!    reserved, IETF protocol assignments, local-use NAT64) and every other port of the
//!    appliance's own addresses;
//! 4. allowed: addresses inside a lab's CIDR ranges, and inside the ranges the admin listed
//!    in `turn.allowed_peer_ranges`. With no lab and no such range, no private address is
//!    reachable at all: a fresh install never relays into the campus network;
//! 5. allowed only when `turn.allow_public_peers` is set: globally routable addresses;
//! 6. everything else (private ranges outside the labs, shared address space) is refused.
//!
//! Invariant: every relayed datagram, every permission and every channel is judged by
//! [`RelayPolicy::check`]; nothing else in the relay decides where packets may go.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

/// Why a peer was refused; `label()` is the metric label and log word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unspecified,
    ThisNetwork,
    Loopback,
    LinkLocal,
    Multicast,
    Broadcast,
    SpecialPurpose,
    OwnService,
    NotInLab,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unspecified => "unspecified",
            Refusal::ThisNetwork => "this_network",
            Refusal::Loopback => "loopback",
            Refusal::LinkLocal => "link_local",
            Refusal::Multicast => "multicast",
            Refusal::Broadcast => "broadcast",
            Refusal::SpecialPurpose => "special_purpose",
            Refusal::OwnService => "own_service",
            Refusal::NotInLab => "not_in_lab",
        }
    }

    pub const ALL: [Refusal; 9] = [
        Refusal::Unspecified,
        Refusal::ThisNetwork,
        Refusal::Loopback,
        Refusal::LinkLocal,
        Refusal::Multicast,
        Refusal::Broadcast,
        Refusal::SpecialPurpose,
        Refusal::OwnService,
        Refusal::NotInLab,
    ];
}

/// The IPv4 address an IPv6 address stands for, when it is one of the tunnelling or
/// translation forms; otherwise the address itself.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    let v6 = match ip {
        IpAddr::V4(_) => return ip,
        IpAddr::V6(v6) => v6,
    };
    let s = v6.segments();
    let low32 = Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32);
    // IPv4-mapped ::ffff:a.b.c.d
    if s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff {
        return IpAddr::V4(low32);
    }
    // IPv4-compatible ::a.b.c.d (deprecated), except :: and ::1 which are IPv6's own.
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return IpAddr::V4(low32);
    }
    // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(low32);
    }
    // 6to4 2002:AABB:CCDD::/48 (RFC 3056).
    if s[0] == 0x2002 {
        return IpAddr::V4(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
    }
    // Teredo 2001:0000::/32 (RFC 4380): the client's IPv4 address, bit-inverted, is last.
    if s[0] == 0x2001 && s[1] == 0 {
        return IpAddr::V4(Ipv4Addr::from(!u32::from(low32)));
    }
    ip
}

/// The kind of an address for the filter, before the lab and own-address rules.
fn classify(ip: IpAddr) -> Result<Reach, Refusal> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Reach {
    /// RFC 1918, shared address space, unique local: inside some site, maybe a lab.
    Private,
    /// Globally routable.
    Public,
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Result<Reach, Refusal> {
    if ip.is_unspecified() {
        return Err(Refusal::Unspecified);
    }
    if in_v4(ip, [0, 0, 0, 0], 8) {
        return Err(Refusal::ThisNetwork);
    }
    if ip.is_loopback() {
        return Err(Refusal::Loopback);
    }
    if ip.is_link_local() {
        return Err(Refusal::LinkLocal);
    }
    if ip.is_broadcast() {
        return Err(Refusal::Broadcast);
    }
    if ip.is_multicast() {
        return Err(Refusal::Multicast);
    }
    const SPECIAL: [([u8; 4], u8); 8] = [
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // TEST-NET-1
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // TEST-NET-2
        ([203, 0, 113, 0], 24),  // TEST-NET-3
        ([240, 0, 0, 0], 4),     // reserved
        ([255, 255, 255, 255], 32),
    ];
    if SPECIAL.iter().any(|(net, p)| in_v4(ip, *net, *p)) {
        return Err(Refusal::SpecialPurpose);
    }
    if ip.is_private() || in_v4(ip, [100, 64, 0, 0], 10) {
        return Ok(Reach::Private);
    }
    Ok(Reach::Public)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    u128::from(ip) & mask == u128::from(net) & mask
}

fn classify_v6(ip: Ipv6Addr) -> Result<Reach, Refusal> {
    let net = |s: [u16; 8]| Ipv6Addr::from(s);
    if ip.is_unspecified() {
        return Err(Refusal::Unspecified);
    }
    if ip.is_loopback() {
        return Err(Refusal::Loopback);
    }
    if in_v6(ip, net([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10) {
        return Err(Refusal::LinkLocal);
    }
    if ip.is_multicast() {
        return Err(Refusal::Multicast);
    }
    let special: [([u16; 8], u8); 7] = [
        ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64),      // discard-only
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),      // IETF protocol assignments (Teredo was unwrapped before)
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32), // documentation
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),      // documentation (RFC 9637)
        ([0x0064, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local-use NAT64: where the IPv4 sits is site-specific
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),      // site-local (deprecated)
        ([0, 0, 0, 0, 0, 0, 0, 0], 96),           // rest of the IPv4-compatible block
    ];
    if special.iter().any(|(n, p)| in_v6(ip, net(*n), *p)) {
        return Err(Refusal::SpecialPurpose);
    }
    if in_v6(ip, net([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7) {
        return Ok(Reach::Private);
    }
    Ok(Reach::Public)
}

/// The rules that change at run time: labs (from the database), the appliance's own
/// addresses, the public-peer switch.
#[derive(Debug, Clone, Default)]
pub struct PolicyRules {
    /// Lab ranges (from the store).
    pub labs: Vec<IpNet>,
    /// Further ranges the admin allowed in the configuration (`turn.allowed_peer_ranges`).
    pub extra: Vec<IpNet>,
    /// The relay address clients are given (canonical form).
    pub relay_ip: Option<IpAddr>,
    /// Every address of this machine (canonical form).
    pub own_ips: HashSet<IpAddr>,
    pub allow_public: bool,
}

impl PolicyRules {
    fn in_allowed_ranges(&self, ip: IpAddr) -> bool {
        self.labs.iter().chain(&self.extra).any(|net| net.contains(&ip))
    }

    /// What the relay will reach, in words: for the start banner, `doctor` and the portal.
    pub fn describe(&self) -> String {
        describe_reach(&self.labs, &self.extra, self.allow_public)
    }
}

/// What a relay with these lab ranges, configured extra ranges and public-peer switch
/// reaches, in words.
pub fn describe_reach(labs: &[IpNet], extra: &[IpNet], allow_public: bool) -> String {
    let list = |nets: &[IpNet]| nets.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
    let mut reach = Vec::new();
    if !labs.is_empty() {
        reach.push(format!("the labs' address ranges ({})", list(labs)));
    }
    if !extra.is_empty() {
        reach.push(format!("the ranges in turn.allowed_peer_ranges ({})", list(extra)));
    }
    if allow_public {
        reach.push("public internet addresses (turn.allow_public_peers)".to_string());
    }
    reach.push("other relay addresses of this appliance".to_string());
    let mut text = format!("the TURN relay reaches {}", join_words(&reach));
    if labs.is_empty() && extra.is_empty() {
        text.push_str(
            "; no lab range is configured, so it reaches no private (campus) address: two PCs \
             connect through it only when both are relayed (add labs with their address ranges)",
        );
    } else {
        text.push_str("; no other private address, and never loopback, link-local or this machine's services");
    }
    text
}

fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Judges one peer address under `rules`; `is_live_relay_port` says whether a port is one
/// of this appliance's open relay sockets.
pub fn judge(rules: &PolicyRules, peer: SocketAddr, is_live_relay_port: impl Fn(u16) -> bool) -> Result<(), Refusal> {
    let ip = canonical_ip(peer.ip());
    if rules.relay_ip == Some(ip) && is_live_relay_port(peer.port()) {
        return Ok(());
    }
    if peer.port() == 0 {
        return Err(Refusal::SpecialPurpose);
    }
    let reach = classify(ip)?;
    if rules.own_ips.contains(&ip) || rules.relay_ip == Some(ip) {
        return Err(Refusal::OwnService);
    }
    if rules.in_allowed_ranges(ip) {
        return Ok(());
    }
    match reach {
        Reach::Public if rules.allow_public => Ok(()),
        _ => Err(Refusal::NotInLab),
    }
}

/// The live policy shared by every listener and relay socket.
#[derive(Default)]
pub struct RelayPolicy {
    rules: RwLock<Arc<PolicyRules>>,
    live_relay_ports: RwLock<foldhash::HashSet<u16>>,
}

impl RelayPolicy {
    pub fn new(rules: PolicyRules) -> Self {
        Self { rules: RwLock::new(Arc::new(rules)), live_relay_ports: RwLock::default() }
    }

    pub fn check(&self, peer: SocketAddr) -> Result<(), Refusal> {
        let rules = self.rules();
        judge(&rules, peer, |port| self.live_relay_ports.read().map(|p| p.contains(&port)).unwrap_or(false))
    }

    pub fn rules(&self) -> Arc<PolicyRules> {
        match self.rules.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the lab ranges; true when they changed.
    pub fn set_labs(&self, mut labs: Vec<IpNet>) -> bool {
        labs.sort();
        labs.dedup();
        let mut guard = match self.rules.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.labs == labs {
            return false;
        }
        let mut next = PolicyRules::clone(&guard);
        next.labs = labs;
        *guard = Arc::new(next);
        true
    }

    pub fn relay_opened(&self, port: u16) {
        if let Ok(mut ports) = self.live_relay_ports.write() {
            ports.insert(port);
        }
    }

    pub fn relay_closed(&self, port: u16) {
        if let Ok(mut ports) = self.live_relay_ports.write() {
            ports.remove(&port);
        }
    }
}

/// This machine's interface addresses (canonical), for the own-service rule.
pub fn local_addresses() -> HashSet<IpAddr> {
    let mut set = HashSet::new();
    match util::ifaces::ifaces() {
        Ok(list) => set.extend(list.into_iter().filter_map(|i| i.addr).map(|a| canonical_ip(a.ip()))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list network interfaces; only the relay address counts as the appliance's own")
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn rules(labs: &[&str]) -> PolicyRules {
        PolicyRules {
            labs: labs.iter().map(|l| l.parse().unwrap()).collect(),
            extra: Vec::new(),
            relay_ip: Some("10.1.0.5".parse().unwrap()),
            own_ips: ["10.1.0.5", "192.168.50.2", "127.0.0.1"].iter().map(|i| i.parse().unwrap()).collect(),
            allow_public: false,
        }
    }

    #[test]
    fn tunnelled_and_mapped_forms_are_unwrapped() {
        let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
        let c = |s: &str| canonical_ip(s.parse().unwrap());
        assert_eq!(c("::ffff:127.0.0.1"), v4("127.0.0.1"));
        assert_eq!(c("::ffff:10.1.2.3"), v4("10.1.2.3"));
        assert_eq!(c("::127.0.0.1"), v4("127.0.0.1"));
        assert_eq!(c("::169.254.169.254"), v4("169.254.169.254"));
        assert_eq!(c("64:ff9b::7f00:1"), v4("127.0.0.1"));
        assert_eq!(c("2002:7f00:1::1"), v4("127.0.0.1"));
        assert_eq!(c("2002:a9fe:a9fe::"), v4("169.254.169.254"));
        // Teredo: client 127.0.0.1 is stored inverted as 80ff:fffe.
        assert_eq!(c("2001:0:4136:e378:8000:63bf:80ff:fffe"), v4("127.0.0.1"));
        assert_eq!(c("::1"), "::1".parse::<IpAddr>().unwrap());
        assert_eq!(c("::"), "::".parse::<IpAddr>().unwrap());
        assert_eq!(c("2001:db8::1"), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(c("10.0.0.1"), v4("10.0.0.1"));
    }

    #[test]
    fn dangerous_addresses_are_refused_in_every_spelling() {
        let r = rules(&[]);
        let none = |_| false;
        for (peer, why) in [
            ("127.0.0.1:80", Refusal::Loopback),
            ("127.8.9.10:80", Refusal::Loopback),
            ("[::1]:80", Refusal::Loopback),
            ("[::ffff:127.0.0.1]:80", Refusal::Loopback),
            ("[::127.0.0.1]:80", Refusal::Loopback),
            ("[64:ff9b::7f00:1]:80", Refusal::Loopback),
            ("[2002:7f00:1::]:80", Refusal::Loopback),
            ("[2001:0:4136:e378:8000:63bf:80ff:fffe]:80", Refusal::Loopback),
            ("0.0.0.0:80", Refusal::Unspecified),
            ("[::]:80", Refusal::Unspecified),
            ("0.1.2.3:80", Refusal::ThisNetwork),
            ("169.254.169.254:80", Refusal::LinkLocal),
            ("[::ffff:169.254.169.254]:80", Refusal::LinkLocal),
            ("[fe80::1]:80", Refusal::LinkLocal),
            ("224.0.0.251:5353", Refusal::Multicast),
            ("[ff02::fb]:5353", Refusal::Multicast),
            ("255.255.255.255:9", Refusal::Broadcast),
            ("192.0.2.1:9", Refusal::SpecialPurpose),
            ("198.18.0.1:9", Refusal::SpecialPurpose),
            ("240.0.0.1:9", Refusal::SpecialPurpose),
            ("[2001:db8::1]:9", Refusal::SpecialPurpose),
            ("[64:ff9b:1::a01:203]:9", Refusal::SpecialPurpose),
            ("10.1.0.5:8443", Refusal::OwnService),
            ("10.1.0.5:3478", Refusal::OwnService),
            ("192.168.50.2:22", Refusal::OwnService),
            ("[::ffff:10.1.0.5]:8443", Refusal::OwnService),
            ("10.2.0.1:0", Refusal::SpecialPurpose),
        ] {
            assert_eq!(judge(&r, sa(peer), none), Err(why), "{peer}");
        }
    }

    #[test]
    fn labs_decide_private_peers_and_nothing_private_is_reachable_without_them() {
        let none = |_| false;
        let fresh = rules(&[]);
        for peer in [
            "10.2.3.4:53",
            "172.16.0.9:161",
            "192.168.1.20:514",
            "[::ffff:10.2.3.4]:5000",
            "100.64.0.1:5000",
            "[fd00::1]:53",
            "8.8.8.8:53",
        ] {
            assert_eq!(judge(&fresh, sa(peer), none), Err(Refusal::NotInLab), "{peer}");
        }
        let mut extra = rules(&[]);
        extra.extra = vec!["192.168.1.0/24".parse().unwrap()];
        assert_eq!(judge(&extra, sa("192.168.1.20:514"), none), Ok(()));
        assert_eq!(judge(&extra, sa("192.168.2.20:514"), none), Err(Refusal::NotInLab));

        let labs = rules(&["10.20.0.0/16", "fd12::/64"]);
        assert_eq!(judge(&labs, sa("10.20.5.5:5000"), none), Ok(()));
        assert_eq!(judge(&labs, sa("[fd12::5]:5000"), none), Ok(()));
        assert_eq!(judge(&labs, sa("10.21.5.5:5000"), none), Err(Refusal::NotInLab));
        assert_eq!(judge(&labs, sa("192.168.1.20:5000"), none), Err(Refusal::NotInLab));
        // A lab range never opens what is always refused.
        let silly = rules(&["127.0.0.0/8", "169.254.0.0/16"]);
        assert_eq!(judge(&silly, sa("127.0.0.1:80"), none), Err(Refusal::Loopback));
        assert_eq!(judge(&silly, sa("169.254.169.254:80"), none), Err(Refusal::LinkLocal));
    }

    #[test]
    fn public_peers_only_with_the_switch_and_private_stays_closed() {
        let none = |_| false;
        let mut r = rules(&["10.20.0.0/16"]);
        assert_eq!(judge(&r, sa("8.8.8.8:53"), none), Err(Refusal::NotInLab));
        r.allow_public = true;
        assert_eq!(judge(&r, sa("8.8.8.8:53"), none), Ok(()));
        assert_eq!(judge(&r, sa("[2a00:1450::1]:53"), none), Ok(()));
        assert_eq!(judge(&r, sa("192.168.1.1:53"), none), Err(Refusal::NotInLab));
        assert_eq!(judge(&r, sa("127.0.0.1:53"), none), Err(Refusal::Loopback));
    }

    #[test]
    fn live_relay_addresses_are_allowed_other_own_ports_are_not() {
        let mut r = rules(&[]);
        r.relay_ip = Some("127.0.0.1".parse().unwrap());
        let live = |p| p == 50000;
        assert_eq!(judge(&r, sa("127.0.0.1:50000"), live), Ok(()));
        assert_eq!(judge(&r, sa("[::ffff:127.0.0.1]:50000"), live), Ok(()));
        assert_eq!(judge(&r, sa("127.0.0.1:50001"), live), Err(Refusal::Loopback));
        assert_eq!(judge(&r, sa("127.0.0.2:50000"), live), Err(Refusal::Loopback));
        let policy = RelayPolicy::new(r);
        assert_eq!(policy.check(sa("127.0.0.1:50000")), Err(Refusal::Loopback));
        policy.relay_opened(50000);
        assert_eq!(policy.check(sa("127.0.0.1:50000")), Ok(()));
        policy.relay_closed(50000);
        assert_eq!(policy.check(sa("127.0.0.1:50000")), Err(Refusal::Loopback));
        assert!(policy.set_labs(vec!["10.0.0.0/8".parse().unwrap()]));
        assert!(!policy.set_labs(vec!["10.0.0.0/8".parse().unwrap()]));
    }

    #[test]
    fn the_policy_is_described_in_words() {
        let fresh = rules(&[]).describe();
        assert!(fresh.contains("reaches no private (campus) address"), "{fresh}");
        assert!(fresh.contains("other relay addresses of this appliance"), "{fresh}");
        let mut r = rules(&["10.20.0.0/16"]);
        r.extra = vec!["192.168.7.0/24".parse().unwrap()];
        r.allow_public = true;
        let text = r.describe();
        assert!(text.contains("10.20.0.0/16") && text.contains("192.168.7.0/24"), "{text}");
        assert!(text.contains("public internet"), "{text}");
        assert!(!text.contains("reaches no private"), "{text}");
    }
}
