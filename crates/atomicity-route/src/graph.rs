//! The credit graph: nodes, assets and witness logs interned to dense ids, edges in CSR arrays
//! with a small overlay for incremental updates.
//!
//! # Layout
//!
//! A directed edge `u → v` in asset `a` means "u will issue credit to v". Each edge is stored
//! twice, as a 32-byte `Half` record: in the *forward* CSR under `u` (peer = v) and in the
//! *reverse* CSR under `v` (peer = u). The backward route search reads the reverse arrays; the
//! forward ones serve updates, the widest-path search and max-flow.
//!
//! **One CSR for all assets, the asset id in the record**, rather than one CSR per asset: most
//! lines are in one asset, so per-asset arrays would mostly repeat `n + 1` offsets per asset and
//! an update would touch every one of them; the asset id fits in the padding of the 32-byte
//! record, in the same cache line as the capacity and the fee the search reads next, so the
//! filter costs one compare. `updated_at` is a property of a node's document, not of an edge,
//! so it is stored once per node.
//!
//! # Incremental updates
//!
//! The crawler replaces one node's whole list of outgoing edges at a time ([`Graph::set_node`])
//! or drops it ([`Graph::remove_node`]). Neither rebuilds the arrays:
//!
//! - the node becomes *dirty*: its new list lives in an overlay (`over_out[u]`), and each of its
//!   edges is also appended to the overlay of incoming edges of its target (`over_in[v]`);
//! - its records in the base reverse CSR are *tombstoned* in place (their asset id set to a
//!   reserved value that no query asks for), so the search skips them with the asset compare it
//!   does anyway: no extra check in the hot loop.
//!
//! **Invariant.** For every node `u`: its outgoing edges are `over_out[u]` if `u` is dirty, else
//! its base forward slice. For every node `v`: its incoming edges are the live (not tombstoned)
//! records of its base reverse slice plus `over_in[v]`; a base reverse record from `u` is
//! tombstoned iff `u` is dirty; `over_in[v]` holds exactly the edges to `v` of the overlay lists
//! of dirty nodes. So the logical graph is always the base with each dirty node's list replaced.
//!
//! When the overlay's weight (the sum over dirty nodes of their base degree, their overlay
//! degree and 1) passes a fraction of the graph ([`CompactionPolicy`], default 1/8 of nodes +
//! edges, at least 1,024), the arrays are rebuilt from the logical graph ([`Graph::compact`],
//! O(n + m)). An update of a node of degree `d` thus costs O(d × overlay degree of its targets)
//! plus, amortised, O(8·d) for compactions.
//!
//! Node ids are dense and stable for the life of a `Graph`: a removed node keeps its id (it may
//! still be the target of other nodes' lines, and callers may hold its id); only building a new
//! graph forgets it.

use std::collections::HashMap;

use thiserror::Error;

/// A node's identity: its 32-byte public key (for example `pkarr::PublicKey::to_bytes()`).
pub type NodeKey = [u8; 32];

/// A node's dense id in one [`Graph`]: an index into its arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    /// As an index.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An asset's interned id in one [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetId(pub u16);

/// A witness log's interned id in one [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WitnessId(pub u16);

/// The asset id of a tombstoned record. No asset is interned with it.
pub(crate) const DEAD_ASSET: u16 = u16::MAX;

/// One line a node publishes, as given to [`Graph::set_node`]: the node will issue up to
/// `capacity` to `to` in `asset`, and charges `fee_base + amount × fee_ppm / 10^6` (rounded
/// down) to forward `amount` over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeSpec<'a> {
    /// The peer the node issues credit to.
    pub to: NodeKey,
    /// The asset's text form.
    pub asset: &'a str,
    /// What the node would still issue (its published capacity hint), in minor units.
    pub capacity: u64,
    /// Fixed fee, in minor units.
    pub fee_base: u64,
    /// Proportional fee, in millionths of the forwarded amount.
    pub fee_ppm: u32,
}

/// One edge as stored, read back with [`Graph::out_edges`] or [`Graph::in_edges`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The issuer.
    pub from: NodeId,
    /// The holder.
    pub to: NodeId,
    /// The asset.
    pub asset: AssetId,
    /// Capacity, minor units.
    pub capacity: u64,
    /// Fixed fee, minor units.
    pub fee_base: u64,
    /// Proportional fee, ppm.
    pub fee_ppm: u32,
    /// When the issuer's document was signed or fetched (unix seconds).
    pub updated_at: u64,
}

