//! The min-cost route search: a label-setting (Dijkstra-like) search from the payee back to the
//! payer, with per-query scratch buffers.
//!
//! # Labels, not one distance per node
//!
//! Searching backward, a label at node `u` says "if `amount` arrives at `u`, the rest of the
//! route to the payee costs `cost` and has `hops` edges". Extending it over an edge `w → u`
//! adds `w`'s fee on `amount`, the hop penalty and the staleness risk (all ≥ 0, so costs never
//! decrease along a route: the label-setting order is valid). But what the route still costs
//! upstream depends on `amount` (proportional fees and staleness grow with it), not only on
//! `cost`: a label with a lower cost but a higher amount (fewer hops, more fees) does not make
//! one with a higher cost and a lower amount useless. And under a hop limit, a label with more
//! hops may be unable to reach the payer where one with fewer can. So each node keeps the
//! **Pareto set** of its labels over `(cost, amount, hops)`: a label is dropped only if another
//! at the same node is no worse in all three, which is exact (the other can be extended
//! wherever it can, at no higher cost, with no higher amounts on the edges, so capacities
//! still hold). With no hop penalty and no staleness, cost = amount − payee amount and the
//! sets differ only in hops; in practice they hold a few labels.
//!
//! Labels are popped in increasing `(cost, amount, hops, key prefix, node)` order; an
//! extension is strictly greater in that order than its parent, so the first label popped at
//! the payer is a minimum-cost route. The order compares keys, not ids, so the answer is a
//! function of the graph's content only: the same after incremental updates as on a graph
//! rebuilt from scratch. Ties are broken by the smaller amount sent, then fewer hops.
//!
//! **Simple routes.** A label that comes back to a node on its own path is dominated by the
//! label it started from there (cost, amount and hops no lower), or by one that dominates that
//! one, so it is never kept. The payee is never extended through and the payer never forwarded
//! from.
//!
//! # The hop limit and goal direction
//!
//! Before the search, a BFS from the payer over the edges a route could use (in the asset, with
//! capacity for at least the payee's amount, from nodes that pass the filters) gives each node
//! it reaches its hop distance `d(u)` from the payer; nodes it does not reach get a lower bound
//! of it. A label at `u` with `h` hops is dropped when `h + d(u)` exceeds `max_hops`: no route
//! through it fits. That keeps the limit exact and is also what makes the search fast: labels
//! far (in hops) from the payer die early, so a query touches a few hundred labels on a
//! 15,000-node network instead of most of it. (An earlier version searched without the limit
//! first and again with it only when the cheapest route was too long; with realistic fees the
//! cheapest route is often a long detour over near-free edges, so the second search ran for
//! about half the queries, and the first explored most of the graph.)
//!
//! The BFS stops after a budget of edges ([`Graph::set_bfs_budget`]). When it stops before
//! expanding a node at distance `d`, every node at distance `d` or less has been found (each
//! was found by expanding a nearer one, and all those were expanded), so `d + 1` is a lower
//! bound for the others: weaker, but the answer is the same for any budget (the property
//! tests run budgets from 0). If the BFS finishes without reaching the payee, there is no
//! route and the search does not run.
//!
//! # Scratch buffers
//!
//! Per-node state lives in generation-stamped arrays (a slot is valid only if its stamp is the
//! current query's), reused across queries from a thread-local scratch: a query allocates
//! nothing proportional to the graph once the buffers have grown to its size. Being
//! thread-local, they also let many threads query one `&Graph` at once.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::fees::{MILLION, fee, max_forwardable, ppm_part};
use crate::flow::FlowScratch;
use crate::graph::{Graph, Half, NodeId};
use crate::query::{Filters, Resolved, Route, RouteQuery};

pub(crate) const NONE: u32 = u32::MAX;
const UNREACHED: u8 = u8::MAX;

// Slot flags.
const QUAL_DONE: u8 = 1;
const QUAL_OK: u8 = 2;
const STALE: u8 = 4;
const PENALIZED: u8 = 8;
const USED: u8 = 16;

/// An extra cost for forwarding through a node (find_routes' diversity).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Penalty {
    pub ppm: u64,
    pub fixed: u64,
}

/// Capacity already taken on edges `(from, to)` in the query's asset (multi-path parts).
pub(crate) type Used = HashMap<(u32, u32), u64>;

