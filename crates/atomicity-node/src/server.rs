//! The two HTTP faces of a node: the peer API (signed envelopes, binary) and the local API
//! (JSON, bearer token, for the CLI and apps).

use std::sync::Arc;
use std::time::Duration;

// Mounted here (rather than in lib.rs) while lib.rs is being edited elsewhere; the module
// names its dependencies by `crate::` paths, so it can move to `crate::published` unchanged.

use atomicity_core::{
    Amount, Asset, ChannelView, EnvelopeError, FeePolicy, HashlockRecord, HashlockRole, Hop,
    Invoice, LedgerError, Message, NewHashlock, PaymentOutcome, PaymentRecord, PaymentStatus,
    PublicKey, RoutePart, VerifiedRoots, WitnessCondition, WitnessTerms, encode_replies,
    ledger::open_envelope, parse_key, payment_hash,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::actor::{ActorError, ActorHandle, Command, RoutedPay};
use crate::api::{
    AddEndpointRequest, AddPeerRequest, BalanceRow, EndpointRow, ErrorBody, HistoryRow, IdResponse,
    InvoiceRequest, InvoiceRow, PayInvoiceRequest, PayRequest, PayResponse, PeerRow, QuoteHop,
    QuoteRequest, QuoteResponse, RefreshResponse, SetLineRequest,
};
use crate::peer::{Directory, ENVELOPE_PATH, Outbox, PeerClient, QUOTE_PATH};
use crate::published::{self, EndpointError, PublishError, RefreshError};
use crate::publisher::{CosignerRequirement, KnownWitness};
use crate::witness_client::WitnessClient;
use crate::{OFFER_TTL_SECS, unix_now};
use atomicity_core::published::{
    CHANNELS_PATH, EndpointId, PAYKIT_ENDPOINTS_DIR, ROUTERS_PATH, STATES_DIR, WITNESSES_PATH,
    endpoint_path,
};

/// Largest request body either API takes: an envelope as large as the protocol allows.
const MAX_BODY: usize = atomicity_core::MAX_ENVELOPE_LEN;
/// How long `pay` waits for the payee by default.
const DEFAULT_PAY_WAIT: Duration = Duration::from_secs(10);
/// How long a routed payment is waited for by default.
const DEFAULT_ROUTED_WAIT: Duration = Duration::from_secs(30);
/// Default seconds from an invoice (or a payer-published payment) to its hard deadline.
pub(crate) const DEFAULT_EXPIRY_SECS: u64 = 600;
/// Most parts of one multi-path payment.
const MAX_PARTS: usize = 16;

/// What the handlers share: cheap to clone (axum clones it for every request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Shares `shared` with every handler.
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The node's services, as the handlers see them ([`AppState`]).
pub struct Shared {
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
    /// The witness logs this node publishes on.
    pub witnesses: Arc<Vec<KnownWitness>>,
    /// The cosigners its invoices require on those logs' checkpoints.
    pub cosigning: Arc<CosignerRequirement>,
    /// The routers it asks when a payment names no route.
    pub routers: Arc<crate::routers::Routers>,
    /// Payment records as they change.
    pub payments: Arc<crate::waiters::PaymentWaiters>,
    /// Recent route quotes.
    pub quotes: Arc<QuoteCache>,
    /// Signs and caches the public documents (`/pub/…`); keeps the user's Paykit endpoints.
    pub published: Arc<published::Publisher>,
    /// The Lightning wallet and network, for settlements and swaps.
    pub lightning: Arc<crate::settle::Lightning>,
    /// My web of trust: tags, blocks, degree rules, the limits they set.
    pub trust: Arc<crate::trust::Trust>,
    /// My payment requests and their fills.
    pub requests: Arc<crate::request::Requests>,
    /// The delegated payment accounts this node issued.
    pub delegations: Arc<crate::delegate::Delegations>,
}

/// Quotes of recent routes, kept for [`QUOTE_TTL`]: a payer that pays the same route again
/// (or a hop asked again) need not ask every hop again. A stale quote costs nothing worse
/// than a refusal: every hop checks its fee when the IOU arrives.
#[derive(Default)]
pub struct QuoteCache(
    std::sync::Mutex<std::collections::HashMap<QuoteKey, (tokio::time::Instant, Vec<Hop>)>>,
);

type QuoteKey = (Vec<PublicKey>, Asset, Amount);

/// How long a route quote is reused.
const QUOTE_TTL: Duration = Duration::from_secs(5);
/// Most quotes kept.
const QUOTE_CACHE_MAX: usize = 4096;

impl QuoteCache {
    fn get(&self, key: &QuoteKey) -> Option<Vec<Hop>> {
        let quotes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        quotes
            .get(key)
            .filter(|(at, _)| at.elapsed() < QUOTE_TTL)
            .map(|(_, hops)| hops.clone())
    }

    fn put(&self, key: QuoteKey, hops: Vec<Hop>) {
        let mut quotes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if quotes.len() >= QUOTE_CACHE_MAX {
            quotes.retain(|_, (at, _)| at.elapsed() < QUOTE_TTL);
            if quotes.len() >= QUOTE_CACHE_MAX {
                quotes.clear();
            }
        }
        quotes.insert(key, (tokio::time::Instant::now(), hops));
    }
}

/// An API error: status, stable code, words.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
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

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
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
                    LedgerError::BadRoute(_) => "bad_route",
                    LedgerError::BadCondition(_) => "bad_condition",
                    LedgerError::UnknownHash(_) => "unknown_hash",
                    LedgerError::Settlement(_) => "settlement",
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

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> ApiError {
        match e {
            PublishError::Actor(e) => e.into(),
            PublishError::Storage(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", m)
            }
            PublishError::Sign(e) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> ApiError {
        let (status, code) = match &e {
            EndpointError::BadId(_) => (StatusCode::BAD_REQUEST, "bad_endpoint_id"),
            EndpointError::Reserved(_) => (StatusCode::BAD_REQUEST, "reserved_endpoint"),
            EndpointError::BadValue(_) => (StatusCode::BAD_REQUEST, "bad_endpoint_value"),
            EndpointError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "endpoint_too_large"),
            EndpointError::TooMany => (StatusCode::UNPROCESSABLE_ENTITY, "too_many_endpoints"),
            EndpointError::Unknown(_) => (StatusCode::NOT_FOUND, "unknown_endpoint"),
            EndpointError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> ApiError {
        let (status, code) = match e {
            RefreshError::Actor(e) => return e.into(),
            RefreshError::UnknownPeer(_) => (StatusCode::NOT_FOUND, "unknown_peer"),
            RefreshError::NoLine { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "no_line"),
            RefreshError::NoUrl(_) => (StatusCode::UNPROCESSABLE_ENTITY, "no_url"),
            RefreshError::Unreachable { .. } => (StatusCode::BAD_GATEWAY, "peer_unreachable"),
            RefreshError::NoState(_) => (StatusCode::NOT_FOUND, "no_published_state"),
            RefreshError::BadDocument(_) => (StatusCode::BAD_GATEWAY, "bad_document"),
            RefreshError::Stale { .. } => (StatusCode::CONFLICT, "stale_state"),
            RefreshError::Rejected { .. } => (StatusCode::CONFLICT, "state_rejected"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The peer API router.
pub fn peer_router(state: AppState) -> Router {
    Router::new()
        .route(ENVELOPE_PATH, post(take_envelope))
        .route(QUOTE_PATH, post(quote))
        .route(PAYKIT_ENDPOINTS_DIR, get(endpoint_listing))
        .route(
            &format!("{PAYKIT_ENDPOINTS_DIR}{{id}}"),
            get(endpoint_document),
        )
        .route(CHANNELS_PATH, get(channels_document))
        .route(WITNESSES_PATH, get(witnesses_document))
        .route(ROUTERS_PATH, get(routers_document))
        .route(
            atomicity_core::published::CAPABILITIES_PATH,
            get(capabilities_document),
        )
        .route(atomicity_core::trust::TRUST_PATH, get(trust_document))
        .route(
            &format!("{}{{id}}", atomicity_core::request::REQUESTS_DIR),
            get(crate::request_api::document),
        )
        .route("/peer/v1/requests/{id}", get(crate::request_api::progress))
        .route(
            "/peer/v1/requests/{id}/fill",
            post(crate::request_api::fill),
        )
        .route(
            "/peer/v1/requests/{id}/fills/{fill}/preimage",
            post(crate::request_api::preimage),
        )
        .route(
            "/peer/v1/requests/{id}/fills/{fill}/release",
            post(crate::request_api::release),
        )
        .route(
            crate::delegate::DELEGATED_PAY_PATH,
            post(crate::delegate_api::pay),
        )
        .route(
            &format!("{STATES_DIR}{{holder}}/{{asset}}"),
            get(state_document),
        )
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
        .route("/v1/lines/{peer}/refresh", post(refresh_line))
        .route("/v1/endpoints", get(list_endpoints).post(set_endpoint))
        .route("/v1/endpoints/{id}", delete(remove_endpoint))
        .route("/v1/pay", post(pay))
        .route("/v1/invoices", post(new_invoice))
        .route("/v1/invoices/pay", post(pay_invoice))
        .route("/v1/invoices/{hash}", get(show_invoice))
        .route("/v1/balance", get(balance))
        .route("/v1/history", get(history))
        .route(
            "/v1/settlements",
            get(crate::settle_api::list).post(crate::settle_api::request),
        )
        .route("/v1/settlements/{id}", get(crate::settle_api::show))
        .route("/v1/settlements/{id}/pay", post(crate::settle_api::pay))
        .route(
            "/v1/settlements/{id}/confirm",
            post(crate::settle_api::confirm),
        )
        .route(
            "/v1/settlements/{id}/refuse",
            post(crate::settle_api::refuse),
        )
        .route(
            "/v1/ln/pay-via-credit",
            post(crate::settle_api::pay_via_credit),
        )
        .route(
            "/v1/witnesses/policy",
            get(crate::trust_api::witness_policy),
        )
        .route(
            "/v1/witnesses/{change}",
            post(crate::trust_api::witness_change),
        )
        .route(
            "/v1/requests",
            get(crate::request_api::list).post(crate::request_api::create),
        )
        .route("/v1/requests/pay", post(crate::request_api::pay))
        .route("/v1/requests/{id}", get(crate::request_api::show))
        .route("/v1/requests/{id}/qr.svg", get(crate::request_api::qr_svg))
        .route("/v1/requests/{id}/cancel", post(crate::request_api::cancel))
        .route(
            "/v1/requests/{id}/fills/{fill}/confirm",
            post(crate::request_api::confirm),
        )
        .route(
            "/v1/requests/{id}/fills/{fill}/reject",
            post(crate::request_api::reject),
        )
        .route("/v1/trust", get(crate::trust_api::show))
        .route("/v1/trust/tag", post(crate::trust_api::tag))
        .route("/v1/trust/untag", post(crate::trust_api::untag))
        .route("/v1/trust/block", post(crate::trust_api::block))
        .route("/v1/trust/unblock", post(crate::trust_api::unblock))
        .route("/v1/trust/degrees", post(crate::trust_api::set_degree))
        .route(
            "/v1/trust/degrees/remove",
            post(crate::trust_api::remove_degree),
        )
        .route(
            "/v1/delegations",
            get(crate::delegate_api::list).post(crate::delegate_api::create),
        )
        .route(
            "/v1/delegations/{id}/revoke",
            post(crate::delegate_api::revoke),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

pub(crate) async fn require_token(
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
    // Signatures are checked here, on the network threads, rather than on the ledger's one.
    let mut roots = VerifiedRoots::default();
    for message in &envelope.messages {
        message.precheck(&mut roots);
    }
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

pub(crate) fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
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

pub(crate) fn key_arg(text: &str) -> ApiResult<PublicKey> {
    parse_key(text).map_err(|e| ApiError::bad("bad_key", e))
}

pub(crate) fn asset_arg(text: &str) -> ApiResult<Asset> {
    text.parse()
        .map_err(|e: atomicity_core::AmountError| ApiError::bad("bad_asset", e.to_string()))
}

pub(crate) fn amount_arg(asset: &Asset, text: &str) -> ApiResult<Amount> {
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
    let fee_change = req.fee_base.is_some() || req.fee_ppm.is_some();
    if req.accept.is_none() && req.issue.is_none() && !fee_change {
        return Err(ApiError::bad(
            "no_limits",
            "give accept, issue, a fee or several",
        ));
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
    let fee_base = req
        .fee_base
        .as_deref()
        .map(|a| amount_arg(&asset, a))
        .transpose()?;
    if req.fee_ppm.is_some_and(|ppm| ppm > 1_000_000) {
        return Err(ApiError::bad(
            "bad_fee",
            "fee_ppm is at most 1000000 (100%)",
        ));
    }
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
    if fee_change {
        let held = state
            .actor
            .call(|r| Command::Fees(peer.clone(), asset.clone(), r))
            .await?
            .unwrap_or_default();
        let fees = FeePolicy {
            base: fee_base.unwrap_or(held.base),
            ppm: req.fee_ppm.unwrap_or(held.ppm),
        };
        state
            .actor
            .call(|reply| Command::SetFees {
                peer: peer.clone(),
                asset: asset.clone(),
                fees,
                reply,
            })
            .await?;
    }
    let row = line_row(&state, &peer, &asset).await?;
    Ok(axum::Json(row))
}

async fn pay(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<PayResponse>> {
    let req: PayRequest = parse_json(&headers, &body)?;
    pay_request(&state, &req, true).await.map(axum::Json)
}

/// Pays as `POST /v1/pay` asks: the one code path of the local API's payments and of
/// delegated payments (`crate::delegate_api`). Without `use_routers` a payment with no route
/// goes over a direct line only (a delegated payment: a route's fees would be spent beyond
/// the delegation's cap).
pub(crate) async fn pay_request(
    state: &AppState,
    req: &PayRequest,
    use_routers: bool,
) -> ApiResult<PayResponse> {
    let peer = key_arg(&req.peer)?;
    let asset = asset_arg(&req.asset)?;
    let amount = amount_arg(&asset, &req.amount)?;
    // With no direct line the payment goes through routers, if this node knows any (else:
    // unknown peer, or no line): a stranger at once, a peer when the ledger finds no line in
    // the asset (below), so a direct payment costs no extra lookup.
    let may_ask_routers =
        use_routers && req.routes.is_empty() && peer != state.me && state.routers.any();
    let ask_routers = may_ask_routers && !state.directory.contains(&peer);
    if !req.routes.is_empty() || ask_routers {
        return pay_payer_published(state, peer, asset, amount, req, ask_routers).await;
    }
    let wait = req
        .wait_ms
        .map_or(DEFAULT_PAY_WAIT, Duration::from_millis)
        .min(Duration::from_secs(300));
    if state.directory.contains(&peer) && state.directory.locate(&peer).await.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_url",
            if state.directory.has_dht() {
                format!(
                    "no URL known for {peer} and no record of it on the DHT; add one with \
                     `atomicity peer add {peer} --url URL`"
                )
            } else {
                format!(
                    "no URL known for {peer}; add one with `atomicity peer add {peer} --url URL`"
                )
            },
        ));
    }
    let payment_id: [u8; 32] = rand::random();
    let now = unix_now();
    let offer = state
        .actor
        .call(|reply| Command::Pay {
            peer: peer.clone(),
            asset: asset.clone(),
            amount,
            payment_id,
            memo: req.memo.clone(),
            now,
            expires_at: now + OFFER_TTL_SECS,
            reply,
        })
        .await
        .map_err(ApiError::from);
    let offer = match offer {
        Err(e) if may_ask_routers && e.code == "no_line" => {
            return pay_payer_published(state, peer, asset, amount, req, true).await;
        }
        offer => offer?,
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut backoff = Duration::from_millis(50);
    let respond = |status: &str, reason: Option<String>| PayResponse {
        payment_id: hex::encode(payment_id),
        status: status.to_string(),
        reason,
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

/// A routed payment the payer publishes the secret of: over `req.routes`, or over routes the
/// routers give (`ask_routers`).
async fn pay_payer_published(
    state: &AppState,
    payee: PublicKey,
    asset: Asset,
    amount: Amount,
    req: &PayRequest,
    ask_routers: bool,
) -> ApiResult<PayResponse> {
    let p: [u8; 32] = rand::random();
    let expires_at = unix_now() + DEFAULT_EXPIRY_SECS;
    let condition = witness_condition(
        &state.witnesses,
        &state.cosigning,
        payment_hash(&p),
        expires_at,
    )
    .await?;
    let wait = req
        .wait_ms
        .map_or(DEFAULT_ROUTED_WAIT, Duration::from_millis)
        .min(Duration::from_secs(300));
    let request = RoutedRequest {
        payee,
        asset,
        amount,
        routes: &req.routes,
        condition,
        expires_at,
        memo: req.memo.clone(),
        payer_secret: Some(p),
        wait,
    };
    if ask_routers {
        return pay_through_routers(state, request).await;
    }
    routed_payment(state, request).await
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

/// The witness condition for a new payment hash: every witness this node uses, with a window
/// from its current block to the deadline (plus a margin of two blocks), and the cosigners the
/// node requires.
pub(crate) async fn witness_condition(
    witnesses: &[KnownWitness],
    cosigning: &CosignerRequirement,
    hash: [u8; 32],
    expires_at: u64,
) -> ApiResult<WitnessCondition> {
    if witnesses.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_witness",
            "this node has no witness log; start it with `atomicity node run --witness URL`",
        ));
    }
    let mut terms = Vec::new();
    let mut errors = Vec::new();
    let span = expires_at.saturating_sub(unix_now());
    for w in witnesses {
        match WitnessClient::new(&w.url).block().await {
            Ok(info) => {
                let blocks = span / info.block_seconds.max(1) + 2;
                terms.push(WitnessTerms {
                    cosigners: cosigning.cosigners.clone(),
                    threshold: cosigning.threshold,
                    ..WitnessTerms::new(
                        w.vkey.clone(),
                        info.block,
                        info.block.saturating_add(blocks),
                    )
                });
            }
            Err(e) => errors.push(format!("{}: {e}", w.url)),
        }
    }
    if terms.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "witness_unreachable",
            format!("no witness log answered: {}", errors.join("; ")),
        ));
    }
    Ok(WitnessCondition {
        hash,
        witnesses: terms,
    })
}

fn invoice_row(h: &HashlockRecord) -> ApiResult<InvoiceRow> {
    let condition = atomicity_core::routed::decode_condition(&h.condition).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "stored condition is corrupt",
        )
    })?;
    let invoice = Invoice {
        payee: h.payee.clone(),
        amount: h.amount,
        asset: h.asset.clone(),
        condition,
        expires_at: h.expires_at,
        memo: h.memo.clone(),
    };
    Ok(InvoiceRow {
        invoice: invoice.to_uri(),
        hash: hex::encode(h.hash),
        amount: h.asset.format(h.amount),
        asset: h.asset.to_string(),
        status: h.status.as_str().to_string(),
        expires_at: h.expires_at,
        memo: h.memo.clone(),
    })
}

async fn new_invoice(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<InvoiceRow>> {
    let req: InvoiceRequest = parse_json(&headers, &body)?;
    create_invoice(&state, req).await.map(axum::Json)
}

/// Makes an invoice of this node (a new secret, held until paid), saved before it is returned.
pub(crate) async fn create_invoice(state: &AppState, req: InvoiceRequest) -> ApiResult<InvoiceRow> {
    let asset = asset_arg(&req.asset)?;
    let amount = amount_arg(&asset, &req.amount)?;
    if req.memo.len() > atomicity_core::objects::MAX_MEMO_LEN {
        return Err(ApiError::bad(
            "bad_memo",
            "the memo is longer than 256 bytes",
        ));
    }
    let expires_in = req.expires_in.unwrap_or(DEFAULT_EXPIRY_SECS);
    if !(1..=30 * 24 * 3600).contains(&expires_in) {
        return Err(ApiError::bad(
            "bad_expiry",
            "expires_in is 1 second to 30 days",
        ));
    }
    let now = unix_now();
    let expires_at = now + expires_in;
    let p: [u8; 32] = rand::random();
    let condition = witness_condition(
        &state.witnesses,
        &state.cosigning,
        payment_hash(&p),
        expires_at,
    )
    .await?;
    let new = NewHashlock {
        p,
        role: HashlockRole::Payee,
        payee: state.me.clone(),
        asset,
        amount,
        condition,
        expires_at,
        memo: req.memo,
    };
    let record = state
        .actor
        .call(|r| Command::AddHashlock(Box::new(new), now, r))
        .await?;
    invoice_row(&record)
}

async fn show_invoice(
    State(state): State<AppState>,
    axum::extract::Path(hash): axum::extract::Path<String>,
) -> ApiResult<axum::Json<InvoiceRow>> {
    let hash: [u8; 32] = hex::decode(&hash)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::bad("bad_hash", "a payment hash is 64 hex digits"))?;
    let record = state
        .actor
        .call(|r| Command::Hashlock(hash, r))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_invoice",
                "no invoice of this node has that hash",
            )
        })?;
    Ok(axum::Json(invoice_row(&record)?))
}

async fn pay_invoice(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<PayResponse>> {
    let req: PayInvoiceRequest = parse_json(&headers, &body)?;
    pay_invoice_with(&state, req).await.map(axum::Json)
}

/// Pays an invoice (directly, over the routes given, or through routers).
pub(crate) async fn pay_invoice_with(
    state: &AppState,
    req: PayInvoiceRequest,
) -> ApiResult<PayResponse> {
    let invoice =
        Invoice::parse(&req.invoice).map_err(|e| ApiError::bad("bad_invoice", e.to_string()))?;
    if invoice.payee == state.me {
        return Err(ApiError::bad(
            "self_payment",
            "that is this node's own invoice",
        ));
    }
    if invoice.expires_at <= unix_now() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expired",
            "the invoice has expired",
        ));
    }
    if let Err(log) = state.trust.witnesses().await.check(&invoice.condition) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "witness_not_accepted",
            format!("the invoice names witness log {log}, which you do not accept"),
        ));
    }
    let wait = req
        .wait_ms
        .map_or(DEFAULT_ROUTED_WAIT, Duration::from_millis)
        .min(Duration::from_secs(300));
    let direct = [Vec::new()];
    // No route given: a stranger is paid through routers at once, a peer with no line in the
    // asset once the ledger says so.
    let may_ask_routers = req.routes.is_empty() && state.routers.any();
    let ask_routers = may_ask_routers && !state.directory.contains(&invoice.payee);
    let routes: &[Vec<String>] = if req.routes.is_empty() {
        &direct
    } else {
        &req.routes
    };
    let request = RoutedRequest {
        payee: invoice.payee,
        asset: invoice.asset,
        amount: invoice.amount,
        routes,
        condition: invoice.condition,
        expires_at: invoice.expires_at,
        memo: invoice.memo,
        payer_secret: None,
        wait,
    };
    if ask_routers {
        return pay_through_routers(state, request).await;
    }
    match routed_payment(state, request.clone()).await {
        Err(e) if may_ask_routers && e.code == "no_line" => {
            pay_through_routers(state, request).await
        }
        paid => paid,
    }
}

