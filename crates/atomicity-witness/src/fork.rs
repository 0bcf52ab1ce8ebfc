//! Fork proofs: offline-checkable evidence that a witness log is dishonest.
//!
//! A [`ForkProof`] consists only of checkpoints signed by the log (complete
//! signed-note text, c2sp.org/tlog-checkpoint) plus RFC 9162 inclusion proofs, so
//! anyone holding the log's [`Verifier`] key can check it with
//! [`ForkProof::verify`], without contacting the log or trusting the prover.
//!
//! # Soundness
//!
//! An honest log has exactly one append-only sequence of leaves: for every size `n`
//! it signs at most one root (the RFC 9162 Merkle Tree Hash of its first `n`
//! leaves), and the tree of size `m` is a prefix of the tree of size `n >= m`.
//! Since the Merkle tree shape is a function of the size and leaf and interior
//! hashes are domain separated (`0x00` / `0x01`), a root of size `n` fixes the hash
//! of every leaf `i < n` unless SHA-256 collides: an inclusion proof for index `i`
//! and size `n` has a fixed length and can only lead to the signed root from the
//! one leaf hash committed at position `i`. Each kind therefore shows two
//! statements the log signed that no single honest log can sign:
//!
//! 1. [`ForkProof::SplitView`]: two checkpoints, same origin and size, different
//!    roots. One size has one root.
//! 2. [`ForkProof::PrefixRewrite`]: checkpoints `old` (size `m`) and `new` (size
//!    `n > m`), and for one index `i < m` two *different leaf hashes*, each with an
//!    inclusion proof to its checkpoint. If `old` were a prefix of `new`, leaf `i`
//!    would hash the same in both. Note what is *not* evidence: a consistency proof
//!    that fails to verify proves nothing (the prover can send garbage, and it can
//!    always make up a "proof" that reproduces one root but not the other), and RFC
//!    9162 has no signed statement of non-consistency. A missing prefix is only
//!    provable by exhibiting a position where the two trees differ, i.e. the same
//!    evidence as kind 3, at the level of leaf hashes. This kind exists separately
//!    because a monitor that only stores leaf hashes (a [`Tree`]) can build it with
//!    [`ForkProof::prefix_rewrite`], which finds the first differing index itself.
//! 3. [`ForkProof::ConflictingLeaves`]: two checkpoints of the same origin (any
//!    sizes) and two *different leaf data* at the same index, each with an
//!    inclusion proof. Different data have different leaf hashes, so the two trees
//!    differ at a position both contain. It carries the leaf bytes, so observers
//!    see which entries (e.g. which `COMMIT`) were rewritten.
//! 4. [`ForkProof::BlockRegression`]: one checkpoint and two leaves `i < j` in it
//!    that parse as [`Leaf`]s with `block(i) > block(j)`. The log promises block
//!    numbers never decrease along the log ([`crate::leaf`]), so it signed a tree
//!    it must never produce.
//!
//! Every checkpoint must carry a valid signature by the log key ([`note::open`]
//! with only that key; other signatures such as cosignatures are ignored) and
//! parse strictly ([`Checkpoint::from_text`]). Two checkpoints must share their
//! origin: the same key may sign several logs, and different logs may differ.
//!
//! # Encoding
//!
//! [`ForkProof::to_bytes`] / [`ForkProof::from_bytes`], a strict binary format
//! (all integers big endian), at most [`MAX_PROOF_SIZE`] bytes:
//!
//! ```text
//! proof  = "ATFP" version:u8(=1) kind:u8 body          (no trailing bytes)
//! note   = len:u32 bytes        (UTF-8, 1 ..= MAX_CHECKPOINT_NOTE_SIZE bytes)
//! leaf   = len:u16 bytes        (1 ..= MAX_LEAF_SIZE bytes)
//! path   = count:u8 hash*count  (count <= MAX_PATH_LEN, 32-byte hashes)
//! kind 1 = note(a) note(b)
//! kind 2 = note(old) note(new) index:u64 hash(old leaf) path(old) hash(new leaf) path(new)
//! kind 3 = index:u64 note(a) leaf(a) path(a) note(b) leaf(b) path(b)
//! kind 4 = note(checkpoint) i:u64 leaf(i) path(i) j:u64 leaf(j) path(j)
//! ```
//!
//! Each proof has exactly one encoding; decoding does not check signatures or
//! proofs, [`ForkProof::verify`] does.

