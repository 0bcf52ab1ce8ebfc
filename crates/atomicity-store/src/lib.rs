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
//! conditional IOUs, together with the peers, the forwarding links and payment secrets of routed
//! payments and the proofs of publication, the user's payment history, the settlements and the
//! evidence of misbehaviour. Both stores enforce the two references the ledger relies on when it restores:
//! a line's peer must be stored, and a conditional's line must be stored, by the end of each
//! commit (otherwise the commit fails with [`StoreError::Dangling`] and changes nothing).
#![deny(missing_docs)]

use atomicity_core::{
    Direction, Evidence, EvidenceRecord, HashlockRecord, HashlockRole, HashlockStatus,
    PaymentRecord, PaymentStatus, ProofRecord, SettlementRecord, SettlementRequest, Signed,
    Snapshot, StoreOp,
};
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
    /// A value cannot be stored: timestamps must fit in an `i64` (SQLite's integer), and each
    /// IOU in a hashlock's `issued` list must have a length that fits in a `u32`.
    #[error("{field} = {value} is out of the storable range")]
    OutOfRange {
        /// Which field, e.g. `payment.updated_at` or `hashlock.issued` (then the value is the
        /// length of the item that is too long).
        field: &'static str,
        /// The value given.
        value: u64,
    },
    /// A record could not be read back as it is: a settlement whose signed request names
    /// another settlement, or whose request or evidence does not decode from its own canonical
    /// bytes. Refused by the commit rather than stored as a row that would not load.
    #[error("{field} cannot be stored: {why}")]
    Unstorable {
        /// Which field, e.g. `settlement.request`.
        field: &'static str,
        /// What is wrong with it.
        why: String,
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
///   line; peer, asset, direction and id for a conditional; history entry for a payment; asset,
///   incoming peer and incoming id for a forwarding link; hash for a hashlock; id for a
///   settlement). `PutEvidence` always appends. `PutProof` keeps the first proof stored for a hash and ignores later ones
///   (its `at` is when the proof was first learned).
/// * `DeleteConditional` and `DeleteForward` remove the row if it is there.
/// * Unix-second timestamps (`created_at`, `updated_at`, `at`) must be at most `i64::MAX`;
///   amounts, ids, counters, fees and a hashlock's `expires_at` use their type's whole range.
/// * A settlement is stored only if it reads back as it is ([`StoreError::Unstorable`]
///   otherwise): its signed request is for its id, and the request and its evidence decode from
///   their canonical bytes.
/// * Forwarding links, hashlocks, settlements and proofs reference nothing: they may name peers,
///   lines and conditionals that are not stored.
pub trait Store: Send {
    /// Everything needed to rebuild the ledger: all peers, lines, conditional IOUs and
    /// forwarding links, the payments whose status is [`PaymentStatus::Pending`], and the
    /// hashlocks whose status is [`HashlockStatus::Open`] or [`HashlockStatus::Publishing`]
    /// (finished ones stay stored, as the record of a paid invoice, but are not loaded), and
    /// every settlement, whatever its status. The vectors are in no particular order.
    fn load(&mut self) -> Result<Snapshot, StoreError>;

    /// Applies `ops` in order, atomically (all or nothing) and durably: when this returns `Ok`
    /// the changes survive a crash or power loss. An empty slice is a no-op.
    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError>;

    /// At most `limit` payments, newest first: by `updated_at`, then `created_at`, both
    /// descending, then by payment id and direction (`in` before `out`).
    fn history(&mut self, limit: usize) -> Result<Vec<PaymentRecord>, StoreError>;

    /// All evidence of misbehaviour, oldest first (in the order it was committed).
    fn evidence(&mut self) -> Result<Vec<EvidenceRecord>, StoreError>;

    /// At most `limit` hashlocks of any status (the user's invoices and payer-published
    /// payments), newest first: by `updated_at`, then `created_at`, both descending, then by
    /// hash.
    fn hashlocks(&self, limit: usize) -> Result<Vec<HashlockRecord>, StoreError>;

    /// The hashlock with this hash, whatever its status.
    fn hashlock(&self, hash: &[u8; 32]) -> Result<Option<HashlockRecord>, StoreError>;

    /// At most `limit` settlements of any status, newest first: by `created_at` descending,
    /// then by id.
    fn settlements(&self, limit: usize) -> Result<Vec<SettlementRecord>, StoreError>;

    /// The settlement with this id, whatever its status.
    fn settlement(&self, id: &[u8; 32]) -> Result<Option<SettlementRecord>, StoreError>;

    /// The proof of publication kept for this payment hash, if any.
    fn proof(&self, hash: &[u8; 32]) -> Result<Option<ProofRecord>, StoreError>;
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

    fn hashlocks(&self, limit: usize) -> Result<Vec<HashlockRecord>, StoreError> {
        (**self).hashlocks(limit)
    }

    fn hashlock(&self, hash: &[u8; 32]) -> Result<Option<HashlockRecord>, StoreError> {
        (**self).hashlock(hash)
    }

    fn settlements(&self, limit: usize) -> Result<Vec<SettlementRecord>, StoreError> {
        (**self).settlements(limit)
    }

    fn settlement(&self, id: &[u8; 32]) -> Result<Option<SettlementRecord>, StoreError> {
        (**self).settlement(id)
    }

    fn proof(&self, hash: &[u8; 32]) -> Result<Option<ProofRecord>, StoreError> {
        (**self).proof(hash)
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

/// Checks the timestamp of a proof of publication.
pub(crate) fn check_proof_time(p: &ProofRecord) -> Result<i64, StoreError> {
    time_to_sql("proof.at", p.at)
}

/// A hashlock checked for storing: its `created_at` and `updated_at` as SQLite integers, and
/// its `issued` list encoded (see [`encode_issued`]), in the order the SQLite store binds them.
pub(crate) fn check_hashlock(h: &HashlockRecord) -> Result<(i64, i64, Vec<u8>), StoreError> {
    Ok((
        time_to_sql("hashlock.created_at", h.created_at)?,
        time_to_sql("hashlock.updated_at", h.updated_at)?,
        encode_issued(&h.issued)?,
    ))
}

/// A settlement checked for storing, with the values the SQLite store binds that are not in the
/// record as is.
pub(crate) struct SettlementRow {
    /// `created_at` as an SQLite integer.
    pub(crate) created_at: i64,
    /// `updated_at` as an SQLite integer.
    pub(crate) updated_at: i64,
    /// The signed request's canonical bytes ([`Signed::to_bytes`]).
    pub(crate) request: Vec<u8>,
    /// The evidence's canonical bytes ([`Evidence::to_bytes`]), if any.
    pub(crate) evidence: Option<Vec<u8>>,
}

/// Checks that a settlement can be stored and read back as it is: its timestamps fit in an
/// `i64`, its request decodes from its bytes into the same request and is for the record's id,
/// and its evidence decodes from its bytes into the same evidence.
pub(crate) fn check_settlement(s: &SettlementRecord) -> Result<SettlementRow, StoreError> {
    let created_at = time_to_sql("settlement.created_at", s.created_at)?;
    let updated_at = time_to_sql("settlement.updated_at", s.updated_at)?;
    let request = s.request.to_bytes();
    let unstorable = |field, why| StoreError::Unstorable { field, why };
    let decoded = decode_settlement_request(&request, &s.id)
        .map_err(|why| unstorable("settlement.request", why))?;
    if decoded.body() != s.request.body() {
        return Err(unstorable(
            "settlement.request",
            "its bytes decode to another request".into(),
        ));
    }
    let evidence = match &s.evidence {
        None => None,
        Some(e) => {
            let bytes = e.to_bytes();
            match Evidence::from_bytes(&bytes) {
                Ok(back) if back == *e => {}
                Ok(_) => {
                    return Err(unstorable(
                        "settlement.evidence",
                        "its bytes decode to other evidence".into(),
                    ));
                }
                Err(err) => return Err(unstorable("settlement.evidence", err.to_string())),
            }
            Some(bytes)
        }
    };
    Ok(SettlementRow {
        created_at,
        updated_at,
        request,
        evidence,
    })
}

/// Decodes a settlement's stored request ([`Signed::to_bytes`], signature not checked) and
/// checks that it is for settlement `id`; the error says why not.
pub(crate) fn decode_settlement_request(
    bytes: &[u8],
    id: &[u8; 32],
) -> Result<Signed<SettlementRequest>, String> {
    let request = Signed::<SettlementRequest>::decode(bytes)
        .map_err(|e| format!("the request does not decode: {e}"))?;
    if request.body().id != *id {
        return Err("the request is for another settlement id".into());
    }
    Ok(request)
}

/// Encodes a hashlock's `issued` list as one blob: each item as its length (a `u32`,
/// big-endian) followed by its bytes, one after the other, with nothing before or after. The
/// empty list is the empty blob. An item longer than `u32::MAX` bytes cannot be stored.
pub(crate) fn encode_issued(items: &[Vec<u8>]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(items.iter().map(|i| 4 + i.len()).sum());
    for item in items {
        let len = u32::try_from(item.len()).map_err(|_| StoreError::OutOfRange {
            field: "hashlock.issued",
            value: u64::try_from(item.len()).unwrap_or(u64::MAX),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(item);
    }
    Ok(out)
}

/// Decodes [`encode_issued`]; `None` if the blob is not a sequence of whole items.
pub(crate) fn decode_issued(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (item, rest) = rest.split_at(len);
        items.push(item.to_vec());
        bytes = rest;
    }
    Some(items)
}

/// The order of [`Store::hashlocks`]: the key of a hashlock, smallest first.
pub(crate) fn hashlocks_key(
    h: &HashlockRecord,
) -> (std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, [u8; 32]) {
    (
        std::cmp::Reverse(h.updated_at),
        std::cmp::Reverse(h.created_at),
        h.hash,
    )
}

/// The order of [`Store::settlements`]: the key of a settlement, smallest first.
pub(crate) fn settlements_key(s: &SettlementRecord) -> (std::cmp::Reverse<u64>, [u8; 32]) {
    (std::cmp::Reverse(s.created_at), s.id)
}

/// Whether a hashlock belongs in [`Snapshot::hashlocks`].
pub(crate) fn is_unfinished(h: &HashlockRecord) -> bool {
    matches!(h.status, HashlockStatus::Open | HashlockStatus::Publishing)
}

/// `payee`, `payer` or `swap`.
pub(crate) fn role_as_str(role: HashlockRole) -> &'static str {
    match role {
        HashlockRole::Payee => "payee",
        HashlockRole::Payer => "payer",
        HashlockRole::Swap => "swap",
    }
}

/// Parses [`role_as_str`].
pub(crate) fn parse_role(s: &str) -> Option<HashlockRole> {
    match s {
        "payee" => Some(HashlockRole::Payee),
        "payer" => Some(HashlockRole::Payer),
        "swap" => Some(HashlockRole::Swap),
        _ => None,
    }
}

/// Parses [`HashlockStatus::as_str`].
pub(crate) fn parse_hashlock_status(s: &str) -> Option<HashlockStatus> {
    match s {
        "open" => Some(HashlockStatus::Open),
        "publishing" => Some(HashlockStatus::Publishing),
        "paid" => Some(HashlockStatus::Done),
        "failed" => Some(HashlockStatus::Failed),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_encoding() -> Result<(), StoreError> {
        assert_eq!(encode_issued(&[])?, Vec::<u8>::new());
        let items = vec![vec![1, 2, 3], Vec::new(), vec![0xff; 300]];
        let blob = encode_issued(&items)?;
        assert_eq!(&blob[..7], &[0, 0, 0, 3, 1, 2, 3]);
        assert_eq!(&blob[7..11], &[0, 0, 0, 0]);
        assert_eq!(&blob[11..15], &[0, 0, 1, 44]);
        assert_eq!(blob.len(), 15 + 300);
        assert_eq!(decode_issued(&blob), Some(items));
        assert_eq!(decode_issued(&[]), Some(Vec::new()));
        // Truncated length or item.
        assert_eq!(decode_issued(&[0, 0, 0]), None);
        assert_eq!(decode_issued(&[0, 0, 0, 2, 9]), None);
        assert_eq!(decode_issued(&blob[..blob.len() - 1]), None);
        Ok(())
    }
}
