//! The router's index: crawled channel lists in an `atomicity-route` graph, and the queries the
//! HTTP API answers, in protocol types (keys, assets, decimal amounts).

use atomicity_core::router_api::RouteJson;
use atomicity_core::{Amount, Asset, PublicKey};
use atomicity_route::{EdgeSpec, Filters, Graph, Route, RouteQuery};

use crate::crawl::Changes;

/// Every route costs this much per edge on top of its fees (minor units): among routes of
/// equal fees, the shorter one has fewer nodes that can fail.
const HOP_PENALTY: u64 = 1;
/// A channel list older than this is stale: its capacities and fees may have changed.
const STALE_AFTER_SECS: u64 = 3600;
/// What staleness costs, in millionths of the amount on a stale line.
const STALE_PENALTY_PPM: u32 = 1000;

/// A query, parsed.
#[derive(Clone, Debug)]
pub struct RouteAsk {
    /// The payer.
    pub from: PublicKey,
    /// The payee.
    pub to: PublicKey,
    /// What the payee must receive (zero for max-sendable).
    pub amount: Amount,
    /// The asset.
    pub asset: Asset,
    /// Most lines a route may use (default [`atomicity_route::DEFAULT_MAX_HOPS`]).
    pub max_hops: Option<u8>,
    /// The payment's witness logs: every intermediate node must accept one.
    pub witnesses: Vec<String>,
    /// Nodes the payer never routes through.
    pub avoid: Vec<PublicKey>,
}

/// The crawled graph.
#[derive(Default)]
pub struct Index {
    graph: Graph,
}

impl Index {
    /// Applies one crawl round's changes: each updated node's lines replace its old ones; an
    /// expired node's lines go.
    pub fn apply(&mut self, changes: Changes) {
        for (key, channels) in changes.updated {
            let assets: Vec<String> = channels.lines.iter().map(|l| l.asset.to_string()).collect();
            let edges: Vec<EdgeSpec<'_>> = channels
                .lines
                .iter()
                .zip(&assets)
                .map(|(line, asset)| EdgeSpec {
                    to: line.peer.to_bytes(),
                    asset,
                    capacity: line.capacity.minor(),
                    fee_base: line.fee_base.minor(),
                    fee_ppm: line.fee_ppm,
                })
                .collect();
            let signed_at = channels.seq / 1_000_000;
            if let Err(e) =
                self.graph
                    .set_node(&key.to_bytes(), edges, channels.witnesses, signed_at)
            {
                tracing::warn!(node = %key, "cannot index: {e}");
            }
        }
        for key in changes.expired {
            self.graph.remove_node(&key.to_bytes());
        }
    }

    /// Nodes whose channel lists are indexed.
    pub fn indexed_nodes(&self) -> usize {
        self.graph.stats().published
    }

    /// Directed lines indexed.
    pub fn lines(&self) -> usize {
        self.graph.edge_count()
    }

    fn query(&self, ask: &RouteAsk) -> RouteQuery<'static> {
        let mut query = RouteQuery::new(
            ask.from.to_bytes(),
            ask.to.to_bytes(),
            ask.amount.minor(),
            &ask.asset.to_string(),
        );
        if let Some(hops) = ask.max_hops {
            query.max_hops = usize::from(hops).max(1);
        }
        query.filters = Filters {
            witnesses: ask.witnesses.clone(),
            blocked: ask
                .avoid
                .iter()
                .filter_map(|k| self.graph.node_id(&k.to_bytes()))
                .collect(),
            ..Filters::default()
        };
        query.hop_penalty = HOP_PENALTY;
        query.stale_after = STALE_AFTER_SECS;
        query.stale_penalty_ppm = STALE_PENALTY_PPM;
        query.now = crate::unix_now();
        query
    }

    /// Up to `k` routes, best first.
    pub fn routes(&self, ask: &RouteAsk, k: usize) -> Vec<RouteJson> {
        let query = self.query(ask);
        atomicity_route::find_routes(&self.graph, &query, k)
            .iter()
            .filter_map(|r| route_json(r, &ask.asset))
            .collect()
    }

    /// Parts that together deliver the amount (empty: no split found).
    pub fn multi_path(&self, ask: &RouteAsk, max_parts: usize) -> Vec<RouteJson> {
        let query = self.query(ask);
        atomicity_route::multi_path(&self.graph, &query, max_parts)
            .map(|m| {
                m.parts
                    .iter()
                    .filter_map(|r| route_json(r, &ask.asset))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How much `from` can send to `to`: an upper bound that ignores fees (`true`).
    pub fn max_flow(&self, ask: &RouteAsk) -> (Amount, bool) {
        let query = self.query(ask);
        let bound = atomicity_route::max_flow(
            &self.graph,
            &query.from,
            &query.to,
            &query.asset,
            &query.filters,
            None,
        );
        (Amount::from_minor(bound.upper_bound), true)
    }
}

/// A route in the API's form: keys after the payer, decimal amounts.
fn route_json(route: &Route, asset: &Asset) -> Option<RouteJson> {
    let hops = route
        .keys
        .iter()
        .skip(1)
        .map(|k| PublicKey::try_from(k).ok().map(|k| k.to_z32()))
        .collect::<Option<Vec<_>>>()?;
    Some(RouteJson {
        hops,
        amounts: route
            .amounts
            .iter()
            .map(|a| asset.format(Amount::from_minor(*a)))
            .collect(),
        fees: asset.format(Amount::from_minor(route.fees)),
    })
}