/// A payment that names no route and has no direct line (the callers check that this node
/// knows routers): asks routers, and tries their routes (best rated router first) until one is quoted by every hop; rates the routers by it.
async fn pay_through_routers(state: &AppState, req: RoutedRequest<'_>) -> ApiResult<PayResponse> {
    let proposals = state
        .routers
        .propose(
            &state.me,
            &req.payee,
            req.amount,
            &req.asset,
            &state.directory,
            &crate::trust::blocked_keys(state).await,
        )
        .await;
    let mut refused = Vec::new();
    for proposal in proposals.into_iter().take(crate::routers::MAX_TRIES) {
        let intermediates: Vec<String> = proposal.path[..proposal.path.len() - 1]
            .iter()
            .map(PublicKey::to_z32)
            .collect();
        let routes = [intermediates];
        let attempt = RoutedRequest {
            routes: &routes,
            ..req.clone()
        };
        match routed_payment(state, attempt).await {
            Ok(response) => {
                state.routers.outcome(&proposal.router, true);
                return Ok(response);
            }
            // Refused before anything was signed: the route was not one.
            Err(e) if matches!(e.code, "route_failed" | "bad_quote") => {
                state.routers.outcome(&proposal.router, false);
                refused.push(format!("router {}: {}", proposal.router, e.message));
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_route",
        if refused.is_empty() {
            format!(
                "no router gave a route to {} for {} {}",
                req.payee,
                req.asset.format(req.amount),
                req.asset
            )
        } else {
            format!(
                "every route the routers gave was refused: {}",
                refused.join("; ")
            )
        },
    ))
}

#[derive(Clone)]
struct RoutedRequest<'a> {
    payee: PublicKey,
    asset: Asset,
    amount: Amount,
    routes: &'a [Vec<String>],
    condition: WitnessCondition,
    expires_at: u64,
    memo: String,
    payer_secret: Option<[u8; 32]>,
    wait: Duration,
}

