//! Seeded synthetic credit graphs for tests and benchmarks.
//!
//! Shapes: [`preferential_attachment`] (Barabási–Albert: power-law degrees, hubs, with 5% of
//! lines rewired to a uniformly random peer, the small-world shortcuts real networks have) and
//! [`small_world`] (Watts–Strogatz: a ring lattice with 10% of lines rewired). Both make
//! exactly `lines` undirected lines; each line is in one asset (USD 85%, EUR 10%, BTC 5%) and
//! is bidirectional 80% of the time (two directed edges with their own capacity and fees),
//! else one way. Capacities are log-normal-ish (`m × 10^e`, `m` uniform in 100..=999 and `e`
//! binomial(6, ½): from 100 to about 10^9 minor units, median near 5,000.00); fixed fees are 0
//! for half the edges, else 1..=100; proportional fees 0 for 5%, else 1..=5,000 ppm skewed
//! toward small values (median about 1,250). Each node accepts 1–3 of six witness logs (the first ones most
//! popular) and its document is up to four days old at [`GENERATED_AT`].
//!
//! Deterministic: the same `(nodes, lines, seed)` gives the same graph on every platform (an
//! own SplitMix64, integer arithmetic only).

use std::collections::HashSet;

use crate::graph::{EdgeSpec, Graph, GraphBuilder, GraphError, NodeKey};

/// The assets of generated lines, most common first.
pub const ASSETS: [&str; 3] = ["USD", "EUR", "BTC"];
/// The witness logs nodes accept, most popular first.
pub const LOGS: [&str; 6] = ["log-a", "log-b", "log-c", "log-d", "log-e", "log-f"];
/// The "now" of generated documents (unix seconds).
pub const GENERATED_AT: u64 = 1_750_000_000;
/// Documents are up to this old at [`GENERATED_AT`].
pub const MAX_AGE: u64 = 4 * 86_400;

/// SplitMix64: a small, fast, seeded generator (not for secrets).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; 0 if `n` is 0), without modulo bias worth mentioning
    /// (Lemire's multiply-shift).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One directed edge of a generated node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthEdge {
    /// Index of the peer in [`Synthetic::nodes`].
    pub to: u32,
    /// Index in [`ASSETS`].
    pub asset: u8,
    /// Capacity, minor units.
    pub capacity: u64,
    /// Fixed fee, minor units.
    pub fee_base: u64,
    /// Proportional fee, ppm.
    pub fee_ppm: u32,
}

/// One generated node: what it would publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthNode {
    /// Its key.
    pub key: NodeKey,
    /// Indexes in [`LOGS`] of the witness logs it accepts.
    pub witnesses: Vec<u8>,
    /// When its document was signed.
    pub updated_at: u64,
    /// Its outgoing edges.
    pub edges: Vec<SynthEdge>,
}

/// A generated network, as an edge list per node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synthetic {
    /// The nodes.
    pub nodes: Vec<SynthNode>,
    /// Undirected lines.
    pub lines: usize,
}

impl Synthetic {
    /// Directed edges.
    pub fn edge_count(&self) -> usize {
        self.nodes.iter().map(|n| n.edges.len()).sum()
    }

    /// Node `i`'s edges as [`Graph::set_node`] takes them.
    pub fn edge_specs(&self, i: usize) -> Vec<EdgeSpec<'static>> {
        self.nodes[i]
            .edges
            .iter()
            .map(|e| EdgeSpec {
                to: self.nodes[e.to as usize].key,
                asset: ASSETS[usize::from(e.asset)],
                capacity: e.capacity,
                fee_base: e.fee_base,
                fee_ppm: e.fee_ppm,
            })
            .collect()
    }

    /// Node `i`'s witness logs as [`Graph::set_node`] takes them.
    pub fn witness_names(&self, i: usize) -> Vec<String> {
        self.nodes[i]
            .witnesses
            .iter()
            .map(|&w| LOGS[usize::from(w)].to_string())
            .collect()
    }

    /// The graph (a cold load through [`GraphBuilder`]).
    pub fn graph(&self) -> Result<Graph, GraphError> {
        let mut builder = GraphBuilder::new();
        for (i, node) in self.nodes.iter().enumerate() {
            builder.set_node(
                &node.key,
                self.edge_specs(i),
                self.witness_names(i),
                node.updated_at,
            )?;
        }
        Ok(builder.build())
    }
}

