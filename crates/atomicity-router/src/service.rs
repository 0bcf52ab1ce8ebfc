//! `atomicity router run`: crawls, indexes and answers route queries over HTTP.
//!
//! The crawl loop runs one round every few seconds and applies what changed to the index (one
//! node's lines at a time); queries read the index under a read lock, so a round never blocks
//! them for longer than applying its changes. Every answer is signed with the router's key
//! ([`atomicity_core::router_api`]); `GET /v1/identity` proves that key to clients that found
//! the router on the DHT, where it announces itself.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use atomicity_core::published::sign_document;
use atomicity_core::router_api::{
    ANSWER_PATH, MAX_ALTERNATIVES, MAX_SENDABLE_PATH, MULTI_ROUTE_PATH, MaxSendableAnswer,
    QueryEcho, ROUTE_PATH, RoundReport, RoutesAnswer, STATUS_PATH, StatusAnswer,
};
use atomicity_core::{Asset, Keypair, PublicKey};
use atomicity_discovery::Dht;
use atomicity_witness::identity::{IDENTITY_PATH, IdentityProof, Role, prove};
use axum::extract::{Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::watch;

use crate::crawl::{CrawlConfig, Crawler};
use crate::index::{Index, RouteAsk};

/// How a router runs.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Its key (signs answers, proves itself).
    pub key: Keypair,
    /// Where its HTTP API listens.
    pub listen: SocketAddr,
    /// Keys to start crawling from, each with an optional URL (else the DHT says where).
    pub seeds: Vec<(PublicKey, Option<String>)>,
    /// The crawler's limits.
    pub crawl: CrawlConfig,
    /// Seconds between two crawl rounds.
    pub round_every: Duration,
}

/// A running router.
pub struct RunningRouter {
    /// Its base URL.
    pub url: String,
    /// Its key (z-base32).
    pub key: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningRouter {
    /// Stops serving and crawling.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Why a router could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The listener could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

#[derive(Clone)]
struct AppState {
    key: Arc<Keypair>,
    index: Arc<RwLock<Index>>,
    status: Arc<RwLock<(u64, usize, Option<RoundReport>)>>,
}

/// Starts the router: binds, then crawls and serves until shut down.
pub async fn start(
    config: RouterConfig,
    dht: Option<Arc<Dht>>,
) -> Result<RunningRouter, RouterError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| RouterError::Bind(config.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| RouterError::Bind(config.listen, e))?;
    let state = AppState {
        key: Arc::new(config.key.clone()),
        index: Arc::new(RwLock::new(Index::default())),
        status: Arc::new(RwLock::new((0, 0, None))),
    };
    let router = axum::Router::new()
        .route(IDENTITY_PATH, get(identity))
        .route(ROUTE_PATH, get(route))
        .route(MULTI_ROUTE_PATH, get(multi_route))
        .route(MAX_SENDABLE_PATH, get(max_sendable))
        .route(STATUS_PATH, get(status))
        .with_state(state.clone());
    let (shutdown, mut stop) = watch::channel(false);
    let server = tokio::spawn(async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!("router server stopped: {e}");
        }
    });
    let crawler = Crawler::new(config.crawl.clone(), dht, config.seeds.clone());
    let crawl = tokio::spawn(crawl_loop(crawler, state, config.round_every));
    Ok(RunningRouter {
        url: format!("http://{addr}"),
        key: config.key.public_key().to_z32(),
        shutdown,
        tasks: vec![server, crawl],
    })
}

