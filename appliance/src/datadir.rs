//! The data directory: created with mode 0700 on first start, and the secrets in it
//! (JWT key, TURN key) created once with mode 0600 and reused on every later start.

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
}

/// Creates `dir` (mode 0700) if missing and checks it is writable.
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
    Ok(())
}

/// Reads the 32-byte secret `name` from the data dir, creating it (mode 0600) if missing.
pub fn secret(dir: &Path, name: &str) -> Result<Vec<u8>, DataDirError> {
    let path: PathBuf = dir.join(name);
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = B64
                .decode(text.trim())
                .map_err(|e| DataDirError::ReadSecret(shown.clone(), format!("not base64: {e}")))?;
            if bytes.len() < 32 {
                return Err(DataDirError::ReadSecret(shown, "shorter than 32 bytes".into()));
            }
            // Tighten a secret whose mode was loosened by hand.
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
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
        Err(e) => Err(DataDirError::ReadSecret(shown, e.to_string())),
    }
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
    }
}
