//! The two kinds of leaf a witness log holds.
//!
//! `COMMIT(block, p)`: the 32-byte secret `p` was published in block `block`. The log never sees
//! amounts, parties or hashes of anything else. `BLOCK(block, time)`: block `block` started at
//! Unix time `time`. Block numbers never decrease along the log.
//!
//! Encoding (the Merkle leaf data; its leaf hash is `SHA-256(0x00 || data)`, RFC 6962):
//! `0x01 || block (u64 BE) || p (32 bytes)` or `0x02 || block (u64 BE) || time (u64 BE)`.

use thiserror::Error;

use crate::merkle::{Hash, leaf_hash};

/// Tag byte of a COMMIT leaf.
pub const COMMIT_TAG: u8 = 0x01;
/// Tag byte of a BLOCK leaf.
pub const BLOCK_TAG: u8 = 0x02;

/// One entry of a witness log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leaf {
    /// `p` was published in `block`.
    Commit {
        /// The block it was published in.
        block: u64,
        /// The secret.
        p: [u8; 32],
    },
    /// Block `block` started at Unix time `time`.
    Block {
        /// The block number.
        block: u64,
        /// Unix seconds.
        time: u64,
    },
}

/// Bytes that are not a leaf.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LeafError {
    /// Wrong length for its tag.
    #[error("a leaf with tag {tag:#04x} must be {expected} bytes, got {got}")]
    Length {
        /// The tag.
        tag: u8,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// Unknown tag (or empty).
    #[error("unknown leaf tag")]
    UnknownTag,
}

impl Leaf {
    /// The block number the leaf belongs to.
    pub fn block(&self) -> u64 {
        match self {
            Leaf::Commit { block, .. } | Leaf::Block { block, .. } => *block,
        }
    }

    /// The canonical encoding (the Merkle leaf data).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41);
        match self {
            Leaf::Commit { block, p } => {
                out.push(COMMIT_TAG);
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(p);
            }
            Leaf::Block { block, time } => {
                out.push(BLOCK_TAG);
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(&time.to_be_bytes());
            }
        }
        out
    }

    /// Parses the canonical encoding, rejecting anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<Leaf, LeafError> {
        let u64_at = |at: usize| -> u64 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let check = |tag: u8, expected: usize| {
            if bytes.len() == expected {
                Ok(())
            } else {
                Err(LeafError::Length {
                    tag,
                    expected,
                    got: bytes.len(),
                })
            }
        };
        match bytes.first() {
            Some(&COMMIT_TAG) => {
                check(COMMIT_TAG, 41)?;
                let mut p = [0u8; 32];
                p.copy_from_slice(&bytes[9..41]);
                Ok(Leaf::Commit {
                    block: u64_at(1),
                    p,
                })
            }
            Some(&BLOCK_TAG) => {
                check(BLOCK_TAG, 17)?;
                Ok(Leaf::Block {
                    block: u64_at(1),
                    time: u64_at(9),
                })
            }
            _ => Err(LeafError::UnknownTag),
        }
    }

    /// The RFC 6962 leaf hash of the encoding.
    pub fn hash(&self) -> Hash {
        leaf_hash(&self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_bytes() {
        let leaves = [
            Leaf::Commit {
                block: 7,
                p: [9; 32],
            },
            Leaf::Block {
                block: u64::MAX,
                time: 1_800_000_000,
            },
        ];
        for leaf in leaves {
            let bytes = leaf.to_bytes();
            assert_eq!(Leaf::from_bytes(&bytes), Ok(leaf));
            for cut in 0..bytes.len() {
                assert!(Leaf::from_bytes(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Leaf::from_bytes(&longer).is_err());
        }
        assert_eq!(Leaf::from_bytes(&[3; 17]), Err(LeafError::UnknownTag));
        assert_eq!(
            hex::encode(Leaf::Block { block: 1, time: 2 }.to_bytes()),
            "0200000000000000010000000000000002"
        );
    }
}