async fn crawl_loop(mut crawler: Crawler, state: AppState, every: Duration) {
    let mut rounds = 0u64;
    loop {
        let (changes, report) = crawler.round(crate::unix_now()).await;
        rounds += 1;
        if report.changed > 0 || report.expired > 0 || report.failed > 0 || rounds == 1 {
            tracing::info!(
                "crawl round {rounds}: {} fetched, {} changed, {} unchanged, {} failed, {} new, \
                 {} expired; {} known, {} ms",
                report.fetched,
                report.changed,
                report.unchanged,
                report.failed,
                report.discovered,
                report.expired,
                report.known,
                report.millis
            );
        }
        let indexed = {
            let mut index = state
                .index
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            index.apply(changes);
            index.indexed_nodes()
        };
        *state
            .status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            (rounds, crawler.known().max(indexed), Some(report));
        tokio::time::sleep(every).await;
    }
}

/// A refused query: 400 with the project's JSON error shape.
struct BadQuery {
    code: &'static str,
    error: String,
}

impl IntoResponse for BadQuery {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "code": self.code, "error": self.error })),
        )
            .into_response()
    }
}

fn bad(code: &'static str, why: impl Into<String>) -> BadQuery {
    BadQuery {
        code,
        error: why.into(),
    }
}

#[derive(Deserialize)]
struct ChallengeQuery {
    challenge: String,
}

async fn identity(
    State(state): State<AppState>,
    query: Result<Query<ChallengeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let mut challenge = [0u8; 32];
    let ok = query.is_ok_and(|Query(q)| {
        q.challenge.len() == 64 && hex::decode_to_slice(&q.challenge, &mut challenge).is_ok()
    });
    if !ok {
        return bad(
            "bad_challenge",
            "challenge must be 64 hex characters (32 bytes)",
        )
        .into_response();
    }
    let key = state.key.public_key().to_z32();
    let proof: IdentityProof = prove(
        Role::Router,
        &key,
        &ed25519_dalek::SigningKey::from_bytes(&state.key.secret_key()),
        &challenge,
    );
    axum::Json(proof).into_response()
}

/// Most keys one query may ask to avoid.
const MAX_AVOID: usize = 256;

/// The query string of the route endpoints: `from`, `to`, `asset`, `amount`, and optionally
/// `max_hops`, `alternatives`, `max_parts`, `witness` (repeated: the payment's logs) and
/// `avoid` (repeated: keys the payer never routes through, e.g. those it blocks).
#[derive(Default)]
struct RouteQueryString {
    from: String,
    to: String,
    amount: String,
    asset: String,
    max_hops: Option<u8>,
    witnesses: Vec<String>,
    avoid: Vec<String>,
    alternatives: Option<usize>,
    max_parts: Option<usize>,
}

fn read_query(raw: Option<&str>) -> Result<RouteQueryString, BadQuery> {
    let mut q = RouteQueryString::default();
    let number = |name: &str, v: &str| -> Result<usize, BadQuery> {
        v.parse()
            .map_err(|_| bad("bad_query", format!("{name} must be a number")))
    };
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let value = value.into_owned();
        match name.as_ref() {
            "from" => q.from = value,
            "to" => q.to = value,
            "amount" => q.amount = value,
            "asset" => q.asset = value,
            "max_hops" => {
                let hops = number("max_hops", &value)?;
                q.max_hops = Some(u8::try_from(hops).unwrap_or(u8::MAX));
            }
            "alternatives" => q.alternatives = Some(number("alternatives", &value)?),
            "max_parts" => q.max_parts = Some(number("max_parts", &value)?),
            "witness" if q.witnesses.len() < atomicity_core::condition::MAX_WITNESSES => {
                q.witnesses.push(value)
            }
            "witness" => return Err(bad("bad_query", "too many witnesses")),
            "avoid" if q.avoid.len() < MAX_AVOID => q.avoid.push(value),
            "avoid" => {
                return Err(bad(
                    "bad_query",
                    format!("at most {MAX_AVOID} keys to avoid"),
                ));
            }
            _ => {}
        }
    }
    Ok(q)
}

