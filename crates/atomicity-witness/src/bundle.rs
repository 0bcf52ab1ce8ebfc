//! Offline-verifiable proof that a secret `p` was published in a witness log.
//!
//! A [`ProofBundle`] carries a signed checkpoint note (with any cosignature lines), the
//! `COMMIT(b, p)` leaf with its inclusion proof, and the `BLOCK(b, t)` marker that started block
//! `b` with its inclusion proof, both against the checkpoint's tree. [`verify_publication`]
//! checks, using only the bundle, the log's verifier key and optionally a k-of-n
//! [`CosignerPolicy`], that `p` was published in block `b` with `start_block ≤ b <
//! deadline_block` and by the hard deadline `T`:
//!
//! - without a policy: the block's start time `t ≤ T` (trusting the log's marker);
//! - with a policy: additionally at least `threshold` policy cosigners cosigned the checkpoint
//!   (which contains the commit) with timestamps `≤ T`, so the time bound no longer rests on
//!   the log alone.
//!
//! The checkpoint's origin is not compared with the verifier's key name (the log may sign with a
//! differently named key); callers that care can compare [`Published::origin`]. Signed notes
//! ignore signature lines from unknown keys, so a bundle's bytes are malleable (lines can be
//! added or removed without breaking it): never use a bundle's hash as an identifier.
//!
//! Binary encoding ([`ProofBundle::to_bytes`]), all integers big-endian, no trailing bytes:
//!
//! ```text
//! "ATWB" | version u8 = 1
//! checkpoint_len u32 (1..=MAX_CHECKPOINT_SIZE) | checkpoint note bytes (UTF-8)
//! index u64 | leaf (41 bytes, COMMIT encoding of leaf.rs)
//! n u8 (≤ 64) | n × 32-byte hashes (inclusion proof of the commit)
//! block_leaf_index u64 | block leaf (17 bytes, BLOCK encoding of leaf.rs)
//! m u8 (≤ 64) | m × 32-byte hashes (inclusion proof of the marker)
//! ```

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::leaf::{Leaf, LeafError};
use crate::merkle::{Hash, ProofError, verify_inclusion};
use crate::note::{self, Checkpoint, CosignerPolicy, Note, NoteError, Verifier};

/// Magic bytes that start an encoded bundle.
pub const MAGIC: &[u8; 4] = b"ATWB";
/// Encoding version.
pub const VERSION: u8 = 1;
/// Largest accepted checkpoint note inside a bundle, in bytes.
pub const MAX_CHECKPOINT_SIZE: usize = 64 * 1024;
/// Largest accepted number of hashes in one inclusion proof (trees have < 2^64 leaves).
pub const MAX_PROOF_HASHES: usize = 64;
/// Length of an encoded COMMIT leaf.
const COMMIT_LEN: usize = 41;
/// Length of an encoded BLOCK leaf.
const BLOCK_LEN: usize = 17;

/// Proof that `p` was published in a witness log (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofBundle {
    /// The signed checkpoint note, including any cosignature lines.
    pub checkpoint: String,
    /// Leaf index of the commit.
    pub index: u64,
    /// The `COMMIT(b, p)` leaf.
    pub leaf: Leaf,
    /// Inclusion proof of `leaf` at `index` in the checkpoint's tree.
    pub inclusion: Vec<Hash>,
    /// Leaf index of the `BLOCK(b, t)` marker that started the commit's block.
    pub block_leaf_index: u64,
    /// The `BLOCK(b, t)` marker.
    pub block_leaf: Leaf,
    /// Inclusion proof of `block_leaf` at `block_leaf_index` in the checkpoint's tree.
    pub block_inclusion: Vec<Hash>,
}

/// What a verified bundle proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The block `p` was published in.
    pub block: u64,
    /// Leaf index of the commit.
    pub index: u64,
    /// Size of the checkpoint the proof is against.
    pub size: u64,
    /// Start time of the block (from the log's marker).
    pub block_time: u64,
    /// The checkpoint's origin line.
    pub origin: String,
}

