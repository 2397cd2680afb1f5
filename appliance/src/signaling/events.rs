//! Socket.IO handlers: the connect middleware (authentication), the connect handler
//! (presence), and one thin handler per client event: parse → check → hub → effects → ack.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ConnectInfo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts, MessageHandler};
use socketioxide::socket::{Sid, Socket};

use super::hub::Member;
use super::labs::{self, LabMatcher};
use super::payloads::{
    self, Announce, BroadcastStart, Signal, Target, TransferFinish, TransferRequest, TransferRespond,
};
use super::{ALL_SCOPE_ROOM, SignalError, ack_body, deliver, lab_room, peer_room, store};
use crate::auth::{self, AuthError, CurrentUser};
use crate::db;
use crate::state::AppState;

/// What a client may send in the Socket.IO `auth` object.
#[derive(Debug, Default, Deserialize)]
struct ConnectAuth {
    token: Option<String>,
    /// A name for this device ("PC 14"), shown to others.
    device: Option<String>,
    /// The lab this device is in, when its address matches no lab's range.
    lab: Option<String>,
}

/// Why a connection was refused; its text (a plain code) reaches the client as the
/// `message` of `connect_error`.
#[derive(Debug)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Kept in the socket's extensions between the middleware and the connect handler.
#[derive(Clone)]
struct Authenticated {
    user: CurrentUser,
    device: String,
    lab_pick: Option<String>,
}

pub fn register(io: &SocketIo) {
    io.ns("/", on_connect.with(authenticate));
}

async fn authenticate(
    socket: SocketRef,
    State(state): State<AppState>,
    auth: TryData<ConnectAuth>,
) -> Result<(), Refused> {
    let auth = auth.0.unwrap_or_default();
    let headers = &socket.req_parts().headers;
    let token = match auth.token.filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => {
            // The cookie rides along on any request to this origin: accept it only from a
            // page of this origin (SameSite=Strict already keeps other sites out; this
            // holds for older browsers too).
            if !same_origin(headers) {
                return Err(Refused("invalid_origin"));
            }
            auth::request_token(headers).ok_or(Refused("unauthenticated"))?
        }
    };
    let user = auth::authenticate(&state, &token).await.map_err(|e| {
        Refused(match e {
            AuthError::SessionExpired => "session_expired",
            AuthError::SessionRevoked => "session_revoked",
            AuthError::AccountDisabled => "account_disabled",
            AuthError::Internal(detail) => {
                tracing::error!(error = %detail, "socket authentication failed");
                "internal"
            }
            _ => "invalid_token",
        })
    })?;
    if user.must_change_password {
        return Err(Refused("password_change_required"));
    }
    let device = auth.device.as_deref().map(|d| payloads::clean_text(d, 64)).filter(|d| !d.is_empty());
    let device = device.unwrap_or_else(|| "Browser".into());
    let lab_pick = auth.lab.map(|l| payloads::clean_text(&l, 64));
    socket.extensions.insert(Authenticated { user, device, lab_pick });
    Ok(())
}

/// True when the request has no `Origin` (not a browser) or its `Origin` names the host
/// the request was sent to.
fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.strip_prefix("https://").is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host))
}