fn parse(
    kind: &str,
    raw: Option<&str>,
    needs_amount: bool,
) -> Result<(RouteAsk, QueryEcho, RouteQueryString), BadQuery> {
    let q = read_query(raw)?;
    let from =
        atomicity_core::parse_key(&q.from).map_err(|e| bad("bad_key", format!("from: {e}")))?;
    let to = atomicity_core::parse_key(&q.to).map_err(|e| bad("bad_key", format!("to: {e}")))?;
    let asset: Asset = q
        .asset
        .parse()
        .map_err(|e| bad("bad_asset", format!("{e}")))?;
    let amount = if needs_amount {
        let amount = asset
            .parse_amount(&q.amount)
            .map_err(|e| bad("bad_amount", e.to_string()))?;
        if amount.is_zero() {
            return Err(bad("bad_amount", "the amount must be greater than zero"));
        }
        amount
    } else {
        atomicity_core::Amount::ZERO
    };
    if from == to {
        return Err(bad("bad_query", "from and to are the same key"));
    }
    let echo = QueryEcho {
        kind: kind.to_string(),
        from: from.to_z32(),
        to: to.to_z32(),
        amount: if needs_amount {
            asset.format(amount)
        } else {
            String::new()
        },
        asset: asset.to_string(),
    };
    let avoid = q
        .avoid
        .iter()
        .map(|k| atomicity_core::parse_key(k).map_err(|e| bad("bad_key", format!("avoid: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let ask = RouteAsk {
        from,
        to,
        amount,
        asset,
        max_hops: q.max_hops,
        witnesses: q.witnesses.clone(),
        avoid,
    };
    Ok((ask, echo, q))
}

/// A signed answer document.
fn signed(state: &AppState, value: &impl serde::Serialize) -> Response {
    let seq = crate::unix_micros();
    let signed = serde_json::to_vec(value)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            sign_document(&state.key, ANSWER_PATH, seq, &json).map_err(|e| e.to_string())
        });
    match signed {
        Ok(document) => ([(header::CONTENT_TYPE, "application/json")], document).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({ "code": "internal", "error": e })),
        )
            .into_response(),
    }
}

fn read(state: &AppState) -> std::sync::RwLockReadGuard<'_, Index> {
    state
        .index
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn route(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let (ask, query, q) = match parse("route", query.as_deref(), true) {
        Ok(parsed) => parsed,
        Err(bad) => return bad.into_response(),
    };
    let k = q
        .alternatives
        .unwrap_or(MAX_ALTERNATIVES)
        .clamp(1, MAX_ALTERNATIVES);
    let answer = {
        let index = read(&state);
        RoutesAnswer {
            query,
            routes: index.routes(&ask, k),
            nodes: index.indexed_nodes(),
            lines: index.lines(),
        }
    };
    signed(&state, &answer)
}

async fn multi_route(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let (ask, query, q) = match parse("multi-route", query.as_deref(), true) {
        Ok(parsed) => parsed,
        Err(bad) => return bad.into_response(),
    };
    let parts = q.max_parts.unwrap_or(8).clamp(1, 8);
    let answer = {
        let index = read(&state);
        RoutesAnswer {
            query,
            routes: index.multi_path(&ask, parts),
            nodes: index.indexed_nodes(),
            lines: index.lines(),
        }
    };
    signed(&state, &answer)
}

async fn max_sendable(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let (ask, query, _) = match parse("max-sendable", query.as_deref(), false) {
        Ok(parsed) => parsed,
        Err(bad) => return bad.into_response(),
    };
    let (amount, ignores_fees) = read(&state).max_flow(&ask);
    signed(
        &state,
        &MaxSendableAnswer {
            amount: ask.asset.format(amount),
            query,
            ignores_fees,
        },
    )
}

async fn status(State(state): State<AppState>) -> Response {
    let (rounds, known, last_round) = state
        .status
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let index = read(&state);
    axum::Json(StatusAnswer {
        key: state.key.public_key().to_z32(),
        nodes: index.indexed_nodes(),
        lines: index.lines(),
        known,
        rounds,
        last_round,
    })
    .into_response()
}
