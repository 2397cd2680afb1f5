//! `labbeam`: one binary for the LabBeam appliance. This file only wires the modules;
//! see ARCHITECTURE.md for the map.

mod access_watch;
mod accounts;
mod api;
mod audit;
mod auth;
mod cli;
mod config;
mod conn_limit;
mod datadir;
mod db;
mod directory;
mod doctor;
mod exam_schedule;
mod health;
mod http_conn;
mod lab_admin;
mod labs;
mod metrics;
mod net;
mod oidc;
mod permission;
mod portal;
mod seats;
mod server;
mod setting_admin;
mod settings;
mod signaling;
mod state;
mod text;
mod tls;
mod turn;
mod web;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::LogFormat;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return std::process::ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return std::process::ExitCode::from(2);
            }
            // One line: the first paragraph of clap's message, without its "error: " prefix
            // (for missing arguments it lists them on the lines under the first).
            let text = e.render().to_string();
            let first: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            let first = if first.is_empty() { "invalid arguments".to_string() } else { first.join(" ") };
            eprintln!("labbeam: {} (see labbeam --help)", first.trim_start_matches("error: "));
            return std::process::ExitCode::from(2);
        }
    };
    // Exactly one crypto provider (ring) for every rustls user in the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("labbeam: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("labbeam: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let config = cli::load_config(&args.overrides())?;
            init_logging(config.log.format, &config.log.level);
            server::run(config, &args.store).await
        }
        Command::User { action } => cli::user(action).await,
        Command::Lab { action } => cli::lab(action).await,
        Command::Setting { action } => cli::setting(action).await,
        Command::Store { action } => cli::store(action).await,
        Command::Doctor(args) => cli::doctor(args).await,
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| "info".into());
    // The relay library logs every dropped datagram at error level; LabBeam's own relay code
    // counts and logs them once. Name `turn` in log.level to see the library's lines.
    if !level.contains("turn")
        && let Ok(quiet) = "turn=off".parse()
    {
        filter = filter.add_directive(quiet);
    }
    // No colour codes when stderr is the journal or a file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