/// Why the graph could not take an update.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum GraphError {
    /// More than `u32::MAX - 1` nodes.
    #[error("too many nodes")]
    TooManyNodes,
    /// More than 65,534 distinct assets.
    #[error("too many assets")]
    TooManyAssets,
    /// More than 65,535 distinct witness logs.
    #[error("too many witness logs")]
    TooManyWitnesses,
    /// More than `u32::MAX - 1` edges.
    #[error("too many edges")]
    TooManyEdges,
}

/// When the overlay is folded back into the CSR arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Compact when the overlay weight exceeds `(nodes + edges) / divisor`.
    pub divisor: usize,
    /// ... and exceeds this.
    pub min_weight: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            divisor: 8,
            min_weight: 1024,
        }
    }
}

/// Counters describing the graph's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GraphStats {
    /// Nodes (ids) known, published or not.
    pub nodes: usize,
    /// Nodes with a published document.
    pub published: usize,
    /// Directed edges.
    pub edges: usize,
    /// Dirty nodes (their lists live in the overlay).
    pub dirty_nodes: usize,
    /// The overlay's weight (see the module documentation).
    pub overlay_weight: usize,
    /// Compactions since the graph was built.
    pub compactions: u64,
}

/// One stored edge record (32 bytes): `peer` is the target in the forward arrays and the
/// source in the reverse ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Half {
    pub cap: u64,
    pub base: u64,
    pub peer: u32,
    pub ppm: u32,
    pub asset: u16,
}

/// The credit graph. See the module documentation for the layout and the update invariant.
#[derive(Clone, Debug)]
pub struct Graph {
    keys: Vec<NodeKey>,
    ids: HashMap<NodeKey, u32>,
    /// The key's first 8 bytes, big-endian: the searches' deterministic tie-breaker, so that
    /// results do not depend on id order (and so equal on a graph rebuilt from scratch).
    pub(crate) tiebreak: Vec<u64>,
    pub(crate) updated_at: Vec<u64>,
    /// Interned witness set of each node (0: the empty set).
    pub(crate) wset: Vec<u32>,
    published: Vec<bool>,
    dirty: Vec<bool>,
    pub(crate) has_over_in: Vec<bool>,

    assets: Vec<String>,
    asset_ids: HashMap<String, u16>,
    logs: Vec<String>,
    log_ids: HashMap<String, u16>,
    pub(crate) wsets: Vec<Box<[u16]>>,
    wset_ids: HashMap<Box<[u16]>, u32>,

    /// Nodes covered by the base arrays (ids at or above have no base records).
    base_nodes: u32,
    out_off: Vec<u32>,
    out: Vec<Half>,
    /// For each forward record, the index of the same edge's reverse record.
    out_rev: Vec<u32>,
    in_off: Vec<u32>,
    inn: Vec<Half>,

