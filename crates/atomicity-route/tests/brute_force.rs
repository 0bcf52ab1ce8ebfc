//! The searches against brute force on small random graphs (≤ 8 nodes): every simple path
//! enumerated and priced with `atomicity_core::FeePolicy`, every cut enumerated.

mod common;

use std::collections::BTreeMap;

use atomicity_route::{check_route, find_route, find_routes, max_flow, multi_path, widest_route};
use common::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// find_route returns a valid route (edges in the asset with capacity for the amount on
    /// them, filters and the witness rule on every intermediate, fees exactly FeePolicy's, at
    /// most max_hops edges, no node twice) whose cost is the brute-force minimum; None iff
    /// brute force finds no route. check_route agrees with it.
    #[test]
    fn find_route_is_optimal(budget in prop::option::of(0usize..12), (m, q) in arb_any(8)) {
        let mut g = m.graph();
        g.set_bfs_budget(budget);
        let hook = q.hook.map(|mask| hook_for(&g, mask, m.nodes.len()));
        let hook_ref = hook.as_ref().map(|h| h as &dyn Fn(atomicity_route::NodeId) -> bool);
        let query = q.to_query(&g, hook_ref);
        let found = find_route(&g, &query);
        let best = brute_min(&m, &q);
        match (&found, best) {
            (None, None) => {}
            (Some(r), Some(best)) => {
                let priced = assert_valid(&m, &q, r, &BTreeMap::new());
                prop_assert_eq!(priced.cost, best);
                let checked = check_route(&g, &query, &r.nodes);
                prop_assert_eq!(checked.as_ref(), Some(r));
            }
            (found, best) => prop_assert!(false, "found {:?}, brute force {:?}", found, best),
        }
    }

    /// find_routes: the first is find_route's, all are valid and distinct, sorted by cost.
    #[test]
    fn find_routes_are_valid_and_distinct(budget in prop::option::of(0usize..12), (m, q) in arb_any(8), k in 1usize..4) {
        let mut g = m.graph();
        g.set_bfs_budget(budget);
        let hook = q.hook.map(|mask| hook_for(&g, mask, m.nodes.len()));
        let hook_ref = hook.as_ref().map(|h| h as &dyn Fn(atomicity_route::NodeId) -> bool);
        let query = q.to_query(&g, hook_ref);
        let routes = find_routes(&g, &query, k);
        prop_assert!(routes.len() <= k);
        let best = find_route(&g, &query);
        prop_assert_eq!(routes.first(), best.as_ref());
        for (i, r) in routes.iter().enumerate() {
            assert_valid(&m, &q, r, &BTreeMap::new());
            for other in &routes[..i] {
                prop_assert_ne!(&other.nodes, &r.nodes);
                prop_assert!(other.cost <= r.cost);
            }
        }
    }

    /// multi_path: the parts' deliveries add up to exactly the amount, each part is a valid
    /// route on the capacity the earlier parts left, at most max_parts parts; a payment that
    /// fits one route gets find_route's route; what it delivers never exceeds the max-flow
    /// bound.
    #[test]
    fn multi_path_splits_exactly(budget in prop::option::of(0usize..12), (m, q) in arb_any(8), max_parts in 1usize..5) {
        let mut g = m.graph();
        g.set_bfs_budget(budget);
        let hook = q.hook.map(|mask| hook_for(&g, mask, m.nodes.len()));
        let hook_ref = hook.as_ref().map(|h| h as &dyn Fn(atomicity_route::NodeId) -> bool);
        let query = q.to_query(&g, hook_ref);
        let single = find_route(&g, &query);
        let split = multi_path(&g, &query, max_parts);
        if let Some(single) = &single {
            let split = split.as_ref().expect("a single route is a split");
            prop_assert_eq!(&split.parts, &vec![single.clone()]);
        }
        if let Some(split) = split {
            prop_assert!(!split.parts.is_empty() && split.parts.len() <= max_parts);
            let mut used: BTreeMap<(usize, usize), u64> = BTreeMap::new();
            let mut delivered = 0u64;
            let mut fees = 0u64;
            let mut cost = 0u128;
            for part in &split.parts {
                let mut pq = q.clone();
                pq.amount = part.delivered();
                assert_valid(&m, &pq, part, &used);
                let path = model_path(part);
                for (i, &a) in part.amounts.iter().enumerate() {
                    *used.entry((path[i], path[i + 1])).or_insert(0) += a;
                }
                delivered += part.delivered();
                fees += part.fees;
                cost += part.cost;
            }
            prop_assert_eq!(delivered, q.amount);
            prop_assert_eq!(split.fees, fees);
            prop_assert_eq!(split.cost, cost);
            for ((u, v), total) in &used {
                prop_assert!(*total <= m.edge(*u, *v, q.asset).expect("edge").cap);
            }
            let bound = max_flow(&g, &key(q.from), &key(q.to), ASSETS[q.asset], &query.filters, None);
            prop_assert!(u128::from(q.amount) <= u128::from(bound.upper_bound));
        }
    }

    /// max_flow equals the minimum cut found by enumerating every cut, and with a limit it
    /// stops at the limit.
    #[test]
    fn max_flow_is_the_min_cut(budget in prop::option::of(0usize..12), (m, q) in arb_any(8), limit in 1u64..500) {
        let mut g = m.graph();
        g.set_bfs_budget(budget);
        let hook = q.hook.map(|mask| hook_for(&g, mask, m.nodes.len()));
        let hook_ref = hook.as_ref().map(|h| h as &dyn Fn(atomicity_route::NodeId) -> bool);
        let query = q.to_query(&g, hook_ref);
        let bound = max_flow(&g, &key(q.from), &key(q.to), ASSETS[q.asset], &query.filters, None);
        let expected = if q.from == q.to { 0 } else { brute_max_flow(&m, &q) };
        prop_assert_eq!(u128::from(bound.upper_bound), expected.min(u128::from(u64::MAX)));
        prop_assert!(!bound.limit_reached);
        let limited = max_flow(&g, &key(q.from), &key(q.to), ASSETS[q.asset], &query.filters, Some(limit));
        prop_assert_eq!(u128::from(limited.upper_bound), expected.min(u128::from(limit)));
        prop_assert_eq!(limited.limit_reached, expected >= u128::from(limit));
    }

    /// widest_route is the most any single valid route (hop limit aside) delivers, found by
    /// bisecting each simple path's feasible amounts.
    #[test]
    fn widest_route_is_the_best_single_path(budget in prop::option::of(0usize..12), (m, q) in arb_any(8)) {
        let mut g = m.graph();
        g.set_bfs_budget(budget);
        let hook = q.hook.map(|mask| hook_for(&g, mask, m.nodes.len()));
        let hook_ref = hook.as_ref().map(|h| h as &dyn Fn(atomicity_route::NodeId) -> bool);
        let query = q.to_query(&g, hook_ref);
        let mut unlimited = q.clone();
        unlimited.max_hops = 100;
        let mut best = 0u64;
        if q.from != q.to {
            for path in simple_paths(&m, &q) {
                let fits = |amount: u64| {
                    let mut aq = unlimited.clone();
                    aq.amount = amount;
                    price(&m, &aq, &path, &BTreeMap::new()).is_some()
                };
                if !fits(1) {
                    continue;
                }
                let (mut lo, mut hi) = (1u64, u64::MAX);
                while lo < hi {
                    let mid = lo + (hi - lo).div_ceil(2);
                    if fits(mid) { lo = mid } else { hi = mid - 1 }
                }
                best = best.max(lo);
            }
        }
        prop_assert_eq!(widest_route(&g, &query), best);
    }
}
