//! Witness logs: the commit method for routed payments (BRIEF §5).
//!
//! - [`merkle`]: RFC 6962/9162 Merkle tree hashing, inclusion and consistency proofs.
//! - [`note`]: C2SP signed notes with Ed25519 keys, checkpoints and cosignatures.
//! - [`leaf`]: the log's two leaf kinds, `COMMIT(block, p)` and `BLOCK(block, time)`.
#![deny(missing_docs)]

pub mod leaf;
pub mod merkle;
pub mod note;
