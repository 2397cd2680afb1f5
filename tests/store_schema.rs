//! The SQLite and PostgreSQL migration folders describe one schema. Both folders hold the
//! same migrations (versions and file names); applied to fresh databases, their catalogs
//! read the same once normalised (tables; columns in order with type class, NOT NULL,
//! default, primary key and whether the database assigns it; foreign keys; unique
//! constraints; named indexes; triggers; checks); and what a catalog cannot show behaves the
//! same on both: the audit log refuses updates, transfers.status takes only its seven
//! words, names are unique whatever their case, and every access change (and nothing else)
//! moves the access counter.
//!
//! The PostgreSQL parts need TEST_POSTGRES_URL, the address of a server where its role may
//! create databases (`bash tests/postgres.sh start DIR` starts one and prints it); each test
//! makes its own database with a random name and drops it. Without the variable they say
//! they are skipped and pass; the SQLite parts always run.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

const SKIPPED: &str = "skipped: TEST_POSTGRES_URL not set (tests/run.sh starts PostgreSQL)";

fn migrations(backend: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(backend)
}

/// The `.sql` file names of a migration folder, sorted.
fn migration_files(backend: &str) -> Vec<String> {
    let dir = migrations(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    names
}

#[test]
fn both_folders_hold_the_same_migrations() {
    let sqlite = migration_files("sqlite");
    let postgres = migration_files("postgres");
    assert!(!sqlite.is_empty(), "no migrations in {}", migrations("sqlite").display());
    let mut problems = Vec::new();
    for (backend, names) in [("sqlite", &sqlite), ("postgres", &postgres)] {
        for name in names {
            let version = name.split_once('_').map(|(v, _)| v).unwrap_or("");
            if version.len() != 4 || !version.bytes().all(|b| b.is_ascii_digit()) {
                problems.push(format!("migrations/{backend}/{name}: not named NNNN_what.sql"));
            }
        }
    }
    for name in sqlite.iter().filter(|n| !postgres.contains(n)) {
        problems.push(format!("migrations/sqlite/{name} has no migrations/postgres/{name}"));
    }
    for name in postgres.iter().filter(|n| !sqlite.contains(n)) {
        problems.push(format!("migrations/postgres/{name} has no migrations/sqlite/{name}"));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[tokio::test]
async fn sqlx_reads_the_same_versions_and_descriptions_from_both_folders() {
    let read = |backend: &'static str| async move {
        let migrator = Migrator::new(migrations(backend)).await.unwrap();
        migrator.iter().map(|m| (m.version, m.description.to_string())).collect::<Vec<_>>()
    };
    let sqlite = read("sqlite").await;
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, read("postgres").await);
}

// ---------------------------------------------------------------------------------------
// Fresh databases.

async fn sqlite_pool(dir: &tempfile::TempDir) -> SqlitePool {
    let options =
        SqliteConnectOptions::new().filename(dir.path().join("store.db")).create_if_missing(true).foreign_keys(true);
    SqlitePoolOptions::new().max_connections(2).connect_with(options).await.unwrap()
}

/// A SQLite file with every migration applied (the folder as the server reads it).
async fn fresh_sqlite() -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite_pool(&dir).await;
    Migrator::new(migrations("sqlite")).await.unwrap().run(&pool).await.unwrap();
    (dir, pool)
}

/// A database of its own on the server of TEST_POSTGRES_URL, with every migration applied;
/// dropped (with its connections) when this is dropped, even by a failed assertion.
struct PgDatabase {
    admin: PgConnectOptions,
    name: String,
    pool: PgPool,
}

impl PgDatabase {
    /// None (after saying so) when TEST_POSTGRES_URL is not set.
    async fn fresh() -> Option<PgDatabase> {
        let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
            println!("{SKIPPED}");
            return None;
        };
        let admin = PgConnectOptions::from_str(&url)
            .unwrap_or_else(|e| panic!("TEST_POSTGRES_URL {url:?} is not a PostgreSQL address: {e}"));
        let mut random = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).unwrap();
        let name = format!("labbeam_schema_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let mut conn =
            admin.connect().await.unwrap_or_else(|e| panic!("cannot connect to TEST_POSTGRES_URL {url}: {e}"));
        // The name is made here of letters, digits and _.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create a database on {url} (needs CREATEDB): {e}"));
        conn.close().await.unwrap();
        let pool = PgPoolOptions::new().max_connections(4).connect_with(admin.clone().database(&name)).await.unwrap();
        let db = PgDatabase { admin, name, pool };
        Migrator::new(migrations("postgres")).await.unwrap().run(&db.pool).await.unwrap();
        Some(db)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: drop the database
        // from a thread of its own.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = admin.connect().await?;
                sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop test database {}", self.name),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The catalogs, normalised.

/// A column as both databases can describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// int, text, blob (SQLite's type affinity; PostgreSQL's bigint is int, a 32-bit
    /// integer is not: the repository code reads every integer as an i64).
    class: String,
    /// Primary-key columns count as NOT NULL on both (SQLite's catalog says they are not).
    not_null: bool,
    default: Option<String>,
    /// Position in the primary key, 0 when not in it.
    primary_key: i64,
    /// The database gives it a value when an insert leaves it out: SQLite's INTEGER
    /// PRIMARY KEY (its rowid), unless a CHECK pins it to one value; PostgreSQL's identity.
    assigned: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    columns: Vec<Column>,
    /// `(cols) -> table(cols) on delete …, on update …`
    foreign_keys: BTreeSet<String>,
    /// Unique constraints by their columns (their index names are the database's own).
    /// Collations are not compared: SQLite's NOCASE on users.username and labs.name has no
    /// counterpart in PostgreSQL's 0001; migration 0007's lower() indexes make both
    /// case-insensitive, which the behaviour checks below test.
    unique: BTreeSet<String>,
    /// Indexes made by CREATE INDEX, by name: `[unique ](keys)[ where …]`.
    indexes: BTreeMap<String, String>,
    /// By name: `BEFORE|AFTER event[ OR event]`.
    triggers: BTreeMap<String, String>,
    /// Normalised expressions. SQLite cannot add a CHECK to an existing table; a pair of
    /// BEFORE INSERT / BEFORE UPDATE triggers refusing `NEW.col NOT IN (…)` counts as the
    /// check `col in (…)` (migration 0006).
    checks: BTreeSet<String>,
}

