//! `labbeam store copy`: every row of one store into another, SQLite or PostgreSQL on
//! either side, for an appliance that moves from its SQLite file to a database server (or
//! back, or between two servers).
//!
//! The source is opened read-only and must be at this binary's schema; it is read in one
//! snapshot. The target gets this binary's migrations (an empty database becomes a store)
//! and is written in ONE transaction: a target that holds anything besides the rows the
//! migrations seed is refused unless `force`; then every copied table's rows are deleted
//! and the source's inserted, table after table in foreign-key order, in multi-row INSERTs
//! of bound parameters, while the source is streamed, so a table of any length takes the
//! memory of one batch. Before COMMIT each table is read back from the target in primary-key
//! order and compared with what was read from the source: the row count and a SHA-256 over
//! a canonical encoding of the rows (`Checksum`), computed the same way on both sides. Any
//! difference rolls everything back.
//!
//! Rows are carried generically: the columns come from each database's catalog (they must
//! agree), every value is an i64 or a String, either possibly NULL (the schema has no other
//! type: tests/store_schema.rs). The list of tables is written once, `TABLES`; a unit test
//! fails when a migration adds a table it does not name, or names them out of foreign-key
//! order.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::stream::{BoxStream, StreamExt};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Row};

use super::{Backend, DbError, Location, Schema, Store, dialect, on_pool};
use crate::config::StoreConfig;

/// Every table `store copy` carries, each after every table its foreign keys reference.
pub const TABLES: [&str; 17] = [
    "roles",
    "role_permissions",
    "users",
    "labs",
    "lab_ranges",
    "lab_seats",
    "user_labs",
    "sessions",
    "audit_log",
    "transfers",
    "broadcasts",
    "announcements",
    "handins",
    "handin_receipts",
    "handin_attempts",
    "settings",
    "connection_tests",
];

/// The schema's tables that are not copied. The access counter keeps the target's value and
/// is bumped once, so a server running on the target re-reads who may do what. OpenID sign-ins
/// in progress live ten minutes and are bound to the server that started them: a copy is
/// made with the servers stopped, and a browser mid-way simply starts again.
pub const NOT_COPIED: [&str; 2] = ["access_generation", "oidc_flows"];

/// Bound parameters in one INSERT at most: under SQLite's limit (32,766 since 3.32; the
/// bundled library is newer) and PostgreSQL's (65,535).
const MAX_PARAMETERS: usize = 30_000;
/// Rows in one INSERT at most, which bounds the memory a batch of long rows takes.
const MAX_BATCH_ROWS: usize = 1_000;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
}

/// One value of a row, NULL being `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    kind: Kind,
    /// Position in the primary key, 0 when not in it.
    key: i64,
}

/// How one table is read and written: its columns as both catalogs give them.
#[derive(Debug)]
struct Plan {
    table: &'static str,
    columns: Vec<Column>,
}

/// A name in double quotes, which both databases read as an identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Plan {
    fn kinds(&self) -> Vec<Kind> {
        self.columns.iter().map(|c| c.kind).collect()
    }

    fn column_list(&self) -> String {
        self.columns.iter().map(|c| quoted(&c.name)).collect::<Vec<_>>().join(", ")
    }

    /// Every row, in primary-key order by the bytes of each key (the same on both).
    fn select(&self, backend: Backend) -> String {
        let mut key: Vec<&Column> = self.columns.iter().filter(|c| c.key > 0).collect();
        key.sort_by_key(|c| c.key);
        let order: Vec<String> = key
            .iter()
            .map(|c| match c.kind {
                Kind::Int => quoted(&c.name),
                Kind::Text => format!("{} {}", quoted(&c.name), dialect::byte_order(backend)),
            })
            .collect();
        format!("SELECT {} FROM {} ORDER BY {}", self.column_list(), quoted(self.table), order.join(", "))
    }

    /// An INSERT of `rows` rows: `($1, $2), ($3, $4)`.
    fn insert(&self, rows: usize) -> String {
        let width = self.columns.len();
        let tuples: Vec<String> = (0..rows)
            .map(|r| {
                let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        format!("INSERT INTO {} ({}) VALUES {}", quoted(self.table), self.column_list(), tuples.join(", "))
    }

    fn rows_per_insert(&self) -> usize {
        (MAX_PARAMETERS / self.columns.len().max(1)).clamp(1, MAX_BATCH_ROWS)
    }

    /// Whether the table has an integer `id`, which PostgreSQL assigns from a sequence.
    fn has_integer_id(&self) -> bool {
        self.columns.iter().any(|c| c.name == "id" && c.kind == Kind::Int)
    }
}

/// A table's rows as read in primary-key order: how many, and the SHA-256 of their
/// canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sum {
    rows: u64,
    sha256: String,
}

