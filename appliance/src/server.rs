//! `labbeam serve`: prepares the data directory, store, keys and certificate, binds every
//! listener, and once HTTPS is up creates the first admin when there is none; then serves
//! until SIGTERM/SIGINT, finishing in-flight requests before it exits. `memory` holds the
//! process-wide memory measures wired in here.

mod memory;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::api::ApiError;
use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{self, AuthError, password};
use crate::cli::StoreArgs;
use crate::config::Config;
use crate::db::{self, roles, sessions, users};
use crate::metrics::HttpLabels;
use crate::permission::Permission;
use crate::state::AppState;
use crate::{conn_limit, datadir, http_conn, tls, web};

/// Largest request body the API accepts (JSON only; files never pass through the server).
const MAX_BODY: usize = 64 * 1024;
/// How often freed heap pages go back to the system (`memory`).
const RELEASE_FREE_MEMORY_EVERY: Duration = Duration::from_secs(2);

/// `store_args` are the `--config`/`--data-dir` flags `serve` was given, for the command the
/// banner suggests.
pub async fn run(config: Config, store_args: &StoreArgs) -> anyhow::Result<()> {
    datadir::prepare(&config.data_dir)?;
    let listener = bind_tcp(config.http_listen, "HTTPS")?;
    let tls = tls::load_or_generate(&config)?;
    let location = db::Location::of(&config.store, &config.data_dir)?;
    let pool = db::open_at(&location, &config.store)
        .await
        .with_context(|| format!("cannot open the store ({})", location.describe()))?;
    let jwt_secret = datadir::secret(&config.data_dir, "jwt.key")?;
    let turn = if config.turn.enabled { Some(crate::turn::bind(&config, &tls)?) } else { None };
    // From here on the configuration names the addresses as bound (a port 0 resolved), so
    // the checks run in-process (the portal's Health page) find this server.
    let mut config = config;
    config.http_listen = listener.local_addr().context("cannot read the HTTPS listener's address")?;
    if let Some(bound) = &turn {
        config.turn_listen = bound.listen();
        config.turn.tls_port = Some(bound.tls_port());
    }

    let state = AppState::new(config, pool.clone(), &jwt_secret)?;
    let mut turn_lines = vec!["  TURN:         off (turn.enabled = false)".to_string()];
    let turn = match turn {
        Some(bound) => {
            turn_lines = bound.banner_lines();
            let running = bound
                .start_on_own_thread(pool.clone(), state.metrics.turn.clone(), state.access_changes.subscribe())
                .await?;
            turn_lines.push(format!("  TURN reaches: {}", running.issuer().peer_policy()));
            let _ = state.turn.set(running.issuer());
            Some(running)
        }
        None => None,
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(state.config.http_listen.port());
    let banner = Banner {
        port,
        cert_path: tls.cert_path.clone(),
        fingerprint: tls.fingerprint.clone(),
        generated: tls.generated,
        store: location.describe(),
        turn_lines,
    };
    // Accepted transfers of the last run wait to be re-claimed by their devices.
    crate::signaling::restore(&state).await.context("cannot read unfinished transfers")?;
    let app = app(state.clone());

    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    tokio::spawn(purge_old_sessions(pool.clone()));
    tokio::spawn(crate::access_watch::run(state.clone()));
    tokio::spawn(crate::exam_schedule::run(state.clone()));
    if let (Some(directory), Some(ldap)) = (&state.directory, &state.config.auth.ldap) {
        let every = Duration::from_secs(ldap.refresh_minutes * 60);
        tokio::spawn(crate::directory::admit::refresh(state.clone(), directory.clone(), every));
    }
    tokio::spawn(memory::release_free_memory_every(RELEASE_FREE_MEMORY_EVERY));
    let limits = &state.config.http;
    let header_timeout = Duration::from_secs(limits.header_timeout_secs);
    let rustls = axum_server::tls_rustls::RustlsConfig::from_config(tls.server_config);
    // TCP_NODELAY on every accepted socket: signaling sends many small frames, and Nagle's
    // algorithm held each one back until the client's delayed ACK (the stall and what it did
    // to presence latency: bench/signaling/README.md, "What limits LabBeam").
    let tls_acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls)
        .handshake_timeout(header_timeout)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    // Trusted proxies carry many clients over few connections: they are not capped.
    let book = conn_limit::PerAddress::new(limits.max_connections_per_address, state.config.trusted_proxies.clone());
    let acceptor = http_conn::GuardedAcceptor::new(
        tls_acceptor,
        book,
        Duration::from_secs(limits.idle_timeout_secs),
        state.metrics.http_connections_refused("per_address"),
    );
    let mut server = axum_server::from_tcp(listener)
        .context("cannot start the HTTPS server")?
        .acceptor(acceptor)
        .handle(handle.clone())
        // The first request also waits for hyper's protocol detection, which has no timer.
        .first_request_timeout(header_timeout);
    // hyper starts this clock when the connection is ready for a head: after a response too.
    server.http_builder().http1().header_read_timeout(header_timeout);
    let serving = tokio::spawn(server.serve(app.into_make_service_with_connect_info::<SocketAddr>()));
    // The first admin is made only now that every listener is bound and HTTPS serves: a
    // start that fails before (the TURN port in use, unreadable transfers) leaves no account
    // whose one-time password was never shown.
    let admin = match handle.listening().await {
        Some(_) => admin_notice(&pool, &state.config, store_args).await,
        None => Err(anyhow::anyhow!("the HTTPS server did not start")),
    };
    // The relay learns of the new account before the banner says the server is up.
    if let (Ok(AdminNotice::Created(_)), Some(issuer)) = (&admin, state.turn.get()) {
        issuer.reload_directory(&pool).await;
    }
    match admin {
        Ok(admin) => print_banner(&state.config, &banner, &admin),
        Err(e) => {
            handle.shutdown();
            // The server's own error, when it has one, says more.
            if let Ok(Err(served)) = serving.await {
                return Err(anyhow::Error::new(served).context("the HTTPS server failed"));
            }
            return Err(e);
        }
    }
    serving.await.context("the HTTPS server stopped unexpectedly")?.context("the HTTPS server failed")?;
    if let Some(turn) = turn {
        turn.stop().await;
    }
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The whole HTTP surface: API, health, metrics, web client; security headers on all.
pub fn app(state: AppState) -> Router {
    Router::new()
        .nest("/api", crate::api::router())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::portal::router())
        .merge(web::router())
        .method_not_allowed_fallback(method_not_allowed)
        .layer(crate::signaling::layer(&state))
        .layer(middleware::from_fn(memory::detach_request))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

fn bind_tcp(addr: SocketAddr, what: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            anyhow::anyhow!("{what} address {addr} is already in use (is another labbeam or web server running?)")
        }
        std::io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("{what} address {addr}: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)")
        }
        std::io::ErrorKind::AddrNotAvailable => {
            anyhow::anyhow!("{what} address {addr} is not an address of this machine")
        }
        _ => anyhow::anyhow!("cannot listen on {what} address {addr}: {e}"),
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

