//! A reference model of small credit graphs, independent of the crate's storage and search:
//! brute force over every simple path, a min-cut by enumeration, a route checker using
//! `atomicity_core::FeePolicy` directly.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};

use atomicity_core::{Amount, FeePolicy};
use atomicity_route::{
    EdgeSpec, Filters, Graph, GraphBuilder, MAX_ROUTE_EDGES, NodeId, NodeKey, Route, RouteQuery,
};
use proptest::prelude::*;

/// Witness log names the model uses ("w9" is never accepted by anyone).
pub const LOGS: [&str; 4] = ["w0", "w1", "w2", "w9"];
pub const ASSETS: [&str; 2] = ["A", "B"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MEdge {
    pub to: usize,
    pub asset: usize,
    pub cap: u64,
    pub base: u64,
    pub ppm: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MNode {
    /// Whether the node published a document (else it has no edges and no witnesses).
    pub published: bool,
    pub witnesses: Vec<usize>,
    pub updated_at: u64,
    pub edges: Vec<MEdge>,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub nodes: Vec<MNode>,
}

/// Distinct keys whose first 8 bytes differ (the searches' tie-breaker).
pub fn key(i: usize) -> NodeKey {
    let mut k = [0u8; 32];
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1234_5678;
    k[..8].copy_from_slice(&x.to_be_bytes());
    k[8] = i as u8;
    k
}

impl Model {
    pub fn specs(&self, i: usize) -> Vec<EdgeSpec<'static>> {
        self.nodes[i]
            .edges
            .iter()
            .map(|e| EdgeSpec {
                to: key(e.to),
                asset: ASSETS[e.asset],
                capacity: e.cap,
                fee_base: e.base,
                fee_ppm: e.ppm,
            })
            .collect()
    }

    pub fn witness_names(&self, i: usize) -> Vec<String> {
        self.nodes[i]
            .witnesses
            .iter()
            .map(|&w| LOGS[w].to_string())
            .collect()
    }

    /// The graph, built in one go; every node is given an id first (in `order`), so that
    /// unpublished nodes are known too.
    pub fn graph_in_order(&self, order: &[usize]) -> Graph {
        let mut b = GraphBuilder::new();
        for &i in order {
            if self.nodes[i].published {
                b.set_node(
                    &key(i),
                    self.specs(i),
                    self.witness_names(i),
                    self.nodes[i].updated_at,
                )
                .expect("set");
            }
        }
        let mut g = b.build();
        // Unpublished nodes nobody links to are unknown to the builder; make them known.
        for &i in order {
            if g.node_id(&key(i)).is_none() {
                g.set_node(&key(i), vec![], vec![], 0).expect("set");
                g.remove_node(&key(i));
            }
        }
        g
    }

    pub fn graph(&self) -> Graph {
        let order: Vec<usize> = (0..self.nodes.len()).collect();
        self.graph_in_order(&order)
    }

    pub fn edge(&self, u: usize, v: usize, asset: usize) -> Option<&MEdge> {
        self.nodes[u]
            .edges
            .iter()
            .find(|e| e.to == v && e.asset == asset)
    }
}

/// The query parameters in model terms.
#[derive(Clone, Debug)]
pub struct MQuery {
    pub from: usize,
    pub to: usize,
    pub amount: u64,
    pub asset: usize,
    pub max_hops: usize,
    pub witnesses: Vec<usize>,
    pub blocked: Vec<usize>,
    pub allowed: Option<Vec<usize>>,
    /// Bit i set: the hook accepts node i.
    pub hook: Option<u32>,
    pub hop_penalty: u64,
    pub stale_after: u64,
    pub stale_ppm: u32,
    pub now: u64,
}

impl MQuery {
    /// Whether model node `i` may be an intermediate hop.
    pub fn eligible(&self, m: &Model, i: usize) -> bool {
        if !self.witnesses.is_empty()
            && !self
                .witnesses
                .iter()
                .any(|w| m.nodes[i].witnesses.contains(w))
        {
            return false;
        }
        if self.blocked.contains(&i) {
            return false;
        }
        if let Some(a) = &self.allowed
            && !a.contains(&i)
        {
            return false;
        }
        if let Some(mask) = self.hook
            && mask & (1 << i) == 0
        {
            return false;
        }
        true
    }

    pub fn limit(&self) -> usize {
        self.max_hops.min(MAX_ROUTE_EDGES)
    }

    /// The crate's query. `hook` must outlive it.
    pub fn to_query<'a>(
        &self,
        g: &Graph,
        hook: Option<&'a (dyn Fn(NodeId) -> bool + 'a)>,
    ) -> RouteQuery<'a> {
        let id = |i: usize| g.node_id(&key(i)).expect("known");
        RouteQuery {
            from: key(self.from),
            to: key(self.to),
            amount: self.amount,
            asset: ASSETS[self.asset].to_string(),
            max_hops: self.max_hops,
            filters: Filters {
                witnesses: self
                    .witnesses
                    .iter()
                    .map(|&w| LOGS[w].to_string())
                    .collect(),
                blocked: self.blocked.iter().map(|&i| id(i)).collect(),
                allowed_only: self
                    .allowed
                    .as_ref()
                    .map(|a| a.iter().map(|&i| id(i)).collect()),
                hook,
            },
            hop_penalty: self.hop_penalty,
            stale_after: self.stale_after,
            stale_penalty_ppm: self.stale_ppm,
            now: self.now,
        }
    }
}

