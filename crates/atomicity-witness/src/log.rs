//! The witness log state machine (BRIEF §5), sans-I/O.
//!
//! A [`Log`] holds an append-only sequence of [`Leaf`]s in an RFC 6962 Merkle [`Tree`]: `BLOCK`
//! markers that start each block and `COMMIT(block, p)` entries. There is no clock, file or
//! randomness here: the caller passes the current Unix time `now` into every call that may
//! advance blocks, and persists the leaves itself (rebuilding with [`Log::restore`]).
//!
//! Block advance rule: when an operation sees `now >= start + block_seconds`, where `start` is
//! the time of the current block's marker, the log appends exactly **one** marker
//! `BLOCK(b + 1, now)`, however many periods have elapsed. Blocks are therefore started lazily
//! (by the first submission or checkpoint after the period ends), every marker carries the real
//! time it was written, the work per call is bounded whatever `now` is, and an honest log's
//! commit in block `b` was written in `[time(b), time(b) + block_seconds)`. Block numbers count
//! started blocks, not elapsed periods. A `now` earlier than the current block's start (a clock
//! going backwards) never starts a block, so block numbers and marker times never decrease.

use std::collections::HashMap;

use thiserror::Error;

use crate::bundle::ProofBundle;
use crate::leaf::Leaf;
use crate::merkle::{Hash, ProofError, Tree};
use crate::note::{self, Checkpoint, NoteError, Signer};

/// Errors from building, restoring or querying a [`Log`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LogError {
    /// The leaf sequence is empty or does not start with `BLOCK(0, _)`.
    #[error("a log must start with a BLOCK(0, time) leaf")]
    MissingGenesis,
    /// A `BLOCK` marker whose number is not the previous block plus one.
    #[error("leaf {index}: BLOCK marker for block {got}, expected block {expected}")]
    BlockSequence {
        /// Index of the offending leaf.
        index: u64,
        /// The block number it must have.
        expected: u64,
        /// The block number it has.
        got: u64,
    },
    /// A `BLOCK` marker whose time is before the previous marker's time.
    #[error("leaf {index}: BLOCK marker time goes backwards")]
    TimeRegression {
        /// Index of the offending leaf.
        index: u64,
    },
    /// A `COMMIT` whose block is not the block of the latest marker.
    #[error("leaf {index}: COMMIT in block {got}, but the current block is {expected}")]
    CommitBlock {
        /// Index of the offending leaf.
        index: u64,
        /// The current block.
        expected: u64,
        /// The block the commit claims.
        got: u64,
    },
    /// A secret `p` committed twice.
    #[error("leaf {index}: secret already committed at leaf {first}")]
    DuplicateCommit {
        /// Index of the second commit.
        index: u64,
        /// Index of the first commit.
        first: u64,
    },
    /// Signing a checkpoint failed (for example an origin that is not a single line).
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    /// A proof was requested for sizes or indices the log does not have.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// A checkpoint note given to [`Log::bundle_with`] is not one of this log's checkpoints.
    #[error("checkpoint does not match this log")]
    ForeignCheckpoint,
}

/// The result of submitting a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submission {
    /// Leaf index of the `COMMIT`.
    pub index: u64,
    /// The block it was committed in.
    pub block: u64,
    /// `false` if `p` had already been committed (index and block are the original entry's).
    pub new: bool,
}

/// A witness log: leaves, Merkle tree, block state and the last signed checkpoint.
#[derive(Debug, Clone)]
pub struct Log {
    origin: String,
    signer: Signer,
    block_seconds: u64,
    leaves: Vec<Leaf>,
    tree: Tree,
    commits: HashMap<[u8; 32], u64>,
    /// `markers[b]` is the leaf index of `BLOCK(b, _)`.
    markers: Vec<u64>,
    block: u64,
    block_start: u64,
    /// (size, signed note) of the last checkpoint.
    last: (u64, String),
}

impl Log {
    /// A new log holding `BLOCK(0, now)`. Fails if `origin` cannot be a checkpoint origin
    /// (empty, several lines, control characters); a first checkpoint is signed here.
    pub fn new(
        origin: String,
        signer: Signer,
        block_seconds: u64,
        now: u64,
    ) -> Result<Log, LogError> {
        Self::restore(
            origin,
            signer,
            block_seconds,
            vec![Leaf::Block {
                block: 0,
                time: now,
            }],
        )
    }