/// The running checksum of one table. The table's name and its columns' names and kinds
/// come first, then each row's values in column order, each value self-delimiting: NULL is
/// the byte 0; an integer is 1 and its 8 bytes big-endian; a text is 2, its length in bytes
/// as 8 bytes big-endian, and its UTF-8 bytes. So no two different tables of rows encode the
/// same, and the encoding does not depend on the database the values came from.
struct Checksum {
    digest: ring::digest::Context,
    rows: u64,
    buffer: Vec<u8>,
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Int(None) | Value::Text(None) => out.push(0),
        Value::Int(Some(n)) => {
            out.push(1);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Text(Some(s)) => {
            out.push(2);
            out.extend_from_slice(&(s.len() as u64).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

impl Checksum {
    fn new(table: &str, columns: &[Column]) -> Checksum {
        let mut head = Vec::new();
        encode(&Value::Text(Some(table.to_string())), &mut head);
        encode(&Value::Int(Some(columns.len() as i64)), &mut head);
        for c in columns {
            encode(&Value::Text(Some(c.name.clone())), &mut head);
            encode(&Value::Int(Some(if c.kind == Kind::Int { 1 } else { 2 })), &mut head);
        }
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        digest.update(&head);
        Checksum { digest, rows: 0, buffer: Vec::new() }
    }

    fn add(&mut self, row: &[Value]) {
        self.buffer.clear();
        for value in row {
            encode(value, &mut self.buffer);
        }
        self.digest.update(&self.buffer);
        self.rows += 1;
    }

    fn finish(self) -> Sum {
        let sha256 = self.digest.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Sum { rows: self.rows, sha256 }
    }
}

/// One line for a database error: the database's own message (without PostgreSQL's
/// source line), or sqlx's description, without the chain of sources that repeats it.
fn reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

/// `Result::context` for database errors, in one line (`reason`).
trait Say<T> {
    fn say(self, what: impl FnOnce() -> String) -> anyhow::Result<T>;
}

impl<T> Say<T> for Result<T, sqlx::Error> {
    fn say(self, what: impl FnOnce() -> String) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("{}: {}", what(), reason(&e)))
    }
}

impl<T> Say<T> for Result<T, DbError> {
    fn say(self, what: impl FnOnce() -> String) -> anyhow::Result<T> {
        use sqlx::migrate::MigrateError;
        self.map_err(|e| {
            let why = match e {
                DbError::Sqlx(e) => reason(&e),
                DbError::Migrate(MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)) => {
                    format!("applying the schema: {}", reason(&e))
                }
                DbError::Migrate(MigrateError::VersionMissing(v)) => {
                    format!("it has schema migration {v}, from a newer LabBeam than this one")
                }
                other => other.to_string(),
            };
            anyhow::anyhow!("{}: {why}", what())
        })
    }
}

/// `1 row`, `2 rows`.
fn rows(n: u64) -> String {
    format!("{n} row{}", if n == 1 { "" } else { "s" })
}

/// A transaction on either database.
enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Like `on_pool!`, with the transaction's connection: `$body` is compiled once per
/// database from one text.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            Tx::Sqlite($conn) => $body,
            Tx::Postgres($conn) => $body,
        }
    };
}

impl Tx {
    async fn begin(store: &Store, statement: &'static str) -> Result<Tx, sqlx::Error> {
        Ok(match store {
            Store::Sqlite(pool) => Tx::Sqlite(pool.begin_with(statement).await?),
            Store::Postgres(pool) => Tx::Postgres(pool.begin_with(statement).await?),
        })
    }

