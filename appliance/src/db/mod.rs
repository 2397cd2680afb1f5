//! The store. Owns the connection pool (SQLite or PostgreSQL), runs the embedded
//! migrations at start, and holds one repository file per table group. Repository
//! functions take plain values and return plain rows; they never decide policy (that is
//! `auth`'s and the handlers' job).
//!
//! One repository layer serves both databases: a `Store` is an enum of the two native sqlx
//! pools, and `on_pool!` runs a function body with the pool of whichever it holds, so each
//! query is written once and compiled for both drivers (ARCHITECTURE.md says why this and
//! not sqlx's `Any` driver or a generic). The SQL is portable: `$N` placeholders (which
//! sqlx's SQLite driver binds by number too), `ON CONFLICT`, `RETURNING`, `lower(col) =
//! lower($1)` for the case-insensitive names (an index on `lower()` on both, migration
//! 0007), every integer a BIGINT (`CAST(… AS BIGINT)` where PostgreSQL would widen a sum
//! to NUMERIC). The few statements that cannot be written once are in `dialect.rs`.
//!
//! Queries are runtime `query_as` with `FromRow`: sqlx's checked `query!` macros would
//! need a database of each kind (or a committed query cache) at build time.

pub mod access;
pub mod announcements;
pub mod audit;
pub mod connection_tests;
pub mod copy;
pub mod dialect;
pub mod handins;
pub mod labs;
pub mod oidc_flows;
pub mod roles;
pub mod seats;
pub mod sessions;
pub mod settings;
pub mod transfers;
pub mod users;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use thiserror::Error;

use crate::config::StoreConfig;

/// The store: a pool of connections to the SQLite file or to the PostgreSQL database.
/// Cloning it is cheap (both pools are reference-counted).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Which database a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Store {
    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection, waiting for those in use to come back.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

/// Runs `$body` with `$pool` bound to the store's native pool (`&SqlitePool` or `&PgPool`).
/// The body is compiled once per database, so its SQL text is written once; `?` and
/// `return` in it act on the enclosing function.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::db::Store::Sqlite($pool) => $body,
            $crate::db::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

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
    /// `[store]` does not say where a usable database is.
    #[error("{0}")]
    Setup(String),
}

impl DbError {
    /// Maps a unique-constraint violation to `Conflict(what)`, anything else unchanged.
    pub fn conflict_as(e: sqlx::Error, what: &str) -> DbError {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Conflict(what.to_string()),
            _ => DbError::Sqlx(e),
        }
    }

    /// The database cannot be reached right now (stopped, restarting, unreachable, or every
    /// connection busy past the acquire timeout), as opposed to refusing a statement: the
    /// caller answers 503 `store_unavailable`, and the next request tries again.
    pub fn is_unavailable(&self) -> bool {
        let DbError::Sqlx(e) = self else { return false };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // SQLSTATE classes 08 (connection exception) and 57P (operator intervention:
            // the server is shutting down or starting), and 53300 (too many connections).
            sqlx::Error::Database(d) => {
                d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300")
            }
            _ => false,
        }
    }
}

/// What a caller shows when the store is unavailable (`DbError::is_unavailable`).
pub const UNAVAILABLE_MESSAGE: &str = "the database cannot be reached right now; try again in a moment";

/// The schema: every migration this binary knows, in order, for each database.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Backend {
    fn migrations(self) -> &'static sqlx::migrate::Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// Where the store is: `[store] url` when set, else `labbeam.db` in the data directory.
#[derive(Debug, Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(Box<PgConnectOptions>),
}

impl Location {
    /// From the configuration; reads `[store] password_file`.
    pub fn of(config: &StoreConfig, data_dir: &Path) -> Result<Location, DbError> {
        match config.url.as_deref() {
            None => Ok(Location::Sqlite(file(data_dir))),
            Some(url) => Location::parse(url, config),
        }
    }