type Schema = BTreeMap<String, Table>;

/// The text with every run of whitespace made one space.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The index of the parenthesis closing the one at `open` (quotes skipped).
fn closing(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits on commas outside parentheses, brackets and quotes.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut parts, mut current, mut depth, mut quoted) = (Vec::new(), String::new(), 0, false);
    for c in text.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' | '[' if !quoted => depth += 1,
            ')' | ']' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        parts.push(current.trim().to_string());
    }
    parts
}

/// An expression (default, index key, check) in one spelling for both databases: casts
/// (`::text`) dropped, outside quotes lower case with single spaces and none inside
/// parentheses, redundant outer parentheses dropped, and `x = ANY (ARRAY[…])` (how
/// PostgreSQL keeps `x IN (…)`) and `x IN (…)` both written `x in (…)` with sorted items.
fn normalise(expression: &str) -> String {
    let chars: Vec<char> = expression.trim().chars().collect();
    let mut out = String::new();
    let mut quoted = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c == '\'' {
            quoted = !quoted;
            out.push(c);
        } else if quoted {
            out.push(c);
        } else if c == ':' && chars.get(i) == Some(&':') {
            // A cast: `::name` or `::name[]`.
            i += 1;
            while chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') {
                i += 1;
            }
            if chars.get(i) == Some(&'[') && chars.get(i + 1) == Some(&']') {
                i += 2;
            }
        } else if c.is_whitespace() {
            if !out.ends_with([' ', '(', '[']) {
                out.push(' ');
            }
        } else if matches!(c, ')' | ']') {
            while out.ends_with(' ') {
                out.pop();
            }
            out.push(c);
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    let mut out = out.trim().to_string();
    while out.starts_with('(') && closing(&out, 0) == Some(out.len() - 1) {
        out = out[1..out.len() - 1].trim().to_string();
    }
    let list = |column: &str, items: &str| {
        let mut items = split_top_level(items);
        items.sort();
        format!("{column} in ({})", items.join(", "))
    };
    if let Some((column, rest)) = out.split_once(" = any (array[")
        && let Some(items) = rest.strip_suffix("])")
        && !column.contains(' ')
    {
        return list(column, items);
    }
    if let Some((column, rest)) = out.split_once(" in (")
        && let Some(items) = rest.strip_suffix(')')
        && !column.contains(' ')
    {
        return list(column, items);
    }
    out
}

/// The CHECK expressions of a CREATE TABLE statement, normalised.
fn create_table_checks(sql: &str) -> BTreeSet<String> {
    let sql = flat(sql);
    let upper = sql.to_ascii_uppercase();
    let mut checks = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = upper[from..].find("CHECK").map(|i| i + from) {
        from = at + 5;
        let before_ok = at == 0 || !upper.as_bytes()[at - 1].is_ascii_alphanumeric();
        let rest = upper[from..].trim_start();
        if before_ok && rest.starts_with('(') {
            let open = sql.len() - rest.len();
            let close = closing(&sql, open).unwrap_or_else(|| panic!("unbalanced CHECK in {sql}"));
            checks.insert(normalise(&sql[open + 1..close]));
            from = close;
        }
    }
    checks
}

/// Whether a normalised check pins the column to one value (`id = 1`).
fn pins(check: &str, column: &str) -> bool {
    check.strip_prefix(column).and_then(|rest| rest.strip_prefix(" = ")).is_some_and(|v| v.parse::<i64>().is_ok())
}

/// The head of a CREATE TRIGGER statement: name, table, `TIMING event[ OR event]`, and
/// what follows the table name.
struct TriggerHead {
    name: String,
    table: String,
    timing: String,
    events: Vec<String>,
    rest: String,
}

