//! What the witness and watchtower HTTP services share: the JSON error shape, the middleware
//! that gives axum's own errors that shape, and data-directory files.

use std::fs;
use std::io::Write;
use std::path::Path;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The JSON body of every error.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable snake_case code.
    pub code: String,
    /// Words for people.
    pub error: String,
}

/// An API error: status, stable code, words.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_string(),
            error: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Gives the errors axum makes itself (unknown route, wrong method, body too large) the JSON
/// shape of [`ErrorBody`].
pub(crate) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    // JSON already, or a body a protocol prescribes (tlog-witness's `text/x.tlog.size`).
    let keep = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json")
                || v.as_bytes().starts_with(b"text/x.tlog")
        });
    if !(status.is_client_error() || status.is_server_error()) || keep {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        _ => "error",
    };
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    ApiError::new(status, code, reason).into_response()
}

/// Writes `dir/name` atomically (temporary file, fsync, rename, fsync of the directory);
/// `private` files are mode 0600.
pub(crate) fn write_file(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    private: bool,
) -> std::io::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `dir` (mode 0700) if needed and takes the exclusive lock on `dir/lock_name`;
/// `Ok(None)` if another process holds it.
pub(crate) fn lock_dir(dir: &Path, lock_name: &str) -> std::io::Result<Option<fs::File>> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(lock_name))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Binds `addr` (port 0 picks a free one); returns the listener and its `http://` URL.
pub(crate) async fn bind(
    addr: std::net::SocketAddr,
) -> std::io::Result<(tokio::net::TcpListener, String)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((listener, url))
}

/// Serves `router` on `listener` until `true` is sent on the returned channel; requests in
/// progress then finish before the task ends.
pub(crate) fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (shutdown, mut stop) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!("server stopped: {e}");
        }
    });
    (shutdown, server)
}

/// The query of `GET /v1/identity`.
#[derive(serde::Deserialize)]
pub(crate) struct ChallengeQuery {
    challenge: String,
}

/// The `?challenge=` query as a handler takes it (a bad one is answered by [`parse_challenge`]).
pub(crate) type ChallengeParam =
    Result<axum::extract::Query<ChallengeQuery>, axum::extract::rejection::QueryRejection>;

/// Reads `?challenge=<64 hex>` (32 random bytes chosen by the client).
pub(crate) fn parse_challenge(query: ChallengeParam) -> Result<[u8; 32], ApiError> {
    let bad = || {
        ApiError::bad(
            "bad_challenge",
            "challenge must be 64 hex characters (32 bytes)",
        )
    };
    let axum::extract::Query(query) = query.map_err(|_| bad())?;
    let mut challenge = [0u8; 32];
    if query.challenge.len() != 64
        || hex::decode_to_slice(&query.challenge, &mut challenge).is_err()
    {
        return Err(bad());
    }
    Ok(challenge)
}
