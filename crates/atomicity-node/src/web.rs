//! The web wallet, served by the local API listener (docs/wallet.md).
//!
//! - `GET /wallet`, `/wallet/app.js`, `/wallet/app.css`: static files embedded in the binary.
//!   They hold no secrets and need no token; the page reads the token from its URL's fragment
//!   (`/wallet#token=…`, never sent to the server) and sends it as `Authorization: Bearer`
//!   with every API call, like the CLI.
//! - `GET /v1/requests/{id}/events` (token): a payment request's progress as server-sent
//!   events, one now and one after every change, until it is no longer open.
//! - `POST /v1/qr.svg` (token): any short text as an SVG QR code (invoices).
//! - Every request to the local API that carries an `Origin` header other than the API's own
//!   is refused with `403 foreign_origin`, and no CORS header is ever sent: a page of another
//!   origin can neither read the API nor make it act.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::watch;

use crate::api::RequestRow;
use crate::request::request_row;
use crate::server::{ApiError, ApiResult, AppState, parse_json};
use crate::unix_now;

/// The wallet page.
const INDEX_HTML: &str = include_str!("../web/index.html");
/// Its script.
const APP_JS: &str = include_str!("../web/app.js");
/// Its style sheet.
const APP_CSS: &str = include_str!("../web/app.css");
/// Longest text `POST /v1/qr.svg` encodes.
const MAX_QR_TEXT: usize = 2048;
/// How often an event stream looks again without a change (expiry, keep-alive).
const EVENTS_RECHECK: Duration = Duration::from_secs(5);

/// The local API as served: the API routes of [`crate::server::local_router`], the wallet's
/// files and routes, every request checked for its origin. `api_addr` is the listener's
/// address (the API's own origin is `http://<api_addr>`, and `http://localhost:<port>` on
/// loopback); `shutdown` ends open event streams when the node stops.
pub fn local_app(state: AppState, api_addr: SocketAddr, shutdown: watch::Receiver<bool>) -> Router {
    let protected = Router::new()
        .route("/v1/requests/{id}/events", get(request_events))
        .route("/v1/qr.svg", post(qr_svg))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::server::require_token,
        ))
        .with_state(state.clone());
    let files = Router::new()
        .route(
            "/wallet",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/wallet/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/wallet/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/wallet/app.css",
            get(|| async { page(APP_CSS, "text/css; charset=utf-8") }),
        );
    let origins = Origins::new(api_addr);
    // The API's router goes last: merging keeps the last router's fallback, and its fallback
    // (an unknown route) answers like before: token first, then a JSON 404.
    protected
        .merge(files)
        .merge(crate::server::local_router(state))
        .layer(axum::Extension(Stopping(shutdown)))
        .layer(axum::middleware::from_fn(move |request, next| {
            let origins = origins.clone();
            async move { origins.check(request, next).await }
        }))
}

/// Ends event streams when the node stops (graceful shutdown waits for open connections).
#[derive(Clone)]
struct Stopping(watch::Receiver<bool>);

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            // The page loads nothing from elsewhere, and may not be framed by another page.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' blob: data:; \
                     style-src 'self'; script-src 'self'; connect-src 'self'; \
                     frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                ),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The origins the local API answers.
#[derive(Clone)]
struct Origins {
    own: Vec<String>,
    any_host: bool,
    port: u16,
}

impl Origins {
    fn new(addr: SocketAddr) -> Origins {
        let port = addr.port();
        let mut own = vec![format!("http://{addr}")];
        if addr.ip().is_loopback() {
            own.push(format!("http://localhost:{port}"));
        }
        Origins {
            own,
            any_host: addr.ip().is_unspecified(),
            port,
        }
    }

    /// Whether a request with these headers comes from no page, or from the API's own.
    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if self.own.iter().any(|o| o == origin) {
            return true;
        }
        // Listening on every address: the page's own origin is whatever host it was loaded
        // from, on this port.
        self.any_host
            && headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .is_some_and(|host| {
                    origin == format!("http://{host}")
                        && host.rsplit_once(':').map(|(_, p)| p) == Some(&self.port.to_string())
                })
    }

    async fn check(
        &self,
        request: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> Response {
        if self.allows(request.headers()) {
            return next.run(request).await;
        }
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())
            .unwrap_or_default();
        let what = if request.method() == Method::OPTIONS {
            "cross-origin request"
        } else {
            "request"
        };
        ApiError::new(
            StatusCode::FORBIDDEN,
            "foreign_origin",
            format!(
                "{what} from the page {origin} refused: the local API answers only its own \
                 pages ({}) and programs that send no Origin",
                self.own.join(", ")
            ),
        )
        .into_response()
    }
}

