//! Incremental updates: after any sequence of `set_node` / `remove_node` (with compactions
//! forced often or never), every answer equals the answer on a graph built from scratch from
//! the same data (in another insertion order, so other ids).

mod common;

use atomicity_route::{
    CompactionPolicy, Graph, NodeId, Route, find_route, find_routes, max_flow, multi_path,
};
use common::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Set(usize, MNode),
    Remove(usize),
}

fn arb_ops(n: usize) -> impl Strategy<Value = Vec<Op>> {
    let node = arb_model(8).prop_map(|m| m.nodes[0].clone());
    prop::collection::vec(
        prop_oneof![
            3 => (0..n, node).prop_map(move |(i, mut node)| {
                node.published = true;
                node.edges.iter_mut().for_each(|e| e.to %= n);
                Op::Set(i, node)
            }),
            1 => (0..n).prop_map(Op::Remove),
        ],
        1..14,
    )
}

prop_compose! {
    fn arb_scenario()(m in arb_model(8))(
        ops in arb_ops(m.nodes.len()),
        divisor in 1usize..5,
        min_weight in prop_oneof![Just(0usize), 0usize..20, Just(usize::MAX)],
        compact_first in any::<bool>(),
        queries in prop::collection::vec(arb_query(m.nodes.len()), 6),
        m in Just(m),
    ) -> (Model, Vec<Op>, CompactionPolicy, bool, Vec<MQuery>) {
        (m, ops, CompactionPolicy { divisor, min_weight }, compact_first, queries)
    }
}

/// A route in key terms.
fn view(r: &Route) -> (Vec<[u8; 32]>, Vec<u64>, u64, u128) {
    (r.keys.clone(), r.amounts.clone(), r.fees, r.cost)
}

/// Everything the two graphs answer must be equal.
fn assert_same_answers(m: &Model, a: &Graph, b: &Graph, queries: &[MQuery]) {
    let n = m.nodes.len();
    // Stored data, by key.
    for i in 0..n {
        let (ia, ib) = (a.node_id(&key(i)), b.node_id(&key(i)));
        let edges = |g: &Graph, id: Option<NodeId>| {
            let mut list: Vec<_> = id
                .map(|id| g.out_edges(id))
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    (
                        *g.key(e.to).expect("key"),
                        g.asset_name(e.asset).expect("asset").to_string(),
                        e.capacity,
                        e.fee_base,
                        e.fee_ppm,
                        e.updated_at,
                    )
                })
                .collect();
            list.sort();
            list
        };
        assert_eq!(edges(a, ia), edges(b, ib), "out edges of {i}");
        let ins = |g: &Graph, id: Option<NodeId>| {
            let mut list: Vec<_> = id
                .map(|id| g.in_edges(id))
                .unwrap_or_default()
                .into_iter()
                .map(|e| (*g.key(e.from).expect("key"), e.capacity))
                .collect();
            list.sort();
            list
        };
        assert_eq!(ins(a, ia), ins(b, ib), "in edges of {i}");
        let published = |g: &Graph, id: Option<NodeId>| id.is_some_and(|id| g.is_published(id));
        assert_eq!(published(a, ia), published(b, ib));
        assert_eq!(published(a, ia), m.nodes[i].published);
        let witnesses = |g: &Graph, id: Option<NodeId>| {
            let mut w: Vec<String> = id
                .map(|id| g.witnesses(id).into_iter().map(String::from).collect())
                .unwrap_or_default();
            w.sort();
            w
        };
        assert_eq!(witnesses(a, ia), witnesses(b, ib));
    }
    assert_eq!(a.edge_count(), b.edge_count());
    for base in queries {
        for from in 0..n {
            for to in 0..n {
                let q = MQuery {
                    from,
                    to,
                    ..base.clone()
                };
                let hook_a = q.hook.map(|mask| hook_for(a, mask, n));
                let hook_b = q.hook.map(|mask| hook_for(b, mask, n));
                let ref_a = hook_a.as_ref().map(|h| h as &dyn Fn(NodeId) -> bool);
                let ref_b = hook_b.as_ref().map(|h| h as &dyn Fn(NodeId) -> bool);
                let (qa, qb) = (q.to_query(a, ref_a), q.to_query(b, ref_b));
                assert_eq!(
                    find_route(a, &qa).as_ref().map(view),
                    find_route(b, &qb).as_ref().map(view),
                    "find_route {from} → {to}"
                );
                let views = |rs: Vec<Route>| rs.iter().map(view).collect::<Vec<_>>();
                assert_eq!(views(find_routes(a, &qa, 3)), views(find_routes(b, &qb, 3)));
                assert_eq!(
                    multi_path(a, &qa, 4).map(|s| views(s.parts)),
                    multi_path(b, &qb, 4).map(|s| views(s.parts)),
                );
                let flow = |g: &Graph, query: &atomicity_route::RouteQuery<'_>| {
                    max_flow(
                        g,
                        &key(from),
                        &key(to),
                        ASSETS[q.asset],
                        &query.filters,
                        None,
                    )
                };
                assert_eq!(flow(a, &qa), flow(b, &qb));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn updates_equal_a_rebuild((m, ops, policy, compact_first, queries) in arb_scenario()) {
        let mut model = m.clone();
        let mut g = m.graph();
        g.set_compaction_policy(policy);
        if compact_first {
            g.compact();
        }
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Set(i, node) => {
                    let mut nodes = model.nodes.clone();
                    nodes[*i] = node.clone();
                    model = normalise(nodes);
                    // The graph gets the raw list (self-loops, duplicates: the later wins).
                    let mut specs = Vec::new();
                    for e in &node.edges {
                        specs.push(atomicity_route::EdgeSpec {
                            to: key(e.to),
                            asset: ASSETS[e.asset],
                            capacity: e.cap,
                            fee_base: e.base,
                            fee_ppm: e.ppm,
                        });
                    }
                    // The model keeps the first duplicate: give the graph the list reversed
                    // within each (to, asset) group by putting earlier duplicates last.
                    specs.reverse();
                    let names: Vec<String> = node.witnesses.iter().map(|&w| LOGS[w].to_string()).collect();
                    g.set_node(&key(*i), specs, names, node.updated_at).expect("set");
                }
                Op::Remove(i) => {
                    let mut nodes = model.nodes.clone();
                    nodes[*i].published = false;
                    model = normalise(nodes);
                    g.remove_node(&key(*i));
                }
            }
            if step == ops.len() / 2 {
                let order: Vec<usize> = (0..model.nodes.len()).rev().collect();
                let fresh = model.graph_in_order(&order);
                assert_same_answers(&model, &g, &fresh, &queries[..2]);
            }
        }
        let order: Vec<usize> = (0..model.nodes.len()).rev().collect();
        let fresh = model.graph_in_order(&order);
        assert_same_answers(&model, &g, &fresh, &queries);
    }
}