/// Why a bundle was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BundleError {
    /// The encoding is malformed.
    #[error("malformed bundle: {0}")]
    Malformed(&'static str),
    /// A leaf inside the encoding is malformed.
    #[error("malformed leaf: {0}")]
    Leaf(#[from] LeafError),
    /// The checkpoint note or its signatures are invalid, or the cosigner policy is not met.
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    /// An inclusion proof does not verify.
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
    /// The commit leaf is not `COMMIT(_, p)` for the expected `p`.
    #[error("the bundle is not for this secret")]
    WrongSecret,
    /// The marker is not a `BLOCK` leaf of the commit's block placed before the commit.
    #[error("the block marker does not start the commit's block")]
    BadMarker,
    /// The block is before the start of the window.
    #[error("published in block {block}, before the window start {start}")]
    TooEarly {
        /// The block.
        block: u64,
        /// The first allowed block.
        start: u64,
    },
    /// The block is at or after the deadline block.
    #[error("published in block {block}, not before the deadline block {deadline}")]
    TooLate {
        /// The block.
        block: u64,
        /// The first block not allowed.
        deadline: u64,
    },
    /// The block started after the hard deadline.
    #[error("block started at {time}, after the hard deadline {deadline}")]
    AfterDeadline {
        /// The block's start time.
        time: u64,
        /// The hard deadline.
        deadline: u64,
    },
    /// Fewer than `threshold` policy cosignatures are timestamped by the hard deadline.
    #[error("only {valid} cosignatures by the hard deadline, need {threshold}")]
    CosignedTooLate {
        /// Valid cosignatures with timestamp ≤ deadline.
        valid: usize,
        /// The policy threshold.
        threshold: usize,
    },
}

fn push_proof(out: &mut Vec<u8>, proof: &[Hash]) {
    // Lengths are checked by the caller.
    out.push(proof.len() as u8);
    for h in proof {
        out.extend_from_slice(h);
    }
}

/// A strict reader over untrusted bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BundleError> {
        if self.0.len() < n {
            return Err(BundleError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, BundleError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, BundleError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, BundleError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn proof(&mut self) -> Result<Vec<Hash>, BundleError> {
        let n = usize::from(self.u8()?);
        if n > MAX_PROOF_HASHES {
            return Err(BundleError::Malformed("proof too long"));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let mut h = [0u8; 32];
            h.copy_from_slice(self.take(32)?);
            out.push(h);
        }
        Ok(out)
    }
}

impl ProofBundle {
    /// Encodes the bundle (see the module documentation). Fails if a field is out of the
    /// encodable bounds (checkpoint size, proof length, leaf kinds).
    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        if self.checkpoint.is_empty() || self.checkpoint.len() > MAX_CHECKPOINT_SIZE {
            return Err(BundleError::Malformed("checkpoint size out of range"));
        }
        if self.inclusion.len() > MAX_PROOF_HASHES || self.block_inclusion.len() > MAX_PROOF_HASHES
        {
            return Err(BundleError::Malformed("proof too long"));
        }
        if !matches!(self.leaf, Leaf::Commit { .. }) {
            return Err(BundleError::Malformed("leaf is not a COMMIT"));
        }
        if !matches!(self.block_leaf, Leaf::Block { .. }) {
            return Err(BundleError::Malformed("block leaf is not a BLOCK"));
        }
        let mut out = Vec::with_capacity(
            96 + self.checkpoint.len() + 32 * (self.inclusion.len() + self.block_inclusion.len()),
        );
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(self.checkpoint.len() as u32).to_be_bytes());
        out.extend_from_slice(self.checkpoint.as_bytes());
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.leaf.to_bytes());
        push_proof(&mut out, &self.inclusion);
        out.extend_from_slice(&self.block_leaf_index.to_be_bytes());
        out.extend_from_slice(&self.block_leaf.to_bytes());
        push_proof(&mut out, &self.block_inclusion);
        Ok(out)
    }

    /// Parses an encoded bundle strictly: magic, version, bounded lengths, well-formed leaves
    /// of the right kinds, UTF-8 checkpoint, no trailing bytes. Does not verify anything.
    pub fn from_bytes(bytes: &[u8]) -> Result<ProofBundle, BundleError> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(BundleError::Malformed("bad magic"));
        }
        if r.u8()? != VERSION {
            return Err(BundleError::Malformed("unknown version"));
        }
        let len = usize::try_from(r.u32()?)
            .map_err(|_| BundleError::Malformed("checkpoint size out of range"))?;
        if len == 0 || len > MAX_CHECKPOINT_SIZE {
            return Err(BundleError::Malformed("checkpoint size out of range"));
        }
        let checkpoint = std::str::from_utf8(r.take(len)?)
            .map_err(|_| BundleError::Malformed("checkpoint is not UTF-8"))?
            .to_owned();
        let index = r.u64()?;
        let leaf = Leaf::from_bytes(r.take(COMMIT_LEN)?)?;
        if !matches!(leaf, Leaf::Commit { .. }) {
            return Err(BundleError::Malformed("leaf is not a COMMIT"));
        }
        let inclusion = r.proof()?;
        let block_leaf_index = r.u64()?;
        let block_leaf = Leaf::from_bytes(r.take(BLOCK_LEN)?)?;
        if !matches!(block_leaf, Leaf::Block { .. }) {
            return Err(BundleError::Malformed("block leaf is not a BLOCK"));
        }
        let block_inclusion = r.proof()?;
        if !r.0.is_empty() {
            return Err(BundleError::Malformed("trailing bytes"));
        }
        Ok(ProofBundle {
            checkpoint,
            index,
            leaf,
            inclusion,
            block_leaf_index,
            block_leaf,
            block_inclusion,
        })
    }
}