    /// The rows `sql` selects, one at a time, decoded by `kinds`.
    fn rows<'a>(&'a mut self, sql: String, kinds: &'a [Kind]) -> BoxStream<'a, Result<Vec<Value>, sqlx::Error>> {
        on_tx!(self, |conn| {
            sqlx::query(AssertSqlSafe(sql))
                .fetch(&mut **conn)
                .map(move |row| {
                    let row = row?;
                    kinds
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| {
                            Ok(match kind {
                                Kind::Int => Value::Int(row.try_get(i)?),
                                Kind::Text => Value::Text(row.try_get(i)?),
                            })
                        })
                        .collect()
                })
                .boxed()
        })
    }

    async fn execute(&mut self, sql: String) -> Result<u64, sqlx::Error> {
        on_tx!(self, |conn| Ok(sqlx::query(AssertSqlSafe(sql)).execute(&mut **conn).await?.rows_affected()))
    }

    async fn count(&mut self, table: &str) -> Result<u64, sqlx::Error> {
        let sql = AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", quoted(table)));
        let n: i64 = on_tx!(self, |conn| sqlx::query_scalar(sql).fetch_one(&mut **conn).await?);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Inserts `rows` with the statement `sql` made for that many (`Plan::insert`).
    async fn insert(&mut self, sql: String, rows: Vec<Vec<Value>>) -> Result<u64, sqlx::Error> {
        on_tx!(self, |conn| {
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for value in rows.into_iter().flatten() {
                query = match value {
                    Value::Int(n) => query.bind(n),
                    Value::Text(s) => query.bind(s),
                };
            }
            Ok(query.execute(&mut **conn).await?.rows_affected())
        })
    }

    /// Reads a table in primary-key order and sums it.
    async fn sum(&mut self, backend: Backend, plan: &Plan) -> Result<Sum, sqlx::Error> {
        let kinds = plan.kinds();
        let mut checksum = Checksum::new(plan.table, &plan.columns);
        let mut rows = self.rows(plan.select(backend), &kinds);
        while let Some(row) = rows.next().await {
            checksum.add(&row?);
        }
        Ok(checksum.finish())
    }

    async fn commit(self) -> Result<(), sqlx::Error> {
        on_tx!(self, |tx| tx.commit().await)
    }

    async fn rollback(self) -> Result<(), sqlx::Error> {
        on_tx!(self, |tx| tx.rollback().await)
    }
}

/// The columns of `table` as the store's catalog gives them; empty when there is no such
/// table.
async fn columns(store: &Store, table: &str) -> anyhow::Result<Vec<Column>> {
    let backend = store.backend();
    let sql = dialect::table_columns(backend);
    let rows: Vec<(String, String, i64)> =
        on_pool!(store, |pool| sqlx::query_as(sql).bind(table).fetch_all(pool).await)
            .say(|| format!("the columns of {table}"))?;
    rows.into_iter()
        .map(|(name, declared, key)| match kind_of(backend, &declared) {
            Some(kind) => Ok(Column { name, kind, key }),
            None => bail!("column {table}.{name} is of type {declared}, which store copy cannot carry"),
        })
        .collect()
}

/// What a declared column type holds: SQLite's type affinity rules, PostgreSQL's bigint
/// and text (every integer of the schema is a BIGINT: the code reads each as an i64).
fn kind_of(backend: Backend, declared: &str) -> Option<Kind> {
    let upper = declared.to_ascii_uppercase();
    match backend {
        Backend::Sqlite if upper.contains("INT") => Some(Kind::Int),
        Backend::Sqlite if ["CHAR", "CLOB", "TEXT"].iter().any(|t| upper.contains(t)) => Some(Kind::Text),
        Backend::Postgres if upper == "BIGINT" => Some(Kind::Int),
        Backend::Postgres if upper == "TEXT" => Some(Kind::Text),
        _ => None,
    }
}

/// The tables of the store's schema, by name.
async fn tables(store: &Store) -> Result<Vec<String>, sqlx::Error> {
    let sql = dialect::list_tables(store.backend());
    on_pool!(store, |pool| sqlx::query_scalar(sql).fetch_all(pool).await)
}

