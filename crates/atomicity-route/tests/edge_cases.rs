//! Edge cases and small hand-made graphs with known answers.

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;

use atomicity_route::generate::{GENERATED_AT, SplitMix64, preferential_attachment};
use atomicity_route::{
    EdgeSpec, Graph, MAX_ROUTE_EDGES, NodeId, QueryError, RouteQuery, check_route, find_route,
    find_routes, max_flow, multi_path,
};
use common::{MEdge, MNode, MQuery, Model, brute_min, key};

/// An edge spec in asset "A".
fn e(to: usize, cap: u64, base: u64, ppm: u32) -> EdgeSpec<'static> {
    EdgeSpec {
        to: key(to),
        asset: "A",
        capacity: cap,
        fee_base: base,
        fee_ppm: ppm,
    }
}

/// A graph from `(node, edges)`; every node accepts "w0" and was updated at 100.
fn graph(nodes: Vec<(usize, Vec<EdgeSpec<'static>>)>) -> Graph {
    let mut g = Graph::new();
    for (i, edges) in nodes {
        g.set_node(&key(i), edges, vec!["w0".into()], 100)
            .expect("set");
    }
    g
}

fn query(from: usize, to: usize, amount: u64) -> RouteQuery<'static> {
    RouteQuery::new(key(from), key(to), amount, "A")
}

fn path(g: &Graph, r: &atomicity_route::Route) -> Vec<usize> {
    r.nodes
        .iter()
        .map(|&n| {
            let k = g.key(n).expect("key");
            (0..256).find(|&i| key(i) == *k).expect("model key")
        })
        .collect()
}

#[test]
fn invalid_queries_have_no_answer() {
    let g = graph(vec![(0, vec![e(1, 100, 0, 0)]), (1, vec![e(0, 100, 0, 0)])]);
    let cases = [
        (query(0, 1, 0), QueryError::ZeroAmount),
        (query(0, 0, 5), QueryError::SelfPayment),
        (query(0, 7, 5), QueryError::UnknownPayee),
        (query(7, 0, 5), QueryError::UnknownPayer),
        (
            RouteQuery::new(key(0), key(1), 5, "ZZZ"),
            QueryError::UnknownAsset,
        ),
        (
            RouteQuery {
                max_hops: 0,
                ..query(0, 1, 5)
            },
            QueryError::ZeroHops,
        ),
    ];
    for (q, why) in cases {
        assert_eq!(q.check(&g), Err(why));
        assert_eq!(find_route(&g, &q), None);
        assert!(find_routes(&g, &q, 3).is_empty());
        assert_eq!(multi_path(&g, &q, 8), None);
    }
    let nobody = max_flow(&g, &key(0), &key(7), "A", &Default::default(), None);
    assert_eq!(nobody.upper_bound, 0);
    let myself = max_flow(&g, &key(0), &key(0), "A", &Default::default(), None);
    assert_eq!(myself.upper_bound, 0);
    assert!(find_route(&g, &query(0, 1, 5)).is_some());
}

#[test]
fn the_payer_pays_no_fee_on_its_own_line() {
    let g = graph(vec![(0, vec![e(1, 100, 50, 500_000)])]);
    let r = find_route(&g, &query(0, 1, 100)).expect("direct");
    assert_eq!((r.amounts.clone(), r.fees, r.cost), (vec![100], 0, 0));
    assert!(find_route(&g, &query(0, 1, 101)).is_none(), "capacity");
}

#[test]
fn the_hop_cap_is_max_hops_plus_one_edges() {
    assert_eq!(MAX_ROUTE_EDGES, atomicity_core::forward::MAX_HOPS + 1);
    let n = MAX_ROUTE_EDGES + 3;
    let g = graph((0..n).map(|i| (i, vec![e(i + 1, 1000, 1, 0)])).collect());
    let far = |to: usize, max_hops: usize| {
        find_route(
            &g,
            &RouteQuery {
                max_hops,
                ..query(0, to, 10)
            },
        )
    };
    let r = far(MAX_ROUTE_EDGES, 1000).expect("17 edges");
    assert_eq!(r.hops(), MAX_ROUTE_EDGES);
    assert_eq!(r.fees, (MAX_ROUTE_EDGES - 1) as u64);
    assert!(
        far(MAX_ROUTE_EDGES + 1, 1000).is_none(),
        "18 edges: over the cap"
    );
    assert!(far(MAX_ROUTE_EDGES, MAX_ROUTE_EDGES - 1).is_none());
    assert_eq!(far(3, 3).map(|r| r.hops()), Some(3));
}

