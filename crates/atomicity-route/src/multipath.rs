//! Splitting a payment over several routes.

use crate::query::{MultiRoute, Route, RouteQuery};
use crate::search::{Ctx, Used, with_scratch};

/// Default most parts of [`multi_path`].
pub const DEFAULT_MAX_PARTS: usize = 8;

/// How many times a part's amount is halved before giving up (when the widest route is longer
/// than the hop limit).
const HALVINGS: usize = 16;

/// Pays `query.amount` in up to `max_parts` routes whose deliveries add up to exactly the
/// amount, or `None` if this greedy split finds none.
///
/// Successive capacity-aware searches: every edge's capacity is reduced by what earlier parts
/// put on it (the amount on that edge, downstream fees included), and each part is found so:
///
/// 1. the widest route's capacity `w` on the residual capacities ([`crate::widest_route`]:
///    the most one route can deliver, fees taken into account, the hop limit ignored); if it
///    is 0, or if it is less than what is left and this is the last part allowed, the split
///    fails;
/// 2. the part is the cheapest route ([`crate::find_route`]'s search) for `min(w, left)`,
///    halving that amount while no route within the hop limit carries it (the widest route
///    may be longer than the limit), at most 16 times.
///
/// So a payment that fits in one route gets exactly [`crate::find_route`]'s route (the widest
/// capacity is at least what any route carries). The split is greedy (large parts first,
/// each the cheapest for its size), not a min-cost flow: it may fail where a cleverer split
/// would succeed, and it is not the cheapest split in general. A node on several parts
/// charges its fee on each (each part is its own IOU).
pub fn multi_path(
    graph: &crate::Graph,
    query: &RouteQuery<'_>,
    max_parts: usize,
) -> Option<MultiRoute> {
    let res = query.resolve(graph).ok()?;
    if max_parts == 0 {
        return None;
    }
    with_scratch(|scratch| {
        let mut used = Used::new();
        let mut parts: Vec<Route> = Vec::new();
        let mut left = query.amount;
        while left > 0 {
            if parts.len() >= max_parts {
                return None;
            }
            let ctx = Ctx {
                used: Some(&used),
                ..Ctx::new(graph, query, &res)
            };
            let width = scratch.widest(&ctx);
            if width == 0 || (width < left && parts.len() + 1 >= max_parts) {
                return None;
            }
            let mut amount = width.min(left);
            let mut found = None;
            for _ in 0..HALVINGS {
                if amount == 0 {
                    break;
                }
                let ctx = Ctx {
                    amount,
                    used: Some(&used),
                    ..Ctx::new(graph, query, &res)
                };
                if let Some(route) = scratch.best_route(&ctx) {
                    found = Some(route);
                    break;
                }
                if amount == left && parts.len() + 1 >= max_parts {
                    return None;
                }
                amount /= 2;
            }
            let part = found?;
            for (i, &amount) in part.amounts.iter().enumerate() {
                let edge = (part.nodes[i].0, part.nodes[i + 1].0);
                let taken = used.entry(edge).or_insert(0);
                *taken = taken.checked_add(amount)?;
            }
            left = left.checked_sub(part.delivered())?;
            parts.push(part);
        }
        let fees = parts
            .iter()
            .try_fold(0u64, |sum, p| sum.checked_add(p.fees))?;
        let cost = parts
            .iter()
            .try_fold(0u128, |sum, p| sum.checked_add(p.cost))?;
        Some(MultiRoute { parts, fees, cost })
    })
}