/// The plans of every table in `TABLES`, from both catalogs, which must agree.
async fn plans(source: &Store, target: &Store) -> anyhow::Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for table in TABLES {
        let from = columns(source, table).await.context("reading the source's schema")?;
        let to = columns(target, table).await.context("reading the target's schema")?;
        if from.is_empty() || to.is_empty() {
            bail!("the {} has no table {table}", if from.is_empty() { "source" } else { "target" });
        }
        if from != to {
            let names = |cols: &[Column]| cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
            bail!("table {table} has the columns ({}) in the source and ({}) in the target", names(&from), names(&to));
        }
        if !from.iter().any(|c| c.key > 0) {
            bail!("table {table} has no primary key");
        }
        plans.push(Plan { table, columns: from });
    }
    Ok(plans)
}

/// A database with nothing but this binary's migrations, in memory: what an empty store
/// holds (the built-in roles and their permissions).
async fn seeded() -> Result<Store, DbError> {
    let options = SqliteConnectOptions::new().in_memory(true).foreign_keys(true);
    // One connection, kept: each connection to `:memory:` is a database of its own.
    let pool =
        SqlitePoolOptions::new().max_connections(1).idle_timeout(None).max_lifetime(None).connect_with(options).await?;
    super::SQLITE_MIGRATIONS.run(&pool).await?;
    Ok(Store::Sqlite(pool))
}

/// Whether `a` and `b` name the same database (the same file, or the same database on the
/// same server and port).
fn same_database(a: &Location, b: &Location) -> bool {
    fn canonical(path: &Path) -> PathBuf {
        if let Ok(p) = path.canonicalize() {
            return p;
        }
        match (path.parent().and_then(|d| d.canonicalize().ok()), path.file_name()) {
            (Some(dir), Some(name)) => dir.join(name),
            _ => path.to_path_buf(),
        }
    }
    match (a, b) {
        (Location::Sqlite(x), Location::Sqlite(y)) => canonical(x) == canonical(y),
        (Location::Postgres(x), Location::Postgres(y)) => {
            let database = |o: &sqlx::postgres::PgConnectOptions| {
                (o.get_host().to_string(), o.get_port(), o.get_database().unwrap_or(o.get_username()).to_string())
            };
            database(x) == database(y)
        }
        _ => false,
    }
}

/// Connects once to a PostgreSQL location (`shown` names it), so that a server that cannot be
/// reached is reported with the reason, where a pool would only say that it timed out, and
/// within `[store] acquire_timeout_secs`.
async fn reach(location: &Location, config: &StoreConfig, shown: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let Location::Postgres(options) = location else { return Ok(()) };
    let limit = Duration::from_secs(config.acquire_timeout_secs);
    match tokio::time::timeout(limit, sqlx::PgConnection::connect_with(options)).await {
        Err(_) => bail!("{shown}: cannot connect within {} s", limit.as_secs()),
        Ok(connected) => {
            let conn = connected.say(|| format!("{shown}: cannot connect"))?;
            let _ = conn.close().await;
            Ok(())
        }
    }
}

/// Refuses a source whose schema is not this binary's.
async fn check_source_schema(source: &Store, shown: &str) -> anyhow::Result<()> {
    let known = source.backend().migrations().iter().filter(|m| !m.migration_type.is_down_migration()).count();
    match super::schema(source).await.say(|| shown.to_string())? {
        Schema::Current => Ok(()),
        Schema::Behind(n) if n == known => bail!("{shown} holds no LabBeam store (its schema is empty)"),
        Schema::Behind(n) => bail!(
            "{shown} is {n} schema migration(s) behind this LabBeam: start `labbeam serve` on it once to migrate \
             it, then copy"
        ),
        Schema::Newer(v) => {
            bail!("{shown} has schema migration {v}, from a newer LabBeam than this one: copy it with that version")
        }
        Schema::Damaged(v) => bail!("{shown}: schema migration {v} differs from this LabBeam's or did not finish"),
    }
}