fn trigger_head(sql: &str) -> TriggerHead {
    let sql = flat(sql);
    let words: Vec<&str> = sql.split(' ').collect();
    let is = |i: usize, word: &str| words.get(i).is_some_and(|w| w.eq_ignore_ascii_case(word));
    assert!(is(0, "CREATE") && is(1, "TRIGGER"), "not a CREATE TRIGGER: {sql}");
    let mut i = 2;
    if is(i, "IF") {
        i += 3;
    }
    let name = words[i].trim_matches('"').to_string();
    i += 1;
    let timing = if is(i, "BEFORE") || is(i, "AFTER") {
        i += 1;
        words[i - 1].to_ascii_uppercase()
    } else if is(i, "INSTEAD") {
        i += 2;
        "INSTEAD OF".to_string()
    } else {
        "BEFORE".to_string() // SQLite's default
    };
    let mut events = Vec::new();
    loop {
        let event = words.get(i).unwrap_or_else(|| panic!("no ON in {sql}")).to_ascii_uppercase();
        i += 1;
        if event == "UPDATE" && is(i, "OF") {
            i += 1;
            let mut columns = Vec::new();
            while !is(i, "ON") && !is(i, "OR") {
                let word = words.get(i).unwrap_or_else(|| panic!("no ON in {sql}"));
                columns.extend(word.split(',').filter(|c| !c.is_empty()).map(str::to_string));
                i += 1;
            }
            columns.sort();
            events.push(format!("UPDATE OF {}", columns.join(", ")));
        } else {
            events.push(event);
        }
        if is(i, "OR") {
            i += 1;
        } else {
            break;
        }
    }
    assert!(is(i, "ON"), "no ON after the events in {sql}");
    let table = words[i + 1].trim_start_matches("public.").trim_matches('"').to_string();
    events.sort();
    TriggerHead { name, table, timing, events, rest: words[i + 2..].join(" ") }
}

/// The keys of a CREATE INDEX statement (`… ON table (key, …) [WHERE …]`), normalised.
fn index_keys(sql: &str) -> Vec<String> {
    let sql = flat(sql);
    let on = sql.to_ascii_uppercase().find(" ON ").unwrap_or_else(|| panic!("no ON in {sql}"));
    let open = sql[on..].find('(').map(|i| i + on).unwrap_or_else(|| panic!("no keys in {sql}"));
    let close = closing(&sql, open).unwrap_or_else(|| panic!("unbalanced {sql}"));
    split_top_level(&sql[open + 1..close])
        .iter()
        .map(|key| {
            let key = normalise(key);
            key.strip_suffix(" asc").map(str::to_string).unwrap_or(key)
        })
        .collect()
}

fn index_text(unique: bool, keys: &[String], partial: bool) -> String {
    format!("{}({}){}", if unique { "unique " } else { "" }, keys.join(", "), if partial { " partial" } else { "" })
}

fn foreign_key_text(columns: &[String], table: &str, to: &[String], on_delete: &str, on_update: &str) -> String {
    format!("({}) -> {table}({}) on delete {on_delete}, on update {on_update}", columns.join(", "), to.join(", "))
}

fn sqlite_class(declared: &str) -> String {
    // SQLite's affinity rules, in its order.
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "int"
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        "text"
    } else if t.contains("BLOB") || t.is_empty() {
        "blob"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "real"
    } else {
        "numeric"
    }
    .to_string()
}

fn postgres_class(type_name: &str) -> String {
    match type_name {
        "int8" => "int".to_string(),
        "int2" | "int4" => format!("{type_name} (the code reads i64: make it BIGINT)"),
        "text" | "varchar" => "text".to_string(),
        "bytea" => "blob".to_string(),
        other => other.to_string(),
    }
}

