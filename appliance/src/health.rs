//! What the portal's Health page says beyond doctor's checks: the transfer log's failures
//! of the last day by cause, the lab PCs' "Test my connection" results in words, and the
//! gate that keeps the on-demand ICE run from being started over and over.
//!
//! Causes are read from `transfers.failure_reason`, which holds one `side: code: words` per
//! side that failed (`reconcile`), or `code: words` when the server ended it
//! (`resume_expired`, `hash_mismatch`). The code is the web client's diagnosis
//! (`relay_unreachable`, `peer_network`, …) or the server's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::db::connection_tests::{PathResult, Paths};
use crate::db::transfers::Failure;
use crate::doctor::Check;

/// The shortest time between two ICE runs started from the Health page: each holds two
/// TURN allocations per transport for a few seconds.
pub const ICE_RUN_INTERVAL: Duration = Duration::from_secs(30);

/// What a failure code means, for an admin.
fn cause_words(code: &str) -> &'static str {
    match code {
        "relay_unreachable" => "a PC could not reach the relay (a firewall between the lab and the server)",
        "peer_network" => "the other PC's network let nothing through to the relay",
        "relay_path_failed" => "both PCs reached the relay, but no path through it worked",
        "no_direct_path" => "no direct path, and the relay is off",
        "ice_failed" => "the connection could not be set up",
        "peer_offline" => "the other PC did not answer the connection setup",
        "hash_mismatch" => "a file arrived damaged (checksum mismatch) and was not kept",
        "size_mismatch" => "fewer bytes arrived than were sent",
        "resume_expired" => "an interrupted transfer was not resumed in time",
        "resume_refused" => "resuming was refused",
        "disk_error" => "the receiving PC could not write the file (disk full or not allowed)",
        "read_failed" => "the sending PC could not read the file",
        "signaling_failed" => "the PC lost its connection to the server",
        "protocol" => "the two PCs disagreed about the transfer (different LabBeam versions?)",
        "accept_failed" => "the receiving PC could not start saving",
        _ => "",
    }
}

/// The cause code of one side's reason: the leading `snake_case` word before `: `, after
/// an optional `sender: ` / `receiver: `; `other` when there is none.
fn cause_code(part: &str) -> &str {
    let part = part.trim();
    let part = part.strip_prefix("sender: ").or_else(|| part.strip_prefix("receiver: ")).unwrap_or(part);
    match part.split_once(": ") {
        Some((code, _)) if !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => code,
        _ => "other",
    }
}

/// One cause with its count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub code: String,
    pub words: &'static str,
    pub count: usize,
    /// The labs of the PCs involved (sender's and receiver's), `Other` included.
    pub labs: BTreeSet<String>,
    pub last_at: i64,
    /// The newest reason as recorded, for the details.
    pub example: String,
}

/// Failures by cause, most frequent first. A transfer that failed on both sides for the
/// same cause counts once; for different causes, once for each.
pub fn causes(failures: &[Failure]) -> Vec<Cause> {
    let mut by_code: BTreeMap<String, Cause> = BTreeMap::new();
    for f in failures {
        let codes: BTreeSet<&str> = f.failure_reason.split("; ").map(cause_code).collect();
        for code in codes {
            let cause = by_code.entry(code.to_string()).or_insert_with(|| Cause {
                code: code.to_string(),
                words: cause_words(code),
                count: 0,
                labs: BTreeSet::new(),
                last_at: f.requested_at,
                example: f.failure_reason.clone(),
            });
            cause.count += 1;
            for lab in [&f.sender_lab, &f.receiver_lab] {
                if !lab.is_empty() {
                    cause.labs.insert(lab.clone());
                }
            }
            if f.requested_at > cause.last_at {
                cause.last_at = f.requested_at;
                cause.example = f.failure_reason.clone();
            }
        }
    }
    let mut list: Vec<Cause> = by_code.into_values().collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_at.cmp(&a.last_at)));
    list
}

/// A connection test in one phrase, and what to open when something is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `all`, `relay_tcp_tls_only`, `no_relay`, …: stable, for styling and tests.
    pub code: &'static str,
    pub words: String,
}

