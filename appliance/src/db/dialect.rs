//! The statements that cannot be written once for both databases, and nothing else. Every
//! other query in `db` is one portable text (see the module header of `db`).

use super::Backend;

/// Counts (0 or 1) the tables named `$1` in the current schema.
pub fn table_exists(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = $1"
        }
    }
}

/// A subquery yielding each string of the JSON array bound at `$1`: how a list of any
/// length is passed as one parameter (SQLite has no array type).
pub fn json_strings_of_first_parameter(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SELECT value FROM json_each($1)",
        Backend::Postgres => "SELECT json_array_elements_text(CAST($1 AS json))",
    }
}

/// The database engine's version as text.
pub fn server_version(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SELECT sqlite_version()",
        Backend::Postgres => "SELECT current_setting('server_version')",
    }
}

/// The tables of the current schema (`name`), without the databases' own and sqlx's
/// `_sqlx_migrations`: what `store copy` compares with the tables it knows.
pub fn list_tables(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             AND name <> '_sqlx_migrations' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT CAST(tablename AS TEXT) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() \
             AND tablename <> '_sqlx_migrations' ORDER BY tablename"
        }
    }
}

/// The columns of the table named `$1`, in their order: name, declared type (SQLite's as
/// written, PostgreSQL's `format_type`), and position in the primary key (0 when not in it).
pub fn table_columns(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SELECT name, type, CAST(pk AS BIGINT) FROM pragma_table_info($1) ORDER BY cid",
        Backend::Postgres => {
            "SELECT CAST(a.attname AS TEXT), format_type(a.atttypid, a.atttypmod), \
             CAST(COALESCE(array_position(CAST(i.indkey AS int2[]), a.attnum) \
             - array_lower(CAST(i.indkey AS int2[]), 1) + 1, 0) AS BIGINT) \
             FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary \
             WHERE c.relname = $1 AND c.relnamespace = CAST(current_schema() AS regnamespace) \
             AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum"
        }
    }
}

/// What follows a TEXT column in `ORDER BY` so that both databases sort by the bytes of its
/// UTF-8 text (SQLite's BINARY, PostgreSQL's "C"), whatever a column's or a database's own
/// collation says: `store copy` reads both sides in the same order to compare checksums.
pub fn byte_order(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "COLLATE BINARY",
        Backend::Postgres => "COLLATE \"C\"",
    }
}

/// Starts the transaction `store copy` reads its source in: one snapshot of every table,
/// whatever a running server writes meanwhile (SQLite's deferred transaction takes its
/// snapshot at the first read and keeps it).
pub fn begin_snapshot(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "BEGIN",
        Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    }
}

/// Starts a transaction that reads before it writes (`store copy`'s target, a hand-in
/// receipt): on SQLite it takes the write lock at once, so a busy target fails before
/// anything is read, and two such transactions at once wait for each other (busy timeout)
/// instead of both holding a read lock that neither can upgrade.
pub fn begin_write(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    }
}

/// After rows were inserted with explicit ids into `table`, makes the next id the database
/// assigns follow the largest one: PostgreSQL's identity sequences do not move when a row
/// gives its id (`None` on SQLite, whose rowid and AUTOINCREMENT counter follow by
/// themselves). Nothing happens for a column without a sequence. `table` is a name of the
/// schema, not input.
pub fn reset_identity(backend: Backend, table: &str) -> Option<String> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(max(id), 0) + 1, false) FROM \"{table}\""
        )),
    }
}