async fn describe_sqlite(pool: &SqlitePool) -> Schema {
    let mut schema = Schema::new();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (name, sql) in tables {
        let mut table = Table { checks: create_table_checks(&sql), ..Table::default() };
        let has_rowid = !flat(&sql).to_ascii_uppercase().contains("WITHOUT ROWID");
        let columns: Vec<(String, String, i64, Option<String>, i64)> =
            sqlx::query_as("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info($1) ORDER BY cid")
                .bind(&name)
                .fetch_all(pool)
                .await
                .unwrap();
        let key_columns = columns.iter().filter(|c| c.4 > 0).count();
        for (column, declared, not_null, default, primary_key) in columns {
            let rowid = has_rowid && key_columns == 1 && primary_key == 1 && declared.eq_ignore_ascii_case("INTEGER");
            let pinned = table.checks.iter().any(|check| pins(check, &column));
            table.columns.push(Column {
                class: sqlite_class(&declared),
                not_null: not_null != 0 || primary_key > 0,
                default: default.map(|d| normalise(&d)).filter(|d| d != "null"),
                primary_key,
                assigned: rowid && !pinned,
                name: column,
            });
        }

        let keys: Vec<(i64, String, String, Option<String>, String, String)> = sqlx::query_as(
            "SELECT id, \"table\", \"from\", \"to\", on_delete, on_update FROM pragma_foreign_key_list($1) \
             ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, Vec<_>> = BTreeMap::new();
        for key in keys {
            by_id.entry(key.0).or_default().push(key);
        }
        for parts in by_id.values() {
            let target = &parts[0].1;
            let from: Vec<String> = parts.iter().map(|p| p.2.clone()).collect();
            let mut to: Vec<String> = parts.iter().filter_map(|p| p.3.clone()).collect();
            if to.is_empty() {
                // REFERENCES t without columns: t's primary key.
                to = sqlx::query_scalar("SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk")
                    .bind(target)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            }
            table.foreign_keys.insert(foreign_key_text(&from, target, &to, &parts[0].4, &parts[0].5));
        }

        let indexes: Vec<(String, i64, String, i64)> =
            sqlx::query_as("SELECT name, \"unique\", origin, partial FROM pragma_index_list($1)")
                .bind(&name)
                .fetch_all(pool)
                .await
                .unwrap();
        for (index, unique, origin, partial) in indexes {
            match origin.as_str() {
                "pk" => {} // the columns' primary_key
                "u" => {
                    let columns: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                            .bind(&index)
                            .fetch_all(pool)
                            .await
                            .unwrap();
                    table.unique.insert(format!("({})", columns.join(", ")));
                }
                _ => {
                    let sql: String =
                        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = $1")
                            .bind(&index)
                            .fetch_one(pool)
                            .await
                            .unwrap();
                    table.indexes.insert(index, index_text(unique != 0, &index_keys(&sql), partial != 0));
                }
            }
        }
        schema.insert(name, table);
    }

    // Triggers; a BEFORE INSERT and a BEFORE UPDATE trigger that both refuse
    // `NEW.col NOT IN (…)` are SQLite's spelling of a CHECK.
    let triggers: Vec<(String,)> =
        sqlx::query_as("SELECT sql FROM sqlite_master WHERE type = 'trigger'").fetch_all(pool).await.unwrap();
    let mut refusals: BTreeMap<(String, String), Vec<TriggerHead>> = BTreeMap::new();
    for (sql,) in triggers {
        let head = trigger_head(&sql);
        let refused = (head.timing == "BEFORE" && head.events.len() == 1)
            .then(|| head.rest.strip_prefix("WHEN NEW.").or_else(|| head.rest.strip_prefix("when new.")))
            .flatten()
            .and_then(|rest| {
                let (condition, body) = rest.split_once(" BEGIN ")?;
                let (column, list) = condition.split_once(" NOT IN ")?;
                let body = flat(body).to_ascii_uppercase().replace(' ', "");
                body.starts_with("SELECTRAISE(ABORT,").then(|| normalise(&format!("{column} in {list}")))
            });
        match refused {
            Some(check) => refusals.entry((head.table.clone(), check)).or_default().push(head),
            None => {
                let table = schema.entry(head.table.clone()).or_default();
                table.triggers.insert(head.name, format!("{} {}", head.timing, head.events.join(" OR ")));
            }
        }
    }
    for ((table_name, check), heads) in refusals {
        let column = check.split(' ').next().unwrap_or_default().to_string();
        let on_insert = heads.iter().any(|h| h.events[0] == "INSERT");
        let on_update = heads.iter().any(|h| h.events[0] == "UPDATE" || h.events[0] == format!("UPDATE OF {column}"));
        let table = schema.entry(table_name).or_default();
        if on_insert && on_update {
            table.checks.insert(check);
        } else {
            for head in heads {
                table.triggers.insert(head.name, format!("{} {}", head.timing, head.events.join(" OR ")));
            }
        }
    }
    schema
}

/// A PostgreSQL foreign key: referenced table, columns, referenced columns, on delete and on
/// update action codes.
type ForeignRow = (String, Vec<String>, Vec<String>, String, String);

async fn describe_postgres(pool: &PgPool) -> Schema {
    let mut schema = Schema::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relkind IN ('r', 'p') \
         AND relnamespace = current_schema()::regnamespace AND relname <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for name in tables {
        let mut table = Table::default();
        let keys: Vec<(String, i64)> = sqlx::query_as(
            "SELECT a.attname::text, k.i FROM pg_constraint c \
             CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(n, i) \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n \
             WHERE c.contype = 'p' AND c.conrelid = format('%I', $1::text)::regclass",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        let columns: Vec<(String, String, bool, Option<String>, String)> = sqlx::query_as(
            "SELECT a.attname::text, t.typname::text, a.attnotnull, pg_get_expr(d.adbin, d.adrelid), \
             a.attidentity::text \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = format('%I', $1::text)::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        for (column, type_name, not_null, default, identity) in columns {
            let serial = default.as_deref().is_some_and(|d| d.starts_with("nextval("));
            table.columns.push(Column {
                class: postgres_class(&type_name),
                not_null,
                default: default.filter(|_| !serial).map(|d| normalise(&d)).filter(|d| d != "null"),
                primary_key: keys.iter().find(|(k, _)| *k == column).map_or(0, |(_, i)| *i),
                assigned: serial || !identity.is_empty(),
                name: column,
            });
        }

        let foreign: Vec<ForeignRow> = sqlx::query_as(
            "SELECT r.relname::text, \
             ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i) \
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), \
             ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(n, i) \
                   JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i), \
             c.confdeltype::text, c.confupdtype::text \
             FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid \
             WHERE c.contype = 'f' AND c.conrelid = format('%I', $1::text)::regclass",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        let action = |code: &str| {
            match code {
                "a" => "NO ACTION",
                "r" => "RESTRICT",
                "c" => "CASCADE",
                "n" => "SET NULL",
                "d" => "SET DEFAULT",
                other => panic!("unknown foreign key action {other}"),
            }
            .to_string()
        };
        for (target, from, to, on_delete, on_update) in foreign {
            table.foreign_keys.insert(foreign_key_text(&from, &target, &to, &action(&on_delete), &action(&on_update)));
        }

        let indexes: Vec<(String, bool, bool, bool, bool, Vec<String>)> = sqlx::query_as(
            "SELECT i.relname::text, x.indisunique, x.indisprimary, x.indpred IS NOT NULL, \
             EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid \
                     AND c.conrelid = x.indrelid AND c.contype = 'u'), \
             ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) FROM generate_series(1, x.indnkeyatts) AS k) \
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = format('%I', $1::text)::regclass",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        for (index, unique, primary, partial, constraint, keys) in indexes {
            let keys: Vec<String> = keys.iter().map(|k| normalise(k)).collect();
            if primary {
                continue; // the columns' primary_key
            } else if constraint {
                table.unique.insert(format!("({})", keys.join(", ")));
            } else {
                table.indexes.insert(index, index_text(unique, &keys, partial));
            }
        }

        let checks: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE contype = 'c' AND conrelid = format('%I', $1::text)::regclass",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        for check in checks {
            let expression = check.strip_prefix("CHECK ").unwrap_or_else(|| panic!("{name}: unexpected {check}"));
            table.checks.insert(normalise(expression));
        }
        schema.insert(name, table);
    }

    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for sql in triggers {
        let head = trigger_head(&sql);
        let table = schema.entry(head.table.clone()).or_default();
        table.triggers.insert(head.name, format!("{} {}", head.timing, head.events.join(" OR ")));
    }
    schema
}

/// What differs, one line per difference, naming the table and the column, index, key or
/// trigger.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
    for name in names {
        let (a, b) = match (sqlite.get(name), postgres.get(name)) {
            (Some(a), Some(b)) => (a, b),
            (Some(_), None) => {
                out.push(format!("table {name}: only on SQLite"));
                continue;
            }
            (None, _) => {
                out.push(format!("table {name}: only on PostgreSQL"));
                continue;
            }
        };
        let order = |t: &Table| t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
        if order(a) != order(b) {
            out.push(format!(
                "table {name}: columns differ (in order)\n    SQLite:     {}\n    PostgreSQL: {}",
                order(a),
                order(b)
            ));
        }
        for x in &a.columns {
            let Some(y) = b.columns.iter().find(|y| y.name == x.name) else { continue };
            let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "none".into());
            for (what, left, right) in [
                ("type", x.class.clone(), y.class.clone()),
                ("not null", x.not_null.to_string(), y.not_null.to_string()),
                ("default", show(&x.default), show(&y.default)),
                ("primary key position", x.primary_key.to_string(), y.primary_key.to_string()),
                ("assigned by the database", x.assigned.to_string(), y.assigned.to_string()),
            ] {
                if left != right {
                    out.push(format!("{name}.{}: {what}: SQLite {left}, PostgreSQL {right}", x.name));
                }
            }
        }
        let sets = |what: &str, a: &BTreeSet<String>, b: &BTreeSet<String>, out: &mut Vec<String>| {
            for only in a.difference(b) {
                out.push(format!("table {name}: {what} {only}: only on SQLite"));
            }
            for only in b.difference(a) {
                out.push(format!("table {name}: {what} {only}: only on PostgreSQL"));
            }
        };
        sets("foreign key", &a.foreign_keys, &b.foreign_keys, &mut out);
        sets("unique constraint", &a.unique, &b.unique, &mut out);
        sets("check", &a.checks, &b.checks, &mut out);
        let maps = |what: &str, a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, out: &mut Vec<String>| {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) if x != y => {
                        out.push(format!("table {name}: {what} {key}: SQLite {x}, PostgreSQL {y}"))
                    }
                    (Some(x), None) => out.push(format!("table {name}: {what} {key} {x}: only on SQLite")),
                    (None, Some(y)) => out.push(format!("table {name}: {what} {key} {y}: only on PostgreSQL")),
                    _ => {}
                }
            }
        };
        maps("index", &a.indexes, &b.indexes, &mut out);
        maps("trigger", &a.triggers, &b.triggers, &mut out);
    }
    out
}