/// Where the relay listens, for the advice.
pub struct RelayPorts {
    pub host: String,
    pub turn_port: u16,
    pub tls_port: u16,
    pub relay_ports: (u16, u16),
}

impl RelayPorts {
    /// The ports of the running server (`config` as served).
    pub fn of(config: &crate::config::Config) -> RelayPorts {
        RelayPorts {
            host: config.advertised_host(),
            turn_port: config.turn_listen.port(),
            tls_port: config.turn.tls_port.unwrap_or(5349),
            relay_ports: (config.turn.relay_port_min, config.turn.relay_port_max),
        }
    }
}

pub fn verdict(p: &Paths, relay: &RelayPorts) -> Verdict {
    use PathResult::{Failed, Ok as Works};
    let RelayPorts { host, turn_port, tls_port, relay_ports: (lo, hi) } = relay;
    let relays: Vec<(&str, PathResult)> = vec![("UDP", p.relay_udp), ("TCP", p.relay_tcp), ("TLS", p.relay_tls)];
    let working: Vec<&str> = relays.iter().filter(|(_, r)| *r == Works).map(|(n, _)| *n).collect();
    let offered = relays.iter().filter(|(_, r)| *r != PathResult::NotOffered).count();
    let udp_open = format!("UDP {turn_port} and UDP {lo}-{hi} to {host}");
    if offered == 0 {
        return Verdict {
            code: "relay_off",
            words: "the relay is off: only direct connections inside the lab can work".into(),
        };
    }
    if working.is_empty() {
        return Verdict {
            code: "no_relay",
            words: format!(
                "reaches no relay path: open {udp_open}, or at least TCP {turn_port} or TCP {tls_port} to {host}, \
                 from this lab"
            ),
        };
    }
    if p.relay_udp == Failed {
        let tls_note = if p.relay_tls == Failed && p.relay_tcp == Works {
            "; TURN over TLS failed too (does this PC trust the server's certificate?)"
        } else {
            ""
        };
        return Verdict {
            code: "relay_tcp_tls_only",
            words: format!(
                "relay over {} only: UDP is blocked; transfers work but slower; open {udp_open} from this lab{tls_note}",
                working.join("/")
            ),
        };
    }
    let failed: Vec<&str> = relays.iter().filter(|(_, r)| *r == Failed).map(|(n, _)| *n).collect();
    if !failed.is_empty() {
        let why = if failed.contains(&"TLS") && !failed.contains(&"TCP") {
            " (TLS: does this PC trust the server's certificate?)"
        } else {
            ""
        };
        return Verdict {
            code: "relay_partial",
            words: format!("relay over {} works; {} failed{why}; transfers work", working.join("/"), failed.join("/")),
        };
    }
    if p.direct == Failed {
        return Verdict {
            code: "relay_only",
            words: format!(
                "relay over {} works, but this PC has no network address for direct connections",
                working.join("/")
            ),
        };
    }
    Verdict { code: "all", words: format!("direct connections and the relay over {} all work", working.join("/")) }
}

/// The last ICE run of the Health page.
#[derive(Debug, Clone)]
pub struct IceRun {
    pub finished_at: i64,
    pub by: String,
    pub checks: Vec<Check>,
}

/// The on-demand ICE run: at most one at a time, one per [`ICE_RUN_INTERVAL`].
#[derive(Default)]
pub struct IceGate {
    started: std::sync::Mutex<Option<Instant>>,
    last: std::sync::Mutex<Option<IceRun>>,
}

impl IceGate {
    /// Claims the next run, or says how long until one may start.
    pub fn claim(&self) -> Result<(), Duration> {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(at) = *started {
            let since = now.duration_since(at);
            if since < ICE_RUN_INTERVAL {
                return Err(ICE_RUN_INTERVAL - since);
            }
        }
        *started = Some(now);
        Ok(())
    }