/// Quotes every route, starts the payment, and waits for its outcome.
async fn routed_payment(state: &AppState, req: RoutedRequest<'_>) -> ApiResult<PayResponse> {
    if req.routes.len() > MAX_PARTS {
        return Err(ApiError::bad(
            "bad_route",
            format!("at most {MAX_PARTS} routes"),
        ));
    }
    let parts_count = u64::try_from(req.routes.len()).unwrap_or(1).max(1);
    let share = Amount::from_minor(req.amount.minor() / parts_count);
    let first_share = share
        .checked_add(Amount::from_minor(req.amount.minor() % parts_count))
        .unwrap_or(share);
    if share.is_zero() {
        return Err(ApiError::bad(
            "bad_amount",
            "the amount is too small to split over that many routes",
        ));
    }
    let mut parts = Vec::new();
    for (i, route) in req.routes.iter().enumerate() {
        let deliver = if i == 0 { first_share } else { share };
        let mut path: Vec<PublicKey> =
            route.iter().map(|k| key_arg(k)).collect::<Result<_, _>>()?;
        path.push(req.payee.clone());
        let hops = if path.len() == 1 {
            vec![Hop {
                next: req.payee.clone(),
                amount: deliver,
            }]
        } else {
            quote_route(state, &req.asset, deliver, &path).await?
        };
        parts.push(RoutePart { hops });
    }
    let payment_id: [u8; 32] = rand::random();
    let mut updates = state.payments.watch(payment_id);
    let now = unix_now();
    let pay = RoutedPay {
        payee: req.payee,
        asset: req.asset,
        parts,
        condition: req.condition,
        expires_at: req.expires_at,
        payment_id,
        memo: req.memo,
        payer_secret: req.payer_secret,
        now,
    };
    state
        .actor
        .call(|r| Command::PayRouted(Box::new(pay), r))
        .await?;
    let respond = |status: &str, reason: Option<String>| PayResponse {
        payment_id: hex::encode(payment_id),
        status: status.to_string(),
        reason,
    };
    let deadline = tokio::time::Instant::now() + req.wait;
    loop {
        let record = match tokio::time::timeout_at(deadline, updates.next()).await {
            Err(_) => {
                return Ok(respond(
                    "pending",
                    Some("not finished yet; `atomicity history` shows the outcome".into()),
                ));
            }
            Ok(Some(record)) => record,
            Ok(None) => return Err(ActorError::Stopped.into()),
        };
        match record.status {
            PaymentStatus::Completed => return Ok(respond("completed", None)),
            PaymentStatus::Failed(why) => return Ok(respond("failed", Some(why))),
            PaymentStatus::Pending => {}
        }
    }
}

