//! "How much can I send to X?": a max-flow bound (Dinic) on the filtered subgraph.

use crate::graph::{Graph, NodeKey};
use crate::query::{Filters, Resolved, witness_rule};
use crate::search::{NONE, Scratch, eligible, with_scratch};

/// The answer of [`max_flow`].
///
/// **An upper bound that ignores fees and the hop limit**: the maximum flow from the payer to
/// the payee over the edges in the asset, with each edge's capacity as its capacity, through
/// intermediate nodes that pass the filters. Any set of routes delivers at most this much:
/// the parts of a multi-path payment, each counted with what it delivers on every one of its
/// edges (no more than the amount on that edge), form such a flow. Fees make the real figure
/// lower (each hop keeps its fee out of what it forwards), and so does a hop limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowBound {
    /// The bound, minor units (saturating at `u64::MAX`).
    pub upper_bound: u64,
    /// The computation stopped at the `limit` asked: the true bound is at least `limit`.
    pub limit_reached: bool,
}

const DEAD: u32 = u32::MAX;

// Aux flags (in `Aux::width`).
const FWD: u64 = 1;
const BACK: u64 = 2;
const QUAL_DONE: u64 = 4;
const QUAL_OK: u64 = 8;

/// Per-thread buffers of the flow computation.
#[derive(Debug, Default)]
pub(crate) struct FlowScratch {
    /// Local index → node id.
    nodes: Vec<u32>,
    queue: Vec<u32>,
    adj_off: Vec<u32>,
    /// Edges `(tail, head, capacity)` in local ids, before the CSR layout.
    edges: Vec<(u32, u32, u64)>,
    arc_to: Vec<u32>,
    arc_cap: Vec<u64>,
    /// The paired arc of each arc.
    rev: Vec<u32>,
    level: Vec<u32>,
    iter: Vec<u32>,
    stack: Vec<u32>,
}

/// Max-flow bound from `from` to `to` in `asset` under `filters` (see [`FlowBound`]). With
/// `limit`, stops as soon as the flow reaches it (answering "can I send this much?" costs
/// only the augmentations it needs). Unknown keys or asset, or `from == to`: 0.
///
/// Dinic's algorithm on a compact residual copy (CSR arcs with paired reverses) of the
/// subgraph that matters: nodes reachable from the payer and reaching the payee through
/// eligible nodes, built in reused buffers. Each phase's BFS stops at the payee's level.
pub fn max_flow(
    graph: &Graph,
    from: &NodeKey,
    to: &NodeKey,
    asset: &str,
    filters: &Filters<'_>,
    limit: Option<u64>,
) -> FlowBound {
    let zero = FlowBound {
        upper_bound: 0,
        limit_reached: limit == Some(0),
    };
    let (Some(s), Some(t), Some(asset)) = (
        graph.node_id(from),
        graph.node_id(to),
        graph.asset_id(asset),
    ) else {
        return zero;
    };
    if s == t || limit == Some(0) {
        return zero;
    }
    let res = Resolved {
        from: s.0,
        to: t.0,
        asset: asset.0,
        max_hops: 0,
        witness_rule: witness_rule(graph, filters),
    };
    with_scratch(|scratch| {
        if !build(scratch, graph, filters, &res) {
            return zero;
        }
        let f = &mut scratch.flow;
        // The payer is local 0, the payee local 1 (see `build`).
        let (total, limit_reached) = dinic(f, 0, 1, limit.unwrap_or(u64::MAX));
        FlowBound {
            upper_bound: u64::try_from(total).unwrap_or(u64::MAX),
            limit_reached: limit.is_some() && limit_reached,
        }
    })
}