/// The tables the migrations of a folder create (`CREATE TABLE name`).
fn created_tables(backend: &str) -> BTreeSet<String> {
    let mut tables = BTreeSet::new();
    for file in migration_files(backend) {
        let sql = flat(&std::fs::read_to_string(migrations(backend).join(&file)).unwrap());
        for part in sql.split("CREATE TABLE ").skip(1) {
            tables.insert(part.split([' ', '(']).next().unwrap().to_string());
        }
    }
    tables
}

#[tokio::test]
async fn the_sqlite_description_sees_every_kind_of_schema_object() {
    // The comparison is only as good as the description: it must see every table and what
    // each kind of catalog entry says, in the spelling PostgreSQL's side is normalised to.
    let (_dir, pool) = fresh_sqlite().await;
    let schema = describe_sqlite(&pool).await;
    assert_eq!(schema.keys().cloned().collect::<BTreeSet<_>>(), created_tables("sqlite"));
    let users = &schema["users"];
    let column = |table: &Table, name: &str| table.columns.iter().find(|c| c.name == name).unwrap().clone();
    assert_eq!(
        column(users, "id"),
        Column {
            name: "id".into(),
            class: "int".into(),
            not_null: true,
            default: None,
            primary_key: 1,
            assigned: true
        }
    );
    assert_eq!(column(users, "disabled").default.as_deref(), Some("0"));
    assert!(!column(users, "last_login_at").not_null);
    assert_eq!(column(&schema["audit_log"], "details").default.as_deref(), Some("'{}'"));
    assert_eq!(users.unique, BTreeSet::from(["(username)".to_string()]));
    assert_eq!(users.indexes["users_username_lower"], "unique (lower(username))");
    assert_eq!(users.indexes["users_role"], "(role_id)");
    assert_eq!(users.triggers["access_users_update"], "AFTER UPDATE OF disabled, display_name, role_id");
    assert!(
        schema["user_labs"].foreign_keys.contains("(lab_id) -> labs(id) on delete CASCADE, on update NO ACTION"),
        "{:?}",
        schema["user_labs"].foreign_keys
    );
    assert_eq!(
        column(&schema["role_permissions"], "permission"),
        Column {
            name: "permission".into(),
            class: "text".into(),
            not_null: true,
            default: None,
            primary_key: 2,
            assigned: false
        }
    );
    let generation = &schema["access_generation"];
    assert_eq!(generation.checks, BTreeSet::from(["id = 1".to_string()]));
    assert!(!column(generation, "id").assigned, "a row pinned to id 1 is not assigned");
    let transfers = &schema["transfers"];
    assert_eq!(
        transfers.checks,
        BTreeSet::from([
            "status in ('accepted', 'cancelled', 'completed', 'declined', 'expired', 'failed', 'requested')"
                .to_string()
        ])
    );
    assert!(!transfers.triggers.contains_key("transfers_status_insert"));
    assert_eq!(differences(&schema, &schema), Vec::<String>::new());
}