    /// Rebuilds a log from its persisted leaves, re-validating them: the first leaf is
    /// `BLOCK(0, _)`, each later `BLOCK` marker is the previous block plus one with a time not
    /// before the previous marker's, each `COMMIT` is in the current block, and each `p` occurs
    /// once. The result has the same leaves, roots and proofs as the log that wrote them.
    pub fn restore(
        origin: String,
        signer: Signer,
        block_seconds: u64,
        leaves: Vec<Leaf>,
    ) -> Result<Log, LogError> {
        let Some(&Leaf::Block {
            block: 0,
            time: start,
        }) = leaves.first()
        else {
            return Err(LogError::MissingGenesis);
        };
        let mut tree = Tree::new();
        let mut commits = HashMap::new();
        let mut markers = Vec::new();
        let (mut block, mut block_start) = (0u64, start);
        for (i, leaf) in leaves.iter().enumerate() {
            let index = i as u64;
            match *leaf {
                Leaf::Block { block: b, time } => {
                    if i > 0 {
                        let expected = block.saturating_add(1);
                        if b != expected || block == u64::MAX {
                            return Err(LogError::BlockSequence {
                                index,
                                expected,
                                got: b,
                            });
                        }
                        if time < block_start {
                            return Err(LogError::TimeRegression { index });
                        }
                    }
                    block = b;
                    block_start = time;
                    markers.push(index);
                }
                Leaf::Commit { block: b, p } => {
                    if b != block {
                        return Err(LogError::CommitBlock {
                            index,
                            expected: block,
                            got: b,
                        });
                    }
                    if let Some(&first) = commits.get(&p) {
                        return Err(LogError::DuplicateCommit { index, first });
                    }
                    commits.insert(p, index);
                }
            }
            tree.push(leaf.hash());
        }
        let mut log = Log {
            origin,
            signer,
            block_seconds,
            leaves,
            tree,
            commits,
            markers,
            block,
            block_start,
            last: (0, String::new()),
        };
        log.last = (log.size(), log.sign_current()?);
        Ok(log)
    }

    /// The log's origin (first checkpoint line).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The block length in seconds.
    pub fn block_seconds(&self) -> u64 {
        self.block_seconds
    }

    /// The log's note verifier key.
    pub fn verifier(&self) -> note::Verifier {
        self.signer.verifier()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.tree.len()
    }

    /// The current block number.
    pub fn block(&self) -> u64 {
        self.block
    }

    /// Unix time at which the current block started.
    pub fn block_start(&self) -> u64 {
        self.block_start
    }

