//! Is labbeam running? Doctor asks its HTTPS port (`/healthz`, the certificate pinned), so
//! a port held by the running service is not mistaken for a conflict (`service`,
//! `https.port`); and the service around it: the clock (`clock`) and systemd's rating of
//! its sandbox (`service.exposure`).

use std::net::SocketAddr;
use std::path::Path;
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
    /// Where it answers.
    pub addr: SocketAddr,
    /// The certificate it presents (the configured one).
    pub pins: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The host name doctor used for it (SNI).
    pub server_name: String,
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
            Service::Running(Running { addr, pins, server_name, date })
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
        Err(e) if certificate.is_none() => {
            // Nothing to compare with: this configuration's certificate does not load (or
            // does not exist yet), so whoever answers cannot be told apart.
            r.warn(
                "service",
                format!(
                    "https://{addr} answers, but doctor cannot tell whether it is this labbeam ({e}), as this \
                     configuration's certificate does not load (see tls.certificate)"
                ),
            );
            r.warn("https.port", format!("HTTPS address {listen} is in use (see service)"));
            Service::Other
        }
        Err(e) => {
            r.fail("service", format!("https://{addr} answers, but not as this labbeam: {e}"));
            r.fail(
                "https.port",
                format!(
                    "HTTPS address {listen} is held by another program, or a labbeam with another configuration or \
                     data directory: find it with ss -ltnp"
                ),
            );
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

/// Where the service's unit may be, the administrator's copy first.
const UNIT_FILES: [&str; 3] = [
    "/etc/systemd/system/labbeam.service",
    "/usr/lib/systemd/system/labbeam.service",
    "/lib/systemd/system/labbeam.service",
];

/// `service.exposure`: systemd's own rating of the service's sandbox (`systemd-analyze
/// security`), when systemd-analyze and the unit are installed; left out otherwise. Warns
/// only: the packaged unit rates "OK", so anything worse is a local change to look at.
pub async fn exposure(r: &mut Report) {
    let Some(analyze) =
        ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].into_iter().find(|p| Path::new(p).exists())
    else {
        return;
    };
    let Some(unit) = UNIT_FILES.into_iter().find(|p| Path::new(p).exists()) else { return };
    // With systemd running, the loaded unit with its drop-ins; without (a container, a
    // chroot), the unit file as installed.
    let booted = Path::new("/run/systemd/system").exists();
    let mut command = tokio::process::Command::new(analyze);
    command.args(["security", "--no-pager"]);
    if booted {
        command.arg("labbeam.service");
    } else {
        command.args(["--offline=true", unit]);
    }
    command.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let output = match tokio::time::timeout(std::time::Duration::from_secs(30), command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            r.warn("service.exposure", format!("cannot run {analyze}: {e}"));
            return;
        }
        Err(_) => {
            r.warn("service.exposure", format!("{analyze} security did not finish within 30 s"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    match overall_exposure(&text) {
        Some((level, rating)) if ["SAFE", "OK"].contains(&rating.as_str()) => r.ok(
            "service.exposure",
            format!("systemd-analyze security rates labbeam.service {level} {rating} (0 is the most confined)"),
        ),
        Some((level, rating)) => r.warn(
            "service.exposure",
            format!(
                "systemd-analyze security rates labbeam.service {level} {rating}: the packaged unit rates OK; look \
                 for a local change that loosened it (systemctl cat labbeam)"
            ),
        ),
        None => {
            let why = String::from_utf8_lossy(&output.stderr).lines().next().unwrap_or("no rating").to_string();
            r.warn("service.exposure", format!("systemd-analyze security gave no rating for {unit}: {why}"));
        }
    }
}

/// The level and rating word of `systemd-analyze security`'s last line
/// (`→ Overall exposure level for labbeam.service: 1.5 OK 🙂`).
fn overall_exposure(text: &str) -> Option<(String, String)> {
    let line = text.lines().rev().find(|l| l.contains("Overall exposure level"))?;
    let mut words = line.rsplit_once(':')?.1.split_whitespace();
    let level = words.next()?;
    level.parse::<f64>().ok()?;
    Some((level.to_string(), words.next()?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overall_exposure_is_read_from_systemd_analyze() {
        let text = "✓ UMask=    Files created by service are accessible only by service's own user by default\n\n\
                    → Overall exposure level for labbeam.service: 1.5 OK 🙂\n";
        assert_eq!(overall_exposure(text), Some(("1.5".into(), "OK".into())));
        assert_eq!(
            overall_exposure("→ Overall exposure level for x.service: 9.6 UNSAFE 😨"),
            Some(("9.6".into(), "UNSAFE".into()))
        );
        assert_eq!(overall_exposure("Failed to connect to bus"), None);
    }

    /// The packaged unit, rated offline by this machine's systemd-analyze when it has one.
    #[tokio::test]
    async fn the_packaged_unit_rates_ok() {
        let Some(analyze) =
            ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].into_iter().find(|p| Path::new(p).exists())
        else {
            println!("skipped: no systemd-analyze on this machine");
            return;
        };
        let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/labbeam.service");
        let out = tokio::process::Command::new(analyze)
            .args(["security", "--no-pager", "--offline=true", unit])
            .output()
            .await
            .unwrap();
        let (level, rating) = overall_exposure(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert!(["SAFE", "OK"].contains(&rating.as_str()), "{level} {rating}");
    }
}