#[test]
fn expressions_read_the_same_from_both_databases() {
    assert_eq!(normalise("''::text"), normalise("''"));
    assert_eq!(normalise("'[]'::text"), "'[]'");
    assert_eq!(normalise("((id = 1))"), "id = 1");
    assert_eq!(normalise("(status = ANY (ARRAY['b'::text, 'a'::text]))"), normalise("status IN ('a',\n 'b')"),);
    assert_eq!(normalise("lower(username)"), normalise("lower( username )"));
    assert_ne!(normalise("lower(username)"), normalise("username"));
    assert_ne!(normalise("'A'"), normalise("'a'"));
    assert!(pins("id = 1", "id") && !pins("id = 1", "i") && !pins("status in ('a')", "status"));
}

#[tokio::test]
async fn sqlite_and_postgres_catalogs_match() {
    let Some(pg) = PgDatabase::fresh().await else { return };
    let (_dir, sqlite) = fresh_sqlite().await;
    let sqlite = describe_sqlite(&sqlite).await;
    let postgres = describe_postgres(&pg.pool).await;
    assert_eq!(postgres.keys().cloned().collect::<BTreeSet<_>>(), created_tables("postgres"));
    let differences = differences(&sqlite, &postgres);
    assert!(
        differences.is_empty(),
        "migrations/sqlite and migrations/postgres describe different schemas:\n{}",
        differences.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Behaviour, on both databases.

enum Db<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

impl Db<'_> {
    fn name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }

    async fn run(&self, sql: &str) -> Result<(), String> {
        let done = match self {
            Db::Sqlite(pool) => sqlx::query(AssertSqlSafe(sql)).execute(*pool).await.map(drop),
            Db::Postgres(pool) => sqlx::query(AssertSqlSafe(sql)).execute(*pool).await.map(drop),
        };
        done.map_err(|e| e.to_string())
    }

    async fn ok(&self, sql: &str) {
        self.run(sql).await.unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.name()));
    }

    /// The database's error for a statement it must refuse.
    async fn refused(&self, sql: &str) -> String {
        match self.run(sql).await {
            Ok(()) => panic!("{}: accepted what it must refuse: {sql}", self.name()),
            Err(e) => e,
        }
    }

    async fn int(&self, sql: &str) -> i64 {
        let value = match self {
            Db::Sqlite(pool) => sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql)).fetch_one(*pool).await,
            Db::Postgres(pool) => sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql)).fetch_one(*pool).await,
        };
        value.unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.name()))
    }

    async fn generation(&self) -> i64 {
        self.int("SELECT value FROM access_generation WHERE id = 1").await
    }
}