    /// A store URL (`sqlite://PATH`, `postgres://…`), with the other `[store]` keys.
    pub fn parse(url: &str, config: &StoreConfig) -> Result<Location, DbError> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() || path.contains('?') {
                return Err(DbError::Setup(format!(
                    "store URL {}: give the database file as sqlite:///absolute/path.db (no parameters)",
                    redact(url)
                )));
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(DbError::Setup(format!(
                "store URL {}: it must start with sqlite:// or postgres://",
                redact(url)
            )));
        }
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| DbError::Setup(format!("store URL {}: {e}", redact(url))))?
            .application_name("labbeam");
        if let Some(path) = &config.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| DbError::Setup(format!("store.password_file {}: {e}", path.display())))?;
            let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
            if password.is_empty() {
                return Err(DbError::Setup(format!("store.password_file {}: the file is empty", path.display())));
            }
            options = options.password(password);
        }
        if let Some(ca) = &config.ca_file {
            if !ca.is_file() {
                return Err(DbError::Setup(format!("store.ca_file {}: no such file", ca.display())));
            }
            options = options.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert(ca);
        }
        Ok(Location::Postgres(Box::new(options)))
    }

    /// What to print: the file, or the server and database without any password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => format!("SQLite {}", path.display()),
            Location::Postgres(o) => format!(
                "PostgreSQL {}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
        }
    }
}

/// A URL with its password, if any, replaced by `***`: the only form in which a store URL
/// is printed or logged.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

/// The database's file in a data directory (the default store).
pub fn file(data_dir: &Path) -> PathBuf {
    data_dir.join("labbeam.db")
}

/// A cheap fingerprint of every committed write to a SQLite database, by this process or
/// another (the command line): the length and modification time of the database file and
/// of its write-ahead log. A commit appends to the log and a checkpoint rewrites the file,
/// so a write that does not move the stamp needs a file system whose clock is coarser than
/// the gap between two writes of the same length; callers that must not miss a change
/// still read what they watch now and then.
///
/// Taking it is two `stat` calls, where reading a row is a pool checkout and a round trip
/// through a connection's worker thread: `access_watch` looks at the stamp four times a
/// second and reads the store only when it moved (bench/turn/README.md, 2026-12-02).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteStamp([Option<(u64, std::time::SystemTime)>; 2]);

pub fn write_stamp(database: &Path) -> WriteStamp {
    let of = |suffix: &str| {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        // A local file's metadata, fast enough to read on an async worker.
        let meta = std::fs::metadata(PathBuf::from(name)).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    };
    WriteStamp([of(""), of("-wal")])
}

/// Opens (creating a SQLite file if needed) the store and applies migrations.
pub async fn open(config: &StoreConfig, data_dir: &Path) -> Result<Store, DbError> {
    open_at(&Location::of(config, data_dir)?, config).await
}

/// Opens the store at `location` and applies migrations.
pub async fn open_at(location: &Location, config: &StoreConfig) -> Result<Store, DbError> {
    let acquire = Duration::from_secs(config.acquire_timeout_secs);
    match location {
        Location::Sqlite(path) => {
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(acquire.max(Duration::from_secs(10)))
                .connect_with(options)
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
            // Like the secrets: readable by the service's user only, whatever the umask.
            for suffix in ["", "-wal", "-shm"] {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                let _ = std::fs::set_permissions(name, std::os::unix::fs::PermissionsExt::from_mode(0o600));
            }
            Ok(Store::Sqlite(pool))
        }
        Location::Postgres(options) => {
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(acquire)
                .connect_with((**options).clone())
                .await?;
            // sqlx takes an advisory lock around the migrations: several nodes starting
            // together migrate once.
            POSTGRES_MIGRATIONS.run(&pool).await?;
            Ok(Store::Postgres(pool))
        }
    }
}