    over_out: HashMap<u32, Vec<Half>>,
    over_in: HashMap<u32, Vec<Half>>,
    over_weight: usize,
    live_edges: usize,
    published_count: usize,
    dirty_count: usize,
    policy: CompactionPolicy,
    compactions: u64,
    bfs_budget: Option<usize>,
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new()
    }
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph {
            keys: Vec::new(),
            ids: HashMap::new(),
            tiebreak: Vec::new(),
            updated_at: Vec::new(),
            wset: Vec::new(),
            published: Vec::new(),
            dirty: Vec::new(),
            has_over_in: Vec::new(),
            assets: Vec::new(),
            asset_ids: HashMap::new(),
            logs: Vec::new(),
            log_ids: HashMap::new(),
            // Set 0 is the empty set.
            wsets: vec![Box::from([])],
            wset_ids: HashMap::from([(Box::from([]), 0)]),
            base_nodes: 0,
            out_off: vec![0],
            out: Vec::new(),
            out_rev: Vec::new(),
            in_off: vec![0],
            inn: Vec::new(),
            over_out: HashMap::new(),
            over_in: HashMap::new(),
            over_weight: 0,
            live_edges: 0,
            published_count: 0,
            dirty_count: 0,
            policy: CompactionPolicy::default(),
            compactions: 0,
            bfs_budget: None,
        }
    }

    /// Sets when the overlay is compacted.
    pub fn set_compaction_policy(&mut self, policy: CompactionPolicy) {
        self.policy = CompactionPolicy {
            divisor: policy.divisor.max(1),
            ..policy
        };
    }

    /// Sets how many edges the route search's BFS may scan (see [`crate::search`]); `None`:
    /// automatic. Answers never depend on it, only speed.
    pub fn set_bfs_budget(&mut self, budget: Option<usize>) {
        self.bfs_budget = budget;
    }

    /// The BFS budget set, if any.
    pub fn bfs_budget(&self) -> Option<usize> {
        self.bfs_budget
    }

    /// The node's id, if the graph knows the key (as a publisher or as a peer of one).
    pub fn node_id(&self, key: &NodeKey) -> Option<NodeId> {
        self.ids.get(key).map(|&id| NodeId(id))
    }

    /// The node's key.
    pub fn key(&self, id: NodeId) -> Option<&NodeKey> {
        self.keys.get(id.index())
    }

    /// Node ids in use: every id is below this.
    pub fn node_count(&self) -> usize {
        self.keys.len()
    }

    /// Directed edges.
    pub fn edge_count(&self) -> usize {
        self.live_edges
    }

    /// Whether the node has a published document (set and not removed since).
    pub fn is_published(&self, id: NodeId) -> bool {
        self.published.get(id.index()).copied().unwrap_or(false)
    }

    /// The node's `updated_at`, if it is published.
    pub fn updated_at(&self, id: NodeId) -> Option<u64> {
        self.is_published(id).then(|| self.updated_at[id.index()])
    }

    /// The asset's id, if some edge ever used it.
    pub fn asset_id(&self, asset: &str) -> Option<AssetId> {
        self.asset_ids.get(asset).map(|&a| AssetId(a))
    }

    /// The asset's text form.
    pub fn asset_name(&self, asset: AssetId) -> Option<&str> {
        self.assets.get(usize::from(asset.0)).map(String::as_str)
    }

    /// The witness log's id, if some node ever named it.
    pub fn witness_id(&self, log: &str) -> Option<WitnessId> {
        self.log_ids.get(log).map(|&w| WitnessId(w))
    }

    /// The witness logs the node accepts (from its published channel list), sorted by id.
    pub fn witnesses(&self, id: NodeId) -> Vec<&str> {
        let Some(&set) = self.wset.get(id.index()) else {
            return Vec::new();
        };
        self.wsets[set as usize]
            .iter()
            .map(|&w| self.logs[usize::from(w)].as_str())
            .collect()
    }

    /// Storage counters.
    pub fn stats(&self) -> GraphStats {
        GraphStats {
            nodes: self.keys.len(),
            published: self.published_count,
            edges: self.live_edges,
            dirty_nodes: self.dirty_count,
            overlay_weight: self.over_weight,
            compactions: self.compactions,
        }
    }

    /// The node's outgoing edges, in the order stored (sorted by target id, then asset id).
    pub fn out_edges(&self, id: NodeId) -> Vec<Edge> {
        if id.index() >= self.keys.len() {
            return Vec::new();
        }
        self.out_halves(id.0)
            .iter()
            .map(|h| self.edge(id.0, h.peer, h))
            .collect()
    }

    /// The node's incoming edges (order unspecified).
    pub fn in_edges(&self, id: NodeId) -> Vec<Edge> {
        if id.index() >= self.keys.len() {
            return Vec::new();
        }
        let (base, over) = self.in_halves(id.0);
        base.iter()
            .chain(over)
            .filter(|h| h.asset != DEAD_ASSET)
            .map(|h| self.edge(h.peer, id.0, h))
            .collect()
    }

    fn edge(&self, from: u32, to: u32, h: &Half) -> Edge {
        Edge {
            from: NodeId(from),
            to: NodeId(to),
            asset: AssetId(h.asset),
            capacity: h.cap,
            fee_base: h.base,
            fee_ppm: h.ppm,
            updated_at: self.updated_at[from as usize],
        }
    }

    /// Replaces everything the node publishes: its outgoing edges, its accepted witness logs and
    /// when its document was signed or fetched. Unknown peers get ids (unpublished until they
    /// publish themselves). An edge to the node itself is dropped; of two edges with the same
    /// peer and asset, the later one is kept. On an error (an id space exhausted) the node's old
    /// data is kept, but keys and names interned before the error stay.
    pub fn set_node(
        &mut self,
        key: &NodeKey,
        edges: Vec<EdgeSpec<'_>>,
        witnesses: Vec<String>,
        updated_at: u64,
    ) -> Result<NodeId, GraphError> {
        let id = self.intern_node(key)?;
        let halves = self.prepare_edges(id, &edges)?;
        let set = self.intern_witness_set(&witnesses)?;
        let new_total = self
            .live_edges
            .checked_sub(self.out_halves(id).len())
            .and_then(|n| n.checked_add(halves.len()))
            .filter(|&n| n < u32::MAX as usize)
            .ok_or(GraphError::TooManyEdges)?;
        self.detach(id);
        for h in &halves {
            self.over_in
                .entry(h.peer)
                .or_default()
                .push(Half { peer: id, ..*h });
            self.has_over_in[h.peer as usize] = true;
        }
        self.over_weight += halves.len();
        if !halves.is_empty() {
            self.over_out.insert(id, halves);
        }
        self.live_edges = new_total;
        let i = id as usize;
        self.updated_at[i] = updated_at;
        self.wset[i] = set;
        if !self.published[i] {
            self.published[i] = true;
            self.published_count += 1;
        }
        self.maybe_compact();
        Ok(NodeId(id))
    }

    /// Forgets what the node published (its document expired): its edges and witness logs. Its
    /// id stays, and so do other nodes' edges to it. Returns whether it was published.
    pub fn remove_node(&mut self, key: &NodeKey) -> bool {
        let Some(&id) = self.ids.get(key) else {
            return false;
        };
        let i = id as usize;
        if !self.published[i] {
            return false;
        }
        self.live_edges -= self.out_halves(id).len();
        self.detach(id);
        self.published[i] = false;
        self.published_count -= 1;
        self.wset[i] = 0;
        self.updated_at[i] = 0;
        self.maybe_compact();
        true
    }

    /// Makes the node dirty with an empty overlay list: its base reverse records are
    /// tombstoned, its old overlay edges leave their targets' incoming overlays.
    fn detach(&mut self, id: u32) {
        let i = id as usize;
        if self.dirty[i] {
            if let Some(old) = self.over_out.remove(&id) {
                self.over_weight -= old.len();
                for h in &old {
                    if let Some(list) = self.over_in.get_mut(&h.peer) {
                        list.retain(|e| e.peer != id);
                        if list.is_empty() {
                            self.over_in.remove(&h.peer);
                            self.has_over_in[h.peer as usize] = false;
                        }
                    }
                }
            }
        } else {
            self.dirty[i] = true;
            self.dirty_count += 1;
            self.over_weight += 1;
            if id < self.base_nodes {
                let (start, end) = (self.out_off[i] as usize, self.out_off[i + 1] as usize);
                for k in start..end {
                    self.inn[self.out_rev[k] as usize].asset = DEAD_ASSET;
                }
                self.over_weight += end - start;
            }
        }
    }

    fn maybe_compact(&mut self) {
        let limit =
            ((self.keys.len() + self.live_edges) / self.policy.divisor).max(self.policy.min_weight);
        if self.over_weight > limit {
            self.compact();
        }
    }

    /// Folds the overlay back into fresh CSR arrays (O(nodes + edges)).
    pub fn compact(&mut self) {
        let n = self.keys.len();
        let mut lists: Vec<Half> = Vec::with_capacity(self.live_edges);
        let mut off: Vec<u32> = Vec::with_capacity(n + 1);
        off.push(0);
        for u in 0..n as u32 {
            lists.extend_from_slice(self.out_halves(u));
            off.push(lists.len() as u32);
        }
        self.install(off, lists);
    }

    /// Installs forward arrays (`off`, `out`) as the new base and derives the reverse arrays;
    /// empties the overlay.
    pub(crate) fn install(&mut self, off: Vec<u32>, out: Vec<Half>) {
        let n = self.keys.len();
        let mut in_off = vec![0u32; n + 1];
        for h in &out {
            in_off[h.peer as usize + 1] += 1;
        }
        for v in 0..n {
            in_off[v + 1] += in_off[v];
        }
        let mut fill = in_off.clone();
        let placeholder = Half {
            cap: 0,
            base: 0,
            peer: 0,
            ppm: 0,
            asset: DEAD_ASSET,
        };
        let mut inn = vec![placeholder; out.len()];
        let mut out_rev = vec![0u32; out.len()];
        for u in 0..n {
            for k in off[u] as usize..off[u + 1] as usize {
                let h = out[k];
                let slot = &mut fill[h.peer as usize];
                inn[*slot as usize] = Half {
                    peer: u as u32,
                    ..h
                };
                out_rev[k] = *slot;
                *slot += 1;
            }
        }
        self.live_edges = out.len();
        self.base_nodes = n as u32;
        self.out_off = off;
        self.out = out;
        self.out_rev = out_rev;
        self.in_off = in_off;
        self.inn = inn;
        self.over_out.clear();
        self.over_in.clear();
        self.has_over_in.iter_mut().for_each(|b| *b = false);
        self.dirty.iter_mut().for_each(|b| *b = false);
        self.dirty_count = 0;
        self.over_weight = 0;
        self.compactions += 1;
    }

    /// The node's outgoing records (logical).
    #[inline]
    pub(crate) fn out_halves(&self, u: u32) -> &[Half] {
        let i = u as usize;
        if self.dirty[i] {
            self.over_out.get(&u).map_or(&[], Vec::as_slice)
        } else if u < self.base_nodes {
            &self.out[self.out_off[i] as usize..self.out_off[i + 1] as usize]
        } else {
            &[]
        }
    }

    /// The node's incoming records: the base slice (may hold tombstones, asset
    /// [`DEAD_ASSET`]) and the overlay slice.
    #[inline]
    pub(crate) fn in_halves(&self, v: u32) -> (&[Half], &[Half]) {
        let i = v as usize;
        let base = if v < self.base_nodes {
            &self.inn[self.in_off[i] as usize..self.in_off[i + 1] as usize]
        } else {
            &[]
        };
        let over = if self.has_over_in[i] {
            self.over_in.get(&v).map_or(&[][..], Vec::as_slice)
        } else {
            &[]
        };
        (base, over)
    }

    pub(crate) fn intern_node(&mut self, key: &NodeKey) -> Result<u32, GraphError> {
        if let Some(&id) = self.ids.get(key) {
            return Ok(id);
        }
        let id = u32::try_from(self.keys.len())
            .ok()
            .filter(|&id| id < u32::MAX)
            .ok_or(GraphError::TooManyNodes)?;
        self.keys.push(*key);
        self.ids.insert(*key, id);
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&key[..8]);
        self.tiebreak.push(u64::from_be_bytes(prefix));
        self.updated_at.push(0);
        self.wset.push(0);
        self.published.push(false);
        self.dirty.push(false);
        self.has_over_in.push(false);
        Ok(id)
    }

    fn intern_asset(&mut self, asset: &str) -> Result<u16, GraphError> {
        if let Some(&a) = self.asset_ids.get(asset) {
            return Ok(a);
        }
        let a = u16::try_from(self.assets.len())
            .ok()
            .filter(|&a| a < DEAD_ASSET)
            .ok_or(GraphError::TooManyAssets)?;
        self.assets.push(asset.to_string());
        self.asset_ids.insert(asset.to_string(), a);
        Ok(a)
    }

    fn intern_witness_set(&mut self, logs: &[String]) -> Result<u32, GraphError> {
        let mut ids = Vec::with_capacity(logs.len());
        for log in logs {
            let w = match self.log_ids.get(log.as_str()) {
                Some(&w) => w,
                None => {
                    let w =
                        u16::try_from(self.logs.len()).map_err(|_| GraphError::TooManyWitnesses)?;
                    self.logs.push(log.clone());
                    self.log_ids.insert(log.clone(), w);
                    w
                }
            };
            ids.push(w);
        }
        ids.sort_unstable();
        ids.dedup();
        let ids = ids.into_boxed_slice();
        if let Some(&set) = self.wset_ids.get(&ids) {
            return Ok(set);
        }
        let set = u32::try_from(self.wsets.len()).map_err(|_| GraphError::TooManyWitnesses)?;
        self.wsets.push(ids.clone());
        self.wset_ids.insert(ids, set);
        Ok(set)
    }

    /// Resolves a node's edge specs into records sorted by (target id, asset id), self-loops
    /// dropped, the last of duplicates kept.
    fn prepare_edges(&mut self, id: u32, edges: &[EdgeSpec<'_>]) -> Result<Vec<Half>, GraphError> {
        let mut halves: Vec<Half> = Vec::with_capacity(edges.len());
        for e in edges {
            let to = self.intern_node(&e.to)?;
            if to == id {
                continue;
            }
            let asset = self.intern_asset(e.asset)?;
            halves.push(Half {
                cap: e.capacity,
                base: e.fee_base,
                peer: to,
                ppm: e.fee_ppm,
                asset,
            });
        }
        // Stable: among duplicates, the later stays later; keep it.
        halves.sort_by_key(|h| (h.peer, h.asset));
        let mut kept: Vec<Half> = Vec::with_capacity(halves.len());
        for h in halves {
            match kept.last_mut() {
                Some(last) if (last.peer, last.asset) == (h.peer, h.asset) => *last = h,
                _ => kept.push(h),
            }
        }
        Ok(kept)
    }
}