async fn audit_log_is_append_only(db: &Db<'_>) {
    db.ok("INSERT INTO audit_log (at, action) VALUES (1, 'login')").await;
    let error = db.refused("UPDATE audit_log SET action = 'nothing'").await;
    assert!(error.contains("audit_log is append-only"), "{}: {error}", db.name());
    db.ok("DELETE FROM audit_log WHERE at < 2").await; // retention
    assert_eq!(db.int("SELECT count(*) FROM audit_log").await, 0);
}

async fn transfer_status_takes_seven_words(db: &Db<'_>) {
    let insert = |id: &str, status: &str| {
        format!(
            "INSERT INTO transfers (id, sender_username, receiver_username, status, requested_at) \
             VALUES ('{id}', 'a', 'b', '{status}', 0)"
        )
    };
    for (n, status) in
        ["requested", "accepted", "completed", "failed", "cancelled", "declined", "expired"].iter().enumerate()
    {
        db.ok(&insert(&format!("t{n}"), status)).await;
    }
    for status in ["done", "Requested", ""] {
        db.refused(&insert("bad", status)).await;
        db.refused(&format!("UPDATE transfers SET status = '{status}' WHERE id = 't0'")).await;
    }
    db.ok("UPDATE transfers SET status = 'accepted' WHERE id = 't0'").await;
    assert_eq!(db.int("SELECT count(*) FROM transfers").await, 7);
}

async fn names_are_unique_whatever_their_case(db: &Db<'_>) {
    let user = |name: &str| {
        format!(
            "INSERT INTO users (username, display_name, password_hash, role_id, created_at, updated_at) \
             VALUES ('{name}', '{name}', 'x', 3, 0, 0)"
        )
    };
    db.ok(&user("Ann")).await;
    db.refused(&user("ann")).await;
    db.refused(&user("ANN")).await;
    db.ok(&user("bob")).await;
    assert_eq!(db.int("SELECT count(*) FROM users WHERE lower(username) = lower('aNN')").await, 1);
    db.ok("INSERT INTO labs (name, created_at) VALUES ('Lab 1', 0)").await;
    db.refused("INSERT INTO labs (name, created_at) VALUES ('LAB 1', 0)").await;
    db.ok("DELETE FROM users").await;
    db.ok("DELETE FROM labs").await;
}

async fn ids_are_assigned_after_the_seed_rows(db: &Db<'_>) {
    // The built-in roles have ids 1..3: the next role gets 4, not a duplicate key.
    assert_eq!(db.int("INSERT INTO roles (name, created_at) VALUES ('helper', 0) RETURNING id").await, 4);
    db.ok("DELETE FROM roles WHERE name = 'helper'").await;
    // One access counter, with id 1.
    db.refused("INSERT INTO access_generation (id, value) VALUES (2, 0)").await;
    // A role that still has users cannot go.
    db.ok("INSERT INTO users (username, display_name, password_hash, role_id, created_at, updated_at) \
         VALUES ('cy', 'Cy', 'x', 3, 0, 0)")
        .await;
    db.refused("DELETE FROM roles WHERE id = 3").await;
    db.ok("DELETE FROM users").await;
}

