//! The command line: `serve`, `user add|list|passwd|disable|enable`, `lab`, `setting`,
//! `store copy`, `doctor`. Flag mistakes print one line and exit 2; runtime failures print
//! one line and exit 1.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::audit::Actor;
use crate::config::{Config, Overrides};
use crate::db::{self, users};
use crate::{accounts, datadir, lab_admin, setting_admin, tls};

#[derive(Debug, Parser)]
#[command(name = "labbeam", version, about = "Peer-to-peer file transfer appliance for campus computer labs")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTPS server, signaling and the TURN relay.
    Serve(ServeArgs),
    /// Manage accounts in the store (works while the server runs).
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Manage labs: named groups of lab PCs by address range.
    Lab {
        #[command(subcommand)]
        action: LabCommand,
    },
    /// Show or change run-time settings.
    Setting {
        #[command(subcommand)]
        action: SettingCommand,
    },
    /// Work on the store as a whole: copy it between SQLite and PostgreSQL.
    Store {
        #[command(subcommand)]
        action: StoreCommand,
    },
    /// Check the configuration, data directory, store, certificate and ports.
    Doctor(StoreArgs),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every row of one store into another, e.g. from the SQLite file to PostgreSQL.
    ///
    /// Stop the server first: rows written after the copy started are not in it. The source
    /// is only read, and must be at this version's schema. The target gets the schema (an
    /// empty PostgreSQL database will do) and is written in one transaction; one that holds
    /// data already is refused unless --force. Every table is read back and compared (row
    /// count and SHA-256) before the commit; any difference rolls it all back. [store]
    /// password_file and ca_file of the configuration apply to both URLs.
    Copy(CopyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// The store to read: sqlite:///path/labbeam.db or postgres://user@host:port/database.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The store to write, in the same forms; its schema is created or migrated.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Replace the rows of a target that already holds data.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create a lab with its address ranges (CIDR), e.g. --cidr 10.0.2.0/24.
    Add {
        name: String,
        #[arg(long = "cidr", value_name = "CIDR")]
        cidrs: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List labs with their ranges.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a lab (its devices fall into "Other").
    Remove {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Make an instructor responsible for a lab (they may broadcast to it).
    Assign {
        name: String,
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingCommand {
    /// Every setting, its value and what it does.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change a setting, e.g. `transfer.request_expiry_secs 120`.
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (database, certificate, secrets).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// HTTPS listen address, e.g. 0.0.0.0:8443.
    #[arg(long, value_name = "ADDR:PORT")]
    pub http_listen: Option<SocketAddr>,
    /// STUN/TURN listen address, e.g. 0.0.0.0:3478.
    #[arg(long, value_name = "ADDR:PORT")]
    pub turn_listen: Option<SocketAddr>,
    /// Host name or address the lab PCs use to reach this server.
    #[arg(long, value_name = "HOST")]
    pub public_host: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. Without --password-stdin a one-time password is printed.
    Add {
        username: String,
        /// admin, instructor, student, or a custom role.
        #[arg(long)]
        role: String,
        #[arg(long, value_name = "NAME")]
        display_name: Option<String>,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a password and sign the user out everywhere. Without --password-stdin a
    /// one-time password is printed and must be changed at next login.
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable an account and end its sessions at once.
    Disable {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Enable a disabled account.
    Enable {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

impl StoreArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides { config_file: self.config.clone(), data_dir: self.data_dir.clone(), ..Default::default() }
    }
}

impl ServeArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            http_listen: self.http_listen,
            turn_listen: self.turn_listen,
            public_host: self.public_host.clone(),
            ..self.store.overrides()
        }
    }
}

pub fn load_config(overrides: &Overrides) -> anyhow::Result<Config> {
    Ok(Config::load(overrides, std::env::vars())?)
}

async fn open_store(store: &StoreArgs) -> anyhow::Result<(Config, db::Store)> {
    let config = load_config(&store.overrides())?;
    datadir::prepare(&config.data_dir)?;
    let pool = db::open(&config.store, &config.data_dir).await?;
    Ok((config, pool))
}

fn read_password_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().take(4096).read_to_string(&mut text).context("cannot read the password from standard input")?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        bail!("no password on standard input");
    }
    Ok(line)
}

pub async fn user(action: UserCommand) -> anyhow::Result<()> {
    let actor = Actor::cli();
    let password = |from_stdin: bool| if from_stdin { read_password_stdin().map(Some) } else { Ok(None) };
    match action {
        UserCommand::Add { username, role, display_name, password_stdin, store } => {
            accounts::check_username(&username)?;
            let (config, pool) = open_store(&store).await?;
            let pw = password(password_stdin)?;
            let display = display_name.unwrap_or_default();
            let min = config.auth.password_min_length;
            let (_, otp) = accounts::create(&pool, &actor, &username, &display, &role, pw, min).await?;
            println!("created {username} ({role})");
            if let Some(otp) = otp {
                println!("one-time password (must be changed at first login): {otp}");
            }
        }
        UserCommand::List { store } => {
            let (_, pool) = open_store(&store).await?;
            let rows = users::list(&pool).await?;
            println!("{:<24} {:<28} {:<12} {:<9} LAST LOGIN (UTC)", "USERNAME", "DISPLAY NAME", "ROLE", "STATUS");
            for u in rows {
                let status = if u.is_disabled() { "disabled" } else { "active" };
                let last = u.last_login_at.map(format_time).unwrap_or_else(|| "never".into());
                println!("{:<24} {:<28} {:<12} {:<9} {last}", u.username, u.display_name, u.role, status);
            }
        }
        UserCommand::Passwd { username, password_stdin, store } => {
            let (config, pool) = open_store(&store).await?;
            let user = find_user(&pool, &username).await?;
            let pw = password(password_stdin)?;
            let (user, otp, ended) =
                accounts::set_password(&pool, &actor, user.id, pw, config.auth.password_min_length).await?;
            println!("password of {} set; {ended} session(s) ended", user.username);
            if let Some(otp) = otp {
                println!("one-time password (must be changed at next login): {otp}");
            }
        }
        UserCommand::Disable { username, store } => {
            let (_, pool) = open_store(&store).await?;
            let user = find_user(&pool, &username).await?;
            let (user, ended) = accounts::disable(&pool, &actor, user.id).await?;
            println!("disabled {}; {ended} session(s) ended", user.username);
        }
        UserCommand::Enable { username, store } => {
            let (_, pool) = open_store(&store).await?;
            let user = find_user(&pool, &username).await?;
            let user = accounts::enable(&pool, &actor, user.id).await?;
            println!("enabled {}", user.username);
        }
    }
    Ok(())
}

pub async fn lab(action: LabCommand) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match action {
        LabCommand::Add { name, cidrs, store } => {
            // Before the store is opened (or created), like `user add`.
            crate::labs::check_name(name.trim()).map_err(anyhow::Error::msg)?;
            let (_, pool) = open_store(&store).await?;
            let lab = lab_admin::create(&pool, &actor, &name, &cidrs).await?;
            let ranges = if lab.ranges.is_empty() { "no ranges".into() } else { lab.ranges.join(", ") };
            println!("created lab {} ({ranges})", lab.name);
        }
        LabCommand::List { store } => {
            let (_, pool) = open_store(&store).await?;
            let ranges = db::labs::ranges(&pool).await?;
            for lab in db::labs::list(&pool).await? {
                let mine: Vec<&str> = ranges.iter().filter(|r| r.lab == lab.name).map(|r| r.cidr.as_str()).collect();
                println!("{:<24} {}", lab.name, mine.join(", "));
            }
        }
        LabCommand::Remove { name, store } => {
            let (_, pool) = open_store(&store).await?;
            lab_admin::remove(&pool, &actor, &name).await?;
            println!("removed lab {name}");
        }
        LabCommand::Assign { name, username, store } => {
            let (_, pool) = open_store(&store).await?;
            let (lab, user) = lab_admin::assign(&pool, &actor, &name, &username).await?;
            println!("{} is responsible for {}", user.username, lab.name);
        }
    }
    Ok(())
}

