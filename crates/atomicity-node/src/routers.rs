//! Asking routers for routes: find them (configured URLs, and the DHT's router infohash), make
//! each prove its key, ask several at once, check every answer, and keep a rating of each
//! router by what its routes did.
//!
//! A router's answer is a signed document whose value echoes the query; a route is kept only
//! if it is well-formed, ends at the payee, fits the hop limit and starts at one of my peers.
//! Whatever a router says, the payment itself is quoted hop by hop before anything is signed,
//! so a bogus route costs a refused quote, and the router that gave it is rated down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use atomicity_core::published::verify_document;
use atomicity_core::router_api::{ANSWER_PATH, QueryEcho, ROUTE_PATH, RoutesAnswer};
use atomicity_core::{Amount, Asset, PublicKey};
use atomicity_discovery::{Dht, Service, VerifiedService, check_service};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::datadir::DataDir;
use crate::directory::Directory;

/// The file keeping router ratings.
pub const ROUTERS_FILE: &str = "routers.json";
/// Routers asked per payment.
const ASK_AT_ONCE: usize = 3;
/// How long one router may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the list of verified routers is reused before looking again.
const LIST_TTL: Duration = Duration::from_secs(60);
/// Most routes a payment tries.
pub const MAX_TRIES: usize = 6;
/// Most keys a query asks routers to avoid (the router's own bound).
const MAX_AVOID: usize = 256;
/// Longest route accepted (keys after the payer).
const MAX_ROUTE_LEN: usize = atomicity_core::forward::MAX_HOPS + 1;

/// What a router's routes did, as this node saw it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rating {
    /// Its URL when last seen.
    pub url: String,
    /// Routes that carried a payment.
    pub good: u64,
    /// Answers that were bogus (forged, malformed, wrong query, a route that is not one) or
    /// routes that no hop would quote.
    pub bad: u64,
    /// Times it did not answer.
    pub silent: u64,
}

impl Rating {
    /// Laplace-smoothed share of good outcomes, in millionths (for ordering).
    pub fn score(&self) -> u64 {
        (self.good + 1) * 1_000_000 / (self.good + self.bad + self.silent / 4 + 2)
    }
}

/// A route a router proposed: the keys after the payer, the payee last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The router's key.
    pub router: String,
    /// The route.
    pub path: Vec<PublicKey>,
    /// Fees it expects in all (minor units), for ordering.
    pub fees: Amount,
}

/// The routers a node asks.
pub struct Routers {
    configured: Vec<String>,
    dht: Option<Arc<Dht>>,
    http: reqwest::Client,
    dir: DataDir,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    ratings: HashMap<String, Rating>,
    listed: Option<(tokio::time::Instant, Vec<VerifiedService>)>,
}

impl Routers {
    /// Routers at `configured` URLs, and those the DHT finds; ratings from `DIR/routers.json`.
    pub fn new(configured: Vec<String>, dht: Option<Arc<Dht>>, dir: &DataDir) -> Routers {
        let ratings = dir
            .read_optional(ROUTERS_FILE)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Routers {
            configured,
            dht,
            http: reqwest::Client::builder()
                .timeout(ASK_TIMEOUT)
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
            dir: dir.clone(),
            state: Mutex::new(State {
                ratings,
                listed: None,
            }),
        }
    }

    /// Whether there is anywhere to look for routers.
    pub fn any(&self) -> bool {
        !self.configured.is_empty() || self.dht.is_some()
    }

