//! The Atomicity protocol core: identities, exact amounts, the canonical encoding of signed
//! objects, and the credit-line rules.
//!
//! No I/O, no clock, no global randomness: time and random values come in as arguments, and
//! every input returns the changes to persist ([`StoreOp`]) and the messages to send, so the same
//! code runs under the node, the tests and the simulator.
#![deny(missing_docs)]

pub mod amount;
pub mod channel;
pub mod condition;
pub mod conditionals;
pub mod delegation;
pub mod encoding;
pub mod forward;
pub mod invoice;
pub mod ledger;
mod memo;
pub mod message;
pub mod objects;
pub mod published;
pub mod request;
pub mod routed;
pub mod router_api;
pub mod settle;
pub mod settlement;
pub mod signed;
pub mod trust;

pub use amount::{Amount, AmountError, Asset, Total};
pub use channel::{Answer, Channel, ChannelView, Limits, OfferError, Rejection};
pub use condition::{
    ProofCache, ProofError, WitnessCondition, WitnessProof, WitnessTerms, payment_hash,
};
pub use delegation::{
    Cap, DelegatedPayment, Delegation, DelegationRefusal, Period, ScopeError, check_order,
};
pub use forward::{FeePolicy, Hop, Onward};
pub use invoice::{Invoice, InvoiceError};
pub use ledger::{
    Blob, ConditionalRecord, CorruptStore, Direction, EnvelopeError, EvidenceRecord, ForwardRecord,
    HashlockRecord, HashlockRole, HashlockStatus, Ledger, LedgerError, LineRecord, PaymentOutcome,
    PaymentRecord, PaymentStatus, PeerRecord, ProofRecord, Snapshot, StoreOp,
};
pub use message::{
    Envelope, MAX_ENVELOPE_LEN, Message, Reply, decode_replies, encode_replies, envelope_batches,
};
pub use objects::{
    Acceptance, Condition, ConditionalIou, IouState, LineId, Release, ReleaseReason, ResolvedSet,
};
pub use pkarr::{Keypair, PublicKey};
pub use routed::{NewHashlock, Publication, RoutePart};
pub use settle::{PayWith, SettlementRecord, SettlementRole, SettlementStatus};
pub use settlement::{
    Evidence, EvidenceError, Outcome, SettlementKind, SettlementRequest, SettlementUpdate,
    payout_payment_id, receipt_payment_id,
};
pub use signed::{BadSignature, Signed, SignedBody, SignedError, Signer, VerifiedRoots};
pub use trust::{DegreeRule, MyTrust, TrustDoc, TrustError};

/// Parses a public key in z-base32 (the Pkarr form), also accepting a `pk:` prefix.
pub fn parse_key(s: &str) -> Result<PublicKey, String> {
    thread_local! {
        static Z32_KEYS: memo::TextCache<PublicKey> = memo::TextCache::default();
    }
    let trimmed = s.trim();
    let bare = trimmed.strip_prefix("pk:").unwrap_or(trimmed);
    memo::memoized(&Z32_KEYS, bare, |bare| bare.parse::<PublicKey>())
        .map_err(|e| format!("{s:?} is not a public key: {e}"))
}