/// One search's parameters.
pub(crate) struct Ctx<'a, 'f> {
    pub graph: &'a Graph,
    pub filters: &'a Filters<'f>,
    pub res: &'a Resolved,
    /// What the payee must receive in this search.
    pub amount: u64,
    pub hop_penalty: u64,
    pub stale_after: u64,
    pub stale_ppm: u32,
    pub now: u64,
    pub penalties: Option<&'a HashMap<u32, Penalty>>,
    pub used: Option<&'a Used>,
}

impl<'a, 'f> Ctx<'a, 'f> {
    pub fn new(graph: &'a Graph, q: &'a RouteQuery<'f>, res: &'a Resolved) -> Ctx<'a, 'f> {
        Ctx {
            graph,
            filters: &q.filters,
            res,
            amount: q.amount,
            hop_penalty: q.hop_penalty,
            stale_after: q.stale_after,
            stale_ppm: q.stale_penalty_ppm,
            now: q.now,
            penalties: None,
            used: None,
        }
    }

    /// The capacity left on `from → to` (`h` is its record).
    #[inline]
    fn residual(&self, from: u32, to: u32, h: &Half, flags: u8) -> u64 {
        if flags & USED != 0
            && let Some(used) = self.used
            && let Some(&taken) = used.get(&(from, to))
        {
            return h.cap.saturating_sub(taken);
        }
        h.cap
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    stamp: u32,
    head: u32,
    flags: u8,
    hopdist: u8,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Aux {
    pub stamp: u32,
    pub parent: u32,
    pub local: u32,
    pub width: u64,
}

#[derive(Clone, Copy, Debug)]
struct Label {
    cost: u128,
    amount: u64,
    node: u32,
    succ: u32,
    next: u32,
    hops: u32,
    dead: bool,
}

/// A label about to be inserted.
#[derive(Clone, Copy, Debug)]
struct Cand {
    cost: u128,
    amount: u64,
    hops: u32,
    succ: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    cost: u128,
    amount: u64,
    hops: u32,
    tie: u64,
    node: u32,
    label: u32,
}

impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        (
            other.cost,
            other.amount,
            other.hops,
            other.tie,
            other.node,
            other.label,
        )
            .cmp(&(
                self.cost,
                self.amount,
                self.hops,
                self.tie,
                self.node,
                self.label,
            ))
    }
}

impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Reusable per-thread search buffers.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    generation: u32,
    slots: Vec<Slot>,
    labels: Vec<Label>,
    heap: BinaryHeap<Item>,
    queue: Vec<u32>,
    pub aux_generation: u32,
    pub aux: Vec<Aux>,
    wheap: BinaryHeap<(u64, std::cmp::Reverse<(u64, u32)>)>,
    pub flow: FlowScratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers (fresh ones if they are in use: a filter hook
/// that searches again).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Whether label `a` makes a label `(cost, amount, hops)` useless: no higher in all three.
#[inline]
fn dominates(a: &Label, cost: u128, amount: u64, hops: u32) -> bool {
    a.cost <= cost && a.amount <= amount && a.hops <= hops
}

impl Scratch {
    /// Starts a new generation of the main slots, sized for `n` nodes, and marks the nodes
    /// with penalties or used capacity.
    fn begin(&mut self, ctx: &Ctx<'_, '_>) {
        let n = ctx.graph.node_count();
        if self.slots.len() < n {
            self.slots.resize(n, Slot::default());
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.slots.iter_mut().for_each(|s| s.stamp = 0);
            self.generation = 1;
        }
        self.labels.clear();
        self.heap.clear();
        if let Some(p) = ctx.penalties {
            for &u in p.keys() {
                self.touch(u).flags |= PENALIZED;
            }
        }
        if let Some(used) = ctx.used {
            for &(u, _) in used.keys() {
                self.touch(u).flags |= USED;
            }
        }
    }

    /// Starts a new generation of the auxiliary slots (widest path, max-flow).
    pub(crate) fn begin_aux(&mut self, n: usize) {
        if self.aux.len() < n {
            self.aux.resize(n, Aux::default());
        }
        self.aux_generation = self.aux_generation.wrapping_add(1);
        if self.aux_generation == 0 {
            self.aux.iter_mut().for_each(|s| s.stamp = 0);
            self.aux_generation = 1;
        }
    }

    /// The node's auxiliary slot, reset if it is from an earlier generation.
    #[inline]
    pub(crate) fn aux_slot(&mut self, u: u32) -> &mut Aux {
        let generation = self.aux_generation;
        let slot = &mut self.aux[u as usize];
        if slot.stamp != generation {
            *slot = Aux {
                stamp: generation,
                parent: NONE,
                local: NONE,
                width: 0,
            };
        }
        slot
    }

    #[inline]
    fn touch(&mut self, u: u32) -> &mut Slot {
        let generation = self.generation;
        let slot = &mut self.slots[u as usize];
        if slot.stamp != generation {
            *slot = Slot {
                stamp: generation,
                head: NONE,
                flags: 0,
                hopdist: UNREACHED,
            };
        }
        slot
    }

    /// The node's flags, with its eligibility as a forwarding node (QUAL_OK) and its
    /// staleness computed once per query.
    #[inline]
    fn qualify(&mut self, ctx: &Ctx<'_, '_>, u: u32) -> u8 {
        let flags = self.touch(u).flags;
        if flags & QUAL_DONE != 0 {
            return flags;
        }
        let mut add = QUAL_DONE;
        let g = ctx.graph;
        if ctx.stale_ppm > 0 && ctx.now.saturating_sub(g.updated_at[u as usize]) > ctx.stale_after {
            add |= STALE;
        }
        if u != ctx.res.from && u != ctx.res.to && eligible(g, ctx.filters, ctx.res, u) {
            add |= QUAL_OK;
        }
        let slot = self.touch(u);
        slot.flags |= add;
        slot.flags
    }

    /// Adds a label at `u` unless one there dominates it; drops (and unlinks) the labels it
    /// dominates.
    fn insert(&mut self, ctx: &Ctx<'_, '_>, u: u32, new: Cand) {
        let Cand {
            cost,
            amount,
            hops,
            succ,
        } = new;
        let mut prev = NONE;
        let mut idx = self.touch(u).head;
        while idx != NONE {
            let label = self.labels[idx as usize];
            if dominates(&label, cost, amount, hops) {
                return;
            }
            if cost <= label.cost && amount <= label.amount && hops <= label.hops {
                self.labels[idx as usize].dead = true;
                if prev == NONE {
                    self.touch(u).head = label.next;
                } else {
                    self.labels[prev as usize].next = label.next;
                }
            } else {
                prev = idx;
            }
            idx = label.next;
        }
        let Ok(index) = u32::try_from(self.labels.len()) else {
            return;
        };
        let head = self.touch(u).head;
        self.labels.push(Label {
            cost,
            amount,
            node: u,
            succ,
            next: head,
            hops,
            dead: false,
        });
        self.touch(u).head = index;
        self.heap.push(Item {
            cost,
            amount,
            hops,
            tie: ctx.graph.tiebreak[u as usize],
            node: u,
            label: index,
        });
    }

    /// The search; returns the payer's best label.
    fn search(&mut self, ctx: &Ctx<'_, '_>) -> Option<u32> {
        let (s, r) = (ctx.res.from, ctx.res.to);
        let max_hops = ctx.res.max_hops;
        let asset = ctx.res.asset;
        let g = ctx.graph;
        let floor = self.hop_distances(ctx)?;
        self.insert(
            ctx,
            r,
            Cand {
                cost: 0,
                amount: ctx.amount,
                hops: 0,
                succ: NONE,
            },
        );
        while let Some(item) = self.heap.pop() {
            let label = self.labels[item.label as usize];
            if label.dead {
                continue;
            }
            if label.node == s {
                return Some(item.label);
            }
            let v = label.node;
            let hops = label.hops + 1;
            if hops > max_hops {
                continue;
            }
            let (base, over) = g.in_halves(v);
            for e in base.iter().chain(over) {
                if e.asset != asset || e.cap < label.amount {
                    continue;
                }
                let u = e.peer;
                if u == r {
                    continue;
                }
                let flags = self.qualify(ctx, u);
                if u != s && flags & QUAL_OK == 0 {
                    continue;
                }
                // Hops so far plus a lower bound of the hops still needed up to the payer.
                let dist = match self.touch(u).hopdist {
                    UNREACHED => floor,
                    d => d,
                };
                if u32::from(dist) + hops > max_hops {
                    continue;
                }
                if ctx.residual(u, v, e, flags) < label.amount {
                    continue;
                }
                let Some(step) = step_cost(ctx, u, e, label.amount, flags) else {
                    continue;
                };
                let Some(cost) = label.cost.checked_add(step.cost) else {
                    continue;
                };
                self.insert(
                    ctx,
                    u,
                    Cand {
                        cost,
                        amount: step.amount,
                        hops,
                        succ: item.label,
                    },
                );
            }
        }
        None
    }

    /// Hop distances from the payer over the edges a route could use (in the asset, capacity
    /// at least the payee's amount, leaving the payer or a node that passes the filters), by
    /// a BFS that stops after scanning a budget of edges. Returns the lower bound of the
    /// distance of every node it did not reach (`UNREACHED` if it finished: they are
    /// unreachable), or `None` if it finished without reaching the payee.
    ///
    /// When the BFS stops before expanding a node at distance `d`, every node at distance `d`
    /// or less has been found (each was found by expanding one nearer, all expanded), so
    /// `d + 1` bounds the others from below.
    fn hop_distances(&mut self, ctx: &Ctx<'_, '_>) -> Option<u8> {
        let (s, r) = (ctx.res.from, ctx.res.to);
        let asset = ctx.res.asset;
        let max = ctx.res.max_hops;
        let g = ctx.graph;
        let budget = bfs_budget(g);
        let mut scanned = 0usize;
        self.queue.clear();
        self.touch(s).hopdist = 0;
        self.queue.push(s);
        let mut head = 0;
        while head < self.queue.len() {
            let x = self.queue[head];
            let d = self.touch(x).hopdist;
            if scanned > budget {
                return Some(d + 1);
            }
            head += 1;
            if u32::from(d) >= max || x == r {
                continue;
            }
            let xflags = self.qualify(ctx, x);
            if x != s && xflags & QUAL_OK == 0 {
                continue;
            }
            let out = g.out_halves(x);
            scanned += out.len();
            for e in out {
                let y = e.peer;
                if e.asset != asset || y == s || ctx.residual(x, y, e, xflags) < ctx.amount {
                    continue;
                }
                let slot = self.touch(y);
                if slot.hopdist == UNREACHED {
                    // d < max ≤ 17, so d + 1 fits a u8.
                    slot.hopdist = d + 1;
                    self.queue.push(y);
                }
            }
        }
        if self.touch(r).hopdist == UNREACHED {
            return None;
        }
        Some(UNREACHED)
    }

    fn route(&self, ctx: &Ctx<'_, '_>, best: u32) -> Route {
        let g = ctx.graph;
        let mut label = self.labels[best as usize];
        let cost = label.cost;
        let sent = label.amount;
        let mut nodes = vec![NodeId(label.node)];
        let mut amounts = Vec::new();
        while label.succ != NONE {
            label = self.labels[label.succ as usize];
            nodes.push(NodeId(label.node));
            amounts.push(label.amount);
        }
        let keys = nodes.iter().filter_map(|&n| g.key(n).copied()).collect();
        Route {
            nodes,
            keys,
            amounts,
            fees: sent.saturating_sub(ctx.amount),
            cost,
        }
    }

    /// The min-cost route of `ctx`, both phases.
    pub(crate) fn best_route(&mut self, ctx: &Ctx<'_, '_>) -> Option<Route> {
        self.begin(ctx);
        let best = self.search(ctx)?;
        Some(self.route(ctx, best))
    }

    /// The widest route's capacity: the most one route can deliver to the payee, fees
    /// included (each hop forwards at most what it receives minus its fee), ignoring the hop
    /// limit. 0 if none.
    pub(crate) fn widest(&mut self, ctx: &Ctx<'_, '_>) -> u64 {
        let (s, r) = (ctx.res.from, ctx.res.to);
        let asset = ctx.res.asset;
        let g = ctx.graph;
        self.begin(ctx);
        self.begin_aux(g.node_count());
        self.wheap.clear();
        self.aux_slot(s).width = u64::MAX;
        self.wheap
            .push((u64::MAX, std::cmp::Reverse((g.tiebreak[s as usize], s))));
        while let Some((w, std::cmp::Reverse((_, x)))) = self.wheap.pop() {
            let slot = self.aux_slot(x);
            if slot.local == 0 || slot.width != w {
                continue; // done, or a stale heap entry
            }
            slot.local = 0; // done
            if x == r {
                return w;
            }
            let xflags = self.qualify(ctx, x);
            for e in g.out_halves(x) {
                let y = e.peer;
                if e.asset != asset || y == s {
                    continue;
                }
                if y != r && self.qualify(ctx, y) & QUAL_OK == 0 {
                    continue;
                }
                let cap = ctx.residual(x, y, e, xflags);
                let width = if x == s {
                    cap
                } else {
                    match max_forwardable(e.base, e.ppm, w) {
                        Some(f) => f.min(cap),
                        None => 0,
                    }
                };
                let slot = self.aux_slot(y);
                if width > slot.width && slot.local != 0 {
                    slot.width = width;
                    slot.parent = x;
                    self.wheap
                        .push((width, std::cmp::Reverse((g.tiebreak[y as usize], y))));
                }
            }
        }
        0
    }
}

/// Edges the BFS of [`Scratch::hop_distances`] may scan: the graph's setting, or a sixteenth
/// of its edges, between 4,096 and 16,384 (about the fastest on the benchmark's networks: a
/// larger budget costs more BFS than it saves search, a smaller one prunes too little).
fn bfs_budget(g: &Graph) -> usize {
    g.bfs_budget()
        .unwrap_or_else(|| (g.edge_count() / 16).clamp(4096, 16_384))
}

/// What extending a label over `u → v` (record `e`, `amount` arriving at `v`) adds.
struct Step {
    cost: u128,
    amount: u64,
}

#[inline]
fn step_cost(ctx: &Ctx<'_, '_>, u: u32, e: &Half, amount: u64, flags: u8) -> Option<Step> {
    let mut cost = u128::from(ctx.hop_penalty);
    if flags & STALE != 0 {
        cost += u128::from(ppm_part(amount, ctx.stale_ppm)?);
    }
    let sent = if u == ctx.res.from {
        amount
    } else {
        let f = fee(e.base, e.ppm, amount)?;
        cost += u128::from(f);
        if flags & PENALIZED != 0
            && let Some(p) = ctx.penalties.and_then(|p| p.get(&u))
        {
            cost += u128::from(p.fixed) + u128::from(amount) * u128::from(p.ppm) / MILLION;
        }
        amount.checked_add(f)?
    };
    Some(Step { cost, amount: sent })
}

/// Whether `u` passes the filters as a forwarding node (see [`Filters`]).
pub(crate) fn eligible(g: &Graph, filters: &Filters<'_>, res: &Resolved, u: u32) -> bool {
    let id = NodeId(u);
    if let Some(rule) = &res.witness_rule {
        let set = &g.wsets[g.wset[u as usize] as usize];
        if !set.iter().any(|w| rule.binary_search(w).is_ok()) {
            return false;
        }
    }
    if !filters.blocked.is_empty() && filters.blocked.contains(&id) {
        return false;
    }
    if let Some(allowed) = &filters.allowed_only
        && !allowed.contains(&id)
    {
        return false;
    }
    filters.hook.is_none_or(|hook| hook(id))
}

/// The cheapest route for `query`, or `None` if there is none (or the query is invalid: see
/// [`RouteQuery::check`]).
///
/// Valid means: each edge in the query's asset with capacity at least the amount on it, every
/// intermediate node passing the filters, at most `max_hops` edges, no node twice. Fees are
/// exactly [`atomicity_core::FeePolicy`]'s; the payer pays no fee on its own first edge.
pub fn find_route(graph: &Graph, query: &RouteQuery<'_>) -> Option<Route> {
    let res = query.resolve(graph).ok()?;
    let ctx = Ctx::new(graph, query, &res);
    with_scratch(|s| s.best_route(&ctx))
}

/// The most one route can deliver to the payee on its own: the widest route's capacity, fees
/// taken into account (each hop forwards at most what it receives minus its fee) and the
/// filters applied, but **the hop limit ignored** and `query.amount` unused. An upper bound on
/// what [`find_route`] can route; 0 if the payee is unreachable or the query invalid.
///
/// A Dijkstra-like search from the payer maximising the amount that can arrive at each node
/// (label-setting is exact here: what a node can pass on is non-decreasing in what it
/// receives and never more than it).
pub fn widest_route(graph: &Graph, query: &RouteQuery<'_>) -> u64 {
    let Ok(res) = query.resolve_ends(graph) else {
        return 0;
    };
    let ctx = Ctx::new(graph, query, &res);
    with_scratch(|s| s.widest(&ctx))
}

/// Extra cost, per earlier route through a node, of forwarding through it again in
/// [`find_routes`]: this many millionths of the amount the node forwards...
pub const DIVERSITY_PPM: u64 = 100_000;

/// Up to `k` diverse routes, cheapest first; the first is [`find_route`]'s.
///
/// Each further route is the cheapest under a diversity penalty: forwarding through a node
/// that `c` earlier routes use costs an extra `c × (amount × DIVERSITY_PPM / 10^6 +
/// hop_penalty + 1)`. So an alternative avoids earlier routes' intermediate nodes unless that
/// costs more than about 10% of the amount per shared node (a node shared by two routes is a
/// single point of failure for both). The search stops early when the penalised search finds
/// a route already returned or none. The returned costs are the routes' true costs (without
/// penalties), and the routes are sorted by them.
pub fn find_routes(graph: &Graph, query: &RouteQuery<'_>, k: usize) -> Vec<Route> {
    let Ok(res) = query.resolve(graph) else {
        return Vec::new();
    };
    if k == 0 {
        return Vec::new();
    }
    with_scratch(|scratch| {
        let base = Ctx::new(graph, query, &res);
        let Some(first) = scratch.best_route(&base) else {
            return Vec::new();
        };
        let mut routes = vec![first];
        let mut penalties: HashMap<u32, Penalty> = HashMap::new();
        while routes.len() < k {
            if let Some(last) = routes.last() {
                let inner = last.nodes.len().saturating_sub(1);
                for node in last.nodes.iter().take(inner).skip(1) {
                    let p = penalties.entry(node.0).or_default();
                    p.ppm = p.ppm.saturating_add(DIVERSITY_PPM);
                    p.fixed = p.fixed.saturating_add(query.hop_penalty.saturating_add(1));
                }
            }
            let ctx = Ctx {
                penalties: Some(&penalties),
                ..Ctx::new(graph, query, &res)
            };
            let Some(found) = scratch.best_route(&ctx) else {
                break;
            };
            if routes.iter().any(|r| r.nodes == found.nodes) {
                break;
            }
            let Some(priced) = price(&base, &found.nodes) else {
                break;
            };
            routes.push(priced);
        }
        routes.sort_by_key(|r| r.cost);
        routes
    })
}

/// Checks a route (a node sequence, payer first) against `query` and prices it: the amounts on
/// each edge, fees and cost. `None` if it is not a valid route for the query (see
/// [`find_route`]). Useful to re-check a route that came from elsewhere (a router).
pub fn check_route(graph: &Graph, query: &RouteQuery<'_>, nodes: &[NodeId]) -> Option<Route> {
    let res = query.resolve(graph).ok()?;
    let ctx = Ctx::new(graph, query, &res);
    if nodes.first() != Some(&NodeId(res.from)) || nodes.last() != Some(&NodeId(res.to)) {
        return None;
    }
    if nodes.len() < 2 || nodes.len() - 1 > res.max_hops as usize {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    if !nodes.iter().all(|n| seen.insert(*n)) {
        return None;
    }
    let inner = nodes.len() - 1;
    for n in nodes.iter().take(inner).skip(1) {
        if n.index() >= graph.node_count() || !eligible(graph, ctx.filters, &res, n.0) {
            return None;
        }
    }
    price(&ctx, nodes)
}

/// Prices a route with `ctx` (no filter checks), backward from the payee.
pub(crate) fn price(ctx: &Ctx<'_, '_>, nodes: &[NodeId]) -> Option<Route> {
    let g = ctx.graph;
    let mut amounts = vec![0u64; nodes.len().checked_sub(1)?];
    let mut amount = ctx.amount;
    let mut cost: u128 = 0;
    for i in (0..amounts.len()).rev() {
        let (u, v) = (nodes[i].0, nodes[i + 1].0);
        let halves = g.out_halves(u);
        let e = halves
            .binary_search_by_key(&(v, ctx.res.asset), |h| (h.peer, h.asset))
            .ok()
            .map(|k| halves[k])?;
        if e.cap < amount {
            return None;
        }
        if let Some(used) = ctx.used
            && e.cap
                .saturating_sub(used.get(&(u, v)).copied().unwrap_or(0))
                < amount
        {
            return None;
        }
        amounts[i] = amount;
        let stale =
            ctx.stale_ppm > 0 && ctx.now.saturating_sub(g.updated_at[u as usize]) > ctx.stale_after;
        let flags = if stale { STALE } else { 0 };
        let step = step_cost(ctx, u, &e, amount, flags)?;
        cost = cost.checked_add(step.cost)?;
        amount = step.amount;
    }
    let keys = nodes.iter().filter_map(|&n| g.key(n).copied()).collect();
    Some(Route {
        nodes: nodes.to_vec(),
        keys,
        amounts,
        fees: amount.checked_sub(ctx.amount)?,
        cost,
    })
}