/// Each access change moves the counter, and the sign-in bookkeeping does not, on both
/// databases (the one list of what counts as an access change: a table that joins the
/// access triggers adds its statements here). On PostgreSQL, each change is also announced
/// on the channel the server listens on, and the bookkeeping is not.
async fn every_access_change_moves_the_generation(db: &Db<'_>, mut listener: Option<&mut PgListener>) {
    async fn next(listener: &mut PgListener) -> String {
        let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .expect("no notification on labbeam_access within 10 s")
            .unwrap();
        notification.payload().to_string()
    }
    if let Some(listener) = listener.as_deref_mut() {
        // What the checks before this one announced.
        db.ok("SELECT pg_notify('labbeam_access', 'start')").await;
        while next(listener).await != "start" {}
    }
    let g0 = db.generation().await;
    db.ok("INSERT INTO users (id, username, display_name, password_hash, role_id, created_at, updated_at) \
         VALUES (7, 'kim', 'Kim', 'x', 3, 0, 0)")
        .await;
    let g1 = db.generation().await;
    assert!(g1 > g0, "{}: a new user did not move the generation", db.name());
    db.ok("UPDATE users SET last_login_at = 5, updated_at = 5 WHERE id = 7").await;
    db.ok("INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at) VALUES ('s1', 7, 0, 9, 0)").await;
    db.ok("UPDATE sessions SET last_seen_at = 5 WHERE id = 's1'").await;
    assert_eq!(db.generation().await, g1, "{}: sign-in bookkeeping moved the generation", db.name());
    if let Some(listener) = listener.as_deref_mut() {
        db.ok("SELECT pg_notify('labbeam_access', 'bookkeeping done')").await;
        assert_eq!(next(listener).await, "", "the new user was not announced");
        assert_eq!(next(listener).await, "bookkeeping done", "sign-in bookkeeping was announced");
    }

    let mut last = g1;
    for change in [
        "UPDATE users SET role_id = 2 WHERE id = 7",
        "UPDATE users SET disabled = 1 WHERE id = 7",
        "UPDATE users SET display_name = 'Kim L.' WHERE id = 7",
        "UPDATE sessions SET revoked_at = 1 WHERE id = 's1'",
        "DELETE FROM sessions WHERE id = 's1'",
        "DELETE FROM role_permissions WHERE role_id = 2 AND permission = 'announce'",
        "INSERT INTO role_permissions (role_id, permission) VALUES (2, 'announce')",
        "INSERT INTO labs (id, name, created_at) VALUES (1, 'Lab 1', 0)",
        "INSERT INTO lab_ranges (lab_id, cidr) VALUES (1, '10.1.0.0/24')",
        "INSERT INTO user_labs (user_id, lab_id) VALUES (7, 1)",
        "DELETE FROM user_labs WHERE user_id = 7",
        "INSERT INTO lab_seats (lab_id, address, name) VALUES (1, '10.1.0.14', 'PC-14')",
        "UPDATE lab_seats SET name = 'PC 14' WHERE lab_id = 1",
        "DELETE FROM lab_seats WHERE lab_id = 1",
        "DELETE FROM lab_ranges WHERE lab_id = 1",
        "UPDATE labs SET name = 'Lab One' WHERE id = 1",
        "UPDATE labs SET exam = 1 WHERE id = 1",
        "UPDATE labs SET exam = 0 WHERE id = 1",
        "UPDATE labs SET visibility = 'own' WHERE id = 1",
        "UPDATE labs SET visibility = NULL WHERE id = 1",
        "UPDATE labs SET exam_from = 100, exam_until = 200 WHERE id = 1",
        "UPDATE labs SET exam_from = NULL, exam_until = NULL WHERE id = 1",
        "DELETE FROM labs WHERE id = 1",
        "INSERT INTO settings (key, value, updated_at) VALUES ('presence.scope', '\"all\"', 0)",
        "UPDATE settings SET value = '\"lab\"' WHERE key = 'presence.scope'",
        "DELETE FROM settings WHERE key = 'presence.scope'",
        "DELETE FROM users WHERE id = 7",
    ] {
        db.ok(change).await;
        let now = db.generation().await;
        assert!(now > last, "{}: {change} did not move the generation", db.name());
        last = now;
        if let Some(listener) = listener.as_deref_mut() {
            assert_eq!(next(listener).await, "", "{change} was not announced");
        }
    }
}

async fn behaves(db: Db<'_>, listener: Option<&mut PgListener>) {
    audit_log_is_append_only(&db).await;
    transfer_status_takes_seven_words(&db).await;
    names_are_unique_whatever_their_case(&db).await;
    ids_are_assigned_after_the_seed_rows(&db).await;
    every_access_change_moves_the_generation(&db, listener).await;
}

#[tokio::test]
async fn sqlite_behaves() {
    let (_dir, pool) = fresh_sqlite().await;
    behaves(Db::Sqlite(&pool), None).await;
}

#[tokio::test]
async fn postgres_behaves() {
    let Some(pg) = PgDatabase::fresh().await else { return };
    let mut listener = PgListener::connect_with(&pg.pool).await.unwrap();
    listener.listen("labbeam_access").await.unwrap();
    behaves(Db::Postgres(&pg.pool), Some(&mut listener)).await;
}

#[tokio::test]
async fn case_insensitive_names_apply_to_an_existing_sqlite_store() {
    // 0007 on a store made by 0001..0006 that already has users and labs: NOCASE kept any
    // two names from differing only in case, so the lower() indexes hold them.
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite_pool(&dir).await;
    let migrator = Migrator::new(migrations("sqlite")).await.unwrap();
    migrator.run_to(6, &pool).await.unwrap();
    let db = Db::Sqlite(&pool);
    db.ok("INSERT INTO users (username, display_name, password_hash, role_id, created_at, updated_at) \
         VALUES ('Ann', 'Ann', 'x', 3, 0, 0), ('bob', 'Bob', 'x', 3, 0, 0)")
        .await;
    db.ok("INSERT INTO labs (name, created_at) VALUES ('Lab A', 0), ('lab b', 0)").await;
    migrator.run(&pool).await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert!(version >= 7);
    db.refused(
        "INSERT INTO users (username, display_name, password_hash, role_id, created_at, updated_at) \
         VALUES ('ann', 'Ann', 'x', 3, 0, 0)",
    )
    .await;
    assert_eq!(db.int("SELECT count(*) FROM users WHERE lower(username) = lower('BOB')").await, 1);
}