/// Asks the first key of `path` what each hop must receive to deliver `amount` to the last,
/// and checks the answer.
pub(crate) async fn quote_route(
    state: &AppState,
    asset: &Asset,
    amount: Amount,
    path: &[PublicKey],
) -> ApiResult<Vec<Hop>> {
    let Some((first, rest)) = path.split_first() else {
        return Err(ApiError::bad("bad_route", "an empty route"));
    };
    let key = (path.to_vec(), asset.clone(), amount);
    if let Some(hops) = state.quotes.get(&key) {
        return Ok(hops);
    }
    let request = QuoteRequest {
        asset: asset.to_string(),
        amount: asset.format(amount),
        route: rest.iter().map(PublicKey::to_z32).collect(),
    };
    let answer = state.client.quote(first, &request).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "route_failed",
            format!("cannot quote the route through {first}: {e}"),
        )
    })?;
    let hops = check_quote(asset, amount, path, &answer)
        .map_err(|why| ApiError::new(StatusCode::BAD_GATEWAY, "bad_quote", why))?;
    state.quotes.put(key, hops.clone());
    Ok(hops)
}

fn check_quote(
    asset: &Asset,
    amount: Amount,
    path: &[PublicKey],
    answer: &QuoteResponse,
) -> Result<Vec<Hop>, String> {
    if answer.hops.len() != path.len() {
        return Err(format!(
            "the quote has {} hops for a route of {}",
            answer.hops.len(),
            path.len()
        ));
    }
    let mut hops = Vec::new();
    for (hop, key) in answer.hops.iter().zip(path) {
        let got = parse_key(&hop.key)?;
        if got != *key {
            return Err(format!("the quote names {got} where the route has {key}"));
        }
        let amount = asset
            .parse_amount(&hop.amount)
            .map_err(|e| format!("bad amount in the quote: {e}"))?;
        hops.push(Hop { next: got, amount });
    }
    if hops.last().map(|h| h.amount) != Some(amount) {
        return Err("the quote does not deliver the amount".into());
    }
    if hops.windows(2).any(|w| w[1].amount > w[0].amount) {
        return Err("the quote's amounts grow along the route".into());
    }
    Ok(hops)
}

