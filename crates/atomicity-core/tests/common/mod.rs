//! Helpers shared by the integration tests: fixed keys, proptest strategies for every signed
//! object, and re-encoding (to check that decoders accept only canonical bytes).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use atomicity_core::channel::{InConditional, OutConditional};
use atomicity_core::encoding::Writer;
use atomicity_core::signed::{SIGNATURE_LEN, SignedBody, VERSION};
use atomicity_core::{
    Acceptance, Amount, Asset, ChannelView, Condition, ConditionalIou, ConditionalRecord,
    Direction, Envelope, EvidenceRecord, ForwardRecord, HashlockRecord, HashlockStatus, IouState,
    Keypair, Ledger, Limits, LineId, LineRecord, Message, PaymentRecord, PaymentStatus, PeerRecord,
    ProofRecord, Release, ReleaseReason, Reply, ResolvedSet, Signed, Snapshot, StoreOp, Total,
};
use proptest::prelude::*;

/// How many fixed keys [`key`] hands out.
pub const KEYS: usize = 8;

/// The keypair with secret `[i + 1; 32]` (cached: key derivation is not free).
pub fn key(i: usize) -> &'static Keypair {
    static KEYS_CELL: OnceLock<Vec<Keypair>> = OnceLock::new();
    &KEYS_CELL.get_or_init(|| {
        (0..KEYS)
            .map(|i| Keypair::from_secret_key(&[i as u8 + 1; 32]))
            .collect()
    })[i]
}

/// `USD` with its usual scale 2.
pub fn usd() -> Asset {
    Asset::new("USD", 2).expect("USD")
}

/// Any valid asset.
pub fn asset() -> impl Strategy<Value = Asset> {
    ("[A-Z0-9]{1,12}", 0u8..=18).prop_map(|(code, scale)| Asset::new(&code, scale).expect("valid"))
}

/// Two different indices into the fixed keys.
pub fn two_keys() -> impl Strategy<Value = (usize, usize)> {
    (0..KEYS, 1..KEYS).prop_map(|(a, off)| (a, (a + off) % KEYS))
}

/// A line between two different fixed keys; the issuer's index comes along to sign with.
pub fn line() -> impl Strategy<Value = (usize, usize, LineId)> {
    (two_keys(), asset()).prop_map(|((i, h), asset)| {
        (
            i,
            h,
            LineId {
                issuer: key(i).public_key(),
                holder: key(h).public_key(),
                asset,
            },
        )
    })
}

/// Ids that hit the interesting places: runs from 0, small gaps, and the top of the range.
pub fn id() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..24,
        2 => 0u64..5000,
        1 => (u64::MAX - 8)..=u64::MAX,
        1 => any::<u64>(),
    ]
}

/// A resolved set built by inserting random ids (so it is always canonical).
pub fn resolved_set() -> impl Strategy<Value = ResolvedSet> {
    prop::collection::vec(id(), 0..24).prop_map(|ids| {
        let mut set = ResolvedSet::new();
        for id in ids {
            set.insert(id);
        }
        set
    })
}

/// Any amount, biased to small ones and the edges.
pub fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        3 => 0u64..1000,
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
    .prop_map(Amount::from_minor)
}

/// A line's cumulative total: small, around and beyond `u64::MAX`, up to `u128::MAX`.
pub fn total() -> impl Strategy<Value = Total> {
    prop_oneof![
        3 => 0u128..1000,
        1 => Just(u128::from(u64::MAX)),
        1 => (0u128..1000).prop_map(|x| u128::from(u64::MAX) + 1 + x),
        1 => Just(u128::MAX),
        1 => any::<u128>(),
    ]
    .prop_map(Total::from_minor)
}

/// A memo of at most 256 bytes (64 chars of up to 4 bytes each).
pub fn memo() -> impl Strategy<Value = String> {
    ".{0,64}"
}

/// An IOU state and the index of its signer.
pub fn iou_state() -> impl Strategy<Value = (usize, IouState)> {
    (line(), any::<u64>(), total(), resolved_set()).prop_map(
        |((i, _, line), seq, total, resolved)| {
            (
                i,
                IouState {
                    line,
                    seq,
                    total,
                    resolved,
                },
            )
        },
    )
}

/// A conditional IOU and the index of its signer.
pub fn conditional_iou() -> impl Strategy<Value = (usize, ConditionalIou)> {
    (
        line(),
        id(),
        amount().prop_map(|a| Amount::from_minor(a.minor().max(1))),
        any::<[u8; 32]>(),
        any::<u64>(),
        memo(),
    )
        .prop_map(|((i, _, line), id, amount, payment_id, expires_at, memo)| {
            (
                i,
                ConditionalIou {
                    line,
                    id,
                    amount,
                    condition: Condition::HolderAccepts,
                    payment_id,
                    expires_at,
                    memo,
                },
            )
        })
}