/// Builds a [`Graph`] from many nodes at once (a cold load): the same semantics as calling
/// [`Graph::set_node`] for each on an empty graph, but the arrays are built once, at
/// [`GraphBuilder::build`], with no overlay.
#[derive(Debug)]
pub struct GraphBuilder {
    graph: Graph,
    /// Each node's records: the range in `flat` (a node set twice leaves its old range unused).
    ranges: Vec<(u32, u32)>,
    flat: Vec<Half>,
}

impl Default for GraphBuilder {
    fn default() -> Self {
        GraphBuilder::new()
    }
}

impl GraphBuilder {
    /// An empty builder.
    pub fn new() -> GraphBuilder {
        GraphBuilder {
            graph: Graph::new(),
            ranges: Vec::new(),
            flat: Vec::new(),
        }
    }

    /// Like [`Graph::set_node`].
    pub fn set_node(
        &mut self,
        key: &NodeKey,
        edges: Vec<EdgeSpec<'_>>,
        witnesses: Vec<String>,
        updated_at: u64,
    ) -> Result<NodeId, GraphError> {
        let g = &mut self.graph;
        let id = g.intern_node(key)?;
        let halves = g.prepare_edges(id, &edges)?;
        let set = g.intern_witness_set(&witnesses)?;
        let start = u32::try_from(self.flat.len())
            .ok()
            .filter(|&s| (s as usize).saturating_add(halves.len()) < u32::MAX as usize)
            .ok_or(GraphError::TooManyEdges)?;
        self.flat.extend_from_slice(&halves);
        self.ranges.resize(g.keys.len(), (0, 0));
        self.ranges[id as usize] = (start, halves.len() as u32);
        let i = id as usize;
        g.updated_at[i] = updated_at;
        g.wset[i] = set;
        if !g.published[i] {
            g.published[i] = true;
            g.published_count += 1;
        }
        Ok(NodeId(id))
    }