#[test]
fn overflow_near_u64_max_makes_routes_infeasible_not_wrong() {
    let max = u64::MAX;
    // 0 → 1 direct; 0 → 2 → 1 with a fee of 1.
    let g = graph(vec![
        (0, vec![e(1, max, 0, 0), e(2, max, 0, 0)]),
        (2, vec![e(1, max, 1, 0)]),
        (3, vec![e(4, max, 0, u32::MAX)]),
        (5, vec![e(3, max, 0, 0)]),
    ]);
    let r = find_route(&g, &query(0, 1, max)).expect("direct, no fee");
    assert_eq!(r.amounts, vec![max]);
    let blocked = RouteQuery {
        filters: atomicity_route::Filters {
            blocked: [g.node_id(&key(1)).expect("1")].into(),
            ..Default::default()
        },
        ..query(0, 2, max)
    };
    assert_eq!(find_route(&g, &blocked).map(|r| r.amounts), Some(vec![max]));
    // Through 2: needs max + 1.
    let mut g2 = g.clone();
    g2.set_node(&key(0), vec![e(2, max, 0, 0)], vec!["w0".into()], 100)
        .expect("set");
    assert!(find_route(&g2, &query(0, 1, max)).is_none());
    let r = find_route(&g2, &query(0, 1, max - 1)).expect("max - 1 + 1 fits");
    assert_eq!(r.amounts, vec![max, max - 1]);
    assert_eq!(r.fees, 1);
    // ppm = u32::MAX on a huge amount: the fee itself overflows.
    assert!(find_route(&g, &query(5, 4, max / 2)).is_none());
    assert!(find_route(&g, &query(5, 4, 1000)).is_some());
    // Max flow saturates.
    let both = graph(vec![
        (0, vec![e(1, max, 0, 0), e(2, max, 0, 0)]),
        (2, vec![e(1, max, 0, 0)]),
    ]);
    assert_eq!(
        max_flow(&both, &key(0), &key(1), "A", &Default::default(), None).upper_bound,
        max
    );
}

/// A lower-cost label with a higher amount must not hide a higher-cost one with a lower
/// amount: plain Dijkstra on cost gets this wrong.
#[test]
fn pareto_labels_keep_the_cheaper_amount() {
    // 0 (payer) → 1 (ppm 100%) → 2 → {3 → 4, 4}; payee 4. From 2: direct to 4 costs a fee of
    // 5 and one hop; via 3 no fee and two hops. Hop penalty 6.
    let g = graph(vec![
        (0, vec![e(1, 1000, 0, 0)]),
        (1, vec![e(2, 1000, 0, 1_000_000)]),
        (2, vec![e(4, 1000, 5, 0), e(3, 1000, 0, 0)]),
        (3, vec![e(4, 1000, 0, 0)]),
    ]);
    let q = RouteQuery {
        hop_penalty: 6,
        ..query(0, 4, 10)
    };
    let r = find_route(&g, &q).expect("route");
    assert_eq!(path(&g, &r), vec![0, 1, 2, 3, 4]);
    // Fees: 2 forwards 10 to 3 for free, 1 forwards 10 for 10: 10; 4 hops: 24.
    assert_eq!((r.fees, r.cost), (10, 34));
    // The other: 2 keeps 5, 1 takes 15: 20 + 3 × 6 = 38.
    let other = check_route(
        &g,
        &q,
        &[0, 1, 2, 4].map(|i| g.node_id(&key(i)).expect("id")),
    )
    .expect("valid");
    assert_eq!((other.fees, other.cost), (20, 38));
}

