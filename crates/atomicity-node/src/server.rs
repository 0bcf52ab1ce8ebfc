//! The two HTTP faces of a node: the peer API (signed envelopes, binary) and the local API
//! (JSON, bearer token, for the CLI and apps).

use std::sync::Arc;
use std::time::Duration;

use atomicity_core::{
    Amount, Asset, ChannelView, EnvelopeError, LedgerError, Message, PaymentOutcome, PaymentRecord,
    PaymentStatus, PublicKey, encode_replies, ledger::open_envelope, parse_key,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::actor::{ActorError, ActorHandle, Command};
use crate::api::{
    AddPeerRequest, BalanceRow, ErrorBody, HistoryRow, IdResponse, PayRequest, PayResponse,
    PeerRow, SetLineRequest,
};
use crate::peer::{Directory, ENVELOPE_PATH, Outbox, PeerClient};
use crate::{OFFER_TTL_SECS, unix_now};

/// Largest request body either API takes.
const MAX_BODY: usize = 1024 * 1024;
/// How long `pay` waits for the payee by default.
const DEFAULT_PAY_WAIT: Duration = Duration::from_secs(10);

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// This node's key.
    pub me: PublicKey,
    /// Its peer-facing URL.
    pub node_url: String,
    /// The ledger actor.
    pub actor: ActorHandle,
    /// Known peers.
    pub directory: Directory,
    /// Sends to peers.
    pub client: PeerClient,
    /// The local API token.
    pub token: Arc<String>,
    /// What waits to be delivered to peers.
    pub outbox: Arc<Outbox>,
}

/// An API error: status, stable code, words.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
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

impl From<ActorError> for ApiError {
    fn from(e: ActorError) -> ApiError {
        match e {
            ActorError::Ledger(e) => {
                let code = match &e {
                    LedgerError::UnknownPeer(_) => "unknown_peer",
                    LedgerError::NoLine { .. } => "no_line",
                    LedgerError::SelfPeer => "self_peer",
                    LedgerError::OverIssueLimit { .. } => "over_limit",
                    LedgerError::Offer(_) => "bad_payment",
                };
                let status = if matches!(e, LedgerError::UnknownPeer(_)) {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                ApiError::new(status, code, e.to_string())
            }
            ActorError::Storage(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", m),
            ActorError::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", e.to_string())
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The peer API router.
pub fn peer_router(state: AppState) -> Router {
    Router::new()
        .route(ENVELOPE_PATH, post(take_envelope))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// Gives the errors that axum makes itself (unknown route, wrong method, body too large) the
/// same JSON shape as ours.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
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

/// The local API router (every route needs the bearer token).
pub fn local_router(state: AppState) -> Router {
    Router::new()
        .route("/v1/id", get(id))
        .route("/v1/peers", get(list_peers).post(add_peer))
        .route("/v1/lines", post(set_line))
        .route("/v1/pay", post(pay))
        .route("/v1/balance", get(balance))
        .route("/v1/history", get(history))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

async fn require_token(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "bad_token", "wrong API token").into_response()
        }
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no_token",
            "missing API token (Authorization: Bearer <DIR/api.token>)",
        )
        .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn take_envelope(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let now = unix_now();
    let envelope = open_envelope(&state.me, &body, now).map_err(|e| {
        let code = match e {
            EnvelopeError::Malformed(_) => "malformed",
            EnvelopeError::BadSignature => "bad_signature",
            EnvelopeError::WrongRecipient => "wrong_recipient",
            EnvelopeError::Stale { .. } => "stale",
            EnvelopeError::UnknownPeer(_) => "unknown_peer",
        };
        ApiError::bad(code, e.to_string())
    })?;
    if !state.directory.contains(&envelope.from) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "unknown_peer",
            format!("{} is not a peer of this node", envelope.from),
        ));
    }
    state.outbox.peer_is_up(&envelope.from).await;
    let replies = state
        .actor
        .call(|reply| Command::Inbound {
            from: envelope.from,
            messages: envelope.messages,
            now,
            reply,
        })
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        encode_replies(&replies),
    )
        .into_response())
}

fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_content_type",
            "send application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad("malformed_json", e.to_string()))
}

fn key_arg(text: &str) -> ApiResult<PublicKey> {
    parse_key(text).map_err(|e| ApiError::bad("bad_key", e))
}

fn asset_arg(text: &str) -> ApiResult<Asset> {
    text.parse()
        .map_err(|e: atomicity_core::AmountError| ApiError::bad("bad_asset", e.to_string()))
}

fn amount_arg(asset: &Asset, text: &str) -> ApiResult<Amount> {
    asset
        .parse_amount(text)
        .map_err(|e| ApiError::bad("bad_amount", e.to_string()))
}

async fn id(State(state): State<AppState>) -> axum::Json<IdResponse> {
    axum::Json(IdResponse {
        key: state.me.to_z32(),
        node_url: state.node_url.clone(),
    })
}

