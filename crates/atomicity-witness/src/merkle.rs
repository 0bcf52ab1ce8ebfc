//! RFC 6962 / RFC 9162 §2.1 Merkle tree hashing over SHA-256.
//!
//! - [`leaf_hash`], [`node_hash`], [`empty_root`]: the domain-separated hashes.
//! - [`root`]: the Merkle Tree Hash (MTH, RFC 9162 §2.1.1) of a list of leaf hashes.
//! - [`inclusion_proof`] / [`verify_inclusion`]: audit paths (§2.1.3);
//!   [`root_and_inclusion_proofs`] for every leaf at once.
//! - [`consistency_proof`] / [`verify_consistency`]: consistency proofs (§2.1.4).
//! - [`Tree`]: an append-only log tree that caches every complete subtree, so roots,
//!   inclusion proofs and consistency proofs for *any* earlier size are cheap.
//!
//! Tree sizes and leaf indices are `u64`, as in checkpoints. Verification never
//! panics on peer-supplied input: every failure is a [`ProofError`].

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Why a proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not smaller than the tree size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size it was checked against.
        size: u64,
    },
    /// A requested tree size is larger than the number of leaves available.
    #[error("tree size {size} exceeds the {available} leaves available")]
    SizeOutOfRange {
        /// The requested tree size.
        size: u64,
        /// How many leaves are actually available.
        available: u64,
    },
    /// Consistency needs `0 < old_size <= new_size`.
    #[error("invalid consistency sizes: need 0 < old size ({old}) <= new size ({new})")]
    InvalidSizes {
        /// The older (first) tree size.
        old: u64,
        /// The newer (second) tree size.
        new: u64,
    },
    /// The proof does not have the number of hashes the sizes call for.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// The length RFC 9162 prescribes for these sizes/indices.
        expected: usize,
        /// The length that was supplied.
        got: usize,
    },
    /// An inclusion proof (or an equal-size consistency check) led to a different root.
    #[error("computed root does not match the expected root")]
    RootMismatch,
    /// A consistency proof does not reproduce the old root.
    #[error("consistency proof does not match the old root")]
    OldRootMismatch,
    /// A consistency proof does not reproduce the new root.
    #[error("consistency proof does not match the new root")]
    NewRootMismatch,
}

/// The RFC 6962 leaf hash: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The Merkle Tree Hash (RFC 9162 §2.1.1) of a list of leaf hashes.
///
/// Splits at the largest power of two smaller than `n`; `O(n)` hashing.
pub fn root(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => empty_root(),
        [h] => *h,
        _ => {
            let k = split_point(leaf_hashes.len() as u64) as usize;
            let (l, r) = leaf_hashes.split_at(k);
            node_hash(&root(l), &root(r))
        }
    }
}

/// The inclusion proof (audit path, RFC 9162 §2.1.3.1) of leaf `index` in the tree
/// formed by all of `leaf_hashes`. Hashes are ordered from the leaf upwards.
pub fn inclusion_proof(leaf_hashes: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaf_hashes.len() as u64;
    gen_inclusion(&SliceNodes(leaf_hashes), index, size, size)
}

/// The consistency proof (RFC 9162 §2.1.4.1) from the first `old_size` leaves to the
/// tree formed by all of `leaf_hashes`.
///
/// `old_size == 0` is rejected ([`ProofError::InvalidSizes`]): RFC 9162 only defines
/// proofs for `0 < old_size`. `old_size == leaf_hashes.len()` gives the empty proof.
pub fn consistency_proof(leaf_hashes: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaf_hashes.len() as u64;
    gen_consistency(&SliceNodes(leaf_hashes), old_size, size, size)
}