    /// All leaves, in order (what a service persists).
    pub fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    /// The Merkle root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        Ok(self.tree.root_at(size)?)
    }

    /// Starts the next block if the current one has lasted `block_seconds` by `now` (see the
    /// module documentation: at most one marker per call). Returns the current block.
    pub fn tick(&mut self, now: u64) -> u64 {
        if now >= self.block_start.saturating_add(self.block_seconds)
            && let Some(next) = self.block.checked_add(1)
        {
            let leaf = Leaf::Block {
                block: next,
                time: now,
            };
            let index = self.append(leaf);
            self.markers.push(index);
            self.block = next;
            self.block_start = now;
        }
        self.block
    }

    fn append(&mut self, leaf: Leaf) -> u64 {
        self.leaves.push(leaf);
        self.tree.push(leaf.hash())
    }

    fn commit(&mut self, p: [u8; 32]) -> Submission {
        if let Some(&index) = self.commits.get(&p) {
            let block = self.leaves.get(index as usize).map_or(0, Leaf::block);
            return Submission {
                index,
                block,
                new: false,
            };
        }
        let block = self.block;
        let index = self.append(Leaf::Commit { block, p });
        self.commits.insert(p, index);
        Submission {
            index,
            block,
            new: true,
        }
    }

    /// Advances blocks ([`Log::tick`]) then commits `p`, unless it was committed before, in
    /// which case the existing entry is returned with `new: false`.
    pub fn submit(&mut self, p: [u8; 32], now: u64) -> Submission {
        self.tick(now);
        self.commit(p)
    }

    /// Like [`Log::submit`] for many secrets at once: one tick, then the secrets in order, all in
    /// the same block. A secret repeated within the batch gets `new: false` after its first
    /// occurrence.
    pub fn submit_batch(&mut self, ps: &[[u8; 32]], now: u64) -> Vec<Submission> {
        self.tick(now);
        ps.iter().map(|p| self.commit(*p)).collect()
    }

    /// The leaf index of `p`'s commit, if any.
    pub fn index_of(&self, p: &[u8; 32]) -> Option<u64> {
        self.commits.get(p).copied()
    }

    /// The leaf at `index`.
    pub fn entry(&self, index: u64) -> Option<Leaf> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.leaves.get(i))
            .copied()
    }

    /// The leaf index of the marker `BLOCK(block, _)`.
    pub fn marker_index(&self, block: u64) -> Option<u64> {
        usize::try_from(block)
            .ok()
            .and_then(|b| self.markers.get(b))
            .copied()
    }

    /// Inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        Ok(self.tree.inclusion_proof(index, size)?)
    }

    /// Consistency proof from the first `old` leaves to the first `new` leaves.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        Ok(self.tree.consistency_proof(old, new)?)
    }

    fn sign_current(&self) -> Result<String, LogError> {
        let text = Checkpoint {
            origin: self.origin.clone(),
            size: self.size(),
            root: self.tree.root(),
            extensions: Vec::new(),
        }
        .to_text()?;
        Ok(note::sign(&text, std::slice::from_ref(&self.signer))?)
    }

    /// Advances blocks ([`Log::tick`]), then returns the signed checkpoint note of the current
    /// tree. A new note is signed only when the size changed since the last one; otherwise the
    /// last note is returned unchanged.
    pub fn checkpoint(&mut self, now: u64) -> Result<String, LogError> {
        self.tick(now);
        self.latest_checkpoint()
    }

    /// The signed checkpoint of the current tree without advancing blocks (signing only if the
    /// size changed since the last one).
    pub fn latest_checkpoint(&mut self) -> Result<String, LogError> {
        if self.last.0 != self.size() {
            self.last = (self.size(), self.sign_current()?);
        }
        Ok(self.last.1.clone())
    }

    /// A proof bundle for `p` against the latest checkpoint (signed now if the tree grew), or
    /// `None` if `p` was never committed.
    pub fn bundle(&mut self, p: &[u8; 32]) -> Result<Option<ProofBundle>, LogError> {
        if !self.commits.contains_key(p) {
            return Ok(None);
        }
        let checkpoint = self.latest_checkpoint()?;
        self.bundle_with(p, checkpoint)
    }

    /// A proof bundle for `p` against a given checkpoint note of this log, for example one
    /// the service has collected cosignature lines on. The note's checkpoint must be for this
    /// origin and match this log's root at its size, and the size must cover `p`'s commit
    /// (otherwise [`LogError::ForeignCheckpoint`], or `None` if it is too old). Signatures are
    /// not checked here; the verifier does that.
    pub fn bundle_with(
        &self,
        p: &[u8; 32],
        checkpoint: String,
    ) -> Result<Option<ProofBundle>, LogError> {
        let Some(&index) = self.commits.get(p) else {
            return Ok(None);
        };
        let note = note::Note::parse(checkpoint.as_bytes())?;
        let cp = Checkpoint::from_text(&note.text)?;
        if cp.origin != self.origin
            || cp.size > self.size()
            || self.tree.root_at(cp.size)? != cp.root
        {
            return Err(LogError::ForeignCheckpoint);
        }
        if index >= cp.size {
            return Ok(None);
        }
        let (Some(leaf), Some(block_leaf_index)) = (
            self.entry(index),
            self.entry(index).and_then(|l| self.marker_index(l.block())),
        ) else {
            return Ok(None);
        };
        let Some(block_leaf) = self.entry(block_leaf_index) else {
            return Ok(None);
        };
        Ok(Some(ProofBundle {
            inclusion: self.tree.inclusion_proof(index, cp.size)?,
            block_inclusion: self.tree.inclusion_proof(block_leaf_index, cp.size)?,
            checkpoint,
            index,
            leaf,
            block_leaf_index,
            block_leaf,
        }))
    }
}