/// `GET /v1/requests/{id}/events`: `event: request` with the request's row now, and again
/// after every change; ends once the request is filled, expired or cancelled.
async fn request_events(
    State(state): State<AppState>,
    stopping: Option<axum::Extension<Stopping>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: atomicity_core::request::RequestId = id
        .parse()
        .map_err(|_| ApiError::bad("bad_request_id", "a request id is 32 hex digits"))?;
    let first = row(&state, &id)
        .await
        .ok_or_else(|| ApiError::from(crate::request::RequestsError::Unknown(id)))?;
    let changes = state.requests.subscribe();
    let stop = match stopping {
        Some(axum::Extension(Stopping(rx))) => rx,
        None => watch::channel(false).1,
    };
    let stream = events(state, id, first, changes, stop);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn row(state: &AppState, id: &atomicity_core::request::RequestId) -> Option<RequestRow> {
    state
        .requests
        .get(id)
        .await
        .map(|e| request_row(&e, unix_now()))
}

/// Where the stream is: the row sent last (none yet), and whether it ended.
struct Cursor {
    state: AppState,
    id: atomicity_core::request::RequestId,
    next: Option<RequestRow>,
    last: Option<String>,
    changes: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
    done: bool,
}

fn events(
    state: AppState,
    id: atomicity_core::request::RequestId,
    first: RequestRow,
    changes: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let cursor = Cursor {
        state,
        id,
        next: Some(first),
        last: None,
        changes,
        stop,
        done: false,
    };
    futures_util::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        loop {
            if let Some(row) = c.next.take() {
                let json = serde_json::to_string(&row).unwrap_or_default();
                if c.last.as_ref() != Some(&json) {
                    c.done = row.status != "open";
                    let out = Event::default().event("request").data(&json);
                    c.last = Some(json);
                    return Some((Ok(out), c));
                }
            }
            if *c.stop.borrow() {
                return None;
            }
            tokio::select! {
                changed = c.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = c.stop.changed() => return None,
                () = tokio::time::sleep(EVENTS_RECHECK) => {}
            }
            c.next = Some(row(&c.state, &c.id).await?);
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QrBody {
    text: String,
}

/// `POST /v1/qr.svg` with `{"text"}`: the text as an SVG QR code.
async fn qr_svg(headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let QrBody { text } = parse_json(&headers, &body)?;
    if text.is_empty() || text.len() > MAX_QR_TEXT {
        return Err(ApiError::bad(
            "bad_qr_text",
            format!("a QR code holds 1 to {MAX_QR_TEXT} bytes of text"),
        ));
    }
    let svg = crate::request::qr_svg(&text)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_qr_text", e))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn only_the_apis_own_origin_or_none_is_allowed() {
        let o = Origins::new("127.0.0.1:4000".parse().expect("addr"));
        assert!(o.allows(&headers(&[])));
        assert!(o.allows(&headers(&[("origin", "http://127.0.0.1:4000")])));
        assert!(o.allows(&headers(&[("origin", "http://localhost:4000")])));
        for bad in [
            "http://127.0.0.1:4001",
            "http://evil.example",
            "null",
            "https://127.0.0.1:4000",
            "http://127.0.0.1:4000.evil.example",
        ] {
            assert!(!o.allows(&headers(&[("origin", bad)])), "{bad}");
        }
        // Host does not matter on a loopback listener (DNS rebinding).
        assert!(!o.allows(&headers(&[
            ("origin", "http://evil.example:4000"),
            ("host", "evil.example:4000")
        ])));
        let any = Origins::new("0.0.0.0:4000".parse().expect("addr"));
        assert!(any.allows(&headers(&[
            ("origin", "http://192.168.1.5:4000"),
            ("host", "192.168.1.5:4000")
        ])));
        assert!(!any.allows(&headers(&[
            ("origin", "http://192.168.1.5:4001"),
            ("host", "192.168.1.5:4000")
        ])));
    }
}