#[test]
fn the_hop_limit_finds_the_cheapest_short_route() {
    // Cheap long chain 0→1→2→3→4, a costly shortcut 0→5→4 and 1→4.
    let g = graph(vec![
        (0, vec![e(1, 1000, 0, 0), e(5, 1000, 0, 0)]),
        (1, vec![e(2, 1000, 0, 0), e(4, 1000, 30, 0)]),
        (2, vec![e(3, 1000, 0, 0)]),
        (3, vec![e(4, 1000, 0, 0)]),
        (5, vec![e(4, 1000, 20, 0)]),
    ]);
    let hops = |max_hops| {
        find_route(
            &g,
            &RouteQuery {
                max_hops,
                ..query(0, 4, 10)
            },
        )
        .map(|r| (path(&g, &r), r.fees))
    };
    assert_eq!(hops(8), Some((vec![0, 1, 2, 3, 4], 0)));
    assert_eq!(hops(3), Some((vec![0, 5, 4], 20)));
    assert_eq!(hops(2), Some((vec![0, 5, 4], 20)));
    assert_eq!(hops(1), None);
}

/// Under a hop limit, a cheaper label with more hops must not hide a dearer one with fewer:
/// here the short way up from node 1 carries only the payee's amount, not what node 1 needs,
/// and the cheap long label reaches node 1 first.
#[test]
fn the_hop_limit_keeps_short_dear_labels() {
    // Payer 0, payee 9. From 1: 1 → 2 → 3 → 9 (1 charges 1) or 1 → 5 → 9 (5 charges 4). Up
    // from 1: 0 → 1 (capacity 10 only) or 0 → 4 → 1.
    let g = graph(vec![
        (0, vec![e(1, 10, 0, 0), e(4, 1000, 0, 0)]),
        (4, vec![e(1, 1000, 0, 0)]),
        (1, vec![e(2, 1000, 1, 0), e(5, 1000, 0, 0)]),
        (2, vec![e(3, 1000, 0, 0)]),
        (3, vec![e(9, 1000, 0, 0)]),
        (5, vec![e(9, 1000, 4, 0)]),
    ]);
    let route = |max_hops| {
        find_route(
            &g,
            &RouteQuery {
                max_hops,
                ..query(0, 9, 10)
            },
        )
        .map(|r| (path(&g, &r), r.cost))
    };
    assert_eq!(route(5), Some((vec![0, 4, 1, 2, 3, 9], 1)));
    assert_eq!(route(4), Some((vec![0, 4, 1, 5, 9], 4)));
    assert_eq!(route(2), None);
}

#[test]
fn witness_rule_and_filters() {
    let mut g = Graph::default();
    // 0 → 1 → 3 (1 accepts w1 only), 0 → 2 → 3 (2 accepts w0; fee 5).
    g.set_node(
        &key(0),
        vec![e(1, 100, 0, 0), e(2, 100, 0, 0)],
        vec!["w0".into()],
        100,
    )
    .expect("set");
    g.set_node(&key(1), vec![e(3, 100, 0, 0)], vec!["w1".into()], 100)
        .expect("set");
    g.set_node(
        &key(2),
        vec![e(3, 100, 5, 0)],
        vec!["w0".into(), "w2".into()],
        100,
    )
    .expect("set");
    let with = |witnesses: &[&str]| {
        let q = RouteQuery {
            filters: atomicity_route::Filters {
                witnesses: witnesses.iter().map(|w| w.to_string()).collect(),
                ..Default::default()
            },
            ..query(0, 3, 10)
        };
        find_route(&g, &q).map(|r| path(&g, &r))
    };
    assert_eq!(with(&[]), Some(vec![0, 1, 3]), "no rule: the free hop");
    assert_eq!(with(&["w0"]), Some(vec![0, 2, 3]));
    assert_eq!(with(&["w2", "w1"]), Some(vec![0, 1, 3]));
    assert_eq!(with(&["unknown"]), None);
    // The hook is asked once per node and query, and may search again itself.
    let calls = Cell::new(0);
    let inner = |id: NodeId| {
        calls.set(calls.get() + 1);
        // Re-entrant: a web-of-trust rule that itself looks for routes.
        find_route(&g, &query(0, 3, 1)).is_some() && g.key(id) != Some(&key(1))
    };
    let q = RouteQuery {
        filters: atomicity_route::Filters {
            hook: Some(&inner),
            ..Default::default()
        },
        ..query(0, 3, 10)
    };
    assert_eq!(
        find_route(&g, &q).map(|r| path(&g, &r)),
        Some(vec![0, 2, 3])
    );
    assert_eq!(calls.get(), 2);
    let allowed = RouteQuery {
        filters: atomicity_route::Filters {
            allowed_only: Some([g.node_id(&key(2)).expect("2")].into()),
            ..Default::default()
        },
        ..query(0, 3, 10)
    };
    assert_eq!(
        find_route(&g, &allowed).map(|r| path(&g, &r)),
        Some(vec![0, 2, 3])
    );
}