/// A hook accepting the model nodes whose bits are set in `mask`.
pub fn hook_for(g: &Graph, mask: u32, n: usize) -> impl Fn(NodeId) -> bool + use<> {
    let accepted: HashSet<NodeId> = (0..n)
        .filter(|i| mask & (1 << i) != 0)
        .filter_map(|i| g.node_id(&key(i)))
        .collect();
    move |id| accepted.contains(&id)
}

/// A priced path in model terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priced {
    pub amounts: Vec<u64>,
    pub fees: u64,
    pub cost: u128,
}

/// Prices `path` (model indexes, payer first) for `q`, or `None` if it is not a valid route,
/// with `used` capacity already taken on edges. Fees with `FeePolicy`.
pub fn price(
    m: &Model,
    q: &MQuery,
    path: &[usize],
    used: &BTreeMap<(usize, usize), u64>,
) -> Option<Priced> {
    if path.len() < 2 || path.len() - 1 > q.limit() {
        return None;
    }
    if path[0] != q.from || *path.last()? != q.to {
        return None;
    }
    let distinct: HashSet<_> = path.iter().collect();
    if distinct.len() != path.len() {
        return None;
    }
    if !path[1..path.len() - 1].iter().all(|&i| q.eligible(m, i)) {
        return None;
    }
    let mut amounts = vec![0u64; path.len() - 1];
    let mut amount = q.amount;
    let mut cost: u128 = 0;
    for i in (0..amounts.len()).rev() {
        let (u, v) = (path[i], path[i + 1]);
        let e = m.edge(u, v, q.asset)?;
        let taken = used.get(&(u, v)).copied().unwrap_or(0);
        if e.cap.checked_sub(taken)? < amount {
            return None;
        }
        amounts[i] = amount;
        cost += u128::from(q.hop_penalty);
        if q.stale_ppm > 0 && q.now.saturating_sub(m.nodes[u].updated_at) > q.stale_after {
            cost += u128::from(amount) * u128::from(q.stale_ppm) / 1_000_000;
        }
        if i > 0 {
            let policy = FeePolicy {
                base: Amount::from_minor(e.base),
                ppm: e.ppm,
            };
            let fee = policy.fee(Amount::from_minor(amount))?.minor();
            cost += u128::from(fee);
            amount = amount.checked_add(fee)?;
        }
    }
    Some(Priced {
        fees: amount - q.amount,
        amounts,
        cost,
    })
}