pub async fn setting(action: SettingCommand) -> anyhow::Result<()> {
    match action {
        SettingCommand::List { store } => {
            let (_, pool) = open_store(&store).await?;
            for (spec, value) in crate::settings::all(&pool).await? {
                println!("{:<32} {:<14} {}", spec.key, value.to_string(), spec.help);
            }
        }
        SettingCommand::Set { key, value, store } => {
            let (_, pool) = open_store(&store).await?;
            let value = setting_admin::set(&pool, &Actor::cli(), &key, &value).await?;
            println!("{key} = {value}");
        }
    }
    Ok(())
}

pub async fn store(action: StoreCommand) -> anyhow::Result<()> {
    match action {
        StoreCommand::Copy(args) => {
            let config = load_config(&args.store.overrides())?;
            db::copy::run(&args.from, &args.to, &config.store, args.force, &mut std::io::stdout()).await
        }
    }
}

async fn find_user(pool: &db::Store, username: &str) -> anyhow::Result<users::User> {
    users::by_username(pool, username).await?.with_context(|| format!("no user named {username:?}"))
}

fn format_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `labbeam doctor`: every check prints one line; exits non-zero if any failed. It only
/// looks: it creates no directory, database or certificate and changes no file or mode, so
/// it is safe next to a running server whatever configuration it was given ("note" lines
/// say what the next start of `serve` will do).
pub async fn doctor(store: StoreArgs) -> anyhow::Result<()> {
    let config = load_config(&store.overrides())?;
    println!("ok    configuration is valid");
    let mut failures = 0;
    let mut report = |ok: bool, line: String| {
        println!("{} {line}", if ok { "ok   " } else { "FAIL " });
        if !ok {
            failures += 1;
        }
    };
    let note = |line: String| println!("note  {line}");
    let data = &config.data_dir;
    let shown = data.display();
    match datadir::inspect(data) {
        datadir::Inspection::Missing { creatable: true } => {
            note(format!("data directory {shown} does not exist yet: the first start of serve creates it (mode 0700)"))
        }
        datadir::Inspection::Missing { creatable: false } => {
            report(false, format!("data directory {shown} does not exist and this user cannot create it"))
        }
        datadir::Inspection::Present { problems } if problems.is_empty() => {
            report(true, format!("data directory {shown} is private (0700) and writable"))
        }
        datadir::Inspection::Present { problems } => problems.into_iter().for_each(|p| report(false, p)),
    }
    let location = match db::Location::of(&config.store, data) {
        Ok(location) => Some(location),
        Err(e) => {
            report(false, e.to_string());
            None
        }
    };
    let store_exists = match &location {
        Some(db::Location::Sqlite(path)) => path.exists(),
        Some(db::Location::Postgres(_)) => true,
        None => false,
    };
    if let Some(location) = location.as_ref().filter(|_| store_exists) {
        match db::open_read_only(location, &config.store).await {
            Ok(pool) => {
                match db::server_version(&pool).await {
                    Ok(v) => match db::supports_server_version(pool.backend(), &v) {
                        Ok(()) => report(true, format!("{} answers (version {v})", location.describe())),
                        Err(why) => report(false, format!("{} answers, but {why}", location.describe())),
                    },
                    Err(e) => report(false, format!("{}: {e}", location.describe())),
                }
                match db::schema(&pool).await {
                    Ok(db::Schema::Current) => report(true, "database opens and its schema is current".into()),
                    Ok(db::Schema::Behind(n)) => {
                        note(format!("database opens; the next start of serve applies {n} schema migration(s)"))
                    }
                    Ok(db::Schema::Newer(v)) => {
                        report(false, format!("database has schema migration {v}, from a newer LabBeam than this one"))
                    }
                    Ok(db::Schema::Damaged(v)) => report(
                        false,
                        format!("database schema migration {v} differs from this LabBeam's or did not finish"),
                    ),
                    Err(e) => report(false, e.to_string()),
                }
                match users::count_active_in_role(&pool, "admin").await {
                    Ok(admins) if admins > 0 => report(true, format!("{admins} active admin account(s)")),
                    _ => note("no active admin yet: the next start creates one and prints its password".into()),
                }
                // What the relay reaches, in words, so an admin sees it before a student does.
                match crate::turn::describe_peer_policy(&pool, &config.turn).await {
                    Ok(text) => println!("note  turn.peer_policy: {text}"),
                    Err(e) => report(false, format!("turn.peer_policy: cannot read the lab ranges: {e}")),
                }
                pool.close().await;
            }
            Err(e) => report(false, format!("{}: {e}", location.describe())),
        }
    } else if location.is_some() {
        note("no database yet: the first start of serve creates it".into());
    }
    match tls::inspect(&config) {
        Ok(Some(t)) => {
            report(true, format!("certificate {} loads, SHA-256 {}", t.cert_path.display(), t.fingerprint));
            if let Some(names) = t.renew_for {
                note(format!(
                    "the certificate was made for other host names: the next start of serve makes a new one for {}",
                    names.join(", ")
                ));
            }
        }
        Ok(None) => report(true, "no certificate yet: a self-signed one is generated at first start".into()),
        Err(e) => report(false, e.to_string()),
    }
    match std::net::TcpListener::bind(config.http_listen) {
        Ok(_) => report(true, format!("HTTPS address {} is free", config.http_listen)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => println!(
            "note  HTTPS address {}: ports below 1024 need CAP_NET_BIND_SERVICE (the systemd service has it)",
            config.http_listen
        ),
        Err(e) => report(false, format!("HTTPS address {}: {e} (fine if labbeam is running)", config.http_listen)),
    }
    if failures > 0 {
        bail!("{failures} check(s) failed");
    }
    Ok(())
}