/// Most checkpoints a [`CheckpointCache`] remembers before it starts over.
const CHECKPOINT_CACHE_LIMIT: usize = 4096;

/// Checkpoint notes whose signatures verified, each under one log key and cosigner policy,
/// with the timestamps of the policy's valid cosignatures.
///
/// Only signature results are remembered; the Merkle and window checks of
/// [`verify_publication_cached`] run every time, so a cached checkpoint proves nothing about a
/// secret by itself.
#[derive(Debug, Default)]
pub struct CheckpointCache {
    verified: HashMap<[u8; 32], Vec<u64>>,
}

impl CheckpointCache {
    /// SHA-256 over the note bytes, the log key and the policy (each length-prefixed), so one
    /// note checked under another key or policy is checked again.
    fn key(checkpoint: &str, log: &Verifier, policy: Option<&CosignerPolicy>) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(checkpoint.as_bytes());
        field(log.vkey().as_bytes());
        if let Some(policy) = policy {
            field(&(policy.threshold as u64).to_be_bytes());
            for c in &policy.cosigners {
                field(c.vkey().as_bytes());
            }
        }
        h.finalize().into()
    }

    fn remember(&mut self, key: [u8; 32], times: Vec<u64>) {
        if self.verified.len() >= CHECKPOINT_CACHE_LIMIT {
            self.verified.clear();
        }
        self.verified.insert(key, times);
    }

    /// How many checkpoints are remembered.
    pub fn len(&self) -> usize {
        self.verified.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.verified.is_empty()
    }
}

/// Verifies that `bundle` proves `p` was published in block `b` with
/// `start_block ≤ b < deadline_block`, in a block that started by `hard_deadline`, in the log
/// whose key is `log_verifier`; with a `policy`, also that at least `threshold` of its cosigners
/// cosigned the checkpoint with timestamps `≤ hard_deadline`.
///
/// Cheap structural and Merkle checks run before any signature check.
pub fn verify_publication(
    bundle: &ProofBundle,
    p: &[u8; 32],
    log_verifier: &Verifier,
    policy: Option<&CosignerPolicy>,
    start_block: u64,
    deadline_block: u64,
    hard_deadline: u64,
) -> Result<Published, BundleError> {
    verify_publication_cached(
        bundle,
        p,
        log_verifier,
        policy,
        start_block,
        deadline_block,
        hard_deadline,
        &mut CheckpointCache::default(),
    )
}