/// Peer API: what each hop from me to the end of `route` must receive.
async fn quote(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<QuoteResponse>> {
    let req: QuoteRequest = parse_json(&headers, &body)?;
    let asset = asset_arg(&req.asset)?;
    let amount = amount_arg(&asset, &req.amount)?;
    if req.route.is_empty() || req.route.len() > atomicity_core::forward::MAX_HOPS {
        return Err(ApiError::bad(
            "bad_route",
            format!(
                "a route has 1 to {} keys",
                atomicity_core::forward::MAX_HOPS
            ),
        ));
    }
    let path: Vec<PublicKey> = req
        .route
        .iter()
        .map(|k| key_arg(k))
        .collect::<Result<_, _>>()?;
    let next = &path[0];
    let fees = state
        .actor
        .call(|r| Command::Fees(next.clone(), asset.clone(), r))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_line",
                format!("no line with {next} in {asset}"),
            )
        })?;
    let onward = if path.len() == 1 {
        vec![Hop {
            next: next.clone(),
            amount,
        }]
    } else {
        quote_route(&state, &asset, amount, &path).await?
    };
    let forwarded = onward.first().map_or(amount, |h| h.amount);
    let receive = fees
        .amount_to_receive(forwarded)
        .ok_or_else(|| ApiError::bad("bad_amount", "the amount with fees overflows"))?;
    let mut hops = vec![QuoteHop {
        key: state.me.to_z32(),
        amount: asset.format(receive),
    }];
    hops.extend(onward.iter().map(|h| QuoteHop {
        key: h.next.to_z32(),
        amount: asset.format(h.amount),
    }));
    Ok(axum::Json(QuoteResponse { hops }))
}