/// A Barabási–Albert network of `nodes` nodes and exactly `lines` lines (fewer if `lines`
/// exceeds what `nodes` can hold), 5% of them rewired to a uniform peer.
pub fn preferential_attachment(nodes: usize, lines: usize, seed: u64) -> Synthetic {
    let mut rng = SplitMix64::new(seed ^ 0xBA5E_BA11_0000_0001);
    let lines = lines.min(max_lines(nodes));
    let mut pairs: HashSet<(u32, u32)> = HashSet::with_capacity(lines);
    let mut list: Vec<(u32, u32)> = Vec::with_capacity(lines);
    // Each line adds both ends here: a uniform pick is degree-proportional.
    let mut ends: Vec<u32> = Vec::with_capacity(2 * lines);
    for i in 1..nodes {
        let left_nodes = (nodes - i) as u64;
        let left_lines = (lines - list.len()) as u64;
        // Spread the lines evenly over the remaining nodes, at most one per earlier node.
        let want = left_lines.div_ceil(left_nodes).min(i as u64);
        let mut made = 0;
        let mut tries = 0;
        while made < want && tries < 50 * want + 50 {
            tries += 1;
            let j = if ends.is_empty() || rng.percent(5) {
                rng.below(i as u64) as u32
            } else {
                ends[rng.below(ends.len() as u64) as usize]
            };
            if add_line(&mut pairs, &mut list, i as u32, j) {
                ends.push(i as u32);
                ends.push(j);
                made += 1;
            }
        }
    }
    finish(nodes, list, &mut rng)
}

/// A Watts–Strogatz network of `nodes` nodes and exactly `lines` lines (fewer if `lines`
/// exceeds what the ring can hold): each node linked to its next neighbours on a ring, 10% of
/// the lines rewired to a uniform peer.
pub fn small_world(nodes: usize, lines: usize, seed: u64) -> Synthetic {
    let mut rng = SplitMix64::new(seed ^ 0x5A11_3011_0000_0002);
    let lines = lines.min(max_lines(nodes));
    let mut pairs: HashSet<(u32, u32)> = HashSet::with_capacity(lines);
    let mut list: Vec<(u32, u32)> = Vec::with_capacity(lines);
    if nodes >= 2 {
        let n = nodes as u64;
        let per = lines / nodes;
        let extra = lines % nodes;
        // Ring lattice: node i links to i+1 ..= i+k_i.
        for i in 0..nodes {
            let k = per + usize::from(i < extra);
            for d in 1..=k as u64 {
                let j = ((i as u64 + d) % n) as u32;
                add_line(&mut pairs, &mut list, i as u32, j);
            }
        }
        // Rewire.
        for line in list.iter_mut() {
            if !rng.percent(10) {
                continue;
            }
            let (a, b) = *line;
            for _ in 0..10 {
                let c = rng.below(n) as u32;
                let key = (a.min(c), a.max(c));
                if c != a && !pairs.contains(&key) {
                    pairs.remove(&(a.min(b), a.max(b)));
                    pairs.insert(key);
                    *line = (a, c);
                    break;
                }
            }
        }
        // Lines a crowded ring could not take (only when `lines` is near the maximum).
        let mut tries = 0;
        while list.len() < lines && tries < 100 * lines {
            tries += 1;
            let (a, b) = (rng.below(n) as u32, rng.below(n) as u32);
            add_line(&mut pairs, &mut list, a, b);
        }
    }
    finish(nodes, list, &mut rng)
}

fn max_lines(nodes: usize) -> usize {
    nodes.saturating_mul(nodes.saturating_sub(1)) / 2
}

fn add_line(pairs: &mut HashSet<(u32, u32)>, list: &mut Vec<(u32, u32)>, a: u32, b: u32) -> bool {
    if a == b || !pairs.insert((a.min(b), a.max(b))) {
        return false;
    }
    list.push((a, b));
    true
}