/// The root and every leaf's inclusion proof of the tree formed by `leaf_hashes`, in
/// `O(n log n)` (calling [`inclusion_proof`] for each leaf would be `O(n^2)`). Used to sign
/// many objects with one signature over the root.
pub fn root_and_inclusion_proofs(leaf_hashes: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    // RFC 9162 §2.1.3.1: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k, and
    // PATH(m - k, D[k:n]) : MTH(D[0:k]) otherwise; so each leaf's path gets the sibling
    // subtree's root once its own subtree's path is complete.
    fn build(leaves: &[Hash], paths: &mut [Vec<Hash>]) -> Hash {
        match leaves {
            [] => empty_root(),
            [h] => *h,
            _ => {
                let k = split_point(leaves.len() as u64) as usize;
                let (l, r) = leaves.split_at(k);
                let (lp, rp) = paths.split_at_mut(k);
                let left = build(l, lp);
                let right = build(r, rp);
                lp.iter_mut().for_each(|p| p.push(right));
                rp.iter_mut().for_each(|p| p.push(left));
                node_hash(&left, &right)
            }
        }
    }
    let mut paths = vec![Vec::new(); leaf_hashes.len()];
    let root = build(leaf_hashes, &mut paths);
    (root, paths)
}

/// Verifies that `leaf_hash` is leaf number `index` of the tree of size `tree_size`
/// whose root is `root`, following RFC 9162 §2.1.3.2 exactly.
///
/// The proof length is checked up front against the length the RFC prescribes, so a
/// too short or too long proof is reported as [`ProofError::WrongProofLength`].
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion(leaf_hash, index, tree_size, proof)? != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The root that the inclusion proof of `leaf_hash` as leaf `index` of a tree of size
/// `tree_size` leads to (RFC 9162 §2.1.3.2, steps 1 to 5 without the final comparison):
/// for a root that is then checked some other way, such as by a signature over it.
pub fn root_from_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    // Step 1.
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            index,
            size: tree_size,
        });
    }
    let expected = inclusion_proof_len(index, tree_size);
    let wrong_len = ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_len);
    }
    // Steps 2-3.
    let mut fnode = index;
    let mut snode = tree_size - 1;
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        if snode == 0 {
            return Err(wrong_len);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    if snode != 0 {
        return Err(wrong_len);
    }
    Ok(r)
}

/// The RFC 9162 inclusion proof length for `index < size` (0 when `index >= size`).
pub fn inclusion_len(index: u64, size: u64) -> usize {
    if index >= size {
        return 0;
    }
    inclusion_proof_len(index, size)
}