/// Copies every row of the store at `from` into the store at `to` (both store URLs, read
/// with the `[store]` settings of `config`), and writes what it did to `out`. See the
/// module's header.
pub async fn run(
    from: &str,
    to: &str,
    config: &StoreConfig,
    force: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let from = Location::parse(from, config).context("--from")?;
    let to = Location::parse(to, config).context("--to")?;
    let (source_shown, target_shown) = (from.describe(), to.describe());
    if same_database(&from, &to) {
        bail!("--from and --to are the same database ({target_shown}): copy a store into another one");
    }
    if let Location::Sqlite(path) = &from
        && !path.is_file()
    {
        bail!("source {source_shown}: no such file");
    }
    if let Location::Sqlite(path) = &to
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        bail!("target {target_shown}: no folder {}", dir.display());
    }
    let (source_shown, target_shown) = (format!("source {source_shown}"), format!("target {target_shown}"));
    reach(&from, config, &source_shown).await?;
    reach(&to, config, &target_shown).await?;
    let source = super::open_read_only(&from, config).await.say(|| source_shown.clone())?;
    check_source_schema(&source, &source_shown).await?;
    let target = super::open_at(&to, config).await.say(|| target_shown.clone())?;
    if super::schema(&target).await.say(|| target_shown.clone())? != Schema::Current {
        bail!("{target_shown}: its schema is not this LabBeam's after migrating it");
    }
    let plans = plans(&source, &target).await?;
    let seeds = seeded().await.say(|| "the schema's seed rows".into())?;

    writeln!(out, "copying {} to {}", from.describe(), to.describe())?;
    let known: Vec<&str> = TABLES.iter().chain(NOT_COPIED.iter()).copied().collect();
    for table in tables(&source).await.say(|| source_shown.clone())? {
        if !known.contains(&table.as_str()) {
            writeln!(out, "note: table {table} of the source is not LabBeam's: not copied")?;
        }
    }
    let started = Instant::now();
    let copied = copy(&source, &target, &seeds, &plans, force, &target_shown, out).await;
    source.close().await;
    seeds.close().await;
    target.close().await;
    let copied = copied?;
    let elapsed = started.elapsed().as_secs_f64();
    let total: u64 = copied.iter().map(|s| s.rows).sum();
    writeln!(
        out,
        "copied {total} rows of {} tables in {elapsed:.1} s ({:.0} rows/s); every table read back and verified \
         (row count and SHA-256) before the commit",
        copied.len(),
        total as f64 / elapsed.max(0.001)
    )?;
    Ok(())
}

