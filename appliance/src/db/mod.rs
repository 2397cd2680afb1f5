//! The store. Owns the connection pool, runs the embedded migrations at start, and holds
//! one repository file per table group. Repository functions take plain values and return
//! plain rows; they never decide policy (that is `auth`'s and the handlers' job).
//!
//! Queries are runtime `query_as` with `FromRow` and portable column types, so the same
//! code can run on PostgreSQL with its own migration folder (see STACK.md, pitfall 7).

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

/// Opens (creating if needed) the SQLite database in `data_dir` and applies migrations.
pub async fn open(data_dir: &Path) -> Result<Pool, DbError> {
    let path = data_dir.join("labbeam.db");
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
    sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
    // Like the secrets: readable by the service's user only, whatever the umask.
    for suffix in ["", "-wal", "-shm"] {
        let file = data_dir.join(format!("labbeam.db{suffix}"));
        let _ = std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    }
    Ok(pool)
}

/// An in-memory database with the schema applied, for unit tests.
#[cfg(test)]
pub async fn open_memory() -> Pool {
    let options = SqliteConnectOptions::from_str("sqlite::memory:").unwrap().foreign_keys(true);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
    sqlx::migrate!("../migrations/sqlite").run(&pool).await.unwrap();
    pool
}

/// Seconds since the Unix epoch: the only time format stored.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