/// A public document: JSON, readable from any web page (it is public and signed), revalidated
/// on every use.
pub(crate) fn document_response(document: axum::body::Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        document,
    )
        .into_response()
}

fn not_published(what: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
}

#[derive(Deserialize)]
struct ListingQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// Peer API: the Pubky-style listing of the Paykit endpoints directory.
async fn endpoint_listing(
    State(state): State<AppState>,
    query: Result<Query<ListingQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| ApiError::bad("bad_query", e.body_text()))?;
    let listing = published::endpoint_listing(&state, query.cursor.as_deref(), query.limit).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        listing,
    )
        .into_response())
}

/// Peer API: one Paykit endpoint's signed document.
async fn endpoint_document(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let id = EndpointId::parse(&id).map_err(|e| ApiError::bad("bad_endpoint_id", e.to_string()))?;
    published::endpoint_document(&state, id.as_str())
        .await?
        .map(document_response)
        .ok_or_else(|| not_published(format!("this node publishes no endpoint {id}")))
}

/// Peer API: the signed channel list.
async fn channels_document(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(document_response(
        published::channels_document(&state).await?,
    ))
}

/// Peer API: the signed list of witness logs.
async fn witnesses_document(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(document_response(
        published::witnesses_document(&state).await?,
    ))
}

