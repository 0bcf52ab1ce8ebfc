//! Path finding over the credit graph, pure (no I/O, no clock, no global randomness).
//!
//! A node publishes its lines ([`atomicity_core::published::ChannelsValue`]): for each, the
//! peer it will issue credit to, the asset, a capacity hint and its forwarding fee, plus the
//! witness logs it accepts. The crawler feeds these documents into a [`Graph`]
//! ([`Graph::set_node`], [`Graph::remove_node`]; [`GraphBuilder`] for a cold load), and the
//! payer asks:
//!
//! - [`find_route`]: the cheapest route for an amount, under the payer's filters and a hop
//!   limit ([`RouteQuery`]);
//! - [`find_routes`]: up to k diverse alternatives;
//! - [`multi_path`]: a split over several routes when no single one carries the amount;
//! - [`max_flow`]: an upper bound on what can be sent at all (fees ignored, see
//!   [`FlowBound`]);
//! - [`widest_route`]: the most one route can deliver;
//! - [`check_route`]: validate and price a route found elsewhere.
//!
//! # The model
//!
//! An edge `u → v` in asset `a` means "u will issue credit to v" up to its capacity. A payment
//! from S through H1…Hk to R is a chain of IOUs S→H1, H1→H2, …, Hk→R. Each intermediate `Hi`
//! charges its fee (`base + floor(amount × ppm / 10^6)`, [`atomicity_core::FeePolicy`]) on
//! the amount it forwards, and the payer's own first edge carries no fee: so if R must get
//! `A`, Hk→R carries `A`, H(k−1)→Hk carries `A + fee_Hk(A)`, and so on back to S. Because fees
//! depend on the downstream amount, the searches run from the payee backward.
//!
//! Money is `u64` minor units, fees `u64`, ppm `u32`, with checked arithmetic (an overflow
//! makes a route infeasible, never wraps); costs are `u128`. No floats.
//!
//! See the modules for the storage layout and update invariant ([`graph`]), the search and its
//! correctness argument ([`search`]), and the synthetic networks ([`generate`]).
#![deny(missing_docs)]

pub mod fees;
pub mod flow;
pub mod generate;
pub mod graph;
pub mod multipath;
pub mod query;
pub mod search;

pub use flow::{FlowBound, max_flow};
pub use graph::{
    AssetId, CompactionPolicy, Edge, EdgeSpec, Graph, GraphBuilder, GraphError, GraphStats, NodeId,
    NodeKey, WitnessId,
};
pub use multipath::{DEFAULT_MAX_PARTS, multi_path};
pub use query::{
    DEFAULT_MAX_HOPS, Filters, MAX_ROUTE_EDGES, MultiRoute, NodeFilter, QueryError, Route,
    RouteQuery,
};
pub use search::{DIVERSITY_PPM, check_route, find_route, find_routes, widest_route};
