//! `atomicity bench route`: path finding over synthetic credit graphs (`atomicity-route`), on
//! one core.
//!
//! For each size (15,000 nodes / 75,000 lines, and 100,000 / 350,000 unless `--small-only`),
//! a seeded preferential-attachment network (power-law degrees, lines mostly both ways, a few
//! assets, witness sets; see `atomicity_route::generate`) is generated, then:
//!
//! - **cold load**: the generator's edge lists into the index (`GraphBuilder`: interning and
//!   both CSR arrays);
//! - **single path**: `find_route` over random reachable (payer, payee, amount) queries in USD,
//!   10.00 to 1,000.00, with the payee's witness logs as the witness rule, a hop penalty, a
//!   staleness penalty and the default limit of 8 hops. The queries are drawn first (a
//!   query is kept if it has a route), then timed one by one;
//! - **textbook Dijkstra** on the same graph and queries: a `BinaryHeap` over a
//!   `Vec<Vec<(from, …)>>` reverse adjacency with a fresh `vec![u64::MAX; n]` per query, one
//!   label (the amount) per node, the same fee formula and capacity check, but no witness
//!   rule, filters, penalties or hop limit. The ratio is its p50 over ours;
//! - **max-flow** (first size, up to 200 of the pairs): `max_flow` over the whole filtered
//!   subgraph, and stopped at the multi-path amount ("can I send this much?");
//! - **multi-path** (same pairs, those whose max-flow bound exceeds the widest route):
//!   `multi_path` for more than the widest single route carries (so at least two parts are
//!   needed): 1.5 × the widest route, or halfway to the max-flow bound if that is less;
//! - **incremental update**: `set_node` of a random node with its capacities changed (the
//!   crawler's refresh), 10,000 of them so that the overlay is compacted at least once (the
//!   mean is the amortised cost); and one full compaction.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use atomicity_route::generate::{GENERATED_AT, SplitMix64, Synthetic, preferential_attachment};
use atomicity_route::{Filters, RouteQuery, find_route, max_flow, multi_path, widest_route};
use serde::Serialize;

use crate::bench::percentile;

/// The sizes measured: (nodes, lines).
const SIZES: [(usize, usize); 2] = [(15_000, 75_000), (100_000, 350_000)];
/// Seed of the generated networks and the queries.
const SEED: u64 = 2024;

/// Options of `atomicity bench route`.
#[derive(Debug, clap::Args)]
pub struct RouteBenchArgs {
    /// Single-path queries per size (multi-path, max-flow: up to 200 of them).
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Only the 15,000-node network.
    #[arg(long)]
    pub small_only: bool,
    /// Other sizes (nodes, lines) instead of the standard ones (tests use tiny ones).
    #[arg(skip)]
    pub sizes: Option<Vec<(usize, usize)>>,
}

/// Every figure of one run.
#[derive(Debug, Serialize)]
pub struct RouteReport {
    /// Logical cores (every figure is on one of them).
    pub cores: usize,
    /// One entry per network size.
    pub sizes: Vec<SizeReport>,
}

/// The figures of one network.
#[derive(Debug, Serialize)]
pub struct SizeReport {
    /// Nodes.
    pub nodes: usize,
    /// Undirected lines.
    pub lines: usize,
    /// Directed edges.
    pub edges: usize,
    /// Generating the network, ms (not part of the load).
    pub generate_ms: f64,
    /// Cold load into the index, ms.
    pub load_ms: f64,
    /// Single-path queries timed (all reachable).
    pub queries: usize,
    /// Share of drawn queries that had a route.
    pub reachable_share: f64,
    /// Median `find_route`, ms.
    pub single_p50_ms: f64,
    /// 99th percentile, ms.
    pub single_p99_ms: f64,
    /// Mean edges of the routes found.
    pub mean_hops: f64,
    /// Drawn queries that had no route (timed while drawing).
    pub no_route_queries: usize,
    /// Median `find_route` of a query with no route, ms.
    pub no_route_p50_ms: f64,
    /// 99th percentile, ms.
    pub no_route_p99_ms: f64,
    /// Median of the textbook Dijkstra, ms.
    pub textbook_p50_ms: f64,
    /// Textbook p50 / ours.
    pub textbook_ratio: f64,
    /// Multi-path figures (first size only).
    pub multi_path: Option<MultiReport>,
    /// Max-flow figures (first size only).
    pub max_flow: Option<FlowReport>,
    /// Updates timed.
    pub updates: usize,
    /// Median `set_node`, µs.
    pub update_p50_us: f64,
    /// 99th percentile, µs.
    pub update_p99_us: f64,
    /// Mean, µs: the amortised cost, compactions included.
    pub update_mean_us: f64,
    /// Slowest (one that compacted), ms.
    pub update_max_ms: f64,
    /// Compactions during the updates.
    pub compactions: u64,
    /// One full compaction, ms.
    pub compact_ms: f64,
}

