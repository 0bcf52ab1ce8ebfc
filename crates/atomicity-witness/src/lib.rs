//! Witness logs: the commit method for routed payments (BRIEF §5).
//!
//! - [`merkle`]: RFC 6962/9162 Merkle tree hashing, inclusion and consistency proofs.
//! - [`note`]: C2SP signed notes with Ed25519 keys, checkpoints and cosignatures.
//! - [`leaf`]: the log's two leaf kinds, `COMMIT(block, p)` and `BLOCK(block, time)`.
//! - [`fork`]: fork proofs, offline-checkable evidence that a log misbehaved.
//! - [`log`]: the witness log state machine (blocks, commits, checkpoints), sans-I/O.
//! - [`bundle`]: offline-verifiable proof bundles that a secret was published in time.
//! - [`cosigning`]: the log's side of tlog-witness: request bodies, checking and attaching
//!   cosignatures.
//! - [`watchtower`]: cosigning, monitoring and fork-proof keeping, sans-I/O.
//! - [`identity`]: a service proving its key by signing a client's challenge.
//! - `service` and `store` (feature `service`): the HTTP witness service and its SQLite storage.
//! - `tower_service` and `tower_store` (feature `service`): the watchtower service and its
//!   storage; `http`: what the two services share.
#![deny(missing_docs)]

#[cfg(feature = "service")]
mod actor;
pub mod bundle;
pub mod cosigning;
pub mod fork;
#[cfg(feature = "service")]
pub mod http;
pub mod identity;
pub mod leaf;
pub mod log;
pub mod merkle;
pub mod note;
#[cfg(feature = "service")]
pub mod service;
#[cfg(feature = "service")]
pub mod store;
#[cfg(feature = "service")]
pub mod tower_service;
#[cfg(feature = "service")]
pub mod tower_store;
pub mod watchtower;