/// The transaction: check the target is empty (or `force`), replace its rows, verify,
/// commit. Returns each table's sum.
async fn copy(
    source: &Store,
    target: &Store,
    seeds: &Store,
    plans: &[Plan],
    force: bool,
    target_shown: &str,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Vec<Sum>> {
    let (from, to) = (source.backend(), target.backend());
    let mut seed =
        Tx::begin(seeds, dialect::begin_snapshot(Backend::Sqlite)).await.say(|| "the schema's seed rows".into())?;
    let mut write = Tx::begin(target, dialect::begin_write(to)).await.say(|| target_shown.to_string())?;

    // Empty: every table holds exactly the rows the migrations put there.
    let mut held = Vec::new();
    for plan in plans {
        let fresh = seed.sum(Backend::Sqlite, plan).await.say(|| "the schema's seed rows".into())?;
        let count = write.count(plan.table).await.say(|| target_shown.to_string())?;
        let differs = count != fresh.rows
            || (count > 0
                && write.sum(to, plan).await.say(|| format!("reading {} in the target", plan.table))? != fresh);
        if differs {
            held.push(format!("{} ({})", plan.table, rows(count)));
        }
    }
    seed.rollback().await.say(|| "the schema's seed rows".into())?;
    if !held.is_empty() {
        if !force {
            write.rollback().await.say(|| format!("rolling back in the {target_shown}"))?;
            bail!(
                "{target_shown} is not empty: it holds {}; add --force to replace its rows with the source's",
                held.join(", ")
            );
        }
        writeln!(out, "replacing what the target held: {}", held.join(", "))?;
    }
    for plan in plans.iter().rev() {
        write
            .execute(format!("DELETE FROM {}", quoted(plan.table)))
            .await
            .say(|| format!("emptying {} in the target", plan.table))?;
    }

    let mut read = Tx::begin(source, dialect::begin_snapshot(from)).await.say(|| "reading the source".into())?;
    let mut sums = Vec::new();
    for plan in plans {
        let sum = copy_table(&mut read, from, &mut write, plan).await?;
        writeln!(out, "  {:<18} {:>15}  sha256 {}", plan.table, rows(sum.rows), &sum.sha256[..16])?;
        sums.push(sum);
    }
    // The same snapshot counts its rows: the stream read every one.
    for (plan, sum) in plans.iter().zip(&sums) {
        let count = read.count(plan.table).await.say(|| format!("counting {} in the source", plan.table))?;
        if count != sum.rows {
            write.rollback().await.say(|| format!("rolling back in the {target_shown}"))?;
            bail!(
                "table {}: {} rows were read from the source, which counts {count}; rolled back, the target is unchanged",
                plan.table,
                sum.rows
            );
        }
    }
    read.rollback().await.say(|| "ending the read of the source".into())?;

    for plan in plans.iter().filter(|p| p.has_integer_id()) {
        if let Some(sql) = dialect::reset_identity(to, plan.table) {
            write.execute(sql).await.say(|| format!("moving the id sequence of {}", plan.table))?;
        }
    }
    write
        .execute("UPDATE access_generation SET value = value + 1 WHERE id = 1".into())
        .await
        .say(|| "bumping the target's access_generation".into())?;

    for (plan, sum) in plans.iter().zip(&sums) {
        let back = write.sum(to, plan).await.say(|| format!("reading {} back from the target", plan.table))?;
        let count = write.count(plan.table).await.say(|| format!("counting {} in the target", plan.table))?;
        if back != *sum || count != sum.rows {
            write.rollback().await.say(|| format!("rolling back in the {target_shown}"))?;
            bail!(
                "table {}: the target does not read back what the source holds ({} rows, sha256 {} in the source; \
                 {} rows, sha256 {} in the target); rolled back, the target is unchanged",
                plan.table,
                sum.rows,
                &sum.sha256[..16],
                back.rows,
                &back.sha256[..16]
            );
        }
    }
    write.commit().await.say(|| format!("committing in the {target_shown}"))?;
    Ok(sums)
}

/// Streams one table from the source into the target in batches; returns the sum of the
/// rows read.
async fn copy_table(read: &mut Tx, from: Backend, write: &mut Tx, plan: &Plan) -> anyhow::Result<Sum> {
    let kinds = plan.kinds();
    let per_insert = plan.rows_per_insert();
    let full = plan.insert(per_insert);
    let mut checksum = Checksum::new(plan.table, &plan.columns);
    let mut batch = Vec::with_capacity(per_insert);
    let mut rows = read.rows(plan.select(from), &kinds);
    while let Some(row) = rows.next().await {
        let row = row.say(|| format!("reading {} from the source", plan.table))?;
        checksum.add(&row);
        batch.push(row);
        if batch.len() == per_insert {
            let rows = std::mem::replace(&mut batch, Vec::with_capacity(per_insert));
            write.insert(full.clone(), rows).await.say(|| format!("writing {} to the target", plan.table))?;
        }
    }
    if !batch.is_empty() {
        let sql = plan.insert(batch.len());
        write.insert(sql, batch).await.say(|| format!("writing {} to the target", plan.table))?;
    }
    Ok(checksum.finish())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The tables each table's foreign keys reference, from a SQLite catalog.
    async fn references(store: &Store) -> BTreeMap<String, Vec<String>> {
        let Store::Sqlite(pool) = store else { panic!("a SQLite store") };
        let mut map = BTreeMap::new();
        for table in tables(store).await.unwrap() {
            let refs: Vec<String> = sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)")
                .bind(&table)
                .fetch_all(pool)
                .await
                .unwrap();
            map.insert(table, refs);
        }
        map
    }

    fn column(name: &str, kind: Kind, key: i64) -> Column {
        Column { name: name.into(), kind, key }
    }

    fn sum_of(table: &str, columns: &[Column], rows: &[Vec<Value>]) -> Sum {
        let mut c = Checksum::new(table, columns);
        rows.iter().for_each(|r| c.add(r));
        c.finish()
    }

    #[test]
    fn each_value_encodes_self_delimited_and_independent_of_the_database() {
        let mut out = Vec::new();
        encode(&Value::Int(None), &mut out);
        encode(&Value::Text(None), &mut out);
        encode(&Value::Int(Some(258)), &mut out);
        encode(&Value::Int(Some(-1)), &mut out);
        encode(&Value::Text(Some("é".into())), &mut out);
        assert_eq!(
            out,
            [
                vec![0, 0],
                vec![1, 0, 0, 0, 0, 0, 0, 1, 2],
                vec![1, 255, 255, 255, 255, 255, 255, 255, 255],
                vec![2, 0, 0, 0, 0, 0, 0, 0, 2, 0xc3, 0xa9],
            ]
            .concat()
        );
    }

    #[test]
    fn the_checksum_tells_apart_rows_that_a_naive_encoding_would_not() {
        let cols = [column("a", Kind::Text, 1), column("b", Kind::Text, 0)];
        let t = |s: &str| Value::Text(Some(s.into()));
        let base = sum_of("t", &cols, &[vec![t("ab"), t("c")]]);
        assert_eq!(base.rows, 1);
        assert_eq!(base.sha256.len(), 64);
        let others = [
            sum_of("t", &cols, &[vec![t("a"), t("bc")]]),
            sum_of("t", &cols, &[vec![t("ab"), Value::Text(None)]]),
            sum_of("t", &cols, &[vec![t("ab"), t("")]]),
            sum_of("u", &cols, &[vec![t("ab"), t("c")]]),
            sum_of("t", &[column("a", Kind::Text, 1), column("c", Kind::Text, 0)], &[vec![t("ab"), t("c")]]),
            sum_of("t", &cols, &[vec![t("ab"), t("c")], vec![t("ab"), t("c")]]),
            sum_of("t", &cols, &[]),
        ];
        for other in &others {
            assert_ne!(other.sha256, base.sha256, "{other:?}");
        }
        assert_eq!(sum_of("t", &cols, &[vec![t("ab"), t("c")]]), base, "the same rows sum the same");
        // NULL, 0 and "" are three values.
        let i = [column("n", Kind::Int, 0)];
        let zero = sum_of("t", &i, &[vec![Value::Int(Some(0))]]);
        assert_ne!(zero, sum_of("t", &i, &[vec![Value::Int(None)]]));
        // Pinned: a change of the encoding is a change of every printed checksum.
        assert_eq!(
            sum_of(
                "users",
                &[column("id", Kind::Int, 1), column("name", Kind::Text, 0)],
                &[vec![Value::Int(Some(1)), t("Zoë")]]
            )
            .sha256,
            PINNED
        );
    }

    /// SHA-256 of the encoding of: text "users", int 2, text "id", int 1, text "name", int 2
    /// (the head), int 1, text "Zoë" (the row), computed outside this code.
    const PINNED: &str = "19a1cbb6ee2beac74c5e43ad031b7ff79beff620d578059292bed4f9b43813b8";

    #[tokio::test]
    async fn the_table_list_is_the_schema_in_foreign_key_order() {
        // Every table of the schema is copied or deliberately not, on the database the unit
        // tests run on (SQLite, or PostgreSQL when TEST_POSTGRES_URL is set).
        let store = super::super::test_store().await;
        let mut known: Vec<&str> = TABLES.iter().chain(NOT_COPIED.iter()).copied().collect();
        known.sort();
        let schema = tables(&store).await.unwrap();
        assert_eq!(
            schema, known,
            "a migration added or removed a table: name it in db::copy::TABLES (in foreign-key order) or NOT_COPIED"
        );
        // Each table comes after every table it references.
        let refs = references(&seeded().await.unwrap()).await;
        for (i, table) in TABLES.iter().enumerate() {
            for referenced in &refs[*table] {
                assert!(
                    TABLES[..i].contains(&referenced.as_str()) || referenced == table,
                    "{table} references {referenced}, which TABLES lists after it"
                );
            }
        }
        for table in NOT_COPIED {
            assert!(refs.iter().all(|(_, r)| !r.iter().any(|t| t == table)), "a copied table references {table}");
        }
    }

    #[tokio::test]
    async fn the_catalog_gives_columns_kinds_and_primary_key_positions() {
        // On the database the unit tests run on (SQLite, or PostgreSQL when
        // TEST_POSTGRES_URL is set): both must read the same, or no copy between them runs.
        let store = super::super::test_store().await;
        assert_eq!(
            columns(&store, "role_permissions").await.unwrap(),
            [column("role_id", Kind::Int, 1), column("permission", Kind::Text, 2)]
        );
        let sessions = columns(&store, "sessions").await.unwrap();
        assert_eq!(sessions[0], column("id", Kind::Text, 1));
        assert_eq!(sessions[5], column("revoked_at", Kind::Int, 0));
        assert!(columns(&store, "no_such_table").await.unwrap().is_empty());
    }

    #[test]
    fn declared_types_map_to_integers_and_texts_only() {
        assert_eq!(kind_of(Backend::Sqlite, "INTEGER"), Some(Kind::Int));
        assert_eq!(kind_of(Backend::Sqlite, "BIGINT"), Some(Kind::Int));
        assert_eq!(kind_of(Backend::Sqlite, "TEXT"), Some(Kind::Text));
        assert_eq!(kind_of(Backend::Sqlite, "BLOB"), None);
        assert_eq!(kind_of(Backend::Postgres, "bigint"), Some(Kind::Int));
        assert_eq!(kind_of(Backend::Postgres, "text"), Some(Kind::Text));
        assert_eq!(kind_of(Backend::Postgres, "integer"), None, "an int4 does not decode as an i64");
        assert_eq!(kind_of(Backend::Postgres, "bytea"), None);
    }

    #[test]
    fn an_insert_stays_under_both_parameter_limits() {
        let wide = Plan { table: "t", columns: (0..24).map(|i| column(&format!("c{i}"), Kind::Text, 0)).collect() };
        let n = wide.rows_per_insert();
        assert!(n * 24 <= MAX_PARAMETERS && MAX_PARAMETERS < 32_766);
        assert_eq!(
            Plan { table: "t", columns: vec![column("a", Kind::Int, 1), column("b", Kind::Text, 0)] }.insert(2),
            "INSERT INTO \"t\" (\"a\", \"b\") VALUES ($1, $2), ($3, $4)"
        );
        let keyed = Plan { table: "p", columns: vec![column("x", Kind::Text, 2), column("y", Kind::Int, 1)] };
        assert_eq!(
            keyed.select(Backend::Postgres),
            "SELECT \"x\", \"y\" FROM \"p\" ORDER BY \"y\", \"x\" COLLATE \"C\""
        );
    }

    async fn sqlite_store(path: &Path) -> Store {
        super::super::open_at(&Location::Sqlite(path.to_path_buf()), &StoreConfig::default()).await.unwrap()
    }

    fn url(path: &Path) -> String {
        format!("sqlite://{}", path.display())
    }

    async fn copy_between(from: &Path, to: &Path, force: bool) -> anyhow::Result<String> {
        let mut out = Vec::new();
        run(&url(from), &url(to), &StoreConfig::default(), force, &mut out).await?;
        Ok(String::from_utf8(out).unwrap())
    }

    async fn count(store: &Store, table: &str) -> i64 {
        let Store::Sqlite(pool) = store else { panic!("a SQLite store") };
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"))).fetch_one(pool).await.unwrap()
    }

    #[tokio::test]
    async fn a_target_that_reads_back_otherwise_is_rolled_back_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from.db"), dir.path().join("to.db"));
        let source = sqlite_store(&from).await;
        source
            .exec("INSERT INTO settings (key, value, updated_at) VALUES ('presence.scope', '\"lab\"', 1)")
            .await
            .unwrap();
        source
            .exec(
                "INSERT INTO users (username, display_name, password_hash, role_id, created_at, updated_at) \
                 VALUES ('ann', 'Ann', 'x', 3, 1, 1)",
            )
            .await
            .unwrap();
        source.close().await;
        let target = sqlite_store(&to).await;
        // A trigger that changes what is written: the copy must notice.
        target
            .exec(
                "CREATE TRIGGER tamper AFTER INSERT ON settings BEGIN \
                 UPDATE settings SET value = '\"all\"' WHERE key = NEW.key; END",
            )
            .await
            .unwrap();
        let e = copy_between(&from, &to, false).await.unwrap_err().to_string();
        assert!(e.starts_with("table settings: the target does not read back"), "{e}");
        assert!(e.contains("rolled back"), "{e}");
        assert_eq!(count(&target, "users").await, 0, "nothing of the copy stays");
        assert_eq!(count(&target, "roles").await, 3, "the seed rows are back");
        target.exec("DROP TRIGGER tamper").await.unwrap();
        let text = copy_between(&from, &to, false).await.unwrap();
        assert!(text.contains("settings") && text.contains("verified"), "{text}");
        assert_eq!(count(&target, "users").await, 1);
    }
}