/// [`verify_publication`] that checks each checkpoint's signatures once per `cache`: under
/// load a log serves one checkpoint for many secrets, and every hop of every route sees it.
#[allow(clippy::too_many_arguments)]
pub fn verify_publication_cached(
    bundle: &ProofBundle,
    p: &[u8; 32],
    log_verifier: &Verifier,
    policy: Option<&CosignerPolicy>,
    start_block: u64,
    deadline_block: u64,
    hard_deadline: u64,
    cache: &mut CheckpointCache,
) -> Result<Published, BundleError> {
    let Leaf::Commit { block, p: leaf_p } = bundle.leaf else {
        return Err(BundleError::WrongSecret);
    };
    if &leaf_p != p {
        return Err(BundleError::WrongSecret);
    }
    let Leaf::Block {
        block: marker_block,
        time: block_time,
    } = bundle.block_leaf
    else {
        return Err(BundleError::BadMarker);
    };
    if marker_block != block || bundle.block_leaf_index >= bundle.index {
        return Err(BundleError::BadMarker);
    }
    if block < start_block {
        return Err(BundleError::TooEarly {
            block,
            start: start_block,
        });
    }
    if block >= deadline_block {
        return Err(BundleError::TooLate {
            block,
            deadline: deadline_block,
        });
    }
    if block_time > hard_deadline {
        return Err(BundleError::AfterDeadline {
            time: block_time,
            deadline: hard_deadline,
        });
    }
    let parsed = Note::parse(bundle.checkpoint.as_bytes())?;
    let cp = Checkpoint::from_text(&parsed.text)?;
    verify_inclusion(
        &bundle.leaf.hash(),
        bundle.index,
        cp.size,
        &bundle.inclusion,
        &cp.root,
    )?;
    verify_inclusion(
        &bundle.block_leaf.hash(),
        bundle.block_leaf_index,
        cp.size,
        &bundle.block_inclusion,
        &cp.root,
    )?;
    let key = CheckpointCache::key(&bundle.checkpoint, log_verifier, policy);
    let cosigned = match cache.verified.get(&key) {
        Some(times) => times.clone(),
        None => {
            note::open(
                bundle.checkpoint.as_bytes(),
                std::slice::from_ref(log_verifier),
            )?;
            let times: Vec<u64> = match policy {
                Some(policy) => policy.check(&parsed)?.into_iter().map(|(_, t)| t).collect(),
                None => Vec::new(),
            };
            cache.remember(key, times.clone());
            times
        }
    };
    if let Some(policy) = policy {
        let valid = cosigned.iter().filter(|t| **t <= hard_deadline).count();
        if valid < policy.threshold {
            return Err(BundleError::CosignedTooLate {
                valid,
                threshold: policy.threshold,
            });
        }
    }
    Ok(Published {
        block,
        index: bundle.index,
        size: cp.size,
        block_time,
        origin: cp.origin,
    })
}

/// Most secrets in one `POST /bundles` (see [`encode_bundles`]).
pub const MAX_BUNDLES: usize = 64;

/// The answer to `POST /bundles`: for each secret asked, in request order, `0x00` if it was
/// never submitted, or `0x01`, the bundle's length (`u32`, big-endian) and the
/// [`ProofBundle`] bytes.
pub fn encode_bundles(bundles: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    for bundle in bundles {
        match bundle {
            None => out.push(0),
            Some(bytes) => {
                out.push(1);
                // A bundle is far below 4 GiB: a note of at most 64 KiB and two short proofs.
                out.extend_from_slice(
                    &u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes(),
                );
                out.extend_from_slice(bytes);
            }
        }
    }
    out
}

/// Parses an [`encode_bundles`] answer that should hold `count` entries.
pub fn decode_bundles(mut bytes: &[u8], count: usize) -> Result<Vec<Option<Vec<u8>>>, String> {
    let mut bundles = Vec::with_capacity(count.min(MAX_BUNDLES));
    for i in 0..count {
        let Some((&tag, rest)) = bytes.split_first() else {
            return Err(format!("the answer ends after {i} of {count} bundles"));
        };
        bytes = rest;
        match tag {
            0 => bundles.push(None),
            1 => {
                let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
                    return Err(format!("bundle {i}: no length"));
                };
                let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
                if rest.len() < len {
                    return Err(format!(
                        "bundle {i}: {len} bytes announced, {} left",
                        rest.len()
                    ));
                }
                let (bundle, rest) = rest.split_at(len);
                bundles.push(Some(bundle.to_vec()));
                bytes = rest;
            }
            other => return Err(format!("bundle {i}: unknown tag {other}")),
        }
    }
    if !bytes.is_empty() {
        return Err(format!("{} bytes after the last bundle", bytes.len()));
    }
    Ok(bundles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_bundles_round_trips_and_bad_lists_are_refused() {
        let list = vec![Some(vec![1, 2, 3]), None, Some(Vec::new())];
        let bytes = encode_bundles(&list);
        assert_eq!(decode_bundles(&bytes, 3), Ok(list));
        assert!(decode_bundles(&bytes, 2).is_err(), "bytes left over");
        assert!(decode_bundles(&bytes, 4).is_err(), "one missing");
        assert!(decode_bundles(&[2], 1).is_err(), "unknown tag");
        assert!(decode_bundles(&[1, 0, 0], 1).is_err(), "short length");
        assert!(
            decode_bundles(&[1, 0, 0, 0, 5, 1], 1).is_err(),
            "short bundle"
        );
    }
}