/// Keys, witness sets, ages, and the lines' directed edges.
fn finish(nodes: usize, list: Vec<(u32, u32)>, rng: &mut SplitMix64) -> Synthetic {
    let mut out: Vec<SynthNode> = (0..nodes)
        .map(|_| {
            let mut key = [0u8; 32];
            for chunk in key.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_be_bytes());
            }
            SynthNode {
                key,
                witnesses: witness_set(rng),
                updated_at: GENERATED_AT - rng.below(MAX_AGE + 1),
                edges: Vec::new(),
            }
        })
        .collect();
    let lines = list.len();
    for (a, b) in list {
        let asset = match rng.below(100) {
            0..85 => 0,
            85..95 => 1,
            _ => 2,
        };
        let (both, forward) = (rng.percent(80), rng.percent(50));
        if both || forward {
            let e = edge(rng, b, asset);
            out[a as usize].edges.push(e);
        }
        if both || !forward {
            let e = edge(rng, a, asset);
            out[b as usize].edges.push(e);
        }
    }
    Synthetic { nodes: out, lines }
}

fn edge(rng: &mut SplitMix64, to: u32, asset: u8) -> SynthEdge {
    let mantissa = 100 + rng.below(900);
    let exponent = (0..6).filter(|_| rng.percent(50)).count() as u32;
    let capacity = mantissa * 10u64.pow(exponent);
    let fee_base = if rng.percent(50) {
        0
    } else {
        1 + rng.below(100)
    };
    let fee_ppm = if rng.percent(5) {
        0
    } else {
        // Skewed toward small fees: r²/5000 for r uniform in 1..=5000.
        let r = 1 + rng.below(5000);
        (r * r / 5000).max(1) as u32
    };
    SynthEdge {
        to,
        asset,
        capacity,
        fee_base,
        fee_ppm,
    }
}

fn witness_set(rng: &mut SplitMix64) -> Vec<u8> {
    const WEIGHTS: [u64; 6] = [40, 25, 15, 10, 6, 4];
    let size = match rng.below(100) {
        0..50 => 1,
        50..85 => 2,
        _ => 3,
    };
    let mut set: Vec<u8> = Vec::with_capacity(size);
    while set.len() < size {
        let mut r = rng.below(100);
        let mut pick = 0u8;
        for (i, w) in WEIGHTS.iter().enumerate() {
            if r < *w {
                pick = i as u8;
                break;
            }
            r -= w;
        }
        if !set.contains(&pick) {
            set.push(pick);
        }
    }
    set.sort_unstable();
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_exact() {
        for make in [preferential_attachment, small_world] {
            let a = make(500, 2_500, 7);
            assert_eq!(a, make(500, 2_500, 7));
            assert_ne!(a, make(500, 2_500, 8));
            assert_eq!(a.lines, 2_500);
            let mut seen = HashSet::new();
            for (i, n) in a.nodes.iter().enumerate() {
                assert!(seen.insert(n.key));
                assert!((1..=3).contains(&n.witnesses.len()));
                for e in &n.edges {
                    assert_ne!(e.to as usize, i);
                    assert!((100..=999_000_000).contains(&e.capacity));
                    assert!(e.fee_base <= 100 && e.fee_ppm <= 5000);
                }
            }
            let edges = a.edge_count();
            assert!(edges > 2_500 && edges <= 5_000, "{edges}");
            let g = a.graph().expect("graph");
            assert_eq!(g.edge_count(), edges);
            assert_eq!(g.node_count(), 500);
        }
    }

    #[test]
    fn preferential_attachment_has_hubs() {
        let a = preferential_attachment(5_000, 25_000, 1);
        let mut degree = vec![0usize; 5_000];
        for (i, n) in a.nodes.iter().enumerate() {
            for e in &n.edges {
                degree[i] += 1;
                degree[e.to as usize] += 1;
            }
        }
        let max = degree.iter().copied().max().unwrap_or(0);
        // Mean degree is about 18 (directed, both ends); BA hubs are far above it.
        assert!(max > 200, "max degree {max}");
    }
}