async fn on_connect(socket: SocketRef, State(state): State<AppState>) {
    let Some(auth) = socket.extensions.get::<Authenticated>() else {
        socket.disconnect().ok();
        return;
    };
    // Handlers first, before anything awaits: the client may emit as soon as it is
    // connected, and an event without a handler would get no ack at all. Until the device
    // has joined below, events are answered `not_connected`.
    register_events(&socket);
    let member = match build_member(&state, &socket, auth).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "could not register a socket");
            socket.disconnect().ok();
            return;
        }
    };
    let peer_id = member.peer.peer_id.clone();
    let lab = member.peer.lab.clone();
    socket.join(peer_room(&peer_id));
    socket.join(lab_room(&lab));
    if member.sees_all {
        socket.join(ALL_SCOPE_ROOM);
    }
    let (snapshot, emits) = state.signaling.with_hub(|h| h.join(member));
    state.metrics.sockets.inc();
    if let Err(e) = socket.emit("presence:snapshot", &snapshot) {
        tracing::debug!(error = %e, "snapshot not sent");
    }
    deliver(&state, emits).await;
    match db::announcements::live_for(&state.db, &lab).await {
        Ok(list) => {
            for a in list {
                let _ = socket.emit("announcement", &announcement_json(&a));
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not load announcements"),
    }
}

async fn build_member(state: &AppState, socket: &SocketRef, auth: Authenticated) -> Result<Member, db::DbError> {
    let parts = socket.req_parts();
    let peer_addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let addr = labs::client_addr(peer_addr, forwarded, &state.config.trusted_proxies);
    let ranges = db::labs::ranges(&state.db).await?;
    let known: Vec<String> = db::labs::list(&state.db).await?.into_iter().map(|l| l.name).collect();
    let lab = LabMatcher::new(&ranges).resolve(addr, auth.lab_pick.as_deref(), &known);
    let scope = crate::settings::get_str(&state.db, "presence.scope").await?;
    let user = auth.user;
    let sees_all = scope == "all" || user.has("portal.access") || user.has("broadcast.send");
    let owned_labs = db::labs::owned_by(&state.db, user.id).await?;
    Ok(Member {
        peer: super::hub::Peer {
            peer_id: socket.id.to_string(),
            user_id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            role: user.role.clone(),
            lab,
            device: auth.device,
        },
        session_id: user.session_id.clone(),
        permissions: user.permissions.clone(),
        sees_all,
        owned_labs,
    })
}

/// Registers `event` with a handler that receives the parsed payload. Every call spends
/// from the device's event budget and is answered with an ack.
fn on<T, F, Fut>(socket: &SocketRef, event: &'static str, handler: F)
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(AppState, String, T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, SignalError>> + Send + 'static,
{
    socket.on(
        event,
        move |s: SocketRef, State(state): State<AppState>, TryData(data): TryData<Value>, ack: AckSender| {
            let handler = handler.clone();
            async move {
                let peer = s.id.to_string();
                // An event can arrive while the connect handler still registers the device
                // (it reads the labs and settings first): give that a moment to finish.
                for _ in 0..250 {
                    if state.signaling.with_hub(|h| h.member(&peer).is_some()) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                let result = match state.signaling.with_hub(|h| h.spend_event(&peer, Instant::now())) {
                    Err(e) => Err(e),
                    Ok(()) => match data
                        .map_err(|e| SignalError::Invalid(e.to_string()))
                        .and_then(|v| serde_json::from_value::<T>(v).map_err(|e| SignalError::Invalid(e.to_string())))
                    {
                        Ok(payload) => handler(state.clone(), peer, payload).await,
                        Err(e) => Err(e),
                    },
                };
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(e) => e.code(),
                };
                state.metrics.socket_event(event, outcome);
                // Clients that did not ask for an ack get none; nothing to do then.
                let _ = ack.send(&ack_body(result));
            }
        },
    );
}

fn register_events(socket: &SocketRef) {
    on(socket, "transfer:request", transfer_request);
    on(socket, "transfer:respond", transfer_respond);
    socket.on("signal", SignalHandler);
    on(socket, "transfer:finish", transfer_finish);
    on(socket, "announce", announce);
    on(socket, "broadcast:start", broadcast_start);
    socket.on_disconnect(async |s: SocketRef, State(state): State<AppState>| {
        let (emits, records) = state.signaling.with_hub(|h| h.leave(&s.id.to_string()));
        state.metrics.sockets.dec();
        store(&state, records).await;
        deliver(&state, emits).await;
    });
}

fn new_id() -> String {
    let mut bytes = [0u8; 12];
    // The system RNG does not fail on Linux; an all-zero id would still be unique enough
    // to be noticed, never silently reused, since inserts would conflict.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn transfer_request(state: AppState, peer: String, req: TransferRequest) -> Result<Value, SignalError> {
    payloads::validate_id("to", &req.to)?;
    let (limits, expiry) = super::limits(&state).await?;
    let id = new_id();
    let (emits, record) =
        state.signaling.with_hub(|h| h.request(&peer, &req.to, req.files, id.clone(), &limits, Instant::now()))?;
    store(&state, vec![record]).await;
    deliver(&state, emits).await;
    super::schedule_expiry(&state, id.clone(), expiry);
    Ok(json!({ "transferId": id }))
}

async fn transfer_respond(state: AppState, peer: String, req: TransferRespond) -> Result<Value, SignalError> {
    payloads::validate_id("transferId", &req.transfer_id)?;
    let (emits, record) = state.signaling.with_hub(|h| h.respond(&peer, &req.transfer_id, req.accept))?;
    store(&state, vec![record]).await;
    deliver(&state, emits).await;
    Ok(json!({}))
}

/// The `signal` handler: the hot path (a relay storm is thousands a second). It runs inline
/// in the connection's reader, where socketioxide would spawn a task per call of an async
/// handler; parses the payload straight into `Signal` with `data` kept as the client's JSON
/// text; takes the hub lock once for the budget and the rules; and sends to the other
/// party's socket directly. Same checks in the same order, same acks and counters as `on`.
#[derive(Clone, Copy)]
struct SignalHandler;

/// The `MessageHandler` marker of `SignalHandler` (a handler that is not a closure).
struct Inline;

impl MessageHandler<LocalAdapter, Inline> for SignalHandler {
    fn call(&self, s: Arc<Socket>, mut v: socketioxide::handler::Value, ack_id: Option<i64>) {
        let Ok(State(state)) = State::<AppState>::from_message_parts(&s, &mut v, &ack_id) else { return };
        let Ok(ack) = AckSender::from_message_parts(&s, &mut v, &ack_id);
        let Ok(TryData(data)) = TryData::<Signal>::from_message_parts(&s, &mut v, &ack_id);
        let data = data.map_err(|e| e.to_string());
        let peer = s.id;
        match relay_signal(&state, peer.as_str(), &data, true) {
            Some(result) => answer_signal(&state, ack, result),
            None => {
                // The connect handler is still registering the device (like `on`, wait).
                tokio::spawn(async move {
                    for _ in 0..250 {
                        if state.signaling.with_hub(|h| h.member(peer.as_str()).is_some()) {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    let result = relay_signal(&state, peer.as_str(), &data, false).unwrap_or(Ok(()));
                    answer_signal(&state, ack, result);
                });
            }
        }
    }
}

/// The relayed `signal` as the other party receives it.
#[derive(Serialize)]
struct Relayed<'a> {
    #[serde(rename = "transferId")]
    transfer_id: &'a str,
    from: &'a str,
    data: &'a RawValue,
}

/// Checks and relays one `signal`. `None`: `peer` is not registered yet (and
/// `require_member`); nothing was spent.
fn relay_signal(
    state: &AppState,
    peer: &str,
    req: &Result<Signal, String>,
    require_member: bool,
) -> Option<Result<(), SignalError>> {
    // (error, refused by the transfer rules: counted in `signals_refused`)
    let checked = state.signaling.with_hub(|h| {
        if require_member && h.member(peer).is_none() {
            return None;
        }
        Some(h.spend_event(peer, Instant::now()).map_err(|e| (e, false)).and_then(|()| {
            let req = req.as_ref().map_err(|e| (SignalError::Invalid(e.clone()), false))?;
            validate_signal(req).map_err(|e| (e, false))?;
            h.signal(peer, &req.transfer_id, &req.to).map_err(|e| (e, true))
        }))
    })?;
    let req = match (checked, req) {
        (Ok(()), Ok(req)) => req,
        (Err((e, refused)), req) => {
            if refused {
                state.metrics.signal_refused(e.code());
                let transfer = req.as_ref().map(|r| r.transfer_id.as_str()).unwrap_or("");
                tracing::info!(peer, transfer, code = e.code(), "signal refused");
            }
            return Some(Err(e));
        }
        (Ok(()), Err(e)) => return Some(Err(SignalError::Invalid(e.clone()))),
    };
    let target = req.to.parse::<Sid>().ok().and_then(|sid| state.signaling.io.get()?.get_socket(sid));
    let relayed = Relayed { transfer_id: &req.transfer_id, from: peer, data: &req.data };
    match target.map(|t| t.emit("signal", &relayed)) {
        Some(Ok(())) => {}
        Some(Err(e)) => tracing::debug!(error = %e, "signal not relayed (receiver gone?)"),
        None => tracing::debug!("signal not relayed: the receiver's socket is gone"),
    }
    Some(Ok(()))
}

/// The checks of a `signal` payload that need no state.
fn validate_signal(req: &Signal) -> Result<(), SignalError> {
    payloads::validate_id("transferId", &req.transfer_id)?;
    payloads::validate_id("to", &req.to)?;
    let size = req.data.get().len();
    if size > payloads::MAX_SIGNAL_BYTES {
        return Err(SignalError::Invalid(format!("data is {size} bytes; at most {}", payloads::MAX_SIGNAL_BYTES)));
    }
    Ok(())
}

/// Counts a `signal` and acks it like `on` does.
fn answer_signal(state: &AppState, ack: AckSender, result: Result<(), SignalError>) {
    #[derive(Serialize)]
    struct OkAck {
        ok: bool,
    }
    match result {
        Ok(()) => {
            state.metrics.socket_event("signal", "ok");
            let _ = ack.send(&OkAck { ok: true });
        }
        Err(e) => {
            state.metrics.socket_event("signal", e.code());
            let _ = ack.send(&ack_body(Err(e)));
        }
    }
}

async fn transfer_finish(state: AppState, peer: String, req: TransferFinish) -> Result<Value, SignalError> {
    payloads::validate_id("transferId", &req.transfer_id)?;
    payloads::validate_sha256(&req.sha256)?;
    if req.reason.chars().count() > 500 {
        return Err(SignalError::Invalid("reason must have at most 500 characters".into()));
    }
    let id = req.transfer_id.clone();
    let (emits, record) = state.signaling.with_hub(|h| h.finish(&peer, req))?;
    match record {
        Some(r) => store(&state, vec![r]).await,
        None => super::schedule_finalize(&state, id),
    }
    deliver(&state, emits).await;
    Ok(json!({}))
}

fn announcement_json(a: &db::announcements::Announcement) -> Value {
    json!({ "id": a.id, "from": a.from_name, "text": a.text, "at": a.created_at, "lab": a.lab,
            "expiresAt": a.expires_at })
}

async fn announce(state: AppState, peer: String, req: Announce) -> Result<Value, SignalError> {
    let member = state.signaling.with_hub(|h| h.member(&peer).cloned()).ok_or(SignalError::NotConnected)?;
    if !member.has("announce") {
        return Err(SignalError::Forbidden("announce"));
    }
    let text = payloads::clean_text(&req.text, 500);
    if text.is_empty() {
        return Err(SignalError::Invalid("text must not be empty".into()));
    }
    let ttl = req.ttl_secs.unwrap_or(3600).clamp(60, 86_400) as i64;
    let lab = match &req.target {
        Target::Lab { lab } => {
            if lab != labs::OTHER && db::labs::by_name(&state.db, lab).await?.is_none() {
                return Err(SignalError::UnknownLab(lab.clone()));
            }
            Some(lab.clone())
        }
        Target::All { all: true } => None,
        _ => return Err(SignalError::Invalid("announce to {lab} or {all:true}".into())),
    };
    let a = db::announcements::create(
        &state.db,
        member.peer.user_id,
        &member.peer.display_name,
        lab.as_deref(),
        &text,
        ttl,
    )
    .await?;
    let to = match &lab {
        Some(l) => super::hub::Audience::InLab(l.clone()),
        None => super::hub::Audience::Everyone,
    };
    deliver(&state, vec![super::hub::Emit { to, except: None, event: "announcement", data: announcement_json(&a) }])
        .await;
    Ok(json!({ "id": a.id }))
}

async fn broadcast_start(state: AppState, peer: String, req: BroadcastStart) -> Result<Value, SignalError> {
    let member = state.signaling.with_hub(|h| h.member(&peer).cloned()).ok_or(SignalError::NotConnected)?;
    if !member.has("broadcast.send") {
        return Err(SignalError::Forbidden("broadcast.send"));
    }
    let (limits, expiry) = super::limits(&state).await?;
    let total = payloads::validate_files(&req.files, limits.max_file_bytes)?;
    // Admins (user managers) may broadcast anywhere; instructors to the labs they own.
    let unrestricted = member.has("users.manage");
    let may_reach = |lab: &str| unrestricted || member.owned_labs.iter().any(|l| l == lab);
    let recipients: Vec<String> = state.signaling.with_hub(|h| {
        let in_target = |m: &Member| match &req.target {
            Target::Lab { lab } => m.peer.lab == *lab,
            Target::All { all } => *all,
            Target::Peers { peers } => peers.contains(&m.peer.peer_id),
        };
        h.members()
            .filter(|m| m.peer.peer_id != peer && in_target(m) && may_reach(&m.peer.lab))
            .map(|m| m.peer.peer_id.clone())
            .collect()
    });
    match &req.target {
        Target::Lab { lab } if !may_reach(lab) => return Err(SignalError::Forbidden("broadcast.send (to this lab)")),
        Target::All { all: true } if !unrestricted => {
            return Err(SignalError::Forbidden("broadcast.send (to all labs)"));
        }
        Target::All { all: false } => return Err(SignalError::Invalid("target {all:false} names nobody".into())),
        Target::Peers { peers } if peers.len() > 1000 => {
            return Err(SignalError::Invalid("at most 1000 peers per broadcast".into()));
        }
        _ => {}
    }
    let broadcast_id = new_id();
    let super::hub::BroadcastPlan { emits, records, created } =
        state.signaling.with_hub(|h| h.broadcast(&peer, &recipients, &req.files, &broadcast_id, new_id))?;
    let target_json = serde_json::to_string(&req.target).unwrap_or_default();
    let files_json = serde_json::to_string(&req.files).unwrap_or_default();
    db::transfers::insert_broadcast(
        &state.db,
        &db::transfers::NewBroadcast {
            id: &broadcast_id,
            sender_id: member.peer.user_id,
            sender_username: &member.peer.username,
            target_json: &target_json,
            files_json: &files_json,
            total_bytes: i64::try_from(total).unwrap_or(i64::MAX),
            recipients: created.len() as i64,
        },
    )
    .await?;
    store(&state, records).await;
    deliver(&state, emits).await;
    for (id, _) in &created {
        super::schedule_expiry(&state, id.clone(), expiry);
    }
    let transfers: Vec<Value> = created.iter().map(|(id, to)| json!({ "transferId": id, "to": to })).collect();
    Ok(json!({ "broadcastId": broadcast_id, "transfers": transfers }))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn cookie_sockets_must_come_from_this_origin() {
        let mut h = HeaderMap::new();
        assert!(super::same_origin(&h), "no Origin: not a browser page");
        h.insert(header::HOST, HeaderValue::from_static("lab.example.edu:8443"));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://lab.example.edu:8443"));
        assert!(super::same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!super::same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://lab.example.edu:8443"));
        assert!(!super::same_origin(&h));
    }
}
