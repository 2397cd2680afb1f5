//! The TURN relay's configuration as this machine sees it: its ports (`turn.listen`), the
//! relay address it gives browsers (`turn.relay_address`), its relay port range against
//! `turn.max_allocations` (`turn.relay_ports`) and what it reaches (`turn.peer_policy`).

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};

use super::service::{Running, Service};
use super::{Report, https};
use crate::config::Config;
use crate::db;
use crate::turn::{canonical_ip, local_addresses};

/// The relay checks; only `turn.peer_policy` when the relay is off.
pub async fn checks(config: &Config, store: Option<&db::Store>, service: &Service, r: &mut Report) {
    if config.turn.enabled {
        listen(config, service, r);
        relay_address(config, r);
        relay_ports(config, service.running(), r).await;
    }
    peer_policy(config, store, r).await;
}

/// `turn.listen`: STUN/TURN's ports are the running labbeam's, or free for it.
fn listen(config: &Config, service: &Service, r: &mut Report) {
    let turn = config.turn_listen;
    let tls_port = config.turn.tls_port.unwrap_or(if turn.port() == 0 { 0 } else { 5349 });
    let tls = SocketAddr::new(turn.ip(), tls_port);
    if turn.port() == 0 {
        r.ok("turn.listen", "turn_listen has port 0: serve takes any free port for STUN/TURN");
        return;
    }
    if service.running().is_some() {
        r.ok("turn.listen", format!("STUN/TURN on UDP and TCP {turn}, TLS {tls}: the ICE checks talk to them"));
        return;
    }
    let mut problems = Vec::new();
    let mut note = "";
    let tries = [("UDP", turn, true), ("TCP", turn, false), ("TLS (TCP)", tls, false)];
    for (what, addr, udp) in tries.into_iter().filter(|(_, addr, _)| addr.port() != 0) {
        let bound = if udp { UdpSocket::bind(addr).map(drop) } else { std::net::TcpListener::bind(addr).map(drop) };
        match bound {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                note = "; ports below 1024 need CAP_NET_BIND_SERVICE, which the systemd service has";
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => problems.push(format!(
                "{what} {addr} is in use by another program (coturn?): find it with ss -lunp or ss -ltnp"
            )),
            Err(e) => problems.push(format!("{what} {addr}: {e}")),
        }
    }
    if problems.is_empty() {
        r.ok("turn.listen", format!("STUN/TURN addresses UDP and TCP {turn}, TLS {tls} are free{note}"));
    } else {
        r.fail("turn.listen", problems.join("; "));
    }
}

/// `turn.relay_address`: the address browsers are told to send relayed packets to must be
/// one they reach, which is this machine's (or a 1:1 NAT's in front of it).
fn relay_address(config: &Config, r: &mut Report) {
    let (ip, source) = crate::turn::relay_ip(config);
    let from = if source == "auto-detected" {
        "auto-detected: the default route's".to_string()
    } else {
        format!("from {source}")
    };
    if source.starts_with("auto-detection failed") {
        r.fail(
            "turn.relay_address",
            format!("no default route to take the relay address from (using {ip}): set turn.relay_address"),
        );
    } else if canonical_ip(ip).is_loopback() {
        r.warn(
            "turn.relay_address",
            format!(
                "the relay address is {ip} ({from}), a loopback address that lab PCs cannot reach: set \
                 turn.relay_address, or public_host to an address"
            ),
        );
    } else if local_addresses().contains(&canonical_ip(ip)) {
        r.ok("turn.relay_address", format!("the relay address {ip} ({from}) is an address of this machine"));
    } else {
        r.warn(
            "turn.relay_address",
            format!(
                "the relay address {ip} ({from}) is not an address of this machine: right only behind a 1:1 \
                 NAT that forwards the relay ports here; otherwise fix turn.relay_address"
            ),
        );
    }
}