pub struct FirstAdmin {
    pub username: String,
    pub password: String,
}

/// Creates an admin with a one-time password when no active admin exists.
pub async fn ensure_first_admin(pool: &db::Store) -> anyhow::Result<Option<FirstAdmin>> {
    if users::count_active_in_role(pool, "admin").await? > 0 {
        return Ok(None);
    }
    let role = roles::by_name(pool, "admin").await?.context("the admin role is missing from the database")?;
    let mut username = "admin".to_string();
    let mut n = 2;
    while users::by_username(pool, &username).await?.is_some() {
        username = format!("admin{n}");
        n += 1;
    }
    let password = password::one_time_password()?;
    let hash = password::hash_async(password.clone()).await?;
    users::create(
        pool,
        &users::NewUser {
            username: &username,
            display_name: "Administrator",
            password_hash: &hash,
            role_id: role.id,
            must_change_password: true,
        },
    )
    .await?;
    audit::record(pool, &Actor::system(), AuditEvent::FirstAdminCreated { username: &username }).await?;
    Ok(Some(FirstAdmin { username, password }))
}

/// What the banner says about admin accounts.
enum AdminNotice {
    /// This start created the first admin: its one-time password, shown this once.
    Created(FirstAdmin),
    /// Every enabled admin still has a one-time password (the one made at the first start,
    /// or one from `labbeam user passwd`): who, the account to run `labbeam` as (the data
    /// directory is its alone), and the command that prints a new one-time password.
    OneTimePasswordOnly { username: String, run_as: Option<String>, command: String },
    /// An admin has a password of their own.
    Ready,
}

/// Creates the first admin when there is none; otherwise says whether the admins can still
/// only sign in with a one-time password, which may never have been seen (it is printed
/// once; an older LabBeam could make it in a start that then failed, and print nothing).
async fn admin_notice(pool: &db::Store, config: &Config, store_args: &StoreArgs) -> anyhow::Result<AdminNotice> {
    if let Some(created) = ensure_first_admin(pool).await? {
        return Ok(AdminNotice::Created(created));
    }
    let admins = users::active_in_role(pool, "admin").await?;
    if admins.iter().any(|u| !u.must_change_password()) {
        return Ok(AdminNotice::Ready);
    }
    Ok(match admins.first() {
        Some(u) => AdminNotice::OneTimePasswordOnly {
            username: u.username.clone(),
            run_as: process_user(),
            command: passwd_command(&u.username, config, store_args),
        },
        None => AdminNotice::Ready,
    })
}

/// `labbeam user passwd USERNAME` with the configuration file and data directory this
/// server uses.
fn passwd_command(username: &str, config: &Config, store_args: &StoreArgs) -> String {
    let mut command = format!("labbeam user passwd {}", shell_word(username));
    if let Some(file) = &store_args.config {
        command.push_str(&format!(" --config {}", shell_word(&absolute(file))));
    }
    command.push_str(&format!(" --data-dir {}", shell_word(&absolute(&config.data_dir))));
    command
}

fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}