use thiserror::Error;

use crate::leaf::{Leaf, LeafError};
use crate::merkle::{Hash, ProofError, Tree, leaf_hash, verify_inclusion};
use crate::note::{self, Checkpoint, Note, NoteError, Signer, Verifier};

/// Largest encoded fork proof accepted by [`ForkProof::from_bytes`].
pub const MAX_PROOF_SIZE: usize = 4 * MAX_CHECKPOINT_NOTE_SIZE + 16 * 1024;
/// Largest signed checkpoint note accepted inside a fork proof.
pub const MAX_CHECKPOINT_NOTE_SIZE: usize = 32 * 1024;
/// Largest leaf data accepted inside a fork proof.
pub const MAX_LEAF_SIZE: usize = 1024;
/// Most hashes in one inclusion proof (tree sizes fit in `u64`).
pub const MAX_PATH_LEN: usize = 64;

const MAGIC: &[u8; 4] = b"ATFP";
const VERSION: u8 = 1;

/// Evidence that a log signed two incompatible statements (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForkProof {
    /// Two checkpoints with the same origin and size but different roots.
    SplitView {
        /// A signed checkpoint note.
        a: String,
        /// Another signed checkpoint note of the same size.
        b: String,
    },
    /// A smaller checkpoint that is not a prefix of a larger one: two different leaf
    /// hashes at one index below the smaller size.
    PrefixRewrite {
        /// The signed checkpoint note of the smaller size `m`.
        old: String,
        /// The signed checkpoint note of the larger size `n > m`.
        new: String,
        /// The leaf index, `< m`.
        index: u64,
        /// The leaf hash at `index` in `old`.
        old_leaf_hash: Hash,
        /// Its inclusion proof in `old`.
        old_proof: Vec<Hash>,
        /// The (different) leaf hash at `index` in `new`.
        new_leaf_hash: Hash,
        /// Its inclusion proof in `new`.
        new_proof: Vec<Hash>,
    },
    /// Two different leaves proven at the same index of two checkpoints.
    ConflictingLeaves {
        /// The leaf index.
        index: u64,
        /// The first checkpoint, leaf and proof.
        a: Inclusion,
        /// The second checkpoint, leaf and proof.
        b: Inclusion,
    },
    /// Two leaves `i < j` of one checkpoint with `block(i) > block(j)`.
    BlockRegression {
        /// The signed checkpoint note.
        checkpoint: String,
        /// The earlier leaf.
        i: LeafAt,
        /// The later leaf, with a smaller block number.
        j: LeafAt,
    },
}

/// A leaf (its data) with its inclusion proof in a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// The leaf data.
    pub leaf: Vec<u8>,
    /// The inclusion proof of the leaf in the checkpoint's tree.
    pub proof: Vec<Hash>,
}

/// A leaf (its data) at an index, with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafAt {
    /// The leaf index.
    pub index: u64,
    /// The leaf data.
    pub leaf: Vec<u8>,
    /// The inclusion proof of the leaf.
    pub proof: Vec<Hash>,
}

/// Which kind of misbehaviour a verified [`ForkProof`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForkKind {
    /// Two roots for one size.
    SplitView,
    /// A smaller tree that is not a prefix of a larger one.
    PrefixRewrite,
    /// Two different leaves at one index.
    ConflictingLeaves,
    /// Block numbers decreasing along the log.
    BlockRegression,
}

impl ForkKind {
    /// A stable snake_case name (`split_view`, `prefix_rewrite`, `conflicting_leaves`,
    /// `block_regression`), as the watchtower API shows it.
    pub fn name(self) -> &'static str {
        match self {
            ForkKind::SplitView => "split_view",
            ForkKind::PrefixRewrite => "prefix_rewrite",
            ForkKind::ConflictingLeaves => "conflicting_leaves",
            ForkKind::BlockRegression => "block_regression",
        }
    }
}

