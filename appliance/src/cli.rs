//! The command line: `serve`, `user add|list|passwd|disable|enable`, `lab` (with its seats
//! and policy), `setting`, `store copy`, `doctor` (its checks live in `doctor`). Flag
//! mistakes print one line and exit 2; runtime failures print one line and exit 1.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::audit::Actor;
use crate::config::{Config, Overrides};
use crate::db::{self, users};
use crate::exam_schedule::{self, Window};
use crate::labs::Visibility;
use crate::{accounts, datadir, lab_admin, setting_admin};

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
    /// Check the configuration, store, certificate, ports and a real ICE run through the relay.
    Doctor(DoctorArgs),
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

/// A policy's state on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// A lab's visibility on the command line (`labs::Visibility`, or none of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VisibilityArg {
    Own,
    All,
    Default,
}

impl VisibilityArg {
    fn choice(self) -> Option<Visibility> {
        match self {
            VisibilityArg::Own => Some(Visibility::Own),
            VisibilityArg::All => Some(Visibility::All),
            VisibilityArg::Default => None,
        }
    }
}

/// `--exam-schedule`'s one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    Clear,
}

/// A TIME of `--exam-from`/`--exam-until` (`exam_schedule::parse_time`): a bad one is a
/// flag mistake (exit 2).
fn time_arg(text: &str) -> Result<i64, String> {
    exam_schedule::parse_time(text)
}