/// Every simple path from `q.from` to `q.to` (ignoring everything else).
pub fn simple_paths(m: &Model, q: &MQuery) -> Vec<Vec<usize>> {
    fn walk(m: &Model, q: &MQuery, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        let Some(&u) = path.last() else { return };
        if u == q.to {
            out.push(path.clone());
            return;
        }
        for e in &m.nodes[u].edges {
            if e.asset == q.asset && !path.contains(&e.to) {
                path.push(e.to);
                walk(m, q, path, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    walk(m, q, &mut vec![q.from], &mut out);
    out
}

/// The brute-force minimum cost, or `None` if no valid route exists.
pub fn brute_min(m: &Model, q: &MQuery) -> Option<u128> {
    if q.amount == 0 || q.max_hops == 0 || q.from == q.to {
        return None;
    }
    simple_paths(m, q)
        .iter()
        .filter_map(|p| price(m, q, p, &BTreeMap::new()))
        .map(|p| p.cost)
        .min()
}

/// A route's path in model indexes.
pub fn model_path(r: &Route) -> Vec<usize> {
    r.keys
        .iter()
        .map(|k| (0..256).find(|&i| key(i) == *k).expect("a model key"))
        .collect()
}

/// Asserts that `r` is a valid route for `q` (with `used` taken) and its figures are right.
pub fn assert_valid(
    m: &Model,
    q: &MQuery,
    r: &Route,
    used: &BTreeMap<(usize, usize), u64>,
) -> Priced {
    let path = model_path(r);
    let priced = price(m, q, &path, used).unwrap_or_else(|| panic!("invalid route {path:?}"));
    assert_eq!(r.amounts, priced.amounts, "amounts of {path:?}");
    assert_eq!(r.fees, priced.fees, "fees of {path:?}");
    assert_eq!(r.cost, priced.cost, "cost of {path:?}");
    assert_eq!(r.nodes.len(), r.keys.len());
    priced
}

/// Max flow by enumerating every cut (S inside, R outside) over the eligible arcs.
pub fn brute_max_flow(m: &Model, q: &MQuery) -> u128 {
    let n = m.nodes.len();
    let mut best = u128::MAX;
    for set in 0u32..(1 << n) {
        if set & (1 << q.from) == 0 || set & (1 << q.to) != 0 {
            continue;
        }
        let mut cut: u128 = 0;
        for u in 0..n {
            if set & (1 << u) == 0 || (u != q.from && !q.eligible(m, u)) {
                continue;
            }
            for e in &m.nodes[u].edges {
                if e.asset == q.asset && set & (1 << e.to) == 0 {
                    cut += u128::from(e.cap);
                }
            }
        }
        best = best.min(cut);
    }
    best
}

prop_compose! {
    fn arb_edge(n: usize)(
        to in 0..n,
        asset in prop::sample::select(vec![0usize, 0, 0, 1]),
        cap in prop_oneof![4 => 0u64..80, 4 => 20u64..400, 1 => Just(u64::MAX)],
        base in prop_oneof![Just(0u64), 0u64..6],
        ppm in prop::sample::select(vec![0u32, 0, 1_000, 50_000, 250_000, 1_000_000]),
    ) -> MEdge {
        MEdge { to, asset, cap, base, ppm }
    }
}

prop_compose! {
    fn arb_node(n: usize)(
        published in prop::bool::weighted(0.9),
        witnesses in prop::collection::vec(0usize..3, 0..4),
        updated_at in 0u64..100,
        edges in prop::collection::vec(arb_edge(n), 1..9),
    ) -> MNode {
        let mut w = witnesses;
        w.sort_unstable();
        w.dedup();
        MNode { published, witnesses: w, updated_at, edges }
    }
}

/// Drops self-loops and duplicate (to, asset) edges (keeping the first), and the data of
/// unpublished nodes.
pub fn normalise(mut nodes: Vec<MNode>) -> Model {
    for (i, node) in nodes.iter_mut().enumerate() {
        let mut seen = HashSet::new();
        node.edges
            .retain(|e| e.to != i && seen.insert((e.to, e.asset)));
        if !node.published {
            node.edges.clear();
            node.witnesses.clear();
            node.updated_at = 0;
        }
    }
    Model { nodes }
}

prop_compose! {
    pub fn arb_model(max_nodes: usize)(n in 2..=max_nodes)(
        nodes in prop::collection::vec(arb_node(n), n),
    ) -> Model {
        normalise(nodes)
    }
}

prop_compose! {
    pub fn arb_query(n: usize)(
        from in 0..n,
        to_offset in prop_oneof![9 => 1..n, 1 => Just(0)],
        amount in prop_oneof![1u64..60, 1u64..300],
        asset in prop::sample::select(vec![0usize, 0, 0, 1]),
        max_hops in prop_oneof![1usize..=4, 1usize..=8, Just(20usize)],
        witnesses in prop_oneof![Just(vec![]), prop::collection::vec(0usize..4, 1..3)],
        blocked in prop::collection::vec(0..n, 0..2),
        allowed in prop::option::weighted(0.2, prop::collection::vec(0..n, 0..n)),
        hook in prop::option::weighted(0.2, any::<u32>()),
        hop_penalty in prop_oneof![Just(0u64), 0u64..30],
        stale_after in 0u64..100,
        stale_ppm in prop::sample::select(vec![0u32, 0, 20_000, 300_000]),
    ) -> MQuery {
        MQuery {
            from, to: (from + to_offset) % n, amount, asset, max_hops, witnesses, blocked, allowed, hook, hop_penalty,
            stale_after, stale_ppm, now: 100,
        }
    }
}

prop_compose! {
    pub fn arb_case(max_nodes: usize)(m in arb_model(max_nodes))(
        q in arb_query(m.nodes.len()),
        m in Just(m),
    ) -> (Model, MQuery) {
        (m, q)
    }
}

prop_compose! {
    /// A cheap chain 0 → 1 → … → n−1 plus random (often costly) shortcuts and back edges: the
    /// cheapest route is often longer than the hop limit (the search's phase 2), and large
    /// amounts need splitting.
    pub fn arb_ladder(max_nodes: usize)(n in 3..=max_nodes)(
        chain_caps in prop::collection::vec(prop_oneof![20u64..200, 100u64..1000], n - 1),
        extra in prop::collection::vec(
            (0..n, 0..n, 0u64..400, 0u64..40, prop::sample::select(vec![0u32, 10_000, 100_000, 250_000, 1_000_000])),
            0..14,
        ),
        witnesses in prop::collection::vec(prop::collection::vec(0usize..3, 1..3), n),
        amount in prop_oneof![1u64..100, 50u64..600],
        max_hops in 1usize..=8,
        hop_penalty in prop_oneof![Just(0u64), 0u64..10, 0u64..60],
        hook in prop::option::weighted(0.1, any::<u32>()),
        stale_ppm in prop::sample::select(vec![0u32, 50_000]),
        n in Just(n),
    ) -> (Model, MQuery) {
        let mut nodes: Vec<MNode> = witnesses
            .into_iter()
            .map(|w| MNode { published: true, witnesses: w, updated_at: 50, edges: vec![] })
            .collect();
        for (i, cap) in chain_caps.into_iter().enumerate() {
            nodes[i].edges.push(MEdge { to: i + 1, asset: 0, cap, base: 0, ppm: 0 });
        }
        for (u, v, cap, base, ppm) in extra {
            nodes[u].edges.push(MEdge { to: v, asset: 0, cap, base, ppm });
        }
        let q = MQuery {
            from: 0,
            to: n - 1,
            amount,
            asset: 0,
            max_hops,
            witnesses: vec![],
            blocked: vec![],
            allowed: None,
            hook,
            hop_penalty,
            stale_after: 40,
            stale_ppm,
            now: 100,
        };
        (normalise(nodes), q)
    }
}

/// Random small cases: general ones, ladders and tight ones.
pub fn arb_any(max_nodes: usize) -> impl Strategy<Value = (Model, MQuery)> {
    prop_oneof![2 => arb_case(max_nodes), 1 => arb_ladder(max_nodes), 1 => arb_tight(max_nodes)]
}

prop_compose! {
    /// Dense graphs whose capacities sit just around the amount (so what a hop must receive
    /// decides which edges fit) with fixed fees and tight hop limits: labels with fewer hops
    /// and more cost matter.
    pub fn arb_tight(max_nodes: usize)(n in 4..=max_nodes)(
        edges in prop::collection::vec((0..n, 0..n, 0u64..30, 0u64..12), 6..30),
        amount in 1u64..40,
        max_hops in 2usize..=4,
        hop_penalty in 0u64..8,
        n in Just(n),
    ) -> (Model, MQuery) {
        let mut nodes: Vec<MNode> = (0..n)
            .map(|_| MNode { published: true, witnesses: vec![0], updated_at: 50, edges: vec![] })
            .collect();
        for (u, v, delta, base) in edges {
            let cap = (amount + delta).saturating_sub(2);
            nodes[u].edges.push(MEdge { to: v, asset: 0, cap, base, ppm: 0 });
        }
        let q = MQuery {
            from: 0,
            to: n - 1,
            amount,
            asset: 0,
            max_hops,
            witnesses: vec![],
            blocked: vec![],
            allowed: None,
            hook: None,
            hop_penalty,
            stale_after: 1000,
            stale_ppm: 0,
            now: 100,
        };
        (normalise(nodes), q)
    }
}
