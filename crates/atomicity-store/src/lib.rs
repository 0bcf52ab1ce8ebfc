//! Durable storage for an Atomicity node.
//!
//! The [`Ledger`](atomicity_core::Ledger) describes every change it makes as a list of
//! [`StoreOp`]s; a [`Store`] applies such lists atomically and durably, and gives back a
//! [`Snapshot`] to rebuild the ledger after a restart.
//!
//! Two implementations share the same semantics:
//!
//! * [`SqliteStore`]: one SQLite file in WAL mode with `synchronous=FULL`, versioned migrations
//!   (`PRAGMA user_version`) and cached statements on the commit path;
//! * [`MemoryStore`]: an in-memory twin for fast tests.
//!
//! What the store holds is "N + C": the newest state of each line plus the unresolved
//! conditional IOUs, together with the peers, the user's payment history and the evidence of
//! misbehaviour. Both stores enforce the two references the ledger relies on when it restores:
//! a line's peer must be stored, and a conditional's line must be stored, by the end of each
//! commit (otherwise the commit fails with [`StoreError::Dangling`] and changes nothing).
#![deny(missing_docs)]

use atomicity_core::{Direction, EvidenceRecord, PaymentRecord, PaymentStatus, Snapshot, StoreOp};
use thiserror::Error;

mod memory;
mod sqlite;

pub use memory::MemoryStore;
pub use sqlite::{SCHEMA_VERSION, SqliteStore};

/// Why a store operation failed. A failed [`Store::commit`] changed nothing.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row could not be decoded.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The database was written by a newer version of this program.
    #[error(
        "the database has schema version {found}, newer than the {supported} this program \
         supports; upgrade the program"
    )]
    NewerSchema {
        /// The database's `user_version`.
        found: i64,
        /// The newest schema version this code knows.
        supported: i64,
    },
    /// The file is an SQLite database of another application.
    #[error("not an Atomicity database (application_id {application_id:#x})")]
    ForeignDatabase {
        /// The file's `application_id`.
        application_id: i64,
    },
    /// SQLite refused to switch to WAL journal mode.
    #[error("could not switch the database to WAL journal mode (it is in {0:?} mode)")]
    JournalMode(String),
    /// A value cannot be stored: timestamps must fit in an `i64` (SQLite's integer).
    #[error("{field} = {value} is out of the storable range")]
    OutOfRange {
        /// Which field, e.g. `payment.updated_at`.
        field: &'static str,
        /// The value given.
        value: u64,
    },
    /// After the commit a line's peer, or a conditional IOU's line, would be missing.
    #[error("dangling reference: {0}")]
    Dangling(String),
}

/// Durable storage for one node's ledger.
///
/// Every implementation has the same semantics, checked by the conformance tests:
///
/// * `Put*` ops insert or replace the record with the same key (peer key; peer and asset for a
///   line; peer, asset, direction and id for a conditional; payment id and direction for a
///   payment). `PutEvidence` always appends.
/// * `DeleteConditional` removes the row if it is there.
/// * Unix-second timestamps (`created_at`, `updated_at`, `at`) must be at most `i64::MAX`;
///   amounts, ids and counters use the whole `u64` range.
pub trait Store: Send {
    /// Everything needed to rebuild the ledger: all peers, lines and conditional IOUs, and the
    /// payments whose status is [`PaymentStatus::Pending`]. The vectors are in no particular
    /// order.
    fn load(&mut self) -> Result<Snapshot, StoreError>;

    /// Applies `ops` in order, atomically (all or nothing) and durably: when this returns `Ok`
    /// the changes survive a crash or power loss. An empty slice is a no-op.
    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError>;

    /// At most `limit` payments, newest first: by `updated_at`, then `created_at`, both
    /// descending, then by payment id and direction (`in` before `out`).
    fn history(&mut self, limit: usize) -> Result<Vec<PaymentRecord>, StoreError>;

    /// All evidence of misbehaviour, oldest first (in the order it was committed).
    fn evidence(&mut self) -> Result<Vec<EvidenceRecord>, StoreError>;
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        (**self).load()
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        (**self).commit(ops)
    }

    fn history(&mut self, limit: usize) -> Result<Vec<PaymentRecord>, StoreError> {
        (**self).history(limit)
    }

    fn evidence(&mut self) -> Result<Vec<EvidenceRecord>, StoreError> {
        (**self).evidence()
    }
}

/// A Unix-seconds timestamp as SQLite's signed integer, refusing values above `i64::MAX`.
pub(crate) fn time_to_sql(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { field, value })
}

/// Checks the timestamps of a payment in the order the SQLite store binds them.
pub(crate) fn check_payment_times(p: &PaymentRecord) -> Result<(i64, i64), StoreError> {
    Ok((
        time_to_sql("payment.created_at", p.created_at)?,
        time_to_sql("payment.updated_at", p.updated_at)?,
    ))
}

/// Checks the timestamp of a piece of evidence.
pub(crate) fn check_evidence_time(e: &EvidenceRecord) -> Result<i64, StoreError> {
    time_to_sql("evidence.at", e.at)
}

/// The order of [`Store::history`]: the key of a payment, smallest first.
pub(crate) fn history_key(
    p: &PaymentRecord,
) -> (std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, [u8; 32]) {
    (
        std::cmp::Reverse(p.updated_at),
        std::cmp::Reverse(p.created_at),
        p.entry,
    )
}

/// Whether a payment belongs in [`Snapshot::pending_payments`].
pub(crate) fn is_pending(p: &PaymentRecord) -> bool {
    p.status == PaymentStatus::Pending
}

/// Parses [`Direction::as_str`].
pub(crate) fn parse_direction(s: &str) -> Option<Direction> {
    match s {
        "out" => Some(Direction::Out),
        "in" => Some(Direction::In),
        _ => None,
    }
}
