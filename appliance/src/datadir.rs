//! The data directory: created with mode 0700 on first start (and tightened to 0700 on
//! every start if it was opened up), and the secrets in it (JWT key, TURN key) created once
//! with mode 0600 and reused on every later start. `inspect` is the read-only look that
//! `labbeam doctor` reports.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataDirError {
    #[error("cannot create data directory {0}: {1}")]
    Create(String, std::io::Error),
    #[error("data directory {0} is not writable: {1}")]
    NotWritable(String, std::io::Error),
    #[error("cannot read secret {0}: {1}")]
    ReadSecret(String, String),
    #[error("cannot write secret {0}: {1}")]
    WriteSecret(String, std::io::Error),
    #[error("no system randomness")]
    Randomness,
    #[error(
        "data directory {0} belongs to uid {1} but this command runs as uid {2}: files it creates would lock the \
         service out (run it as the owner, e.g. sudo -u labbeam labbeam ...)"
    )]
    WrongOwner(String, u32, u32),
    #[error("data directory {0} has mode {1:04o} and cannot be made private (0700): {2}")]
    Tighten(String, u32, std::io::Error),
}

/// The data directory's mode: it holds the database and the secrets, so only its owner
/// may enter it.
const PRIVATE: u32 = 0o700;

/// Creates `dir` (mode 0700) if missing, checks it is writable by its owner, and takes
/// away any access the group or others have to it.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    let shown = dir.display().to_string();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| DataDirError::Create(shown.clone(), e))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| DataDirError::NotWritable(shown.clone(), e))?;
    // Files made now belong to whoever runs this; they must belong to the directory's owner.
    let mine = std::fs::metadata(&probe).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let _ = std::fs::remove_file(&probe);
    let owner = std::fs::metadata(dir).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if let (Ok(mine), Ok(owner)) = (mine, owner)
        && mine != owner
    {
        return Err(DataDirError::WrongOwner(shown, owner, mine));
    }
    // A directory made by hand, an archive or an older package may be 0755: the
    // database (accounts, audit log) would be readable by every local user.
    let mode = std::fs::metadata(dir).map_err(|e| DataDirError::NotWritable(shown.clone(), e))?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE))
            .map_err(|e| DataDirError::Tighten(shown.clone(), mode & 0o7777, e))?;
        tracing::warn!(
            "data directory {shown} had mode {:04o}; tightened it to 0700 (it holds the database and secrets)",
            mode & 0o7777
        );
    }
    Ok(())
}

/// What `inspect` sees; looking changes nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Inspection {
    /// It does not exist yet; the first start creates it if `creatable` (the nearest
    /// existing parent is writable).
    Missing { creatable: bool },
    /// It exists; each problem is one sentence (none: ready).
    Present { problems: Vec<String> },
}

/// Looks at `dir` the way `prepare` would, without creating, probing or changing anything.
pub fn inspect(dir: &Path) -> Inspection {
    let shown = dir.display().to_string();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = dir.ancestors().skip(1).find(|p| p.exists()).unwrap_or(Path::new("/"));
            return Inspection::Missing { creatable: writable(parent) };
        }
        Err(e) => return Inspection::Present { problems: vec![format!("cannot read data directory {shown}: {e}")] },
    };
    if !meta.is_dir() {
        return Inspection::Present { problems: vec![format!("data directory {shown} is not a directory")] };
    }
    let mut problems = Vec::new();
    let owner = std::os::unix::fs::MetadataExt::uid(&meta);
    // SAFETY: geteuid has no arguments and cannot fail.
    let me = unsafe { libc::geteuid() };
    if owner != me {
        problems.push(DataDirError::WrongOwner(shown.clone(), owner, me).to_string());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        problems.push(format!(
            "data directory {shown} has mode {mode:04o}, so other local users may read the database and secrets (the next start of serve sets 0700; or run chmod 700 {shown})"
        ));
    }
    if !writable(dir) {
        problems.push(format!("data directory {shown} is not writable by this user"));
    }
    Inspection::Present { problems }
}

/// Whether this process may create files in `dir` (asked of the kernel; nothing is written).
fn writable(dir: &Path) -> bool {
    let Ok(path) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str())) else {
        return false;
    };
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Reads the 32-byte secret `name` from the data dir, creating it (mode 0600) if missing.
pub fn secret(dir: &Path, name: &str) -> Result<Vec<u8>, DataDirError> {
    let path: PathBuf = dir.join(name);
    let shown = path.display().to_string();
    match read_secret(dir, name) {
        Ok(bytes) => {
            // Tighten a secret whose mode was loosened by hand.
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            Ok(bytes)
        }
        Err(ReadSecretError::Missing) => {
            let mut bytes = vec![0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                .map_err(|_| DataDirError::Randomness)?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| DataDirError::WriteSecret(shown.clone(), e))?;
            writeln!(file, "{}", B64.encode(&bytes)).map_err(|e| DataDirError::WriteSecret(shown, e))?;
            Ok(bytes)
        }
        Err(ReadSecretError::Unusable(e)) => Err(e),
    }
}

/// Why `read_secret` found no secret.
#[derive(Debug)]
pub enum ReadSecretError {
    /// There is no such file (yet).
    Missing,
    /// It cannot be read, or is not a secret.
    Unusable(DataDirError),
}

/// Reads the secret `name` as `secret` does, changing and creating nothing (for `doctor`).
pub fn read_secret(dir: &Path, name: &str) -> Result<Vec<u8>, ReadSecretError> {
    let path: PathBuf = dir.join(name);
    let shown = path.display().to_string();
    let unusable = |why: String| ReadSecretError::Unusable(DataDirError::ReadSecret(shown.clone(), why));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadSecretError::Missing),
        Err(e) => return Err(unusable(e.to_string())),
    };
    let bytes = B64.decode(text.trim()).map_err(|e| unusable(format!("not base64: {e}")))?;
    if bytes.len() < 32 {
        return Err(unusable("shorter than 32 bytes".into()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepare(&data).unwrap();
        assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
        let a = secret(&data, "jwt.key").unwrap();
        let b = secret(&data, "jwt.key").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        let mode = std::fs::metadata(data.join("jwt.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(data.join("bad.key"), "short").unwrap();
        assert!(secret(&data, "bad.key").is_err());
        // Reading only: the same bytes, and a missing secret stays missing.
        assert_eq!(read_secret(&data, "jwt.key").unwrap(), a);
        assert!(matches!(read_secret(&data, "turn.key"), Err(ReadSecretError::Missing)));
        assert!(!data.join("turn.key").exists(), "read_secret created it");
        assert!(matches!(read_secret(&data, "bad.key"), Err(ReadSecretError::Unusable(_))));
    }

    #[test]
    fn an_open_data_dir_is_reported_by_inspect_and_tightened_by_prepare() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(inspect(&data), Inspection::Missing { creatable: true });
        assert!(!data.exists(), "inspect creates nothing");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let Inspection::Present { problems } = inspect(&data) else { panic!("present") };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("0755"), "{problems:?}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&data), 0o755, "inspect changes nothing");
        prepare(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(inspect(&data), Inspection::Present { problems: Vec::new() });
        std::fs::write(dir.path().join("file"), "").unwrap();
        let Inspection::Present { problems } = inspect(&dir.path().join("file")) else { panic!("present") };
        assert!(problems[0].contains("not a directory"), "{problems:?}");
    }
}