/// `word` as one word for a POSIX shell: as it is when that is safe, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', "'\\''")) }
}

/// The name of the account this process runs as.
fn process_user() -> Option<String> {
    // SAFETY: geteuid has no arguments and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; all-zero is a valid value for getpwuid_r to fill in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's length.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`, alive here.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    name.to_str().ok().filter(|n| !n.is_empty()).map(str::to_string)
}

/// The banner's facts that are known before the server is up.
struct Banner {
    port: u16,
    cert_path: std::path::PathBuf,
    fingerprint: String,
    /// The certificate was generated by this start.
    generated: bool,
    store: String,
    turn_lines: Vec<String>,
}

fn print_banner(config: &Config, banner: &Banner, admin: &AdminNotice) {
    let port = banner.port;
    let host = config.advertised_host();
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let origin = if banner.generated { "self-signed, generated now" } else { "in use" };
    println!("LabBeam {} is running.", env!("CARGO_PKG_VERSION"));
    println!("  Open:         https://{host}:{port}/");
    println!("  Certificate:  {} ({origin})", banner.cert_path.display());
    println!("  SHA-256:      {}", banner.fingerprint);
    println!("  Data:         {}", config.data_dir.display());
    println!("  Store:        {}", banner.store);
    banner.turn_lines.iter().for_each(|l| println!("{l}"));
    match admin {
        AdminNotice::Created(a) => {
            println!("  First admin account. This password is shown only once and must be changed at first login:");
            println!("    username: {}", a.username);
            println!("    password: {}", a.password);
        }
        // Three lines, so `journalctl -u labbeam | grep -A2 'First admin'` shows them all.
        AdminNotice::OneTimePasswordOnly { username, run_as, command } => {
            let run_as = run_as.as_ref().map(|u| format!(" as user {u}")).unwrap_or_default();
            println!("  First admin:  {username} has not chosen a password yet; its one-time password was shown once.");
            println!("                If it is lost, print a new one{run_as}:");
            println!("                  {command}");
        }
        AdminNotice::Ready => {}
    }
    println!();
}

async fn shutdown_on_signal(handle: axum_server::Handle<SocketAddr>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing requests, then stopping"),
        _ = int.recv() => tracing::info!("SIGINT: finishing requests, then stopping"),
    }
    handle.graceful_shutdown(Some(Duration::from_secs(10)));
}

/// Hourly housekeeping: ended sessions after a week, transfer-log and audit rows past
/// their retention settings.
async fn purge_old_sessions(pool: db::Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match sessions::purge_ended(&pool, 7 * 24 * 3600).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "removed sessions that ended over a week ago"),
            Err(e) => tracing::warn!(error = %e, "session purge failed"),
        }
        if let Err(e) = apply_retention(&pool).await {
            tracing::warn!(error = %e, "log retention failed");
        }
    }
}

async fn apply_retention(pool: &db::Store) -> Result<(), db::DbError> {
    let now = db::now();
    let days = crate::settings::get_u64(pool, "retention.transfer_days").await?;
    if days > 0 {
        let n = db::transfers::purge_before(pool, now - days as i64 * 86_400).await?;
        if n > 0 {
            tracing::info!(removed = n, days, "transfer-log rows past retention removed");
        }
    }
    let days = crate::settings::get_u64(pool, "retention.audit_days").await?;
    if days > 0 {
        let n = db::audit::purge_before(pool, now - days as i64 * 86_400).await?;
        if n > 0 {
            tracing::info!(removed = n, days, "audit entries past retention removed");
        }
    }
    Ok(())
}

async fn healthz(State(state): State<AppState>) -> Response {
    match db::ping(&state.db).await {
        Ok(()) => axum::Json(json!({ "status": "ok" })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unhealthy", "the database does not answer").into_response()
        }
    }
}

/// Headers by which a reverse proxy says a request came from elsewhere. Proxies differ in
/// which they send (nginx often only `X-Real-IP`, others only RFC 7239 `Forwarded`), so
/// any one of them counts.
const FORWARDING_HEADERS: [&str; 5] =
    ["x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-proto"];

/// Prometheus text. Loopback callers (a local scraper) need no login; anyone else needs
/// a session with `portal.access`. A request that came through a reverse proxy on this
/// host (it carries a forwarding header) is not a local scraper.
async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let local_scraper = peer.ip().is_loopback() && !FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h));
    if !local_scraper {
        let token = auth::request_token(&headers).ok_or(AuthError::Unauthenticated)?;
        let user = auth::authenticate(&state, &token).await?;
        if !user.has(Permission::PortalAccess) {
            return Err(AuthError::Forbidden(Permission::PortalAccess.name()).into());
        }
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], state.metrics.encode()).into_response())
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    let labels = HttpLabels { method, status: response.status().as_u16() };
    state.metrics.http_requests.get_or_create(&labels).inc();
    response
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    // 'wasm-unsafe-eval' lets the web client compile its SHA-256 in WebAssembly (hash-wasm,
    // several times faster than JavaScript on the transfer path); it does not allow eval().
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; \
             connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    response
}
