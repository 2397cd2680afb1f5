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
