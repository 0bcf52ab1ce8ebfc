//! Queries and their answers.

use std::collections::HashSet;
use std::fmt;

use thiserror::Error;

use crate::graph::{Graph, NodeId, NodeKey};

/// Default most edges of a route.
pub const DEFAULT_MAX_HOPS: usize = 8;

/// Hard cap on the edges of a route: [`atomicity_core::forward::MAX_HOPS`] + 1. The payer's
/// IOU to the first hop is one edge and its forwarding instructions may name up to `MAX_HOPS`
/// more keys, each one more edge; `Ledger::pay_routed` refuses a route with more than
/// `MAX_HOPS + 1` keys after the payer. A larger `max_hops` is lowered to this.
pub const MAX_ROUTE_EDGES: usize = atomicity_core::forward::MAX_HOPS + 1;

/// A per-node rule standing in for each hop's web-of-trust policy: `true` if the payer accepts
/// routing through the node.
pub type NodeFilter<'a> = &'a dyn Fn(NodeId) -> bool;

/// Which nodes may be *intermediate* hops. The payer and the payee are never filtered (they
/// are who they are); every node strictly between them must pass every rule:
///
/// - **witness rule**: if `witnesses` is not empty (the logs the payee's invoice lists), the
///   node must accept at least one of them, that is, one of them is in the witness list of its
///   published channel list. A hop that accepts none could not check the payment's condition.
///   Logs the graph has never seen match no node. An empty list sets no rule.
/// - not in `blocked`;
/// - in `allowed_only`, if given;
/// - `hook(node)` is true, if given. The hook is called at most once per node and query.
#[derive(Clone, Default)]
pub struct Filters<'a> {
    /// The payment's witness logs (verifier keys, as nodes publish them).
    pub witnesses: Vec<String>,
    /// Nodes the payer never routes through.
    pub blocked: HashSet<NodeId>,
    /// If given, the only nodes the payer routes through.
    pub allowed_only: Option<HashSet<NodeId>>,
    /// The payer's per-node rule.
    pub hook: Option<NodeFilter<'a>>,
}

impl fmt::Debug for Filters<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filters")
            .field("witnesses", &self.witnesses)
            .field("blocked", &self.blocked)
            .field("allowed_only", &self.allowed_only)
            .field("hook", &self.hook.map(|_| "Fn(NodeId) -> bool"))
            .finish()
    }
}

/// A route query: pay `amount` of `asset` from `from` to `to`.
///
/// The cost of a route is `fees + hop_penalty × edges + staleness`, where `fees` is what the
/// payer sends minus `amount`, and `staleness` adds, for each edge whose issuer's document is
/// older than `stale_after` seconds at `now`, `floor(amount on that edge × stale_penalty_ppm /
/// 10^6)` (the risk that its capacity or fee changed). The payer's own first edge counts too:
/// refresh the payer's node with [`Graph::set_node`] before querying to avoid that.
#[derive(Clone, Debug)]
pub struct RouteQuery<'a> {
    /// The payer.
    pub from: NodeKey,
    /// The payee.
    pub to: NodeKey,
    /// What the payee must receive, minor units (at least 1).
    pub amount: u64,
    /// The asset's text form.
    pub asset: String,
    /// Most edges of a route (1 to [`MAX_ROUTE_EDGES`]; larger values are lowered to it).
    pub max_hops: usize,
    /// Which nodes may forward.
    pub filters: Filters<'a>,
    /// Added to the cost per edge, minor units.
    pub hop_penalty: u64,
    /// An edge is stale when `now - updated_at > stale_after` (seconds).
    pub stale_after: u64,
    /// Cost of staleness per stale edge, in millionths of the amount on it.
    pub stale_penalty_ppm: u32,
    /// The current time, unix seconds.
    pub now: u64,
}