    pub fn finish(&self, run: IceRun) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(run);
    }

    pub fn last(&self) -> Option<IceRun> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(at: i64, sender_lab: &str, receiver_lab: &str, reason: &str) -> Failure {
        Failure {
            requested_at: at,
            sender_lab: sender_lab.into(),
            receiver_lab: receiver_lab.into(),
            failure_reason: reason.into(),
        }
    }

    #[test]
    fn causes_are_read_from_each_side_and_counted_once_per_transfer() {
        let list = causes(&[
            failure(
                10,
                "Lab 2.14",
                "Lab 2.15",
                "sender: relay_unreachable: Could not connect; receiver: relay_unreachable: x",
            ),
            failure(20, "Lab 2.14", "Other", "sender: relay_unreachable: newest"),
            failure(15, "Lab 1", "Lab 1", "hash_mismatch: receiver and sender hashes differ"),
            failure(5, "", "", "receiver: disk full"),
            failure(6, "A", "B", "sender: peer_network: no; receiver: disk_error: full"),
        ]);
        let codes: Vec<(&str, usize)> = list.iter().map(|c| (c.code.as_str(), c.count)).collect();
        assert_eq!(
            codes,
            vec![("relay_unreachable", 2), ("hash_mismatch", 1), ("disk_error", 1), ("peer_network", 1), ("other", 1)]
        );
        let relay = &list[0];
        assert_eq!(relay.last_at, 20);
        assert_eq!(relay.example, "sender: relay_unreachable: newest");
        assert_eq!(relay.labs.iter().map(String::as_str).collect::<Vec<_>>(), ["Lab 2.14", "Lab 2.15", "Other"]);
        assert!(relay.words.contains("firewall"));
        assert_eq!(list[4].words, "");
    }

    fn ports() -> RelayPorts {
        RelayPorts { host: "labbeam.campus".into(), turn_port: 3478, tls_port: 5349, relay_ports: (49152, 49407) }
    }

    fn paths(direct: PathResult, udp: PathResult, tcp: PathResult, tls: PathResult) -> Paths {
        Paths { direct, stun: udp, relay_udp: udp, relay_tcp: tcp, relay_tls: tls }
    }

    #[test]
    fn verdicts_name_what_works_and_what_to_open() {
        use PathResult::*;
        let v = verdict(&paths(Ok, Failed, Ok, Ok), &ports());
        assert_eq!(v.code, "relay_tcp_tls_only");
        assert!(v.words.starts_with("relay over TCP/TLS only"), "{}", v.words);
        assert!(v.words.contains("UDP 3478 and UDP 49152-49407 to labbeam.campus"), "{}", v.words);
        let v = verdict(&paths(Ok, Failed, Ok, Failed), &ports());
        assert!(v.words.starts_with("relay over TCP only") && v.words.contains("trust"), "{}", v.words);
        let v = verdict(&paths(Ok, Failed, Failed, Failed), &ports());
        assert_eq!(v.code, "no_relay");
        assert!(v.words.contains("TCP 3478 or TCP 5349"), "{}", v.words);
        assert_eq!(verdict(&paths(Ok, Ok, Ok, Ok), &ports()).code, "all");
        assert_eq!(verdict(&paths(Failed, Ok, Ok, Ok), &ports()).code, "relay_only");
        let v = verdict(&paths(Ok, Ok, Ok, Failed), &ports());
        assert_eq!((v.code, v.words.contains("TLS failed")), ("relay_partial", true), "{}", v.words);
        let v = verdict(&paths(Ok, Ok, Ok, NotOffered), &ports());
        assert_eq!(v.code, "all");
        assert_eq!(verdict(&paths(Ok, NotOffered, NotOffered, NotOffered), &ports()).code, "relay_off");
    }

    #[test]
    fn the_ice_gate_lets_one_run_through_per_interval() {
        let gate = IceGate::default();
        assert!(gate.claim().is_ok());
        let wait = gate.claim().unwrap_err();
        assert!(wait > Duration::from_secs(25) && wait <= ICE_RUN_INTERVAL, "{wait:?}");
        assert!(gate.last().is_none());
        gate.finish(IceRun { finished_at: 1, by: "admin".into(), checks: vec![] });
        assert_eq!(gate.last().map(|r| r.by), Some("admin".into()));
    }
}