    /// Every rating, by router key.
    pub fn ratings(&self) -> HashMap<String, Rating> {
        self.lock().ratings.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Routers that proved their keys, best rated first.
    async fn list(&self) -> Vec<VerifiedService> {
        if let Some((at, list)) = &self.lock().listed
            && at.elapsed() < LIST_TTL
        {
            return list.clone();
        }
        let mut found = Vec::new();
        for url in &self.configured {
            match check_service(&self.http, Service::Router, url.trim_end_matches('/')).await {
                Ok(router) => found.push(router),
                Err(why) => tracing::warn!(%url, "router refused: {why}"),
            }
        }
        if let Some(dht) = &self.dht {
            match dht.discover(Service::Router, ASK_TIMEOUT).await {
                Ok(discovered) => {
                    for r in discovered.rejected {
                        tracing::debug!(addr = %r.addr, "router refused: {}", r.why);
                    }
                    for router in discovered.verified {
                        if !found.iter().any(|f| f.key == router.key) {
                            found.push(router);
                        }
                    }
                }
                Err(e) => tracing::debug!("no routers from the DHT: {e}"),
            }
        }
        let mut state = self.lock();
        found.sort_by_key(|r| {
            std::cmp::Reverse(state.ratings.get(&r.key).map_or(500_000, Rating::score))
        });
        state.listed = Some((tokio::time::Instant::now(), found.clone()));
        found
    }

    /// Asks up to three routers for routes from `me` to `payee` that pass through none of
    /// `avoid` (the keys I block: my policy is the routers' filter, and checked again here);
    /// returns the checked proposals, best rated router first, then by fees.
    pub async fn propose(
        &self,
        me: &PublicKey,
        payee: &PublicKey,
        amount: Amount,
        asset: &Asset,
        directory: &Directory,
        avoid: &[PublicKey],
    ) -> Vec<Proposal> {
        let avoid: Vec<PublicKey> = avoid.iter().take(MAX_AVOID).cloned().collect();
        let routers: Vec<VerifiedService> =
            self.list().await.into_iter().take(ASK_AT_ONCE).collect();
        let echo = QueryEcho {
            kind: "route".into(),
            from: me.to_z32(),
            to: payee.to_z32(),
            amount: asset.format(amount),
            asset: asset.to_string(),
        };
        let mut asks = JoinSet::new();
        for router in routers {
            let (http, echo, avoid) = (self.http.clone(), echo.clone(), avoid.clone());
            asks.spawn(async move {
                let answer = ask(&http, &router, &echo, &avoid).await;
                (router, answer)
            });
        }
        let mut proposals = Vec::new();
        while let Some(done) = asks.join_next().await {
            let Ok((router, answer)) = done else { continue };
            let routes = match answer {
                Ok(answer) => answer,
                Err(Ask::Silent(why)) => {
                    tracing::debug!(router = %router.key, "router did not answer: {why}");
                    self.rate(&router, |r| r.silent += 1);
                    continue;
                }
                Err(Ask::Bogus(why)) => {
                    tracing::warn!(router = %router.key, "bogus answer: {why}");
                    self.rate(&router, |r| r.bad += 1);
                    continue;
                }
            };
            let mut bogus = None;
            for route in routes.routes {
                match check_route(&route, payee, asset, directory, &avoid) {
                    Ok((path, fees)) => proposals.push(Proposal {
                        router: router.key.clone(),
                        path,
                        fees,
                    }),
                    Err(why) => bogus = Some(why),
                }
            }
            if let Some(why) = bogus {
                tracing::warn!(router = %router.key, "bogus route: {why}");
                self.rate(&router, |r| r.bad += 1);
            }
        }
        let ratings = self.ratings();
        proposals.sort_by_key(|p| {
            (
                std::cmp::Reverse(ratings.get(&p.router).map_or(500_000, Rating::score)),
                p.fees,
            )
        });
        // The same route from two routers is tried once (under the better rated one).
        let mut seen = std::collections::HashSet::new();
        proposals.retain(|p| seen.insert(p.path.clone()));
        proposals
    }

    /// Records what a proposal did: `true` it carried the payment, `false` no hop would take it.
    pub fn outcome(&self, router: &str, good: bool) {
        let mut state = self.lock();
        let rating = state.ratings.entry(router.to_string()).or_default();
        if good {
            rating.good += 1;
        } else {
            rating.bad += 1;
        }
        self.save(&state);
    }

    fn rate(&self, router: &VerifiedService, change: impl FnOnce(&mut Rating)) {
        let mut state = self.lock();
        let rating = state.ratings.entry(router.key.clone()).or_default();
        rating.url = router.url.clone();
        change(rating);
        self.save(&state);
    }

    fn save(&self, state: &State) {
        let saved = serde_json::to_vec_pretty(&state.ratings)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                self.dir
                    .write_durable(ROUTERS_FILE, &bytes)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = saved {
            tracing::warn!("cannot save router ratings: {e}");
        }
    }
}

enum Ask {
    /// No answer (down, slow): not the router's lie.
    Silent(String),
    /// An answer that is not a signed, well-formed answer to this query.
    Bogus(String),
}

async fn ask(
    http: &reqwest::Client,
    router: &VerifiedService,
    echo: &QueryEcho,
    avoid: &[PublicKey],
) -> Result<RoutesAnswer, Ask> {
    let key = atomicity_core::parse_key(&router.key).map_err(Ask::Bogus)?;
    let mut query: Vec<(&str, String)> = vec![
        ("from", echo.from.clone()),
        ("to", echo.to.clone()),
        ("amount", echo.amount.clone()),
        ("asset", echo.asset.clone()),
    ];
    query.extend(avoid.iter().map(|k| ("avoid", k.to_z32())));
    let response = http
        .get(format!("{}{ROUTE_PATH}", router.url))
        .query(&query)
        .send()
        .await
        .map_err(|e| Ask::Silent(e.to_string()))?;
    if response.status().is_server_error() {
        return Err(Ask::Silent(format!("answered {}", response.status())));
    }
    if !response.status().is_success() {
        return Err(Ask::Bogus(format!("answered {}", response.status())));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| Ask::Silent(e.to_string()))?;
    let document =
        verify_document(&body, &key, ANSWER_PATH, None).map_err(|e| Ask::Bogus(e.to_string()))?;
    let answer: RoutesAnswer =
        serde_json::from_str(document.value.get()).map_err(|e| Ask::Bogus(e.to_string()))?;
    if answer.query != *echo {
        return Err(Ask::Bogus("the answer is for another query".into()));
    }
    Ok(answer)
}

/// A proposed route as keys, if it is one: 1 to [`MAX_ROUTE_LEN`] distinct keys, the payee
/// last, starting at one of my peers; with its expected fees.
fn check_route(
    route: &atomicity_core::router_api::RouteJson,
    payee: &PublicKey,
    asset: &Asset,
    directory: &Directory,
    avoid: &[PublicKey],
) -> Result<(Vec<PublicKey>, Amount), String> {
    if route.hops.is_empty() || route.hops.len() > MAX_ROUTE_LEN {
        return Err(format!("a route of {} keys", route.hops.len()));
    }
    let path: Vec<PublicKey> = route
        .hops
        .iter()
        .map(|k| atomicity_core::parse_key(k))
        .collect::<Result<_, _>>()?;
    if path.last() != Some(payee) {
        return Err("the route does not end at the payee".into());
    }
    let mut seen = std::collections::HashSet::new();
    if !path.iter().all(|k| seen.insert(k)) {
        return Err("the route visits a node twice".into());
    }
    if let Some(k) = path.iter().find(|k| avoid.contains(k)) {
        return Err(format!(
            "the route passes through {k}, which I asked to avoid"
        ));
    }
    if !directory.contains(&path[0]) {
        return Err(format!(
            "the route starts at {}, not one of my peers",
            path[0]
        ));
    }
    let fees = asset
        .parse_amount(&route.fees)
        .map_err(|e| format!("fees: {e}"))?;
    Ok((path, fees))
}
