//! The browser client, embedded in the binary at build time (see `build.rs`): served from
//! memory with ETags, so an installed appliance needs no web root on disk.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::ApiError;
use crate::state::AppState;

pub struct WebAsset {
    pub path: &'static str,
    pub mime: &'static str,
    pub etag: &'static str,
    pub body: &'static [u8],
}

static ASSETS: &[WebAsset] = include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/{*path}", get(asset))
}

fn find(path: &str) -> Option<&'static WebAsset> {
    ASSETS.iter().find(|a| a.path == path)
}

async fn index(headers: HeaderMap) -> Response {
    match find("index.html") {
        Some(a) => serve(a, &headers),
        None => ApiError::not_found("the web client is not part of this build").into_response(),
    }
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match find(&path) {
        Some(a) if path != "index.html" => serve(a, &headers),
        _ => ApiError::not_found(format!("nothing at /{path}")).into_response(),
    }
}

fn serve(asset: &'static WebAsset, headers: &HeaderMap) -> Response {
    let etag = HeaderValue::from_static(asset.etag);
    // File names carry no content hash, so browsers revalidate every time (cheap: 304).
    let cache = HeaderValue::from_static("no-cache");
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == asset.etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.mime)),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_embedded_with_html_type() {
        let index = find("index.html").expect("web client built into the binary");
        assert!(index.mime.starts_with("text/html"));
        assert!(!index.body.is_empty());
        assert!(index.etag.starts_with('"') && index.etag.ends_with('"'));
    }
}