/// Verifies that the tree of size `old_size` with root `old_root` is a prefix of the
/// tree of size `new_size` with root `new_root`, following RFC 9162 §2.1.4.2 exactly.
///
/// Edge cases: `old_size == 0` or `old_size > new_size` is
/// [`ProofError::InvalidSizes`] (the RFC requires a non-zero first size; an empty
/// tree is trivially a prefix of anything, callers may special-case it).
/// `old_size == new_size` requires an empty proof and `old_root == new_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::InvalidSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old_size, new_size);
    let wrong_len = ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    // Step 1 (an empty path fails) is covered: `expected >= 1` when old < new.
    if proof.len() != expected {
        return Err(wrong_len);
    }
    let mut path = proof.iter();
    // Step 2: if `first` is an exact power of 2, prepend `first_hash`.
    let seed = if old_size.is_power_of_two() {
        *old_root
    } else {
        *path.next().ok_or_else(|| wrong_len.clone())?
    };
    // Step 3.
    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    // Step 4.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let mut fr = seed;
    let mut sr = seed;
    // Step 6.
    for c in path {
        if snode == 0 {
            return Err(wrong_len);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(wrong_len);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// An append-only Merkle tree for a log.
///
/// Stores every complete subtree hash: level 0 holds the leaf hashes, level `k` the
/// roots of the complete subtrees `[j·2^k, (j+1)·2^k)`. The odd trailing node of each
/// level is the compact "right edge" (the perfect-subtree roots of the binary
/// decomposition of the size), so [`Tree::root`] is `O(log n)` and appending is
/// amortised `O(1)` hashes. Roots and proofs for any earlier size need `O(log² n)`
/// cached lookups and hashes at most. Memory: about `2n` hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree holding the given leaf hashes, in order.
    pub fn from_leaf_hashes(leaf_hashes: &[Hash]) -> Self {
        let mut t = Self::new();
        for h in leaf_hashes {
            t.push(*h);
        }
        t
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf_hash: Hash) -> u64 {
        let index = self.len();
        let mut h = leaf_hash;
        let mut level = 0;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                break;
            };
            row.push(h);
            let n = row.len();
            if n % 2 == 1 {
                break;
            }
            match (row.get(n - 2), row.last()) {
                (Some(l), Some(r)) => h = node_hash(l, r),
                _ => break,
            }
            level += 1;
        }
        index
    }

    /// Appends the leaf hash of `data` (see [`leaf_hash`]); returns its index.
    pub fn push_data(&mut self, data: &[u8]) -> u64 {
        self.push(leaf_hash(data))
    }

    /// Drops every leaf from index `size` on, as if only the first `size` leaves had
    /// been pushed (a no-op if the tree is not longer). A monitor uses it to undo leaves
    /// that did not lead to the root a log signed.
    pub fn truncate(&mut self, size: u64) {
        for (k, row) in self.levels.iter_mut().enumerate() {
            let keep = u32::try_from(k)
                .ok()
                .and_then(|k| size.checked_shr(k))
                .unwrap_or(0);
            row.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        }
        while self.levels.last().is_some_and(|row| row.is_empty()) {
            self.levels.pop();
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All leaf hashes, in order.
    pub fn leaf_hashes(&self) -> &[Hash] {
        self.levels.first().map_or(&[], |l| l.as_slice())
    }

    /// The leaf hash at `index`, if present.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        let i = usize::try_from(index).ok()?;
        self.leaf_hashes().get(i).copied()
    }

    /// The compact right edge: roots of the perfect subtrees making up the current
    /// tree, largest (leftmost) first. Folding it right-to-left with [`node_hash`]
    /// gives [`Tree::root`].
    pub fn right_edge(&self) -> Vec<Hash> {
        let mut edge: Vec<Hash> = self
            .levels
            .iter()
            .filter(|row| row.len() % 2 == 1)
            .filter_map(|row| row.last().copied())
            .collect();
        edge.reverse();
        edge
    }

    /// The root of the current tree, from the right edge in `O(log n)`.
    pub fn root(&self) -> Hash {
        let mut acc: Option<Hash> = None;
        for row in &self.levels {
            if row.len() % 2 == 1
                && let Some(last) = row.last()
            {
                acc = Some(match acc {
                    None => *last,
                    Some(a) => node_hash(last, &a),
                });
            }
        }
        acc.unwrap_or_else(empty_root)
    }

    /// The root of the tree formed by the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        range_root(self, 0, size).ok_or(ProofError::SizeOutOfRange {
            size,
            available: self.len(),
        })
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        gen_inclusion(self, index, size, self.len())
    }

    /// The consistency proof from the first `old_size` leaves to the first
    /// `new_size` leaves (see [`consistency_proof`] for the edge cases).
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new_size)?;
        gen_consistency(self, old_size, new_size, self.len())
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let available = self.len();
        if size > available {
            return Err(ProofError::SizeOutOfRange { size, available });
        }
        Ok(())
    }
}

impl Extend<Hash> for Tree {
    fn extend<I: IntoIterator<Item = Hash>>(&mut self, iter: I) {
        for h in iter {
            self.push(h);
        }
    }
}

impl FromIterator<Hash> for Tree {
    fn from_iter<I: IntoIterator<Item = Hash>>(iter: I) -> Self {
        let mut t = Self::new();
        t.extend(iter);
        t
    }
}

/// Where proof generation gets perfect-subtree roots from.
trait Nodes {
    /// The root of the perfect subtree `[start, start + 2^level)`; `start` is a
    /// multiple of `2^level`. `None` if those leaves are not available.
    fn perfect(&self, start: u64, level: u32) -> Option<Hash>;
}

/// Computes subtree roots from a plain slice of leaf hashes (`O(2^level)` each).
struct SliceNodes<'a>(&'a [Hash]);

impl Nodes for SliceNodes<'_> {
    fn perfect(&self, start: u64, level: u32) -> Option<Hash> {
        let s = usize::try_from(start).ok()?;
        let len = 1usize.checked_shl(level)?;
        let e = s.checked_add(len)?;
        self.0.get(s..e).map(root)
    }
}