/// An acceptance and the index of its signer (the holder).
pub fn acceptance() -> impl Strategy<Value = (usize, Acceptance)> {
    (line(), id(), any::<[u8; 32]>())
        .prop_map(|((_, h, line), id, iou_hash)| (h, Acceptance { line, id, iou_hash }))
}

/// Every release reason.
pub fn reason() -> impl Strategy<Value = ReleaseReason> {
    prop::sample::select(vec![
        ReleaseReason::OverLimit,
        ReleaseReason::UnknownAsset,
        ReleaseReason::Expired,
        ReleaseReason::TooManyPending,
        ReleaseReason::Declined,
    ])
}

/// A release and the index of its signer (the holder).
pub fn release() -> impl Strategy<Value = (usize, Release)> {
    (line(), id(), any::<[u8; 32]>(), reason()).prop_map(|((_, h, line), id, iou_hash, reason)| {
        (
            h,
            Release {
                line,
                id,
                iou_hash,
                reason,
            },
        )
    })
}

/// A signed message of any kind (correctly signed).
pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        conditional_iou().prop_map(|(k, b)| Message::Offer(Signed::sign(b, key(k)))),
        iou_state().prop_map(|(k, b)| Message::State(Signed::sign(b, key(k)))),
        acceptance().prop_map(|(k, b)| Message::Accept(Signed::sign(b, key(k)))),
        release().prop_map(|(k, b)| Message::Release(Signed::sign(b, key(k)))),
    ]
}

/// An envelope of 1-4 messages and the index of its signer.
pub fn envelope() -> impl Strategy<Value = (usize, Envelope)> {
    (
        two_keys(),
        any::<u64>(),
        prop::collection::vec(message(), 1..4),
    )
        .prop_map(|((f, t), sent_at, messages)| {
            (
                f,
                Envelope {
                    from: key(f).public_key(),
                    to: key(t).public_key(),
                    sent_at,
                    messages,
                },
            )
        })
}

/// A reply of any kind; rejection texts are short enough not to be truncated.
pub fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        acceptance().prop_map(|(k, b)| Reply::Accepted(Signed::sign(b, key(k)))),
        release().prop_map(|(k, b)| Reply::Released(Signed::sign(b, key(k)))),
        any::<u64>().prop_map(|seq| Reply::StateAck { seq }),
        Just(Reply::Ok),
        (any::<u16>(), ".{0,100}").prop_map(|(code, text)| Reply::Rejected { code, text }),
    ]
}

/// The unsigned part of a signed object's wire bytes.
pub fn unsigned_of(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len() - SIGNATURE_LEN]
}

/// Encodes `body` afresh (version, kind, fields): what a canonical decoder must have read.
pub fn reencode<T: SignedBody>(body: &T) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(VERSION);
    w.u8(T::KIND);
    body.encode_body(&mut w);
    w.into_bytes()
}

/// Flips bit `bit` (counted from the first byte's most significant bit).
pub fn flip_bit(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 0x80 >> (bit % 8);
    out
}

// ---------------------------------------------------------------------------------------------
// An in-memory store: applies StoreOps and hands back a Snapshot.

#[derive(Clone, Debug, Default)]
pub struct Store {
    pub peers: BTreeMap<[u8; 32], PeerRecord>,
    pub lines: BTreeMap<([u8; 32], Asset), LineRecord>,
    pub conditionals: BTreeMap<([u8; 32], Asset, Direction, u64), ConditionalRecord>,
    pub payments: BTreeMap<([u8; 32], [u8; 32], Direction), PaymentRecord>,
    pub evidence: Vec<EvidenceRecord>,
    pub forwards: BTreeMap<(Asset, [u8; 32], u64), ForwardRecord>,
    pub hashlocks: BTreeMap<[u8; 32], HashlockRecord>,
    pub proofs: BTreeMap<[u8; 32], ProofRecord>,
}