/// Whether `u` may forward (cached in its aux flags).
fn may_forward(
    scratch: &mut Scratch,
    g: &Graph,
    filters: &Filters<'_>,
    res: &Resolved,
    u: u32,
) -> bool {
    if u == res.from {
        return true;
    }
    if u == res.to {
        return false;
    }
    let flags = scratch.aux_slot(u).width;
    if flags & QUAL_DONE != 0 {
        return flags & QUAL_OK != 0;
    }
    let ok = eligible(g, filters, res, u);
    scratch.aux_slot(u).width |= QUAL_DONE | if ok { QUAL_OK } else { 0 };
    ok
}

/// Builds the residual graph in `scratch.flow`; false if the payee is unreachable.
fn build(scratch: &mut Scratch, g: &Graph, filters: &Filters<'_>, res: &Resolved) -> bool {
    let (s, t, asset) = (res.from, res.to, res.asset);
    scratch.begin_aux(g.node_count());
    // Forward: reachable from the payer.
    let mut queue = std::mem::take(&mut scratch.flow.queue);
    queue.clear();
    scratch.aux_slot(s).width |= FWD;
    queue.push(s);
    let mut head = 0;
    while head < queue.len() {
        let x = queue[head];
        head += 1;
        if !may_forward(scratch, g, filters, res, x) {
            continue;
        }
        for e in g.out_halves(x) {
            if e.asset != asset || e.cap == 0 || e.peer == s {
                continue;
            }
            let slot = scratch.aux_slot(e.peer);
            if slot.width & FWD == 0 {
                slot.width |= FWD;
                queue.push(e.peer);
            }
        }
    }
    if scratch.aux_slot(t).width & FWD == 0 {
        scratch.flow.queue = queue;
        return false;
    }
    // Backward: reaching the payee, among the forward-reached. Local ids: payer 0, payee 1.
    let mut nodes = std::mem::take(&mut scratch.flow.nodes);
    nodes.clear();
    nodes.push(s);
    nodes.push(t);
    scratch.aux_slot(s).local = 0;
    let slot = scratch.aux_slot(t);
    slot.width |= BACK;
    slot.local = 1;
    queue.clear();
    queue.push(t);
    head = 0;
    while head < queue.len() {
        let v = queue[head];
        head += 1;
        let (base, over) = g.in_halves(v);
        for e in base.iter().chain(over) {
            let u = e.peer;
            if e.asset != asset || e.cap == 0 || u == t {
                continue;
            }
            let w = scratch.aux_slot(u).width;
            if w & FWD == 0 || w & BACK != 0 || !may_forward(scratch, g, filters, res, u) {
                continue;
            }
            let slot = scratch.aux_slot(u);
            slot.width |= BACK;
            if u != s {
                slot.local = nodes.len() as u32;
                nodes.push(u);
            }
            if u != s {
                queue.push(u);
            }
        }
    }
    scratch.flow.queue = queue;
    // Arcs: each edge between kept nodes, from a forwarding node (or the payer), not into the
    // payer, plus its reverse (capacity 0), laid out by tail (CSR), `rev` pairing them.
    let n = nodes.len();
    let f = &mut scratch.flow;
    f.edges.clear();
    f.adj_off.clear();
    f.adj_off.resize(n + 1, 0);
    let aux = &scratch.aux;
    let generation = scratch.aux_generation;
    let local = |u: u32| {
        let slot = &aux[u as usize];
        (slot.stamp == generation && slot.width & (FWD | BACK) == FWD | BACK && slot.local != NONE)
            .then_some(slot.local)
    };
    for (lu, &u) in nodes.iter().enumerate() {
        if u == t {
            continue;
        }
        for e in g.out_halves(u) {
            if e.asset != asset || e.cap == 0 || e.peer == s {
                continue;
            }
            if let Some(lv) = local(e.peer) {
                f.edges.push((lu as u32, lv, e.cap));
                f.adj_off[lu + 1] += 1;
                f.adj_off[lv as usize + 1] += 1;
            }
        }
    }
    for i in 0..n {
        f.adj_off[i + 1] += f.adj_off[i];
    }
    let arcs = f.adj_off[n] as usize;
    f.arc_to.clear();
    f.arc_to.resize(arcs, 0);
    f.arc_cap.clear();
    f.arc_cap.resize(arcs, 0);
    f.rev.clear();
    f.rev.resize(arcs, 0);
    f.iter.clear();
    f.iter.extend_from_slice(&f.adj_off[..n]);
    for &(lu, lv, cap) in &f.edges {
        let a = f.iter[lu as usize];
        f.iter[lu as usize] += 1;
        let b = f.iter[lv as usize];
        f.iter[lv as usize] += 1;
        f.arc_to[a as usize] = lv;
        f.arc_cap[a as usize] = cap;
        f.rev[a as usize] = b;
        f.arc_to[b as usize] = lu;
        f.rev[b as usize] = a;
    }
    f.nodes = nodes;
    true
}

