//! The HTTPS listener's guard around every accepted connection: the per-address cap
//! (`http.max_connections_per_address`) and the idle deadline (`http.idle_timeout_secs`).
//!
//! The other deadlines are the libraries' own knobs, set in `server`: the TLS handshake
//! (axum-server's `handshake_timeout`), the first request (`first_request_timeout`) and
//! every later request head (hyper's `header_read_timeout`), all `http.header_timeout_secs`.
//! hyper has no idle deadline of its own that spares long requests and WebSockets, so
//! [`GuardedAcceptor`] wraps axum-server's TLS acceptor:
//!
//! - before the handshake, it takes an [`AddressSlot`] for the client's address or closes
//!   the connection at once (counted in `labbeam_http_connections_refused_total`);
//! - the stream becomes a [`Guarded`] stream that holds the slot for the connection's life
//!   and closes the connection once nothing has moved on it (no byte read or written) for
//!   the idle timeout, unless a request is being answered or the connection was upgraded;
//! - the connection's service becomes a [`Tracked`] service that tells the stream both:
//!   a request is in hand from the call until its response head is ready (a long poll or
//!   a slow handler is not idle), and a `101 Switching Protocols` answer marks the
//!   connection upgraded (Socket.IO's WebSocket is watched by its own pings, every 25 s).
//!
//! So the deadline covers an idle keep-alive connection, a request head that stopped
//! arriving, and a client that stopped reading its response.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Request, Response, StatusCode};
use axum_server::accept::Accept;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::conn_limit::{AddressSlot, LogEvery, PerAddress};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Wraps the TLS acceptor `A` with the per-address cap and the idle deadline.
#[derive(Clone)]
pub struct GuardedAcceptor<A> {
    inner: A,
    book: Arc<PerAddress>,
    idle: Duration,
    refused: Counter,
    log: Arc<LogEvery>,
}

impl<A> GuardedAcceptor<A> {
    pub fn new(inner: A, book: Arc<PerAddress>, idle: Duration, refused: Counter) -> Self {
        Self { inner, book, idle, refused, log: Arc::new(LogEvery::new(Duration::from_secs(60))) }
    }
}

impl<A, S> Accept<TcpStream, S> for GuardedAcceptor<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Guarded<A::Stream>;
    type Service = Tracked<A::Service>;
    type Future = BoxFuture<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let Some(slot) = self.book.take(peer.ip()) else {
            self.refused.inc();
            if let Some(not_logged) = self.log.check() {
                tracing::warn!(
                    client = %peer.ip(),
                    limit = self.book.limit(),
                    refused_since_last_line = not_logged,
                    "HTTPS connection refused: this address holds http.max_connections_per_address connections"
                );
            }
            // Dropping the stream closes the connection.
            return Box::pin(std::future::ready(Err(io::Error::other("too many connections from this address"))));
        };
        let handshake = self.inner.accept(stream, service);
        let idle = self.idle;
        Box::pin(async move {
            let (stream, service) = handshake.await?;
            let activity = Arc::new(Activity::default());
            let stream = Guarded {
                inner: stream,
                _slot: slot,
                activity: Arc::clone(&activity),
                idle,
                last: Instant::now(),
                timer: None,
            };
            Ok((stream, Tracked { inner: service, activity }))
        })
    }
}

/// What the service knows and the stream needs: requests in hand, and whether the
/// connection was upgraded.
#[derive(Default)]
struct Activity {
    answering: AtomicUsize,
    upgraded: AtomicBool,
}

/// A connection's stream: holds its address slot, and fails with `TimedOut` once nothing
/// has moved for the idle timeout while no request is in hand and it is not upgraded.
pub struct Guarded<S> {
    inner: S,
    _slot: AddressSlot,
    activity: Arc<Activity>,
    idle: Duration,
    /// When a byte last moved either way.
    last: Instant,
    /// Armed only while the connection is waiting; dropped once it is upgraded.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Guarded<S> {
    fn moved(&mut self) {
        self.last = Instant::now();
    }

    /// Called when the inner stream is not ready: an error once the silence has lasted
    /// the idle timeout and nothing excuses it, else Pending (with a wake-up at the deadline).
    fn poll_silence(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.activity.upgraded.load(Ordering::Relaxed) {
            self.timer = None;
            return Poll::Pending;
        }
        if self.activity.answering.load(Ordering::Relaxed) > 0 {
            return Poll::Pending;
        }
        let deadline = self.last + self.idle;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle")),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_silence(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if result.as_ref().is_ok_and(|n| *n > 0) {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_silence(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                if result.as_ref().is_ok_and(|n| *n > 0) {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_silence(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.poll_silence(cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.poll_silence(cx).map(Err),
        }
    }
}

/// A connection's service: tells its [`Guarded`] stream when a request is in hand and
/// when the connection was upgraded.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for Tracked<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let answering = Answering::start(Arc::clone(&self.activity));
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            if result.as_ref().is_ok_and(|r| r.status() == StatusCode::SWITCHING_PROTOCOLS) {
                answering.0.upgraded.store(true, Ordering::Relaxed);
            }
            drop(answering);
            result
        })
    }
}

/// One request in hand; also ended when its response future is dropped unfinished.
struct Answering(Arc<Activity>);

impl Answering {
    fn start(activity: Arc<Activity>) -> Self {
        activity.answering.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const IDLE: Duration = Duration::from_millis(300);

    fn guarded(stream: tokio::io::DuplexStream, activity: &Arc<Activity>) -> Guarded<tokio::io::DuplexStream> {
        let book = PerAddress::new(1, Vec::new());
        let slot = book.take("192.0.2.1".parse().unwrap()).unwrap();
        Guarded {
            inner: stream,
            _slot: slot,
            activity: Arc::clone(activity),
            idle: IDLE,
            last: Instant::now(),
            timer: None,
        }
    }

    #[tokio::test]
    async fn a_silent_connection_fails_after_the_idle_timeout_and_traffic_postpones_it() {
        let activity = Arc::new(Activity::default());
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = guarded(server, &activity);
        let mut buf = [0u8; 8];
        tokio::time::sleep(IDLE * 2 / 3).await;
        client.write_all(b"hi").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 2);
        let start = Instant::now();
        let e = server.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let waited = start.elapsed();
        assert!(waited >= IDLE - Duration::from_millis(20) && waited < IDLE * 3, "{waited:?}");
    }

    #[tokio::test]
    async fn a_request_in_hand_or_an_upgrade_excuses_silence() {
        let activity = Arc::new(Activity::default());
        let (client, server) = tokio::io::duplex(64);
        let mut server = guarded(server, &activity);
        let mut buf = [0u8; 8];
        let answering = Answering::start(Arc::clone(&activity));
        let read = tokio::time::timeout(IDLE * 3, server.read(&mut buf)).await;
        assert!(read.is_err(), "no idle error with a request in hand");
        drop(answering);
        let e = server.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        activity.upgraded.store(true, Ordering::Relaxed);
        let (_client2, server2) = tokio::io::duplex(64);
        let mut upgraded = guarded(server2, &activity);
        let read = tokio::time::timeout(IDLE * 3, upgraded.read(&mut buf)).await;
        assert!(read.is_err(), "an upgraded connection is never idle-closed");
        drop(client);
    }
}
