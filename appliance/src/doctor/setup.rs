//! The ground `serve` stands on: the data directory and the store (`data_dir`,
//! `store.connect`, `store.schema`, `store.admins`).

use super::Report;
use crate::config::Config;
use crate::datadir;
use crate::db::{self, users};

/// `data_dir`: it exists (or can be made), is private and writable by this user.
pub fn data_dir(config: &Config, r: &mut Report) {
    let shown = config.data_dir.display();
    match datadir::inspect(&config.data_dir) {
        datadir::Inspection::Missing { creatable: true } => r.warn(
            "data_dir",
            format!("data directory {shown} does not exist yet: the first start of serve creates it (mode 0700)"),
        ),
        datadir::Inspection::Missing { creatable: false } => r.fail(
            "data_dir",
            format!(
                "data directory {shown} does not exist and this user cannot create it: create it for the service's user"
            ),
        ),
        datadir::Inspection::Present { problems } if problems.is_empty() => {
            r.ok("data_dir", format!("data directory {shown} is private (0700) and writable"))
        }
        datadir::Inspection::Present { problems } => r.fail("data_dir", problems.join("; ")),
    }
}

/// `store.connect`, `store.schema`, `store.admins`; the store, opened read-only, when it
/// answers (the caller closes it).
pub async fn store(config: &Config, r: &mut Report) -> Option<db::Store> {
    let location = match db::Location::of(&config.store, &config.data_dir) {
        Ok(location) => location,
        Err(e) => {
            r.fail("store.connect", format!("{e}: fix [store] in the configuration"));
            return None;
        }
    };
    if let db::Location::Sqlite(path) = &location
        && !path.exists()
    {
        r.warn("store.connect", format!("no database yet at {}: the first start of serve creates it", path.display()));
        return None;
    }
    let pool = match db::open_read_only(&location, &config.store).await {
        Ok(pool) => pool,
        Err(e) => {
            r.fail("store.connect", format!("{}: {e}{}", location.describe(), unreachable_hint(&location)));
            return None;
        }
    };
    if examine(&pool, &location, r).await {
        Some(pool)
    } else {
        pool.close().await;
        None
    }
}

/// The same checks on the running server's own store (the portal's Health page): no second
/// pool is opened for them.
pub async fn running_store(config: &Config, pool: &db::Store, r: &mut Report) -> bool {
    match db::Location::of(&config.store, &config.data_dir) {
        Ok(location) => examine(pool, &location, r).await,
        Err(e) => {
            r.fail("store.connect", format!("{e}: fix [store] in the configuration"));
            false
        }
    }
}

/// `store.connect` (the server's version), `store.schema`, `store.admins` on an open store;
/// false when it does not answer.
async fn examine(pool: &db::Store, location: &db::Location, r: &mut Report) -> bool {
    let described = location.describe();
    match db::server_version(pool).await {
        Ok(v) => match db::supports_server_version(pool.backend(), &v) {
            Ok(()) => r.ok("store.connect", format!("{described} answers (version {v})")),
            Err(why) => r.fail("store.connect", format!("{described} answers, but {why}: upgrade the database server")),
        },
        Err(e) => {
            r.fail("store.connect", format!("{described}: {e}{}", unreachable_hint(location)));
            return false;
        }
    }
    match db::schema(pool).await {
        Ok(db::Schema::Current) => r.ok("store.schema", "the schema is current"),
        Ok(db::Schema::Behind(n)) => {
            r.warn("store.schema", format!("the next start of serve applies {n} schema migration(s)"))
        }
        Ok(db::Schema::Newer(v)) => r.fail(
            "store.schema",
            format!("the database has schema migration {v}, from a newer LabBeam than this one: install that version"),
        ),
        Ok(db::Schema::Damaged(v)) => r.fail(
            "store.schema",
            format!("schema migration {v} differs from this LabBeam's or did not finish: restore the last backup"),
        ),
        Err(e) => r.fail("store.schema", format!("cannot read the applied migrations: {e}")),
    }
    match users::count_active_in_role(pool, "admin").await {
        Ok(admins) if admins > 0 => r.ok("store.admins", format!("{admins} active admin account(s)")),
        Ok(_) => {
            r.warn("store.admins", "no active admin yet: the next start of serve creates one and prints its password")
        }
        Err(e) => r.fail("store.admins", format!("cannot count the admin accounts: {e}")),
    }
    true
}

/// What to do when the store does not answer.
fn unreachable_hint(location: &db::Location) -> &'static str {
    match location {
        db::Location::Sqlite(_) => {
            " (is the file a LabBeam database, readable by this user? restore the last backup if it is damaged)"
        }
        db::Location::Postgres(_) => {
            " (is PostgreSQL running and reachable from here? check [store] url, password_file and ca_file)"
        }
    }
}