impl Store {
    /// Applies ops in order; fails on a delete of something never stored.
    pub fn apply(&mut self, ops: &[StoreOp]) -> Result<(), String> {
        for op in ops {
            match op {
                StoreOp::PutPeer(p) => {
                    self.peers.insert(*p.key.as_bytes(), p.clone());
                }
                StoreOp::PutLine(l) => {
                    self.lines
                        .insert((*l.peer.as_bytes(), l.asset.clone()), l.clone());
                }
                StoreOp::PutConditional(c) => {
                    let key = (*c.peer.as_bytes(), c.asset.clone(), c.dir, c.id);
                    if !self.lines.contains_key(&(key.0, key.1.clone())) {
                        return Err(format!("conditional without a line: {c:?}"));
                    }
                    self.conditionals.insert(key, c.clone());
                }
                StoreOp::DeleteConditional {
                    peer,
                    asset,
                    dir,
                    id,
                } => {
                    let key = (*peer.as_bytes(), asset.clone(), *dir, *id);
                    if self.conditionals.remove(&key).is_none() {
                        return Err(format!("deleted a conditional never stored: {key:?}"));
                    }
                }
                StoreOp::PutPayment(p) => {
                    self.payments
                        .insert((p.payment_id, *p.peer.as_bytes(), p.dir), p.clone());
                }
                StoreOp::PutEvidence(e) => self.evidence.push(e.clone()),
                StoreOp::PutForward(f) => {
                    self.forwards
                        .insert((f.asset.clone(), *f.in_peer.as_bytes(), f.in_id), f.clone());
                }
                StoreOp::DeleteForward {
                    asset,
                    in_peer,
                    in_id,
                } => {
                    let key = (asset.clone(), *in_peer.as_bytes(), *in_id);
                    if self.forwards.remove(&key).is_none() {
                        return Err(format!("deleted a forward never stored: {key:?}"));
                    }
                }
                StoreOp::PutHashlock(h) => {
                    self.hashlocks.insert(h.hash, h.clone());
                }
                StoreOp::PutProof(p) => {
                    self.proofs.entry(p.hash).or_insert_with(|| p.clone());
                }
            }
        }
        Ok(())
    }

    /// What `Ledger::restore` gets.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            peers: self.peers.values().cloned().collect(),
            lines: self.lines.values().cloned().collect(),
            conditionals: self.conditionals.values().cloned().collect(),
            pending_payments: self
                .payments
                .values()
                .filter(|p| p.status == PaymentStatus::Pending)
                .cloned()
                .collect(),
            forwards: self.forwards.values().cloned().collect(),
            hashlocks: self
                .hashlocks
                .values()
                .filter(|h| matches!(h.status, HashlockStatus::Open | HashlockStatus::Publishing))
                .cloned()
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What a ledger holds, in a comparable form.

#[derive(Debug, PartialEq)]
pub struct ChannelPrint {
    pub peer: [u8; 32],
    pub asset: Asset,
    pub limits: Limits,
    pub next_id: u64,
    pub out_state: Option<Vec<u8>>,
    pub in_state: Option<Vec<u8>>,
    pub out: Vec<(u64, OutConditional)>,
    pub inn: Vec<(u64, InConditional)>,
    pub view: Option<ChannelView>,
}

#[derive(Debug, PartialEq)]
pub struct LedgerPrint {
    pub peers: Vec<PeerRecord>,
    pub channels: Vec<ChannelPrint>,
    pub balances: Vec<ChannelView>,
    pub unanswered: Vec<Vec<u8>>,
    pub latest: Vec<Vec<u8>>,
}

/// Everything a ledger shows, sorted.
pub fn print_of(ledger: &Ledger) -> LedgerPrint {
    let mut peers: Vec<PeerRecord> = ledger.peers().cloned().collect();
    peers.sort_by_key(|p| *p.key.as_bytes());
    let mut channels: Vec<ChannelPrint> = ledger
        .channels()
        .map(|c| ChannelPrint {
            peer: *c.peer().as_bytes(),
            asset: c.asset().clone(),
            limits: c.limits,
            next_id: c.next_id(),
            out_state: c.out_state().map(Signed::to_bytes),
            in_state: c.in_state().map(Signed::to_bytes),
            out: c
                .out_conditionals()
                .iter()
                .map(|(id, o)| (*id, o.clone()))
                .collect(),
            inn: c
                .in_conditionals()
                .iter()
                .map(|(id, i)| (*id, i.clone()))
                .collect(),
            view: c.view(),
        })
        .collect();
    channels.sort_by(|a, b| (a.peer, &a.asset).cmp(&(b.peer, &b.asset)));
    let mut unanswered: Vec<Vec<u8>> = ledger
        .unanswered_offers()
        .into_iter()
        .map(|(_, o)| o.to_bytes())
        .collect();
    unanswered.sort();
    let mut latest: Vec<Vec<u8>> = ledger
        .latest_out_states()
        .into_iter()
        .map(|(_, s)| s.to_bytes())
        .collect();
    latest.sort();
    LedgerPrint {
        peers,
        channels,
        balances: ledger.balances(),
        unanswered,
        latest,
    }
}

/// Proptest case count: `PROPTEST_CASES` if set (to run longer), else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