#[test]
fn stale_edges_cost_extra() {
    let mut g = Graph::new();
    g.set_node(
        &key(0),
        vec![e(1, 1000, 0, 0), e(2, 1000, 0, 0)],
        vec![],
        1000,
    )
    .expect("set");
    g.set_node(&key(1), vec![e(3, 1000, 1, 0)], vec![], 10)
        .expect("set");
    g.set_node(&key(2), vec![e(3, 1000, 2, 0)], vec![], 990)
        .expect("set");
    let q = |stale_penalty_ppm| RouteQuery {
        stale_after: 100,
        stale_penalty_ppm,
        now: 1000,
        ..query(0, 3, 100)
    };
    let r = find_route(&g, &q(0)).expect("route");
    assert_eq!((path(&g, &r), r.cost), (vec![0, 1, 3], 1));
    // 1's document is 990 s old: 1% of 100 = 1 more, a tie broken by the amount sent: 1
    // still wins; at 2%, 2 wins.
    let r = find_route(&g, &q(10_000)).expect("route");
    assert_eq!((path(&g, &r), r.cost), (vec![0, 1, 3], 2));
    let r = find_route(&g, &q(20_000)).expect("route");
    assert_eq!((path(&g, &r), r.cost), (vec![0, 2, 3], 2));
}

#[test]
fn ties_do_not_depend_on_insertion_order() {
    // Four equal routes 0 → {1,2,3,4} → 5.
    let nodes = |order: &[usize]| {
        let mut g = Graph::new();
        for &i in order {
            let edges = if i == 0 {
                vec![
                    e(1, 100, 0, 0),
                    e(2, 100, 0, 0),
                    e(3, 100, 0, 0),
                    e(4, 100, 0, 0),
                ]
            } else {
                vec![e(5, 100, 3, 0)]
            };
            g.set_node(&key(i), edges, vec![], 0).expect("set");
        }
        let r = find_route(&g, &query(0, 5, 10)).expect("route");
        path(&g, &r)
    };
    let first = nodes(&[0, 1, 2, 3, 4]);
    assert_eq!(nodes(&[4, 3, 2, 1, 0]), first);
    assert_eq!(nodes(&[2, 0, 4, 1, 3]), first);
}

#[test]
fn alternatives_avoid_earlier_hops() {
    // 0 → 1 → 2 → 5 cheapest, 0 → 1 → 3 → 5 next, 0 → 4 → 5 disjoint but dearer.
    let g = graph(vec![
        (0, vec![e(1, 100, 0, 0), e(4, 100, 0, 0)]),
        (1, vec![e(2, 100, 0, 0), e(3, 100, 1, 0)]),
        (2, vec![e(5, 100, 0, 0)]),
        (3, vec![e(5, 100, 0, 0)]),
        (4, vec![e(5, 100, 3, 0)]),
    ]);
    let routes = find_routes(&g, &query(0, 5, 10), 3);
    let paths: Vec<_> = routes.iter().map(|r| path(&g, r)).collect();
    assert_eq!(paths[0], vec![0, 1, 2, 5]);
    assert!(paths.contains(&vec![0, 4, 5]), "{paths:?}");
    assert_eq!(routes.len(), 3);
    let costs: Vec<_> = routes.iter().map(|r| r.cost).collect();
    assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{costs:?}");
}