/// A lab's visibility in words, as `lab policy` and `lab list` print it.
fn visibility_words(choice: Option<Visibility>) -> &'static str {
    match choice {
        Some(Visibility::Own) => "own lab only",
        Some(Visibility::All) => "all labs",
        None => "presence.scope (default)",
    }
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
    /// Name a lab seat: a device connecting from ADDRESS is shown to others as NAME, e.g.
    /// `lab seat "Lab 2" 10.0.2.14 PC-14`. The address must lie in one of the lab's ranges;
    /// each seat of a lab needs its own name. Devices connected there re-join under it.
    Seat {
        lab: String,
        address: String,
        /// The seat's name (1 to 64 characters).
        #[arg(required_unless_present = "remove")]
        name: Option<String>,
        /// Remove the seat at ADDRESS instead: its devices go back to their own names.
        #[arg(long, conflicts_with = "name")]
        remove: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a lab's policies (one or more). `--exam on`: the lab's students (users without
    /// broadcast.send or users.manage) can neither send nor receive one-to-one transfers and
    /// see only the lab's instructors and admins; transfers under way between them are
    /// cancelled. `--exam off` also ends an exam window that has started. `--visibility own`:
    /// the lab's students see only their own lab and other labs' students do not see them;
    /// `all`: they see the other labs that show every lab; `default`: the setting
    /// presence.scope decides. `--exam-from TIME --exam-until TIME`: the lab's exam window
    /// (at most 24 hours; it replaces the one it had): the server switches exam mode on at
    /// its start and off at its end. TIME is 2026-12-03 10:15 in this server's local time, or
    /// RFC 3339 (2026-12-03T10:15:00+01:00). `--exam-schedule clear` removes the window
    /// (exam mode stays as it is). Connected devices follow within a second. Applied in this
    /// order: visibility, exam mode, window.
    #[command(group(clap::ArgGroup::new("policies").required(true).multiple(true).args(["exam", "visibility", "exam_from", "exam_schedule"])))]
    Policy {
        name: String,
        /// Exam mode on or off.
        #[arg(long, value_name = "on|off")]
        exam: Option<Switch>,
        /// Who the lab's students see: own, all, or default (follow presence.scope).
        #[arg(long, value_name = "own|all|default")]
        visibility: Option<VisibilityArg>,
        /// Start of the lab's exam window (with --exam-until).
        #[arg(long, value_name = "TIME", value_parser = time_arg, requires = "exam_until")]
        exam_from: Option<i64>,
        /// End of the lab's exam window (with --exam-from).
        #[arg(long, value_name = "TIME", value_parser = time_arg, requires = "exam_from")]
        exam_until: Option<i64>,
        /// `clear`: remove the lab's exam window.
        #[arg(long, value_name = "clear", conflicts_with_all = ["exam_from", "exam_until"])]
        exam_schedule: Option<ScheduleArg>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List a lab's seats (address and name), or import them from a CSV file of
    /// `address,name` lines (--import).
    Seats {
        lab: String,
        /// Add or rename the seats listed in FILE (`address,name` lines; a first line
        /// `address,name`, empty lines and `#` lines are skipped). If any line cannot be
        /// applied, none is, and each such line is named.
        #[arg(long, value_name = "FILE")]
        import: Option<PathBuf>,
        /// With --import: the file becomes the lab's whole seat map (seats not in it go).
        #[arg(long, requires = "import")]
        replace: bool,
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
pub struct DoctorArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print one JSON array of {"check", "status", "message"} (for monitoring).
    #[arg(long)]
    pub json: bool,
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
            let exams = db::labs::in_exam(&pool).await?;
            let visibilities = db::labs::visibilities(&pool).await?;
            let windows = db::labs::exam_windows(&pool).await?;
            for lab in db::labs::list(&pool).await? {
                let mine: Vec<&str> = ranges.iter().filter(|r| r.lab == lab.name).map(|r| r.cidr.as_str()).collect();
                let exam = if exams.contains(&lab.name) { "  (exam mode)" } else { "" };
                let own =
                    visibilities.iter().find(|(l, _)| *l == lab.name).and_then(|(_, w)| Visibility::from_stored(w));
                let shown = own.map(|v| format!("  (sees {})", visibility_words(Some(v)))).unwrap_or_default();
                let window = windows
                    .iter()
                    .find(|w| w.id == lab.id)
                    .map(|w| {
                        let window = Window { from: w.exam_from, until: w.exam_until };
                        format!("  (exam window {})", exam_schedule::describe(window))
                    })
                    .unwrap_or_default();
                println!("{:<24} {}{exam}{shown}{window}", lab.name, mine.join(", "));
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
        LabCommand::Seat { lab, address, name, remove, store } => {
            // Before the store is opened (or created), like `lab add`.
            crate::seats::parse_address(&address).map_err(anyhow::Error::msg)?;
            if let Some(name) = &name {
                crate::seats::clean_name(name).map_err(anyhow::Error::msg)?;
            }
            let (_, pool) = open_store(&store).await?;
            let lab = lab_admin::lab_named(&pool, &lab).await?;
            match name {
                Some(name) if !remove => {
                    let set = lab_admin::set_seat(&pool, &actor, &lab, &address, &name).await?;
                    match &set.before {
                        None => println!("{} in {} is now {}", set.address, lab.name, set.name),
                        Some(_) if set.unchanged() => {
                            println!("{} in {} is {} already", set.address, lab.name, set.name)
                        }
                        Some(before) => {
                            println!("{} in {} renamed from {before} to {}", set.address, lab.name, set.name)
                        }
                    }
                }
                _ => {
                    let (address, name) = lab_admin::remove_seat(&pool, &actor, &lab, &address).await?;
                    println!("removed seat {name} ({address}) from {}", lab.name);
                }
            }
        }
        LabCommand::Policy { name, exam, visibility, exam_from, exam_until, exam_schedule, store } => {
            let (_, pool) = open_store(&store).await?;
            let lab = lab_admin::lab_named(&pool, &name).await?;
            if let Some(visibility) = visibility {
                let choice = visibility.choice();
                let words = visibility_words(choice);
                if lab_admin::set_visibility(&pool, &actor, &lab, choice).await? {
                    println!("visibility of {} is now {words}", lab.name);
                } else {
                    println!("visibility of {} is {words} already", lab.name);
                }
            }
            if let Some(exam) = exam {
                let on = exam == Switch::On;
                let word = if on { "on" } else { "off" };
                let switched = lab_admin::set_exam(&pool, &actor, &lab, on).await?;
                let ended = switched
                    .ended_window
                    .map(|w| format!("; its exam window ({}) ended with it", exam_schedule::describe(w)))
                    .unwrap_or_default();
                if switched.changed {
                    println!("exam mode of {} is now {word}{ended}", lab.name);
                } else {
                    println!("exam mode of {} is {word} already{ended}", lab.name);
                }
            }
            let window = match (exam_from, exam_until, exam_schedule) {
                (Some(from), Some(until), _) => Some(Some((from, until))),
                (_, _, Some(ScheduleArg::Clear)) => Some(None),
                _ => None,
            };
            if let Some(window) = window {
                let now = db::now();
                let set = lab_admin::set_exam_window(&pool, &actor, &lab, window, now).await?;
                println!("{}", window_words(&lab.name, &set, now));
            }
        }
        LabCommand::Seats { lab, import, replace, store } => {
            let text = match &import {
                Some(path) => Some(read_seat_file(path)?),
                None => None,
            };
            let (_, pool) = open_store(&store).await?;
            let lab = lab_admin::lab_named(&pool, &lab).await?;
            if let Some(text) = text {
                let mode = if replace { crate::seats::Mode::Replace } else { crate::seats::Mode::Merge };
                let done = lab_admin::import_seats(&pool, &actor, &lab, &text, mode).await?;
                println!(
                    "{}: {} added, {} renamed, {} removed, {} kept",
                    lab.name, done.added, done.renamed, done.removed, done.kept
                );
                return Ok(());
            }
            println!("{:<40} NAME", "ADDRESS");
            for (address, name, used) in lab_admin::seats_of(&pool, &lab).await? {
                let note = if used { "" } else { "  (outside the lab's ranges: names no device)" };
                println!("{address:<40} {name}{note}");
            }
        }
    }
    Ok(())
}

/// What `lab policy` says of a window it set or cleared.
fn window_words(lab: &str, set: &lab_admin::WindowSet, now: i64) -> String {
    use lab_admin::WindowOutcome as O;
    match set.outcome(now) {
        O::Started(w) => {
            format!(
                "exam window of {lab} is now {} (started: exam mode goes on within a second)",
                exam_schedule::describe(w)
            )
        }
        O::Scheduled(w) => format!(
            "exam window of {lab} is now {}: exam mode goes on at its start and off at its end",
            exam_schedule::describe(w)
        ),
        O::Unchanged(w) => format!("exam window of {lab} is {} already", exam_schedule::describe(w)),
        O::ClearedExamOn => {
            format!("exam window of {lab} cleared; exam mode stays on until it is switched off (--exam off)")
        }
        O::Cleared => format!("exam window of {lab} cleared"),
        O::NoWindow => format!("{lab} has no exam window"),
    }
}

/// A seat list to import: UTF-8 text of at most 1 MiB.
fn read_seat_file(path: &std::path::Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > 1 << 20 {
        bail!("{} is larger than 1 MiB", path.display());
    }
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
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

/// `labbeam doctor`: one line per check (see `doctor`), or one JSON array with `--json`;
/// fails (exit 1) when a check failed.
pub async fn doctor(args: DoctorArgs) -> anyhow::Result<()> {
    let checks = crate::doctor::run(&args.store.overrides()).await;
    if args.json {
        println!("{}", serde_json::to_string(&checks)?);
    } else {
        checks.iter().for_each(|c| println!("{}", c.human()));
    }
    let failed = checks.iter().filter(|c| c.status == crate::doctor::Status::Fail).count();
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}