/// Opens an existing store for reading only, for `labbeam doctor`: no migration, no
/// write. A SQLite file is opened without creating any file, journal or lock file: while a
/// server runs, its write-ahead log is read like any reader does (through the server's own
/// `-wal`/`-shm` files); when no `-wal` file exists the file is opened as immutable,
/// because an ordinary read-only open of a WAL database would create both files. A
/// PostgreSQL session is made read-only by the server.
pub async fn open_read_only(location: &Location, config: &StoreConfig) -> Result<Store, DbError> {
    let acquire = Duration::from_secs(config.acquire_timeout_secs);
    match location {
        Location::Sqlite(path) => {
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            let live = Path::new(&wal).exists();
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(false)
                .read_only(true)
                .immutable(!live)
                .busy_timeout(Duration::from_secs(10));
            Ok(Store::Sqlite(SqlitePoolOptions::new().max_connections(1).connect_with(options).await?))
        }
        Location::Postgres(options) => {
            let options = (**options).clone().options([("default_transaction_read_only", "on")]);
            let pool = PgPoolOptions::new().max_connections(1).acquire_timeout(acquire).connect_with(options).await?;
            Ok(Store::Postgres(pool))
        }
    }
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
pub async fn schema(store: &Store) -> Result<Schema, DbError> {
    let has_table = on_pool!(store, |pool| {
        sqlx::query_scalar::<_, i64>(dialect::table_exists(store.backend()))
            .bind("_sqlx_migrations")
            .fetch_one(pool)
            .await?
    });
    let applied: Vec<(i64, Vec<u8>, bool)> = if has_table > 0 {
        on_pool!(store, |pool| {
            sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(pool)
                .await?
        })
    } else {
        Vec::new()
    };
    let known: Vec<_> = store.backend().migrations().iter().filter(|m| !m.migration_type.is_down_migration()).collect();
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

/// The database server's version, as it reports it (`15.10 (Debian 15.10-0+deb12u1)`).
pub async fn server_version(store: &Store) -> Result<String, DbError> {
    let sql = dialect::server_version(store.backend());
    Ok(on_pool!(store, |pool| sqlx::query_scalar::<_, String>(sql).fetch_one(pool).await?))
}

/// The oldest PostgreSQL major version LabBeam's migrations and queries are written for.
pub const POSTGRES_MIN_MAJOR: u32 = 13;

/// Whether this binary works with a server of `version` (as `server_version` gives it).
pub fn supports_server_version(backend: Backend, version: &str) -> Result<(), String> {
    if backend == Backend::Sqlite {
        return Ok(());
    }
    let major = version.split(|c: char| !c.is_ascii_digit()).next().and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= POSTGRES_MIN_MAJOR => Ok(()),
        Some(m) => Err(format!("PostgreSQL {m} is older than {POSTGRES_MIN_MAJOR}, the oldest LabBeam supports")),
        None => Err(format!("the server version {version:?} cannot be read")),
    }
}

/// Answers when the database does (the health check).
pub async fn ping(store: &Store) -> Result<(), DbError> {
    on_pool!(store, |pool| sqlx::query("SELECT 1").execute(pool).await.map(|_| ())?);
    Ok(())
}

/// A store with the schema applied, for unit tests: an in-memory SQLite database, or, when
/// `TEST_POSTGRES_URL` names a PostgreSQL server (tests/run.sh starts one), a new database
/// of its own on that server, so the repository tests run on both.
#[cfg(test)]
pub async fn test_store() -> Store {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Store::Postgres(test_postgres(&url).await),
        _ => {
            let options = SqliteConnectOptions::from_str("sqlite::memory:").unwrap().foreign_keys(true);
            let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
            SQLITE_MIGRATIONS.run(&pool).await.unwrap();
            Store::Sqlite(pool)
        }
    }
}