#[test]
fn multi_path_splits_over_parallel_routes() {
    let g = graph(vec![
        (0, vec![e(1, 60, 0, 0), e(2, 60, 0, 0)]),
        (1, vec![e(3, 60, 1, 0)]),
        (2, vec![e(3, 60, 2, 0)]),
    ]);
    assert!(find_route(&g, &query(0, 3, 100)).is_none());
    let split = multi_path(&g, &query(0, 3, 100), 8).expect("split");
    let delivered: u64 = split.parts.iter().map(|p| p.delivered()).sum();
    assert_eq!(delivered, 100);
    assert_eq!(split.parts.len(), 2);
    assert_eq!(split.fees, 3);
    for part in &split.parts {
        assert!(part.sent() <= 60);
    }
    assert!(multi_path(&g, &query(0, 3, 100), 1).is_none());
    assert!(multi_path(&g, &query(0, 3, 118), 8).is_none(), "fees eat 3");
    let bound = max_flow(&g, &key(0), &key(3), "A", &Default::default(), None);
    assert_eq!(bound.upper_bound, 120);
    let limited = max_flow(&g, &key(0), &key(3), "A", &Default::default(), Some(50));
    assert_eq!((limited.upper_bound, limited.limit_reached), (50, true));
}

/// The same checks on a generated network of 2,000 nodes: every route found is valid and
/// priced like brute force would (per route), with tight hop limits too.
#[test]
fn routes_on_a_generated_network_are_valid() {
    let synthetic = preferential_attachment(2_000, 10_000, 3);
    let g = synthetic.graph().expect("graph");
    let mut rng = SplitMix64::new(9);
    let mut found = 0;
    for i in 0..300 {
        let from = rng.below(2_000) as usize;
        let to = rng.below(2_000) as usize;
        let witnesses = synthetic.witness_names(to);
        let q = RouteQuery {
            max_hops: 1 + i % 8,
            hop_penalty: rng.below(20),
            stale_after: 86_400,
            stale_penalty_ppm: 1_000,
            now: GENERATED_AT,
            filters: atomicity_route::Filters {
                witnesses,
                ..Default::default()
            },
            ..RouteQuery::new(
                synthetic.nodes[from].key,
                synthetic.nodes[to].key,
                1 + rng.below(200_000),
                "USD",
            )
        };
        if let Some(r) = find_route(&g, &q) {
            found += 1;
            assert!(r.hops() <= q.max_hops);
            assert_eq!(check_route(&g, &q, &r.nodes).as_ref(), Some(&r));
            assert!(r.amounts.windows(2).all(|w| w[0] >= w[1]));
        }
    }
    assert!(found > 100, "found {found}");
}

/// The model's brute force agrees with the hand-made Pareto case (the reference itself).
#[test]
fn the_reference_agrees_on_the_pareto_case() {
    let node = |edges: Vec<MEdge>| MNode {
        published: true,
        witnesses: vec![0],
        updated_at: 100,
        edges,
    };
    let me = |to, base, ppm| MEdge {
        to,
        asset: 0,
        cap: 1000,
        base,
        ppm,
    };
    let m = Model {
        nodes: vec![
            node(vec![me(1, 0, 0)]),
            node(vec![me(2, 0, 1_000_000)]),
            node(vec![me(4, 5, 0), me(3, 0, 0)]),
            node(vec![me(4, 0, 0)]),
            node(vec![]),
        ],
    };
    let q = MQuery {
        from: 0,
        to: 4,
        amount: 10,
        asset: 0,
        max_hops: 8,
        witnesses: vec![],
        blocked: vec![],
        allowed: None,
        hook: None,
        hop_penalty: 6,
        stale_after: 1000,
        stale_ppm: 0,
        now: 100,
    };
    assert_eq!(brute_min(&m, &q), Some(34));
    let _ = BTreeMap::<u8, u8>::new();
}