/// Dinic from local `s` to local `t`, stopping at `limit`. Returns the flow and whether it
/// reached the limit.
fn dinic(f: &mut FlowScratch, s: u32, t: u32, limit: u64) -> (u128, bool) {
    let n = f.nodes.len();
    let mut total: u128 = 0;
    loop {
        // Levels, up to the payee's: the blocking flow uses no node at its level or beyond
        // but the payee.
        f.level.clear();
        f.level.resize(n, DEAD);
        f.level[s as usize] = 0;
        f.queue.clear();
        f.queue.push(s);
        let mut head = 0;
        while head < f.queue.len() {
            let x = f.queue[head] as usize;
            head += 1;
            let next = f.level[x] + 1;
            if f.level[t as usize] <= f.level[x] {
                break;
            }
            for a in f.adj_off[x] as usize..f.adj_off[x + 1] as usize {
                let y = f.arc_to[a] as usize;
                if f.arc_cap[a] > 0 && f.level[y] == DEAD {
                    f.level[y] = next;
                    f.queue.push(y as u32);
                }
            }
        }
        if f.level[t as usize] == DEAD {
            return (total, false);
        }
        f.iter.clear();
        f.iter.extend_from_slice(&f.adj_off[..n]);
        loop {
            let left = u64::try_from(u128::from(limit).saturating_sub(total)).unwrap_or(u64::MAX);
            if left == 0 {
                return (total, true);
            }
            let pushed = augment(f, s, t, left);
            if pushed == 0 {
                break;
            }
            total += u128::from(pushed);
        }
    }
}

/// One augmenting path in the level graph (iterative DFS with current-arc pointers); the
/// flow pushed, 0 if the level graph is blocked.
fn augment(f: &mut FlowScratch, s: u32, t: u32, cap_limit: u64) -> u64 {
    f.stack.clear();
    let mut x = s as usize;
    let t = t as usize;
    loop {
        if x == t {
            let mut bottleneck = cap_limit;
            for &a in &f.stack {
                bottleneck = bottleneck.min(f.arc_cap[a as usize]);
            }
            for &a in &f.stack {
                f.arc_cap[a as usize] -= bottleneck;
                let back = f.rev[a as usize] as usize;
                f.arc_cap[back] = f.arc_cap[back].saturating_add(bottleneck);
            }
            return bottleneck;
        }
        let mut advanced = false;
        let end = f.adj_off[x + 1];
        while f.iter[x] < end {
            let a = f.iter[x] as usize;
            let y = f.arc_to[a] as usize;
            // Only the payee may sit at its own level or beyond (the BFS stopped there).
            if f.arc_cap[a] > 0
                && f.level[y] != DEAD
                && f.level[y] == f.level[x] + 1
                && (y == t || f.level[y] < f.level[t])
            {
                f.stack.push(a as u32);
                x = y;
                advanced = true;
                break;
            }
            f.iter[x] += 1;
        }
        if !advanced {
            f.level[x] = DEAD;
            match f.stack.pop() {
                None => return 0,
                Some(a) => {
                    x = f.arc_to[f.rev[a as usize] as usize] as usize;
                    f.iter[x] += 1;
                }
            }
        }
    }
}