    /// The graph.
    pub fn build(mut self) -> Graph {
        let n = self.graph.keys.len();
        self.ranges.resize(n, (0, 0));
        let total: usize = self.ranges.iter().map(|r| r.1 as usize).sum();
        let mut out = Vec::with_capacity(total);
        let mut off = Vec::with_capacity(n + 1);
        off.push(0u32);
        for &(start, len) in &self.ranges {
            out.extend_from_slice(&self.flat[start as usize..(start + len) as usize]);
            off.push(out.len() as u32);
        }
        drop(self.flat);
        self.graph.install(off, out);
        self.graph.compactions = 0;
        self.graph
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> NodeKey {
        [i; 32]
    }

    fn spec(to: u8, asset: &str, cap: u64) -> EdgeSpec<'_> {
        EdgeSpec {
            to: key(to),
            asset,
            capacity: cap,
            fee_base: 1,
            fee_ppm: 10,
        }
    }

    #[test]
    fn updates_keep_the_invariant() {
        let mut g = Graph::new();
        g.set_compaction_policy(CompactionPolicy {
            divisor: 1,
            min_weight: usize::MAX,
        });
        g.set_node(
            &key(1),
            vec![spec(2, "USD", 5), spec(3, "USD", 7)],
            vec![],
            1,
        )
        .expect("set");
        g.compact();
        g.set_node(
            &key(1),
            vec![spec(3, "EUR", 9), spec(3, "EUR", 11), spec(1, "USD", 1)],
            vec!["w".into()],
            2,
        )
        .expect("set");
        let n2 = g.node_id(&key(2)).expect("2");
        let n3 = g.node_id(&key(3)).expect("3");
        assert!(g.in_edges(n2).is_empty());
        let into3 = g.in_edges(n3);
        assert_eq!(into3.len(), 1);
        assert_eq!(into3[0].capacity, 11);
        assert_eq!(g.edge_count(), 1);
        assert!(g.remove_node(&key(1)));
        assert!(!g.remove_node(&key(1)));
        assert!(g.in_edges(n3).is_empty());
        assert_eq!(g.edge_count(), 0);
        g.compact();
        assert_eq!(g.stats().dirty_nodes, 0);
        assert!(g.in_edges(n3).is_empty());
    }
}
