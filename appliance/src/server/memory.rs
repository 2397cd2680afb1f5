//! Process-wide memory measures: what keeps the resident memory per connection close to
//! what the connection really holds. They concern every long-lived connection of the
//! process, not one protocol, so they live with the server that wires them in.
//!
//! - `detach_request`: hyper parses a request's URI and header values as slices of its read
//!   buffer, and engineioxide keeps the request parts for the whole life of a Socket.IO
//!   connection, so every socket kept hyper's whole read buffer alive. Copying them out of it
//!   first removed the largest single part of what a connection cost (heaptrack figures in
//!   `bench/signaling/README.md`).
//! - `release_free_memory_every`: every connection allocates transient buffers (TLS
//!   handshake, the HTTP request, the first frames) that glibc keeps mapped after they are
//!   freed, between the connection's lasting allocations; without `malloc_trim` they stayed
//!   in the resident set, well above the live heap per connection (figures, and the
//!   allocators compared, in `bench/signaling/README.md`).

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Copies the URI and header values of a Socket.IO request out of hyper's read buffer.
pub async fn detach_request(mut req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/socket.io/") {
        detach_parts(&mut req);
    }
    next.run(req).await
}

fn detach_parts<B>(req: &mut axum::http::Request<B>) {
    use axum::http::{HeaderMap, HeaderValue, Uri};
    let mut headers = HeaderMap::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name.clone(), copy);
    }
    *req.headers_mut() = headers;
    if let Ok(uri) = req.uri().to_string().parse::<Uri>() {
        // axum keeps a copy of the URI in the request's extensions too.
        if let Some(axum::extract::OriginalUri(original)) = req.extensions_mut().get_mut() {
            *original = uri.clone();
        }
        *req.uri_mut() = uri;
    }
}

/// Every `every`, gives the pages of freed heap memory back to the system.
pub async fn release_free_memory_every(every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        release_free_memory();
    }
}

fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of glibc's own arenas; it takes their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn detached_parts_are_equal_and_own_their_bytes() {
        // Like hyper: the URI and the header values are slices of the buffer the head was read into.
        let text = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nhost: lab\r\n";
        let head = bytes::Bytes::copy_from_slice(text.as_bytes());
        let uri_at = text.find('/').unwrap();
        let uri_bytes = head.slice(uri_at..text.find(" HTTP").unwrap());
        let host_at = text.find("lab").unwrap();
        let host = head.slice(host_at..host_at + 3);
        let mut req = axum::http::Request::builder()
            .uri(axum::http::Uri::from_maybe_shared(uri_bytes).unwrap())
            .header("host", axum::http::HeaderValue::from_maybe_shared(host).unwrap())
            .header("cookie", "a=b")
            .header("cookie", "c=d")
            .body(())
            .unwrap();
        let original = axum::extract::OriginalUri(req.uri().clone());
        req.extensions_mut().insert(original);
        let before = req.clone();
        super::detach_parts(&mut req);
        assert_eq!(req.uri(), before.uri());
        assert_eq!(req.headers(), before.headers());
        assert_eq!(req.headers().get_all("cookie").iter().count(), 2);
        // Only `head` still holds the buffer: nothing in the request shares it any more.
        drop(before);
        assert!(head.is_unique());
    }
}