impl<'a> RouteQuery<'a> {
    /// A query with the defaults: [`DEFAULT_MAX_HOPS`], no filters, no hop penalty, nothing
    /// stale.
    pub fn new(from: NodeKey, to: NodeKey, amount: u64, asset: &str) -> RouteQuery<'a> {
        RouteQuery {
            from,
            to,
            amount,
            asset: asset.to_string(),
            max_hops: DEFAULT_MAX_HOPS,
            filters: Filters::default(),
            hop_penalty: 0,
            stale_after: u64::MAX,
            stale_penalty_ppm: 0,
            now: 0,
        }
    }

    /// Why the query cannot have an answer before any search, if so. The search functions
    /// return `None` (or 0) for such a query.
    pub fn check(&self, graph: &Graph) -> Result<(), QueryError> {
        self.resolve(graph).map(|_| ())
    }

    pub(crate) fn resolve(&self, graph: &Graph) -> Result<Resolved, QueryError> {
        if self.amount == 0 {
            return Err(QueryError::ZeroAmount);
        }
        self.resolve_ends(graph)
    }

    /// Like `resolve`, but any amount.
    pub(crate) fn resolve_ends(&self, graph: &Graph) -> Result<Resolved, QueryError> {
        if self.max_hops == 0 {
            return Err(QueryError::ZeroHops);
        }
        let from = graph.node_id(&self.from).ok_or(QueryError::UnknownPayer)?;
        let to = graph.node_id(&self.to).ok_or(QueryError::UnknownPayee)?;
        if from == to {
            return Err(QueryError::SelfPayment);
        }
        let asset = graph
            .asset_id(&self.asset)
            .ok_or(QueryError::UnknownAsset)?;
        Ok(Resolved {
            from: from.0,
            to: to.0,
            asset: asset.0,
            max_hops: self.max_hops.min(MAX_ROUTE_EDGES) as u32,
            witness_rule: witness_rule(graph, &self.filters),
        })
    }
}

/// The witness ids of the rule: `None` for no rule; `Some(empty)` when no listed log is known.
pub(crate) fn witness_rule(graph: &Graph, filters: &Filters<'_>) -> Option<Vec<u16>> {
    if filters.witnesses.is_empty() {
        return None;
    }
    let mut ids: Vec<u16> = filters
        .witnesses
        .iter()
        .filter_map(|w| graph.witness_id(w).map(|w| w.0))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Some(ids)
}

/// A query resolved against a graph.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub from: u32,
    pub to: u32,
    pub asset: u16,
    pub max_hops: u32,
    pub witness_rule: Option<Vec<u16>>,
}

/// Why a query cannot be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum QueryError {
    /// The amount is zero.
    #[error("the amount is zero")]
    ZeroAmount,
    /// `max_hops` is zero.
    #[error("max_hops is zero")]
    ZeroHops,
    /// The graph does not know the payer.
    #[error("unknown payer")]
    UnknownPayer,
    /// The graph does not know the payee.
    #[error("unknown payee")]
    UnknownPayee,
    /// Payer and payee are the same node.
    #[error("the payer is the payee")]
    SelfPayment,
    /// No line in the graph is in this asset.
    #[error("unknown asset")]
    UnknownAsset,
}

/// A route: `nodes[0]` (the payer) issues `amounts[0]` to `nodes[1]`, which issues
/// `amounts[1]` to `nodes[2]`, …, and the last amount reaches the payee. Each intermediate
/// `nodes[i]` keeps `amounts[i-1] - amounts[i]`, its fee on forwarding `amounts[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The nodes, payer first, payee last.
    pub nodes: Vec<NodeId>,
    /// Their keys.
    pub keys: Vec<NodeKey>,
    /// The amount on each edge (one fewer than nodes), non-increasing.
    pub amounts: Vec<u64>,
    /// Fees paid: `amounts[0] - delivered`.
    pub fees: u64,
    /// The route's cost (see [`RouteQuery`]).
    pub cost: u128,
}

impl Route {
    /// Edges.
    pub fn hops(&self) -> usize {
        self.amounts.len()
    }

    /// What the payer sends.
    pub fn sent(&self) -> u64 {
        self.amounts.first().copied().unwrap_or(0)
    }

    /// What the payee receives.
    pub fn delivered(&self) -> u64 {
        self.amounts.last().copied().unwrap_or(0)
    }
}

/// A payment split over several routes ([`crate::multi_path`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiRoute {
    /// The parts; their deliveries add up to the amount.
    pub parts: Vec<Route>,
    /// Fees of all parts.
    pub fees: u64,
    /// Cost of all parts.
    pub cost: u128,
}
