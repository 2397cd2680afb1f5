//! This machine as the lab PCs will meet it: the name they use (`public_host`) and the
//! room the store has to grow (`disk`).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::Report;
use crate::config::Config;
use crate::db;
use crate::turn::{canonical_ip, local_addresses};

/// `public_host`: set, resolves, and points at this machine.
pub async fn public_host(config: &Config, r: &mut Report) {
    let Some(host) = &config.public_host else {
        r.warn(
            "public_host",
            "public_host is not set: the web address and the STUN/TURN servers given to browsers name localhost, \
             which lab PCs cannot reach; set public_host to the name or address they use",
        );
        return;
    };
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), 443)))
            .await
        {
            Ok(Ok(found)) => {
                let mut ips: Vec<IpAddr> = found.map(|a: SocketAddr| a.ip()).collect();
                ips.sort_unstable();
                ips.dedup();
                ips
            }
            Ok(Err(e)) => {
                r.fail(
                    "public_host",
                    format!(
                        "{host} does not resolve from this machine ({e}): fix its DNS record (or /etc/hosts), or set \
                         public_host to the address the lab PCs use"
                    ),
                );
                return;
            }
            Err(_) => {
                r.fail("public_host", format!("resolving {host} took more than 5 s: check this machine's DNS servers"));
                return;
            }
        },
    };
    let shown = addresses.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ");
    let own = local_addresses();
    let ports = format!(
        "{} (HTTPS), {} (STUN/TURN) and {} (TURN over TLS)",
        config.http_listen.port(),
        config.turn_listen.port(),
        config.turn.tls_port.unwrap_or(5349)
    );
    if addresses.iter().all(|ip| canonical_ip(*ip).is_loopback()) {
        r.warn(
            "public_host",
            format!(
                "{host} is {shown}, a loopback address that lab PCs cannot reach: set public_host to the name or \
                 address they use"
            ),
        );
    } else if addresses.iter().any(|ip| !ip.is_loopback() && own.contains(&canonical_ip(*ip))) {
        r.ok("public_host", format!("{host} is {shown}, an address of this machine"));
    } else {
        r.warn(
            "public_host",
            format!(
                "{host} is {shown}, not an address of this machine: right only behind a NAT or proxy that forwards \
                 ports {ports} here; otherwise fix its DNS record"
            ),
        );
    }
}

/// Free space below this fails: SQLite cannot commit when the disk is full.
const DISK_FAIL_BYTES: u64 = 100 << 20;
/// Free space below this (or below `DISK_WARN_PERCENT`) is a warning.
const DISK_WARN_BYTES: u64 = 1 << 30;
const DISK_WARN_PERCENT: u64 = 5;

/// `disk`: free space on the file system of the data directory, where the SQLite store,
/// the certificate and the secrets live.
pub fn disk(config: &Config, r: &mut Report) {
    let dir = config.data_dir.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    let (free, total) = match free_space(dir) {
        Ok(space) => space,
        Err(e) => {
            r.warn("disk", format!("cannot read the free space of {}: {e}", dir.display()));
            return;
        }
    };
    let sqlite = matches!(db::Location::of(&config.store, &config.data_dir), Ok(db::Location::Sqlite(_)));
    let what = if sqlite {
        "the database, certificate and secrets"
    } else {
        "the certificate and secrets; the database's disk is the PostgreSQL server's to watch"
    };
    let percent = free.saturating_mul(100).checked_div(total).unwrap_or(0);
    let text = format!(
        "{} free of {} ({percent} %) on the file system of {} ({what})",
        bytes(free),
        bytes(total),
        dir.display()
    );
    if free < DISK_FAIL_BYTES {
        r.fail("disk", format!("{text}: sign-ins and the transfer log stop being written when it is full; free space"));
    } else if free < DISK_WARN_BYTES || percent < DISK_WARN_PERCENT {
        r.warn("disk", format!("{text}: free space before it runs out"));
    } else {
        r.ok("disk", text);
    }
}

/// Bytes available to this user and the file system's size.
fn free_space(dir: &Path) -> std::io::Result<(u64, u64)> {
    let path = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str()))
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
    // SAFETY: `statvfs` is plain data, for which all-zero bytes are valid; `path` is a valid
    // NUL-terminated string and `st` a valid struct, both outliving the call.
    let (result, st) = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(path.as_ptr(), &mut st), st)
    };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = st.f_frsize;
    Ok((st.f_bavail.saturating_mul(block), st.f_blocks.saturating_mul(block)))
}

/// A size for people.
fn bytes(n: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    if n >= 1 << 30 { format!("{:.1} GiB", n as f64 / GIB) } else { format!("{:.0} MiB", n as f64 / MIB) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_for_people() {
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(bytes(512 << 20), "512 MiB");
        let (free, total) = free_space(Path::new("/")).unwrap();
        assert!(free <= total && total > 0);
    }
}