impl Nodes for Tree {
    fn perfect(&self, start: u64, level: u32) -> Option<Hash> {
        let row = self.levels.get(usize::try_from(level).ok()?)?;
        let j = usize::try_from(start.checked_shr(level)?).ok()?;
        row.get(j).copied()
    }
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    let bits = 64 - (n.saturating_sub(1)).leading_zeros();
    1u64 << bits.saturating_sub(1)
}

/// MTH of leaves `[start, end)`, splitting per RFC 9162 and using cached perfect
/// subtrees whenever a piece is aligned.
fn range_root<N: Nodes + ?Sized>(nodes: &N, start: u64, end: u64) -> Option<Hash> {
    let len = end.checked_sub(start)?;
    if len == 0 {
        return Some(empty_root());
    }
    if len.is_power_of_two() && start.is_multiple_of(len) {
        return nodes.perfect(start, len.trailing_zeros());
    }
    let mid = start + split_point(len);
    Some(node_hash(
        &range_root(nodes, start, mid)?,
        &range_root(nodes, mid, end)?,
    ))
}

/// RFC 9162 §2.1.3.1 PATH(index, D[start:end]), appended leaf-first to `out`.
fn path<N: Nodes + ?Sized>(
    nodes: &N,
    index: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Option<()> {
    let len = end.checked_sub(start)?;
    if len <= 1 {
        return Some(());
    }
    let mid = start + split_point(len);
    if index < mid {
        path(nodes, index, start, mid, out)?;
        out.push(range_root(nodes, mid, end)?);
    } else {
        path(nodes, index, mid, end, out)?;
        out.push(range_root(nodes, start, mid)?);
    }
    Some(())
}

/// RFC 9162 §2.1.4.1 SUBPROOF(m, D[start:end], b), with `m` an absolute leaf count.
fn subproof<N: Nodes + ?Sized>(
    nodes: &N,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Option<()> {
    let len = end.checked_sub(start)?;
    let m_rel = m.checked_sub(start)?;
    if m_rel == len {
        if !complete {
            out.push(range_root(nodes, start, end)?);
        }
        return Some(());
    }
    if len < 2 || m_rel == 0 || m_rel > len {
        return None;
    }
    let mid = start + split_point(len);
    if m <= mid {
        subproof(nodes, m, start, mid, complete, out)?;
        out.push(range_root(nodes, mid, end)?);
    } else {
        subproof(nodes, m, mid, end, false, out)?;
        out.push(range_root(nodes, start, mid)?);
    }
    Some(())
}

fn gen_inclusion<N: Nodes + ?Sized>(
    nodes: &N,
    index: u64,
    size: u64,
    available: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::with_capacity(inclusion_proof_len(index, size));
    path(nodes, index, 0, size, &mut out).ok_or(ProofError::SizeOutOfRange { size, available })?;
    Ok(out)
}

fn gen_consistency<N: Nodes + ?Sized>(
    nodes: &N,
    old_size: u64,
    new_size: u64,
    available: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::InvalidSizes {
            old: old_size,
            new: new_size,
        });
    }
    let mut out = Vec::with_capacity(consistency_proof_len(old_size, new_size));
    subproof(nodes, old_size, 0, new_size, true, &mut out).ok_or(ProofError::SizeOutOfRange {
        size: new_size,
        available,
    })?;
    Ok(out)
}

/// Bit length of `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// (inner, border) decomposition of an inclusion proof for `index < size`.
fn decompose_inclusion(index: u64, size: u64) -> (u32, u32) {
    let inner = bit_len(index ^ size.saturating_sub(1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner, border)
}

/// The RFC 9162 inclusion proof length for `index < size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (inner, border) = decompose_inclusion(index, size);
    (inner + border) as usize
}

/// The RFC 9162 consistency proof length for `0 < old <= new`.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    if old == new {
        return 0;
    }
    let shift = old.trailing_zeros();
    let (inner, border) = decompose_inclusion(old.saturating_sub(1), new);
    let inner = inner.saturating_sub(shift);
    let start = u32::from(!old.is_power_of_two());
    (start + inner + border) as usize
}