#[cfg(test)]
async fn test_postgres(url: &str) -> sqlx::PgPool {
    use sqlx::Connection;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name =
        format!("labbeam_unit_{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let admin = PgConnectOptions::from_str(url).unwrap();
    let mut conn = sqlx::PgConnection::connect_with(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&mut conn).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let pool = PgPoolOptions::new().max_connections(4).connect_with(admin.database(&name)).await.unwrap();
    POSTGRES_MIGRATIONS.run(&pool).await.unwrap();
    pool
}

/// Runs statements without parameters, for unit tests that set up or tamper with rows no
/// repository function writes.
#[cfg(test)]
impl Store {
    pub async fn exec(&self, sql: impl Into<String>) -> Result<u64, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.into());
        on_pool!(self, |pool| Ok(sqlx::query(sql).execute(pool).await?.rows_affected()))
    }
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
        let config = StoreConfig::default();
        let server = open(&config, dir.path()).await.unwrap();
        let file = file(dir.path());
        let before = write_stamp(&file);
        assert_eq!(before, write_stamp(&file), "no write, same stamp");
        // The command line opens its own pool on the same files.
        let cli = open(&config, dir.path()).await.unwrap();
        cli.exec("UPDATE access_generation SET value = value + 1 WHERE id = 1").await.unwrap();
        assert_ne!(before, write_stamp(&file), "a commit by another pool moves the stamp");
        drop(server);
    }

    #[test]
    fn store_urls_are_checked_and_never_shown_with_their_password() {
        let config = StoreConfig::default();
        let url = "postgres://lb:s3cret@db.campus.example:5433/labbeam?sslmode=require";
        assert_eq!(redact(url), "postgres://lb:***@db.campus.example:5433/labbeam?sslmode=require");
        let at = Location::parse(url, &config).unwrap();
        assert!(matches!(at, Location::Postgres(_)));
        assert!(!at.describe().contains("s3cret"), "{}", at.describe());
        assert_eq!(redact("postgres://lb@db/labbeam"), "postgres://lb@db/labbeam");
        let Location::Sqlite(path) = Location::parse("sqlite:///var/lib/labbeam/labbeam.db", &config).unwrap() else {
            panic!("a SQLite URL is SQLite")
        };
        assert_eq!(path, Path::new("/var/lib/labbeam/labbeam.db"));
        for bad in ["mysql://x/y", "sqlite://", "sqlite:///x.db?mode=ro", "/var/lib/labbeam.db"] {
            let e = Location::parse(bad, &config).unwrap_err().to_string();
            assert!(e.contains("store URL"), "{bad}: {e}");
        }
        let e = Location::parse("postgres://lb:pw@[::1", &config).unwrap_err().to_string();
        assert!(!e.contains("pw@"), "{e}");
    }

    #[test]
    fn a_store_that_cannot_be_reached_is_told_from_one_that_refuses() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        for away in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::Io(io)] {
            assert!(DbError::Sqlx(away).is_unavailable());
        }
        for refused in [sqlx::Error::RowNotFound, sqlx::Error::ColumnNotFound("x".into())] {
            assert!(!DbError::Sqlx(refused).is_unavailable());
        }
        assert!(!DbError::Conflict("user".into()).is_unavailable());
    }

    #[tokio::test]
    async fn a_stopped_store_is_unavailable_not_an_internal_error() {
        let store = test_store().await;
        store.close().await;
        let e = access::generation(&store).await.unwrap_err();
        assert!(e.is_unavailable(), "{e}");
    }

    #[test]
    fn a_password_file_and_a_ca_file_are_read_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let missing = StoreConfig { password_file: Some(dir.path().join("nope")), ..StoreConfig::default() };
        let e = Location::parse("postgres://lb@db/labbeam", &missing).unwrap_err().to_string();
        assert!(e.contains("store.password_file"), "{e}");
        std::fs::write(dir.path().join("pw"), "from-file\n").unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "").unwrap();
        let given =
            StoreConfig { password_file: Some(dir.path().join("pw")), ca_file: Some(ca), ..StoreConfig::default() };
        let Location::Postgres(o) = Location::parse("postgres://lb@db/labbeam", &given).unwrap() else {
            panic!("a PostgreSQL URL is PostgreSQL")
        };
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyFull));
    }
}
