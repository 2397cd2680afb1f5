//! `labbeam doctor`: the appliance diagnoses itself the way an admin would by hand. Each
//! check gives one [`Check`] — a stable dotted name, ok / warn / fail, and a sentence that
//! says what was found and what to do — printed as one line, or all together as one JSON
//! array with `--json` (docs/DOCTOR.md is the contract).
//!
//! Map: `setup` (configuration, data directory, store), `certificate` (the TLS
//! certificate's validity, names and issuer), `host` (`public_host`, free disk), `service`
//! (is labbeam running: it talks to its HTTPS port, so a port in use by the running service
//! is not a failure; clock; systemd exposure), `relay` (TURN ports, relay address and port
//! range, peer policy), `ice`
//! (a real ICE run through the running relay over UDP, TCP and TLS), with `https` (the
//! pinned-certificate TLS client) and `shim` (TURN over a stream for the ICE agents).
//!
//! Invariant: doctor only looks. It creates no directory, database, certificate or secret
//! and changes no file or mode, so it is safe next to a running server whatever
//! configuration it was given. What it sends goes to the appliance's own ports; the ICE
//! run holds two TURN allocations at a time for a moment and closes them.

mod certificate;
mod host;
mod https;
mod ice;
mod relay;
mod service;
mod setup;
mod shim;

use serde::Serialize;

use crate::config::{Config, Overrides};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of the report (the JSON contract: `{"check", "status", "message"}`).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub message: String,
}

impl Check {
    /// The line for people: `ok   `, `warn `, `FAIL ` and the check's name in columns.
    pub fn human(&self) -> String {
        let word = match self.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        format!("{word:<5} {:<18} {}", self.check, self.message)
    }
}

/// The checks so far, in the order they ran.
#[derive(Debug, Default)]
pub struct Report {
    checks: Vec<Check>,
}

impl Report {
    pub fn add(&mut self, check: &'static str, status: Status, message: impl Into<String>) {
        self.checks.push(Check { check, status, message: message.into() });
    }

    pub fn ok(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Ok, message);
    }

    pub fn warn(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Warn, message);
    }

    pub fn fail(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Fail, message);
    }
}

/// Runs every check with the configuration `serve` would load from `overrides` and the
/// `LABBEAM_*` variables. A configuration that does not load is the only check then.
pub async fn run(overrides: &Overrides) -> Vec<Check> {
    let mut report = Report::default();
    let config = match Config::load(overrides, std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            report.fail("config", format!("{e}; fix it and run doctor again (nothing else was checked)"));
            return report.checks;
        }
    };
    let source = match &overrides.config_file {
        Some(path) => format!("{} and the LABBEAM_* variables", path.display()),
        None => "defaults and the LABBEAM_* variables, no --config file".into(),
    };
    report.ok("config", format!("configuration is valid ({source})"));
    run_with(&config, None, Scope::Everything, &mut report).await;
    report.checks
}

/// Which checks a run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Everything,
    /// All but the ICE run, which takes seconds and holds relay allocations: what the
    /// portal's Health page shows on every visit.
    AllButIce,
    /// Only `ice.udp`, `ice.tcp`, `ice.tls` (what they need is looked up, not reported).
    IceOnly,
}

/// The checks run inside the server (the portal's Health page), with its configuration as
/// served: `config` names the addresses it bound, so a port 0 in the file is the port the
/// server took.
pub async fn in_process(config: &Config, store: &crate::db::Store, scope: Scope) -> Vec<Check> {
    let mut report = Report::default();
    if scope != Scope::IceOnly {
        report.ok("config", "configuration is valid (as the running server loaded it)");
    }
    run_with(config, Some(store), scope, &mut report).await;
    report.checks
}

/// `running`: the server's own store (in the server); none: the store is opened read-only
/// for the run and closed after it (the command).
async fn run_with(config: &Config, running: Option<&crate::db::Store>, scope: Scope, report: &mut Report) {
    // With `IceOnly`, the checks the ICE run depends on write here, and are dropped.
    let mut aside = Report::default();
    let others = scope != Scope::IceOnly;
    let r = if others { &mut *report } else { &mut aside };
    if others {
        setup::data_dir(config, r);
    }
    let opened = match running {
        Some(_) => None,
        None => setup::store(config, r).await,
    };
    let store = match running {
        Some(pool) => setup::running_store(config, pool, r).await.then_some(pool),
        None => opened.as_ref(),
    };
    let certificate = certificate::check(config, r);
    if others {
        host::public_host(config, r).await;
    }
    let service = service::probe(config, certificate.as_ref(), r).await;
    if others {
        service::clock(&service, r);
        relay::checks(config, store, &service, r).await;
        host::disk(config, r);
        service::exposure(r).await;
    }
    if scope != Scope::AllButIce {
        ice::checks(config, store, certificate.as_ref(), &service, report).await;
    }
    if let Some(store) = opened {
        store.close().await;
    }
}

/// An address to reach a listener on `listen` from this machine: loopback when it listens
/// on every address.
fn local_target(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_the_prefixes_and_json_has_the_contract_fields() {
        let mut r = Report::default();
        r.ok("config", "configuration is valid");
        r.warn("data_dir", "missing");
        r.fail("ice.udp", "no answer");
        let lines: Vec<String> = r.checks.iter().map(Check::human).collect();
        assert_eq!(lines[0], format!("ok    {:<18} configuration is valid", "config"));
        assert!(lines[1].starts_with("warn  data_dir "), "{}", lines[1]);
        assert!(lines[2].starts_with("FAIL  ice.udp "), "{}", lines[2]);
        let json = serde_json::to_value(&r.checks).unwrap();
        assert_eq!(json[2], serde_json::json!({"check": "ice.udp", "status": "fail", "message": "no answer"}));
        assert_eq!(json[1]["status"], "warn");
        assert_eq!(json[0]["status"], "ok");
    }

    #[test]
    fn a_listener_on_every_address_is_reached_on_loopback() {
        assert_eq!(local_target("0.0.0.0:443".parse().unwrap()), "127.0.0.1:443".parse().unwrap());
        assert_eq!(local_target("[::]:443".parse().unwrap()), "[::1]:443".parse().unwrap());
        assert_eq!(local_target("10.0.0.5:8443".parse().unwrap()), "10.0.0.5:8443".parse().unwrap());
    }
}