async fn trust_document(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(document_response(
        crate::trust::trust_document(&state).await?,
    ))
}

async fn capabilities_document(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(document_response(
        published::capabilities_document(&state).await?,
    ))
}

async fn routers_document(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(document_response(
        published::routers_document(&state).await?,
    ))
}

/// Peer API: the newest IOU state this node signed toward a holder in an asset.
async fn state_document(
    State(state): State<AppState>,
    axum::extract::Path((holder, asset)): axum::extract::Path<(String, String)>,
) -> ApiResult<Response> {
    let holder = key_arg(&holder)?;
    let asset = asset_arg(&asset)?;
    published::state_document(&state, &holder, &asset)
        .await?
        .map(document_response)
        .ok_or_else(|| {
            not_published(format!(
                "this node has signed no IOU state toward {holder} in {asset}"
            ))
        })
}

fn endpoint_row(id: &EndpointId, value: serde_json::Value, automatic: bool) -> EndpointRow {
    EndpointRow {
        id: id.to_string(),
        value,
        automatic,
        path: endpoint_path(id),
    }
}

/// Local API: every Paykit endpoint the node publishes, automatic ones marked.
async fn list_endpoints(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<EndpointRow>>> {
    let rows = published::endpoints(&state)
        .await?
        .into_iter()
        .map(|e| endpoint_row(&e.id, e.value, e.automatic))
        .collect();
    Ok(axum::Json(rows))
}

/// Local API: sets (adds or replaces) a Paykit endpoint.
async fn set_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<EndpointRow>> {
    let req: AddEndpointRequest = parse_json(&headers, &body)?;
    let (id, _) = state
        .published
        .set_endpoint(&req.id, req.value.clone())
        .await?;
    Ok(axum::Json(endpoint_row(&id, req.value, false)))
}

/// Local API: removes a Paykit endpoint the user configured.
async fn remove_endpoint(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<axum::Json<EndpointRow>> {
    if let Ok(parsed) = EndpointId::parse(&id)
        && parsed.is_reserved()
        && !state.published.user_endpoints().await.contains_key(&parsed)
    {
        return Err(EndpointError::Reserved(parsed).into());
    }
    let (id, value) = state.published.remove_endpoint(&id).await?;
    Ok(axum::Json(endpoint_row(&id, value, false)))
}

#[derive(Deserialize)]
struct RefreshQuery {
    asset: Option<String>,
}

/// Local API: fetches the peer's newest published IOU state toward me and takes it as if the
/// peer had pushed it.
async fn refresh_line(
    State(state): State<AppState>,
    axum::extract::Path(peer): axum::extract::Path<String>,
    query: Result<Query<RefreshQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<RefreshResponse>> {
    let Query(query) = query.map_err(|e| ApiError::bad("bad_query", e.body_text()))?;
    let peer = key_arg(&peer)?;
    let asset = asset_arg(
        query
            .asset
            .as_deref()
            .ok_or_else(|| ApiError::bad("bad_query", "give the line's asset: ?asset=USD"))?,
    )?;
    let refreshed = published::refresh_line(&state, &peer, &asset).await?;
    let line = line_row(&state, &peer, &asset).await?;
    Ok(axum::Json(RefreshResponse {
        updated: refreshed.updated,
        seq: refreshed.seq,
        line,
    }))
}

/// The balance row of one line (which the caller just created or changed).
async fn line_row(state: &AppState, peer: &PublicKey, asset: &Asset) -> ApiResult<BalanceRow> {
    state
        .actor
        .call(Command::Balances)
        .await?
        .into_iter()
        .find(|v| &v.peer == peer && &v.asset == asset)
        .map(|v| balance_row(&v))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "line vanished",
            )
        })
}
