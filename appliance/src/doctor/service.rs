//! Is labbeam running? Doctor asks its HTTPS port (`/healthz`, the certificate pinned), so
//! a port held by the running service is not mistaken for a conflict (`service`,
//! `https.port`).

use std::net::SocketAddr;
use std::time::SystemTime;

use super::certificate::Certificate;
use super::{Report, https, local_target};
use crate::config::Config;

/// What doctor found on the HTTPS port.
#[derive(Debug)]
pub enum Service {
    /// `http_listen` has port 0: no way to find the server.
    Unknown,
    /// Nothing accepts connections there.
    Stopped,
    /// This configuration's labbeam answers there (`/healthz`).
    Running(Running),
    /// Something else holds the port.
    Other,
}

#[derive(Debug)]
pub struct Running {
    /// `Date` of its `/healthz` answer, and when doctor received it.
    pub date: Option<(SystemTime, SystemTime)>,
}

impl Service {
    pub fn running(&self) -> Option<&Running> {
        match self {
            Service::Running(running) => Some(running),
            _ => None,
        }
    }
}

/// `service` and `https.port`.
pub async fn probe(config: &Config, certificate: Option<&Certificate>, r: &mut Report) -> Service {
    let listen = config.http_listen;
    if listen.port() == 0 {
        r.warn(
            "service",
            "http_listen has port 0 (any free port), so doctor cannot find a running labbeam: give it a fixed port",
        );
        r.ok("https.port", "http_listen has port 0: serve takes any free port");
        return Service::Unknown;
    }
    let addr = local_target(listen);
    let server_name = config.advertised_host();
    let pins: Vec<_> = certificate.map(|c| c.chain[..1].to_vec()).unwrap_or_default();
    match https::get(addr, &server_name, &pins, "/healthz").await {
        Ok(answer) => {
            let received = SystemTime::now();
            match answer.status {
                200 if answer.body.contains("ok") => {
                    r.ok("service", format!("labbeam is running: https://{addr}/healthz answers ok"))
                }
                503 => r.fail(
                    "service",
                    format!(
                        "labbeam is running, but https://{addr}/healthz answers 503: its database does not answer \
                         (see store.connect; journalctl -u labbeam)"
                    ),
                ),
                status => {
                    r.fail(
                        "service",
                        format!(
                            "https://{addr}/healthz answers {status}, not as labbeam does: another program holds \
                             {listen} with labbeam's certificate"
                        ),
                    );
                    r.fail("https.port", format!("HTTPS address {listen} is held by another program"));
                    return Service::Other;
                }
            }
            let fingerprint = certificate.map(|c| c.fingerprint.as_str()).unwrap_or_default();
            r.ok(
                "https.port",
                format!(
                    "HTTPS address {listen} is the running labbeam's, with the configured certificate ({fingerprint})"
                ),
            );
            let date = answer.date.map(|d| (d, received));
            Service::Running(Running { date })
        }
        Err(https::ConnectError::Tcp(e)) => {
            r.warn(
                "service",
                format!(
                    "labbeam is not running (https://{addr}: {e}): start it (systemctl start labbeam); the ICE \
                     checks need it"
                ),
            );
            port_free(listen, r);
            Service::Stopped
        }
        Err(e) => {
            let whose = if certificate.is_some() {
                "another program, or a labbeam with another configuration or data directory"
            } else {
                "another program (this configuration has no certificate yet)"
            };
            r.fail("service", format!("https://{addr} answers, but not as this labbeam: {e}"));
            r.fail("https.port", format!("HTTPS address {listen} is held by {whose}: find it with ss -ltnp"));
            Service::Other
        }
    }
}

/// `https.port` when labbeam is not running: the address must be free for it.
fn port_free(listen: SocketAddr, r: &mut Report) {
    match std::net::TcpListener::bind(listen) {
        Ok(_) => r.ok("https.port", format!("HTTPS address {listen} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => r.ok(
            "https.port",
            format!(
                "HTTPS address {listen}: ports below 1024 need CAP_NET_BIND_SERVICE, which the systemd service has"
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            r.fail("https.port", format!("HTTPS address {listen} is not an address of this machine: fix http_listen"))
        }
        Err(e) => r.fail(
            "https.port",
            format!("HTTPS address {listen}: {e}, and it does not answer as labbeam: find the program with ss -ltnp"),
        ),
    }
}

/// Clock differences up to this are the `Date` header's one-second resolution and the
/// request's time, not a wrong clock.
const SKEW_TOLERANCE_SECS: u64 = 5;

/// `clock`: TURN credentials, sessions and tokens expire by the clock, and browsers refuse
/// a certificate from a clock that ran ahead or behind. Compares the running labbeam's
/// `Date` with this command's clock, and asks the kernel whether anything (NTP)
/// synchronizes the clock.
pub fn clock(service: &Service, r: &mut Report) {
    let skew = service.running().and_then(|running| running.date).map(|(date, received)| {
        let secs = match received.duration_since(date) {
            Ok(behind) => behind.as_secs(),
            Err(ahead) => ahead.duration().as_secs(),
        };
        (secs, received > date)
    });
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let shown = time::OffsetDateTime::from_unix_timestamp(i64::try_from(now).unwrap_or(0))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| now.to_string());
    let synchronized = kernel_clock_synchronized();
    let mut problems = Vec::new();
    if let Some((secs, behind)) = skew.filter(|(secs, _)| *secs > SKEW_TOLERANCE_SECS) {
        let way = if behind { "behind" } else { "ahead of" };
        problems.push(format!(
            "the running labbeam's clock is {secs} s {way} this command's: restart it after setting the clock"
        ));
    }
    if synchronized == Some(false) {
        problems.push(
            "the kernel reports the clock as not synchronized: run an NTP client (systemd-timesyncd or chrony) so \
             credentials, sessions and certificates are judged at the right time"
                .to_string(),
        );
    }
    let seen = match skew {
        Some((secs, _)) if secs <= SKEW_TOLERANCE_SECS => "; the running labbeam's agrees",
        _ => "",
    };
    if problems.is_empty() {
        let sync = if synchronized == Some(true) { ", synchronized" } else { "" };
        r.ok("clock", format!("this machine's clock reads {shown} (UTC){sync}{seen}"));
    } else {
        r.warn("clock", format!("this machine's clock reads {shown} (UTC); {}", problems.join("; ")));
    }
}

/// Whether the kernel's clock is synchronized (an NTP client keeps it), as `adjtimex`
/// reads it without changing anything; `None` when it cannot be asked.
fn kernel_clock_synchronized() -> Option<bool> {
    // SAFETY: `timex` is plain data, for which all-zero bytes are valid; with `modes` 0 the
    // call only reads the kernel's state into the struct, which outlives the call.
    let state = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        libc::adjtimex(&mut tx)
    };
    match state {
        -1 => None,
        libc::TIME_ERROR => Some(false),
        _ => Some(true),
    }
}