/// `turn.relay_ports`: every allocation takes one port of the range, so the range must
/// hold `turn.max_allocations`, less what other programs hold in it.
async fn relay_ports(config: &Config, running: Option<&Running>, r: &mut Report) {
    let t = &config.turn;
    let (min, max, wanted) = (t.relay_port_min, t.relay_port_max, t.max_allocations);
    let size = u32::from(max) - u32::from(min) + 1;
    let range = format!("relay ports {min}-{max}");
    if size < wanted {
        r.fail(
            "turn.relay_ports",
            format!(
                "{range}: {size} port(s) for turn.max_allocations = {wanted}, so allocations past {size} are refused \
                 (508): widen the range to at least {wanted} ports, or lower turn.max_allocations"
            ),
        );
        return;
    }
    let used = match udp_ports_in_use() {
        Ok(ports) => ports.range(min..=max).count() as u32,
        Err(e) => {
            r.warn(
                "turn.relay_ports",
                format!("{range}: {size} ports for turn.max_allocations = {wanted}; cannot see which are in use: {e}"),
            );
            return;
        }
    };
    let ours = match running {
        Some(running) => active_allocations(running).await,
        None => Some(0),
    };
    let others = used.saturating_sub(ours.unwrap_or(0));
    let free = size - others;
    let held = match ours {
        Some(0) | None => format!("{used} in use now"),
        Some(n) => format!("{used} in use now, {n} of them by labbeam's allocations"),
    };
    if free < wanted {
        r.warn(
            "turn.relay_ports",
            format!(
                "{range}: {size} ports for turn.max_allocations = {wanted}, but other programs hold {others} of \
                 them ({held}), leaving {free}: move them, or widen the range"
            ),
        );
    } else {
        r.ok("turn.relay_ports", format!("{range}: {size} ports for turn.max_allocations = {wanted}; {held}"));
    }
}

/// The UDP ports bound on this machine (IPv4 and IPv6), from `/proc/net/udp*`.
fn udp_ports_in_use() -> std::io::Result<BTreeSet<u16>> {
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(text) => text,
            // A kernel without IPv6 has no udp6 table.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && table.ends_with('6') => continue,
            Err(e) => return Err(e),
        };
        ports.extend(local_ports(&text));
    }
    Ok(ports)
}

/// The local ports of a `/proc/net/udp` table (`sl local_address rem_address …`, the
/// address as hex `ADDR:PORT`).
fn local_ports(table: &str) -> impl Iterator<Item = u16> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let local = line.split_whitespace().nth(1)?;
        u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
    })
}

/// The running labbeam's open allocations (`/metrics` is open to loopback callers).
async fn active_allocations(running: &Running) -> Option<u32> {
    let answer = https::get(running.addr, &running.server_name, &running.pins, "/metrics").await.ok()?;
    if answer.status != 200 {
        return None;
    }
    answer
        .body
        .lines()
        .find_map(|l| l.strip_prefix("labbeam_turn_allocations_active ")?.trim().parse::<f64>().ok())
        .map(|n| n as u32)
}

/// `turn.peer_policy`: what the relay will reach, in words, so an admin sees it before a
/// student does.
async fn peer_policy(config: &Config, store: Option<&db::Store>, r: &mut Report) {
    let Some(store) = store else {
        r.warn(
            "turn.peer_policy",
            "cannot tell what the relay reaches: the labs' ranges are in the store (see store.connect)",
        );
        return;
    };
    match crate::turn::describe_peer_policy(store, &config.turn).await {
        Ok(text) if config.turn.enabled => r.ok("turn.peer_policy", text),
        Ok(text) => r.warn("turn.peer_policy", text),
        Err(e) => r.fail("turn.peer_policy", format!("cannot read the labs' address ranges: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_tables_give_their_local_ports() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                  \x20 12: 0100007F:C350 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n\
                  \x20 13: 00000000:0D96 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n";
        assert_eq!(local_ports(v4).collect::<Vec<_>>(), vec![50000, 3478]);
        let v6 = "  sl  local_address                         remote_address                        st\n\
                  \x20  5: 00000000000000000000000001000000:FFFF 00000000000000000000000000000000:0000 07\n";
        assert_eq!(local_ports(v6).collect::<Vec<_>>(), vec![65535]);
        assert!(udp_ports_in_use().is_ok(), "this machine has /proc/net/udp");
    }
}