async fn list_peers(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<PeerRow>>> {
    let mut peers: Vec<PeerRow> = state
        .actor
        .call(Command::Peers)
        .await?
        .into_iter()
        .map(|p| PeerRow {
            key: p.key.to_z32(),
            url: p.url,
        })
        .collect();
    peers.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(axum::Json(peers))
}

async fn add_peer(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<PeerRow>> {
    let req: AddPeerRequest = parse_json(&headers, &body)?;
    let key = key_arg(&req.key)?;
    if let Some(url) = &req.url {
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(ApiError::bad(
                "bad_url",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
    }
    state
        .actor
        .call(|reply| Command::AddPeer(key.clone(), req.url.clone(), reply))
        .await?;
    state.directory.set(key.clone(), req.url.clone());
    Ok(axum::Json(PeerRow {
        key: key.to_z32(),
        url: req.url,
    }))
}

async fn set_line(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<BalanceRow>> {
    let req: SetLineRequest = parse_json(&headers, &body)?;
    if req.accept.is_none() && req.issue.is_none() {
        return Err(ApiError::bad("no_limits", "give accept, issue or both"));
    }
    let peer = key_arg(&req.peer)?;
    let asset = asset_arg(&req.asset)?;
    let accept = req
        .accept
        .as_deref()
        .map(|a| amount_arg(&asset, a))
        .transpose()?;
    let issue = req
        .issue
        .as_deref()
        .map(|a| amount_arg(&asset, a))
        .transpose()?;
    state
        .actor
        .call(|reply| Command::SetLimits {
            peer: peer.clone(),
            asset: asset.clone(),
            accept,
            issue,
            reply,
        })
        .await?;
    let row = state
        .actor
        .call(Command::Balances)
        .await?
        .into_iter()
        .find(|v| v.peer == peer && v.asset == asset)
        .map(|v| balance_row(&v))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "line vanished",
            )
        })?;
    Ok(axum::Json(row))
}

async fn pay(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<PayResponse>> {
    let req: PayRequest = parse_json(&headers, &body)?;
    let peer = key_arg(&req.peer)?;
    let asset = asset_arg(&req.asset)?;
    let amount = amount_arg(&asset, &req.amount)?;
    let wait = req
        .wait_ms
        .map_or(DEFAULT_PAY_WAIT, Duration::from_millis)
        .min(Duration::from_secs(300));
    if state.directory.contains(&peer) && state.directory.url(&peer).is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_url",
            format!("no URL known for {peer}; add one with `atomicity peer add {peer} --url URL`"),
        ));
    }
    let payment_id: [u8; 32] = rand::random();
    let now = unix_now();
    let offer = state
        .actor
        .call(|reply| Command::Pay {
            peer: peer.clone(),
            asset,
            amount,
            payment_id,
            memo: req.memo.clone(),
            now,
            expires_at: now + OFFER_TTL_SECS,
            reply,
        })
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut backoff = Duration::from_millis(50);
    let respond = |status: &str, reason: Option<String>| {
        axum::Json(PayResponse {
            payment_id: hex::encode(payment_id),
            status: status.to_string(),
            reason,
        })
    };
    loop {
        let attempt = state
            .client
            .exchange(&peer, vec![Message::Offer(offer.clone())])
            .await;
        let why = match attempt {
            Ok(outcomes) => match outcomes.into_iter().next() {
                Some(Ok(Some(PaymentOutcome::Completed))) => return Ok(respond("completed", None)),
                Some(Ok(Some(PaymentOutcome::Refused(why)))) => {
                    return Ok(respond("failed", Some(why)));
                }
                Some(Err(rejection)) => format!("the payee cannot take it yet: {rejection}"),
                Some(Ok(None)) | None => "the payee did not answer the offer".to_string(),
            },
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() + backoff > deadline {
            return Ok(respond(
                "pending",
                Some(format!("{why}; the node keeps retrying")),
            ));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn balance_row(v: &ChannelView) -> BalanceRow {
    BalanceRow {
        peer: v.peer.to_z32(),
        asset: v.asset.to_string(),
        net: v.asset.format_signed(v.net),
        accept: v.asset.format(v.limits.accept),
        issue: v.asset.format(v.limits.issue),
        pending_in: v.asset.format(v.pending_in),
        pending_out: v.asset.format(v.pending_out),
        out_seq: v.out_seq,
        in_seq: v.in_seq,
        out_total: v.asset.format_total(v.out_total),
        in_total: v.asset.format_total(v.in_total),
    }
}

async fn balance(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<BalanceRow>>> {
    let views = state.actor.call(Command::Balances).await?;
    Ok(axum::Json(views.iter().map(balance_row).collect()))
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

fn history_row(p: &PaymentRecord) -> HistoryRow {
    HistoryRow {
        payment_id: hex::encode(p.payment_id),
        direction: match p.dir {
            atomicity_core::Direction::Out => "sent".into(),
            atomicity_core::Direction::In => "received".into(),
        },
        peer: p.peer.to_z32(),
        asset: p.asset.to_string(),
        amount: p.asset.format(p.amount),
        status: p.status.as_str().to_string(),
        reason: match &p.status {
            PaymentStatus::Failed(why) => Some(why.clone()),
            _ => None,
        },
        memo: p.memo.clone(),
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

async fn history(
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<Vec<HistoryRow>>> {
    let Query(query) = query.map_err(|e| ApiError::bad("bad_query", e.body_text()))?;
    let limit = query.limit.unwrap_or(1000).min(100_000);
    let records = state
        .actor
        .call(|reply| Command::History(limit, reply))
        .await?;
    Ok(axum::Json(records.iter().map(history_row).collect()))
}
