//! The store. Owns the connection pool, runs the embedded migrations at start, and holds
//! one repository file per table group. Repository functions take plain values and return
//! plain rows; they never decide policy (that is `auth`'s and the handlers' job).
//!
//! Queries are runtime `query_as` with `FromRow` and portable column types (BIGINT for
//! flags and Unix times, TEXT, BLOB), so the same code can run on PostgreSQL with its own
//! migration folder: sqlx's checked `query!` macros would need a database (or a committed
//! query cache) at build time and check one backend only.

pub mod access;
pub mod announcements;
pub mod audit;
pub mod labs;
pub mod roles;
pub mod sessions;
pub mod settings;
pub mod transfers;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use thiserror::Error;

pub type Pool = sqlx::SqlitePool;

#[derive(Debug, Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
}

impl DbError {
    /// Maps a unique-constraint violation to `Conflict(what)`, anything else unchanged.
    pub fn conflict_as(e: sqlx::Error, what: &str) -> DbError {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Conflict(what.to_string()),
            _ => DbError::Sqlx(e),
        }
    }
}

/// The schema: every migration this binary knows, in order.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// The database's file in a data directory.
pub fn file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("labbeam.db")
}

/// A cheap fingerprint of every committed write to the database in a data directory, by
/// this process or another (the command line): the length and modification time of the
/// database file and of its write-ahead log. A commit appends to the log and a checkpoint
/// rewrites the file, so a write that does not move the stamp needs a file system whose
/// clock is coarser than the gap between two writes of the same length; callers that must
/// not miss a change still read what they watch now and then.
///
/// Taking it is two `stat` calls, where reading a row is a pool checkout and a round trip
/// through a connection's worker thread: `access_watch` looks at the stamp four times a
/// second and reads the store only when it moved (bench/turn/README.md, 2026-12-02).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteStamp([Option<(u64, std::time::SystemTime)>; 2]);

pub fn write_stamp(data_dir: &Path) -> WriteStamp {
    let of = |suffix: &str| {
        // A local file's metadata, fast enough to read on an async worker.
        let meta = std::fs::metadata(data_dir.join(format!("labbeam.db{suffix}"))).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    };
    WriteStamp([of(""), of("-wal")])
}

/// Opens (creating if needed) the SQLite database in `data_dir` and applies migrations.
pub async fn open(data_dir: &Path) -> Result<Pool, DbError> {
    let path = file(data_dir);
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
    MIGRATIONS.run(&pool).await?;
    // Like the secrets: readable by the service's user only, whatever the umask.
    for suffix in ["", "-wal", "-shm"] {
        let file = data_dir.join(format!("labbeam.db{suffix}"));
        let _ = std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    }
    Ok(pool)
}

/// Opens an existing database for reading only, for `labbeam doctor`: it creates no file,
/// journal or lock file and changes no byte. While a server runs, its write-ahead log is
/// read like any reader does (through the server's own `-wal`/`-shm` files); when no
/// `-wal` file exists the file is opened as immutable, because an ordinary read-only
/// open of a WAL database would create both files.
pub async fn open_read_only(data_dir: &Path) -> Result<Pool, DbError> {
    let path = file(data_dir);
    let live = data_dir.join("labbeam.db-wal").exists();
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(false)
        .read_only(true)
        .immutable(!live)
        .busy_timeout(Duration::from_secs(10));
    Ok(SqlitePoolOptions::new().max_connections(1).connect_with(options).await?)
}

/// How a database's schema compares with this binary's migrations.
#[derive(Debug, PartialEq, Eq)]
pub enum Schema {
    Current,
    /// This many migrations are not applied yet; the next start applies them.
    Behind(usize),
    /// Applied by a newer LabBeam: this version is unknown to this binary.
    Newer(i64),
    /// This applied migration differs from this binary's, or failed halfway.
    Damaged(i64),
}

/// Compares the applied migrations with this binary's, reading only.
pub async fn schema(pool: &Pool) -> Result<Schema, DbError> {
    let has_table: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_one(pool)
            .await?;
    let applied: Vec<(i64, Vec<u8>, bool)> = if has_table > 0 {
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let known: Vec<_> = MIGRATIONS.iter().filter(|m| !m.migration_type.is_down_migration()).collect();
    for (version, checksum, success) in &applied {
        match known.iter().find(|m| m.version == *version) {
            None => return Ok(Schema::Newer(*version)),
            Some(m) if !success || *m.checksum != checksum[..] => return Ok(Schema::Damaged(*version)),
            Some(_) => {}
        }
    }
    let pending = known.iter().filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version)).count();
    Ok(if pending == 0 { Schema::Current } else { Schema::Behind(pending) })
}

/// An in-memory database with the schema applied, for unit tests.
#[cfg(test)]
pub async fn open_memory() -> Pool {
    let options = SqliteConnectOptions::from_str("sqlite::memory:").unwrap().foreign_keys(true);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
    MIGRATIONS.run(&pool).await.unwrap();
    pool
}

/// Seconds since the Unix epoch: the only time format stored.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_stamp_moves_when_another_process_commits() {
        let dir = tempfile::tempdir().unwrap();
        let server = open(dir.path()).await.unwrap();
        let before = write_stamp(dir.path());
        assert_eq!(before, write_stamp(dir.path()), "no write, same stamp");
        // The command line opens its own pool on the same files.
        let cli = open(dir.path()).await.unwrap();
        sqlx::query("UPDATE access_generation SET value = value + 1 WHERE id = 1").execute(&cli).await.unwrap();
        assert_ne!(before, write_stamp(dir.path()), "a commit by another pool moves the stamp");
        drop(server);
    }
}
