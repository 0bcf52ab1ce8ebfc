//! The router's HTTP API (`atomicity router run`), as types both the router and the nodes that
//! ask it use.
//!
//! Every answer is a signed document (`atomicity_core::published`) under the router's key at
//! [`ANSWER_PATH`], whose value echoes the query: a client checks the signature with the key the
//! router proved (`GET /v1/identity`) and that the echo is its own query, so an answer cannot be
//! forged by the network or replayed for another query.

use serde::{Deserialize, Serialize};

/// `GET /v1/route?from=&to=&amount=&asset=[&max_hops=][&witness=..][&alternatives=]`: up to
/// `alternatives` (default 3, at most 3) routes, best first.
pub const ROUTE_PATH: &str = "/v1/route";
/// `GET /v1/multi-route?from=&to=&amount=&asset=[&max_hops=][&witness=..][&max_parts=]`: parts
/// (default at most 8) that together deliver exactly `amount`.
pub const MULTI_ROUTE_PATH: &str = "/v1/multi-route";
/// `GET /v1/max-sendable?from=&to=&asset=`: how much `from` can send to `to`.
pub const MAX_SENDABLE_PATH: &str = "/v1/max-sendable";
/// `GET /v1/status`: the index and the last crawl (not signed).
pub const STATUS_PATH: &str = "/v1/status";
/// The document name every answer is signed under.
pub const ANSWER_PATH: &str = "/pub/atomicity/v1/router/answer";
/// Most alternatives one route query returns.
pub const MAX_ALTERNATIVES: usize = 3;

/// A route query as the router understood it (echoed in every answer).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueryEcho {
    /// What was asked: `route`, `multi-route` or `max-sendable`.
    pub kind: String,
    /// The payer (z-base32).
    pub from: String,
    /// The payee (z-base32).
    pub to: String,
    /// The amount the payee must receive (decimal; empty for `max-sendable`).
    pub amount: String,
    /// The asset.
    pub asset: String,
}

/// One route: the keys after the payer, ending with the payee, and what travels on each line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteJson {
    /// Keys of every node after the payer, the payee last.
    pub hops: Vec<String>,
    /// The amount on each line (decimal): `amounts[0]` is what the payer issues to `hops[0]`.
    pub amounts: Vec<String>,
    /// Fees the intermediate nodes charge in all (decimal).
    pub fees: String,
}

/// The answer to [`ROUTE_PATH`] and [`MULTI_ROUTE_PATH`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoutesAnswer {
    /// The query.
    pub query: QueryEcho,
    /// Routes (alternatives, best first) or parts (a multi-path split); empty: none found.
    pub routes: Vec<RouteJson>,
    /// Nodes in the index when answering.
    pub nodes: usize,
    /// Directed lines in the index.
    pub lines: usize,
}

/// The answer to [`MAX_SENDABLE_PATH`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MaxSendableAnswer {
    /// The query.
    pub query: QueryEcho,
    /// The amount (decimal).
    pub amount: String,
    /// The amount ignores fees, so the payee would receive somewhat less.
    pub ignores_fees: bool,
}

/// `GET /v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusAnswer {
    /// The router's key.
    pub key: String,
    /// Nodes indexed.
    pub nodes: usize,
    /// Directed lines indexed.
    pub lines: usize,
    /// Nodes the crawler knows (indexed or not yet fetched).
    pub known: usize,
    /// Crawl rounds done.
    pub rounds: u64,
    /// The last round.
    pub last_round: Option<RoundReport>,
}

/// Counts of one crawl round, for progress output and `GET /v1/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundReport {
    /// Nodes fetched this round.
    pub fetched: usize,
    /// Of those, with a new or changed document.
    pub changed: usize,
    /// With the document already indexed.
    pub unchanged: usize,
    /// Fetches that failed (no record, unreachable, bad document).
    pub failed: usize,
    /// Keys seen for the first time.
    pub discovered: usize,
    /// Nodes dropped.
    pub expired: usize,
    /// Nodes known after the round.
    pub known: usize,
    /// Milliseconds the round took.
    pub millis: u64,
}