/// Multi-path figures.
#[derive(Debug, Serialize)]
pub struct MultiReport {
    /// Queries timed (pairs whose max-flow bound exceeds their widest route).
    pub queries: usize,
    /// Those split successfully.
    pub succeeded: usize,
    /// Mean parts of the successful ones.
    pub mean_parts: f64,
    /// Median `multi_path`, ms (all queries).
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// Max-flow figures (an upper bound that ignores fees and the hop limit).
#[derive(Debug, Serialize)]
pub struct FlowReport {
    /// Queries timed.
    pub queries: usize,
    /// Median over the whole filtered subgraph, ms.
    pub full_p50_ms: f64,
    /// 99th percentile, ms.
    pub full_p99_ms: f64,
    /// Median when stopped at the multi-path amount, ms.
    pub limited_p50_ms: f64,
}

/// Runs the benchmark and prints the report.
pub async fn run(args: RouteBenchArgs) -> Result<()> {
    let json = args.json;
    let report = tokio::task::spawn_blocking(move || measure(&args))
        .await
        .context("the benchmark thread")??;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn measure(args: &RouteBenchArgs) -> Result<RouteReport> {
    if args.queries == 0 {
        bail!("--queries must be at least 1");
    }
    let say = |s: &str| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let sizes: Vec<(usize, usize)> = match &args.sizes {
        Some(sizes) => sizes.clone(),
        None if args.small_only => SIZES[..1].to_vec(),
        None => SIZES.to_vec(),
    };
    let mut out = Vec::new();
    for (index, &(nodes, lines)) in sizes.iter().enumerate() {
        say(&format!("generating {nodes} nodes / {lines} lines ..."));
        out.push(measure_size(nodes, lines, args.queries, index == 0, &say)?);
    }
    Ok(RouteReport { cores, sizes: out })
}

/// A query in index terms.
struct Drawn {
    from: usize,
    to: usize,
    amount: u64,
}

fn query<'a>(net: &Synthetic, d: &Drawn, amount: u64) -> RouteQuery<'a> {
    RouteQuery {
        filters: Filters {
            witnesses: net.witness_names(d.to),
            ..Filters::default()
        },
        hop_penalty: 10,
        stale_after: 3 * 86_400,
        stale_penalty_ppm: 1_000,
        now: GENERATED_AT,
        ..RouteQuery::new(net.nodes[d.from].key, net.nodes[d.to].key, amount, "USD")
    }
}

fn measure_size(
    nodes: usize,
    lines: usize,
    queries: usize,
    first: bool,
    say: &dyn Fn(&str),
) -> Result<SizeReport> {
    let start = Instant::now();
    let net = preferential_attachment(nodes, lines, SEED);
    let generate_ms = ms(start.elapsed());
    let start = Instant::now();
    let mut graph = net.graph().context("loading the graph")?;
    let load_ms = ms(start.elapsed());
    let n = net.nodes.len() as u64;
    if n < 2 {
        bail!("a network needs two nodes");
    }

    say("drawing reachable queries ...");
    let mut rng = SplitMix64::new(SEED);
    let mut drawn = Vec::with_capacity(queries);
    let mut tries = 0usize;
    let mut no_route = Vec::new();
    while drawn.len() < queries && tries < queries * 50 {
        tries += 1;
        let from = rng.below(n) as usize;
        let to = rng.below(n) as usize;
        if from == to {
            continue;
        }
        let d = Drawn {
            from,
            to,
            amount: 1_000 + rng.below(99_001),
        };
        let q = query(&net, &d, d.amount);
        let t = Instant::now();
        let found = find_route(&graph, &q).is_some();
        let took = t.elapsed();
        if found {
            drawn.push(d);
        } else {
            // A query with no answer may search all it can reach before it knows: timed too.
            no_route.push(took);
        }
    }
    no_route.sort();
    if drawn.is_empty() {
        bail!("no reachable query in {tries} tries");
    }

    say(&format!("timing {} single-path queries ...", drawn.len()));
    let mut times = Vec::with_capacity(drawn.len());
    let mut hops = 0usize;
    for d in &drawn {
        let q = query(&net, d, d.amount);
        let t = Instant::now();
        let route = find_route(&graph, &q);
        times.push(t.elapsed());
        hops += route.map_or(0, |r| r.hops());
    }
    times.sort();
    let single_p50_ms = percentile(&times, 0.50);
    let single_p99_ms = percentile(&times, 0.99);

    say("timing the textbook Dijkstra ...");
    let textbook = Textbook::new(&net);
    let mut ttimes = Vec::with_capacity(drawn.len());
    for d in &drawn {
        let t = Instant::now();
        std::hint::black_box(textbook.route(d.from as u32, d.to as u32, d.amount));
        ttimes.push(t.elapsed());
    }
    ttimes.sort();
    let textbook_p50_ms = percentile(&ttimes, 0.50);

    let (multi, flow) = if first {
        let count = drawn.len().min(200);
        say(&format!(
            "timing {count} multi-path and max-flow queries ..."
        ));
        let mut mtimes = Vec::with_capacity(count);
        let mut ftimes = Vec::with_capacity(count);
        let mut ltimes = Vec::with_capacity(count);
        let (mut succeeded, mut parts) = (0usize, 0usize);
        for d in &drawn[..count] {
            let (from, to) = (&net.nodes[d.from].key, &net.nodes[d.to].key);
            let probe = query(&net, d, 1);
            let t = Instant::now();
            let bound = max_flow(&graph, from, to, "USD", &probe.filters, None).upper_bound;
            ftimes.push(t.elapsed());
            // More than the widest route carries, less than the max-flow bound.
            let wide = widest_route(&graph, &probe);
            if bound <= wide {
                continue;
            }
            let amount = wide
                .saturating_add(wide / 2)
                .min(wide + (bound - wide) / 2)
                .max(wide + 1);
            let q = query(&net, d, amount);
            let t = Instant::now();
            let split = multi_path(&graph, &q, 8);
            mtimes.push(t.elapsed());
            if let Some(split) = split {
                succeeded += 1;
                parts += split.parts.len();
            }
            let t = Instant::now();
            std::hint::black_box(max_flow(&graph, from, to, "USD", &q.filters, Some(amount)));
            ltimes.push(t.elapsed());
        }
        mtimes.sort();
        ftimes.sort();
        ltimes.sort();
        (
            Some(MultiReport {
                queries: mtimes.len(),
                succeeded,
                mean_parts: parts as f64 / succeeded.max(1) as f64,
                p50_ms: percentile(&mtimes, 0.50),
                p99_ms: percentile(&mtimes, 0.99),
            }),
            Some(FlowReport {
                queries: count,
                full_p50_ms: percentile(&ftimes, 0.50),
                full_p99_ms: percentile(&ftimes, 0.99),
                limited_p50_ms: percentile(&ltimes, 0.50),
            }),
        )
    } else {
        (None, None)
    };

    // Enough updates for the overlay to be compacted at least once on both sizes.
    let updates = (queries * 2).max(10_000);
    say(&format!("timing {updates} incremental updates ..."));
    let before = graph.stats().compactions;
    let mut utimes = Vec::with_capacity(updates);
    for _ in 0..updates {
        let i = rng.below(n) as usize;
        let mut specs = net.edge_specs(i);
        for s in &mut specs {
            s.capacity = s.capacity / 100 * (50 + rng.below(101));
        }
        let witnesses = net.witness_names(i);
        let t = Instant::now();
        graph
            .set_node(&net.nodes[i].key, specs, witnesses, GENERATED_AT)
            .context("set_node")?;
        utimes.push(t.elapsed());
    }
    let compactions = graph.stats().compactions - before;
    let update_mean_us = utimes.iter().map(|d| d.as_secs_f64()).sum::<f64>() * 1e6 / updates as f64;
    utimes.sort();
    let t = Instant::now();
    graph.compact();
    let compact_ms = ms(t.elapsed());

    Ok(SizeReport {
        nodes,
        lines: net.lines,
        edges: net.edge_count(),
        generate_ms,
        load_ms,
        queries: drawn.len(),
        reachable_share: drawn.len() as f64 / tries as f64,
        single_p50_ms,
        single_p99_ms,
        mean_hops: hops as f64 / drawn.len() as f64,
        no_route_queries: no_route.len(),
        no_route_p50_ms: percentile(&no_route, 0.50),
        no_route_p99_ms: percentile(&no_route, 0.99),
        textbook_p50_ms,
        textbook_ratio: textbook_p50_ms / single_p50_ms.max(1e-9),
        multi_path: multi,
        max_flow: flow,
        updates,
        update_p50_us: percentile(&utimes, 0.50) * 1000.0,
        update_p99_us: percentile(&utimes, 0.99) * 1000.0,
        update_mean_us,
        update_max_ms: utimes.last().map_or(0.0, |d| ms(*d)),
        compactions,
        compact_ms,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The baseline: textbook Dijkstra over `Vec<Vec<_>>`, one label per node, fresh arrays per
/// query.
struct Textbook {
    /// Reverse adjacency: for each node, `(from, capacity, fee_base, fee_ppm)` of its incoming
    /// USD edges.
    rev: Vec<Vec<(u32, u64, u64, u32)>>,
}

impl Textbook {
    fn new(net: &Synthetic) -> Textbook {
        let mut rev = vec![Vec::new(); net.nodes.len()];
        for (u, node) in net.nodes.iter().enumerate() {
            for e in &node.edges {
                if e.asset == 0 {
                    rev[e.to as usize].push((u as u32, e.capacity, e.fee_base, e.fee_ppm));
                }
            }
        }
        Textbook { rev }
    }

    /// What `from` must send for `to` to get `amount`.
    fn route(&self, from: u32, to: u32, amount: u64) -> Option<u64> {
        let mut dist = vec![u64::MAX; self.rev.len()];
        let mut heap = BinaryHeap::new();
        dist[to as usize] = amount;
        heap.push(Reverse((amount, to)));
        while let Some(Reverse((d, v))) = heap.pop() {
            if v == from {
                return Some(d);
            }
            if d > dist[v as usize] {
                continue;
            }
            for &(u, cap, base, ppm) in &self.rev[v as usize] {
                if cap < d || u == to {
                    continue;
                }
                let next = if u == from {
                    d
                } else {
                    let fee = u128::from(d) * u128::from(ppm) / 1_000_000 + u128::from(base);
                    match u64::try_from(u128::from(d) + fee) {
                        Ok(next) => next,
                        Err(_) => continue,
                    }
                };
                if next < dist[u as usize] {
                    dist[u as usize] = next;
                    heap.push(Reverse((next, u)));
                }
            }
        }
        None
    }
}

fn print_report(r: &RouteReport) {
    println!("machine");
    println!(
        "  cores                      {} (every figure below on one)",
        r.cores
    );
    for s in &r.sizes {
        println!(
            "route finding, preferential attachment: {} nodes, {} lines ({} directed edges)",
            s.nodes, s.lines, s.edges
        );
        println!("  generate                   {:.0} ms", s.generate_ms);
        println!("  cold load into the index   {:.0} ms", s.load_ms);
        println!(
            "  single path ({} queries, {:.0}% of drawn reachable, {:.1} hops)   p50 {:.3} ms   p99 {:.3} ms",
            s.queries,
            s.reachable_share * 100.0,
            s.mean_hops,
            s.single_p50_ms,
            s.single_p99_ms
        );
        if s.no_route_queries > 0 {
            println!(
                "  no route found ({} queries)   p50 {:.3} ms   p99 {:.3} ms",
                s.no_route_queries, s.no_route_p50_ms, s.no_route_p99_ms
            );
        }
        println!(
            "  textbook Dijkstra          p50 {:.3} ms   ({:.1}x ours)",
            s.textbook_p50_ms, s.textbook_ratio
        );
        if let Some(m) = &s.multi_path {
            println!(
                "  multi-path, over the widest route ({} queries, {} split, {:.1} parts)   p50 {:.3} ms   p99 {:.3} ms",
                m.queries, m.succeeded, m.mean_parts, m.p50_ms, m.p99_ms
            );
        }
        if let Some(f) = &s.max_flow {
            println!(
                "  max-flow bound, no fees ({} queries)   p50 {:.3} ms   p99 {:.3} ms   stopped at the amount: p50 {:.3} ms",
                f.queries, f.full_p50_ms, f.full_p99_ms, f.limited_p50_ms
            );
        }
        println!(
            "  set_node ({} updates, {} compactions)   p50 {:.1} us   p99 {:.1} us   max {:.2} ms   mean {:.1} us",
            s.updates,
            s.compactions,
            s.update_p50_us,
            s.update_p99_us,
            s.update_max_ms,
            s.update_mean_us
        );
        println!("  full compaction            {:.1} ms", s.compact_ms);
    }
}