/// Why a fork proof could not be built, decoded or verified.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ForkError {
    /// The encoding is malformed.
    #[error("malformed fork proof: {0}")]
    Malformed(&'static str),
    /// A checkpoint note does not parse or is not signed by the log.
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    /// An inclusion proof does not verify (or cannot be built).
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
    /// A leaf does not parse.
    #[error("leaf: {0}")]
    Leaf(#[from] LeafError),
    /// The checkpoints are of different logs.
    #[error("checkpoints have different origins")]
    OriginMismatch,
    /// The data are consistent with an honest log.
    #[error("not evidence of misbehaviour: {0}")]
    NotAFork(&'static str),
}

/// Parses a signed checkpoint note after checking the log's signature on it.
fn open_checkpoint(note: &str, log: &Verifier) -> Result<Checkpoint, ForkError> {
    if note.len() > MAX_CHECKPOINT_NOTE_SIZE {
        return Err(ForkError::Malformed("checkpoint note too large"));
    }
    let (n, _) = note::open(note.as_bytes(), std::slice::from_ref(log))?;
    Ok(Checkpoint::from_text(&n.text)?)
}

/// Parses a checkpoint note without checking signatures (for the builders).
fn parse_checkpoint(note: &str) -> Result<Checkpoint, ForkError> {
    Ok(Checkpoint::from_text(&Note::parse(note.as_bytes())?.text)?)
}

fn same_origin(a: &Checkpoint, b: &Checkpoint) -> Result<(), ForkError> {
    if a.origin == b.origin {
        Ok(())
    } else {
        Err(ForkError::OriginMismatch)
    }
}

/// Signs the checkpoint of the first `size` leaves of `tree` as a log would.
pub fn sign_checkpoint(
    signer: &Signer,
    origin: &str,
    tree: &Tree,
    size: u64,
) -> Result<String, ForkError> {
    let cp = Checkpoint {
        origin: origin.to_owned(),
        size,
        root: tree.root_at(size)?,
        extensions: Vec::new(),
    };
    Ok(note::sign(&cp.to_text()?, std::slice::from_ref(signer))?)
}

/// The first index below `size` where the leaf hashes of `a` and `b` differ.
///
/// `size` must not exceed either tree's length (otherwise `None`).
pub fn first_divergence(a: &Tree, b: &Tree, size: u64) -> Option<u64> {
    let n = usize::try_from(size).ok()?;
    let (a, b) = (a.leaf_hashes().get(..n)?, b.leaf_hashes().get(..n)?);
    let i = a.iter().zip(b).position(|(x, y)| x != y)?;
    u64::try_from(i).ok()
}

impl ForkProof {
    /// The kind of misbehaviour this proof claims (not yet verified).
    pub fn kind(&self) -> ForkKind {
        match self {
            ForkProof::SplitView { .. } => ForkKind::SplitView,
            ForkProof::PrefixRewrite { .. } => ForkKind::PrefixRewrite,
            ForkProof::ConflictingLeaves { .. } => ForkKind::ConflictingLeaves,
            ForkProof::BlockRegression { .. } => ForkKind::BlockRegression,
        }
    }

    /// Builds a prefix-rewrite proof from two signed checkpoints `old` (size `m`)
    /// and `new` (size `n > m`) and the trees they were computed from, at the first
    /// index below `m` where the trees differ.
    pub fn prefix_rewrite(
        old: &str,
        old_tree: &Tree,
        new: &str,
        new_tree: &Tree,
    ) -> Result<Self, ForkError> {
        let (co, cn) = (parse_checkpoint(old)?, parse_checkpoint(new)?);
        same_origin(&co, &cn)?;
        if co.size >= cn.size {
            return Err(ForkError::NotAFork("old size is not below new size"));
        }
        let index = first_divergence(old_tree, new_tree, co.size)
            .ok_or(ForkError::NotAFork("the trees agree on the old prefix"))?;
        let leaf_of = |t: &Tree| {
            t.leaf_hash(index).ok_or(ProofError::IndexOutOfRange {
                index,
                size: t.len(),
            })
        };
        Ok(ForkProof::PrefixRewrite {
            old: old.to_owned(),
            new: new.to_owned(),
            index,
            old_leaf_hash: leaf_of(old_tree)?,
            old_proof: old_tree.inclusion_proof(index, co.size)?,
            new_leaf_hash: leaf_of(new_tree)?,
            new_proof: new_tree.inclusion_proof(index, cn.size)?,
        })
    }

    /// Builds a conflicting-leaves proof: `leaf_a` at `index` of the tree behind
    /// checkpoint `a`, `leaf_b` at `index` of the tree behind checkpoint `b`.
    pub fn conflicting_leaves(
        index: u64,
        a: (&str, &Tree, &[u8]),
        b: (&str, &Tree, &[u8]),
    ) -> Result<Self, ForkError> {
        let inc = |(note, tree, leaf): (&str, &Tree, &[u8])| -> Result<Inclusion, ForkError> {
            let cp = parse_checkpoint(note)?;
            Ok(Inclusion {
                checkpoint: note.to_owned(),
                leaf: leaf.to_vec(),
                proof: tree.inclusion_proof(index, cp.size)?,
            })
        };
        if a.2 == b.2 {
            return Err(ForkError::NotAFork("the leaves are identical"));
        }
        Ok(ForkProof::ConflictingLeaves {
            index,
            a: inc(a)?,
            b: inc(b)?,
        })
    }

    /// Builds a block-regression proof for leaves `i < j` of the tree behind
    /// `checkpoint`, given their data.
    pub fn block_regression(
        checkpoint: &str,
        tree: &Tree,
        i: (u64, &[u8]),
        j: (u64, &[u8]),
    ) -> Result<Self, ForkError> {
        let cp = parse_checkpoint(checkpoint)?;
        let at = |(index, leaf): (u64, &[u8])| -> Result<LeafAt, ForkError> {
            Ok(LeafAt {
                index,
                leaf: leaf.to_vec(),
                proof: tree.inclusion_proof(index, cp.size)?,
            })
        };
        Ok(ForkProof::BlockRegression {
            checkpoint: checkpoint.to_owned(),
            i: at(i)?,
            j: at(j)?,
        })
    }

    /// Finds a block regression among the first `size` `leaves` of the log (the
    /// first leaf whose block is below the maximum block seen before it, paired
    /// with that earlier maximum) and builds its proof for `checkpoint`.
    ///
    /// `leaves` must be the decoded leaves of `tree`, in order.
    pub fn find_block_regression(
        checkpoint: &str,
        tree: &Tree,
        leaves: &[Leaf],
    ) -> Result<Self, ForkError> {
        let cp = parse_checkpoint(checkpoint)?;
        let n = usize::try_from(cp.size).map_err(|_| ForkError::Malformed("size too large"))?;
        let leaves = leaves
            .get(..n)
            .ok_or(ForkError::NotAFork("fewer leaves than the checkpoint size"))?;
        // The earliest leaf with the largest block number seen so far.
        let mut max: Option<(u64, &Leaf)> = None;
        for (k, leaf) in (0u64..).zip(leaves) {
            match max {
                Some((m, top)) if leaf.block() < top.block() => {
                    let (i, j) = (top.to_bytes(), leaf.to_bytes());
                    return Self::block_regression(checkpoint, tree, (m, &i), (k, &j));
                }
                Some((_, top)) if leaf.block() <= top.block() => {}
                _ => max = Some((k, leaf)),
            }
        }
        Err(ForkError::NotAFork("block numbers never decrease"))
    }

    /// Checks the proof against the log's key; returns the kind of misbehaviour it
    /// shows. Accepts only evidence no honest log can produce (see the module docs).
    pub fn verify(&self, log: &Verifier) -> Result<ForkKind, ForkError> {
        match self {
            ForkProof::SplitView { a, b } => {
                let (ca, cb) = (open_checkpoint(a, log)?, open_checkpoint(b, log)?);
                same_origin(&ca, &cb)?;
                if ca.size != cb.size {
                    return Err(ForkError::NotAFork("the checkpoints have different sizes"));
                }
                if ca.root == cb.root {
                    return Err(ForkError::NotAFork("the checkpoints have the same root"));
                }
            }
            ForkProof::PrefixRewrite {
                old,
                new,
                index,
                old_leaf_hash,
                old_proof,
                new_leaf_hash,
                new_proof,
            } => {
                let (co, cn) = (open_checkpoint(old, log)?, open_checkpoint(new, log)?);
                same_origin(&co, &cn)?;
                if co.size >= cn.size {
                    return Err(ForkError::NotAFork("old size is not below new size"));
                }
                if old_leaf_hash == new_leaf_hash {
                    return Err(ForkError::NotAFork("the leaf hashes are identical"));
                }
                // index < old size is checked here; old size < new size above.
                verify_inclusion(old_leaf_hash, *index, co.size, old_proof, &co.root)?;
                verify_inclusion(new_leaf_hash, *index, cn.size, new_proof, &cn.root)?;
            }
            ForkProof::ConflictingLeaves { index, a, b } => {
                let (ca, cb) = (
                    open_checkpoint(&a.checkpoint, log)?,
                    open_checkpoint(&b.checkpoint, log)?,
                );
                same_origin(&ca, &cb)?;
                if a.leaf == b.leaf {
                    return Err(ForkError::NotAFork("the leaves are identical"));
                }
                verify_inclusion(&leaf_hash(&a.leaf), *index, ca.size, &a.proof, &ca.root)?;
                verify_inclusion(&leaf_hash(&b.leaf), *index, cb.size, &b.proof, &cb.root)?;
            }
            ForkProof::BlockRegression { checkpoint, i, j } => {
                let cp = open_checkpoint(checkpoint, log)?;
                if i.index >= j.index {
                    return Err(ForkError::NotAFork(
                        "the first index is not below the second",
                    ));
                }
                let (li, lj) = (Leaf::from_bytes(&i.leaf)?, Leaf::from_bytes(&j.leaf)?);
                if li.block() <= lj.block() {
                    return Err(ForkError::NotAFork("the block numbers do not decrease"));
                }
                verify_inclusion(&leaf_hash(&i.leaf), i.index, cp.size, &i.proof, &cp.root)?;
                verify_inclusion(&leaf_hash(&j.leaf), j.index, cp.size, &j.proof, &cp.root)?;
            }
        }
        Ok(self.kind())
    }

    /// The canonical encoding (see the module docs).
    ///
    /// Fails if a field exceeds its bound, so that everything encoded also decodes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ForkError> {
        let mut w = Writer(Vec::new());
        w.0.extend_from_slice(MAGIC);
        w.0.push(VERSION);
        match self {
            ForkProof::SplitView { a, b } => {
                w.0.push(1);
                w.note(a)?;
                w.note(b)?;
            }
            ForkProof::PrefixRewrite {
                old,
                new,
                index,
                old_leaf_hash,
                old_proof,
                new_leaf_hash,
                new_proof,
            } => {
                w.0.push(2);
                w.note(old)?;
                w.note(new)?;
                w.u64(*index);
                w.0.extend_from_slice(old_leaf_hash);
                w.path(old_proof)?;
                w.0.extend_from_slice(new_leaf_hash);
                w.path(new_proof)?;
            }
            ForkProof::ConflictingLeaves { index, a, b } => {
                w.0.push(3);
                w.u64(*index);
                for x in [a, b] {
                    w.note(&x.checkpoint)?;
                    w.leaf(&x.leaf)?;
                    w.path(&x.proof)?;
                }
            }
            ForkProof::BlockRegression { checkpoint, i, j } => {
                w.0.push(4);
                w.note(checkpoint)?;
                for x in [i, j] {
                    w.u64(x.index);
                    w.leaf(&x.leaf)?;
                    w.path(&x.proof)?;
                }
            }
        }
        if w.0.len() > MAX_PROOF_SIZE {
            return Err(ForkError::Malformed("proof too large"));
        }
        Ok(w.0)
    }

    /// Decodes the canonical encoding strictly (bounded sizes, no trailing bytes).
    /// Does not verify anything; call [`ForkProof::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ForkError> {
        if bytes.len() > MAX_PROOF_SIZE {
            return Err(ForkError::Malformed("proof too large"));
        }
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(ForkError::Malformed("bad magic"));
        }
        if r.u8()? != VERSION {
            return Err(ForkError::Malformed("unsupported version"));
        }
        let proof = match r.u8()? {
            1 => ForkProof::SplitView {
                a: r.note()?,
                b: r.note()?,
            },
            2 => ForkProof::PrefixRewrite {
                old: r.note()?,
                new: r.note()?,
                index: r.u64()?,
                old_leaf_hash: r.hash()?,
                old_proof: r.path()?,
                new_leaf_hash: r.hash()?,
                new_proof: r.path()?,
            },
            3 => {
                let index = r.u64()?;
                let mut inc = || -> Result<Inclusion, ForkError> {
                    Ok(Inclusion {
                        checkpoint: r.note()?,
                        leaf: r.leaf()?,
                        proof: r.path()?,
                    })
                };
                let a = inc()?;
                let b = inc()?;
                ForkProof::ConflictingLeaves { index, a, b }
            }
            4 => {
                let checkpoint = r.note()?;
                let mut at = || -> Result<LeafAt, ForkError> {
                    Ok(LeafAt {
                        index: r.u64()?,
                        leaf: r.leaf()?,
                        proof: r.path()?,
                    })
                };
                let i = at()?;
                let j = at()?;
                ForkProof::BlockRegression { checkpoint, i, j }
            }
            _ => return Err(ForkError::Malformed("unknown kind")),
        };
        if !r.0.is_empty() {
            return Err(ForkError::Malformed("trailing bytes"));
        }
        Ok(proof)
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn note(&mut self, note: &str) -> Result<(), ForkError> {
        if note.is_empty() || note.len() > MAX_CHECKPOINT_NOTE_SIZE {
            return Err(ForkError::Malformed("checkpoint note size out of range"));
        }
        let len = u32::try_from(note.len()).map_err(|_| ForkError::Malformed("note too large"))?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(note.as_bytes());
        Ok(())
    }

    fn leaf(&mut self, leaf: &[u8]) -> Result<(), ForkError> {
        if leaf.is_empty() || leaf.len() > MAX_LEAF_SIZE {
            return Err(ForkError::Malformed("leaf size out of range"));
        }
        let len = u16::try_from(leaf.len()).map_err(|_| ForkError::Malformed("leaf too large"))?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(leaf);
        Ok(())
    }

    fn path(&mut self, path: &[Hash]) -> Result<(), ForkError> {
        if path.len() > MAX_PATH_LEN {
            return Err(ForkError::Malformed("inclusion proof too long"));
        }
        let count = u8::try_from(path.len())
            .map_err(|_| ForkError::Malformed("inclusion proof too long"))?;
        self.0.push(count);
        for h in path {
            self.0.extend_from_slice(h);
        }
        Ok(())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ForkError> {
        if self.0.len() < n {
            return Err(ForkError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ForkError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ForkError> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, ForkError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn hash(&mut self) -> Result<Hash, ForkError> {
        self.array()
    }

    fn note(&mut self) -> Result<String, ForkError> {
        let len = u32::from_be_bytes(self.array()?);
        let len = usize::try_from(len).map_err(|_| ForkError::Malformed("note too large"))?;
        if len == 0 || len > MAX_CHECKPOINT_NOTE_SIZE {
            return Err(ForkError::Malformed("checkpoint note size out of range"));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ForkError::Malformed("note is not UTF-8"))
    }

    fn leaf(&mut self) -> Result<Vec<u8>, ForkError> {
        let len = usize::from(u16::from_be_bytes(self.array()?));
        if len == 0 || len > MAX_LEAF_SIZE {
            return Err(ForkError::Malformed("leaf size out of range"));
        }
        Ok(self.take(len)?.to_vec())
    }

    fn path(&mut self) -> Result<Vec<Hash>, ForkError> {
        let count = usize::from(self.u8()?);
        if count > MAX_PATH_LEN {
            return Err(ForkError::Malformed("inclusion proof too long"));
        }
        (0..count).map(|_| self.hash()).collect()
    }
}
