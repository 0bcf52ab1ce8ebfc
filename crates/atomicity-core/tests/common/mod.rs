//! Helpers shared by the integration tests: fixed keys, proptest strategies for every signed
//! object, and re-encoding (to check that decoders accept only canonical bytes).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use atomicity_core::channel::{InConditional, OutConditional};
use atomicity_core::condition::{MAX_BUNDLE_LEN, MAX_COSIGNERS, MAX_VKEY_LEN, MAX_WITNESSES};
use atomicity_core::encoding::Writer;
use atomicity_core::forward::MAX_HOPS;
use atomicity_core::signed::{SIGNATURE_LEN, SignedBody, VERSION};
use atomicity_core::{
    Acceptance, Amount, Asset, ChannelView, Condition, ConditionalIou, ConditionalRecord,
    Direction, Envelope, EvidenceRecord, ForwardRecord, HashlockRecord, HashlockStatus, Hop,
    Invoice, IouState, Keypair, Ledger, Limits, LineId, LineRecord, Message, Onward, PaymentRecord,
    PaymentStatus, PeerRecord, ProofRecord, Release, ReleaseReason, Reply, ResolvedSet, Signed,
    Snapshot, StoreOp, Total, WitnessCondition, WitnessProof, WitnessTerms,
};
use atomicity_witness::note::{Cosigner, Signer};
use proptest::prelude::*;

/// How many fixed keys [`key`] hands out.
pub const KEYS: usize = 8;

/// A signer (signing at once) for [`key`]`(i)`.
pub fn signer(i: usize) -> &'static atomicity_core::Signer {
    static SIGNERS: OnceLock<Vec<atomicity_core::Signer>> = OnceLock::new();
    &SIGNERS.get_or_init(|| {
        (0..KEYS)
            .map(|i| atomicity_core::Signer::new(key(i).clone()))
            .collect()
    })[i]
}

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

/// How many fixed witness logs (and cosigners) [`witness_signer`] and [`cosigner`] hand out: one
/// more than a condition may list.
pub const WITNESS_LOGS: usize = MAX_WITNESSES + 1;

/// The witness log signer `witness{i}.example/log` with key `[0x30 + i; 32]` (cached).
pub fn witness_signer(i: usize) -> &'static Signer {
    static SIGNERS: OnceLock<Vec<Signer>> = OnceLock::new();
    &SIGNERS.get_or_init(|| {
        (0..WITNESS_LOGS)
            .map(|i| {
                Signer::new(
                    &format!("witness{i}.example/log"),
                    ed25519_dalek::SigningKey::from_bytes(&[0x30 + i as u8; 32]),
                )
                .expect("signer")
            })
            .collect()
    })[i]
}

/// The verifier key of [`witness_signer`]`(i)`.
pub fn witness_vkey(i: usize) -> String {
    witness_signer(i).verifier().vkey()
}

/// The cosigner `cosigner{i}.example` with key `[0x40 + i; 32]` (cached).
pub fn cosigner(i: usize) -> &'static Cosigner {
    static COSIGNERS: OnceLock<Vec<Cosigner>> = OnceLock::new();
    &COSIGNERS.get_or_init(|| {
        (0..WITNESS_LOGS)
            .map(|i| {
                Cosigner::new(
                    &format!("cosigner{i}.example"),
                    ed25519_dalek::SigningKey::from_bytes(&[0x40 + i as u8; 32]),
                )
                .expect("cosigner")
            })
            .collect()
    })[i]
}

/// A witness window `start < deadline`: small ones, and anywhere in the `u64` range.
pub fn window() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        3 => (0u64..1000, 1u64..100).prop_map(|(s, len)| (s, s + len)),
        1 => (any::<u64>(), any::<u64>())
            .prop_filter_map("empty window", |(a, b)| (a != b).then(|| (a.min(b), a.max(b)))),
        1 => Just((u64::MAX - 1, u64::MAX)),
    ]
}

/// The terms for fixed log `log`: a window, and 0 to [`MAX_COSIGNERS`] cosigners (repeats
/// allowed: the decoder does not forbid them) with a valid threshold.
pub fn witness_terms(log: usize) -> impl Strategy<Value = WitnessTerms> {
    (
        window(),
        prop_oneof![
            3 => Just(Vec::new()),
            2 => prop::collection::vec(0..WITNESS_LOGS, 1..=3),
            1 => prop::collection::vec(0..WITNESS_LOGS, MAX_COSIGNERS),
        ],
        any::<prop::sample::Index>(),
    )
        .prop_map(move |((start_block, deadline_block), cosigners, t)| {
            let threshold = if cosigners.is_empty() {
                0
            } else {
                1 + t.index(cosigners.len()) as u8
            };
            WitnessTerms {
                log: witness_vkey(log),
                cosigners: cosigners
                    .into_iter()
                    .map(|c| cosigner(c).verifier().vkey())
                    .collect(),
                threshold,
                start_block,
                deadline_block,
            }
        })
}

/// 1 to [`MAX_WITNESSES`] distinct fixed logs, mostly few.
fn logs() -> impl Strategy<Value = Vec<usize>> {
    let all = (0..WITNESS_LOGS).collect::<Vec<_>>();
    prop_oneof![
        4 => prop::sample::subsequence(all.clone(), 1..=2),
        1 => prop::sample::subsequence(all, 1..=MAX_WITNESSES),
    ]
    .prop_shuffle()
}

/// A witness condition: any hash, 1 to [`MAX_WITNESSES`] distinct fixed logs with their terms.
pub fn witness_condition() -> impl Strategy<Value = WitnessCondition> {
    (any::<[u8; 32]>(), logs())
        .prop_flat_map(|(hash, logs)| {
            logs.into_iter()
                .map(witness_terms)
                .collect::<Vec<_>>()
                .prop_map(move |witnesses| WitnessCondition { hash, witnesses })
        })
        .boxed()
}

/// A witness condition an invoice can carry: distinct logs, each with distinct cosigners (the
/// invoice reader refuses a cosigner listed twice).
pub fn invoice_condition() -> impl Strategy<Value = WitnessCondition> {
    witness_condition().prop_map(|mut condition| {
        for terms in &mut condition.witnesses {
            let mut distinct: Vec<String> = Vec::new();
            for c in terms.cosigners.drain(..) {
                if !distinct.contains(&c) {
                    distinct.push(c);
                }
            }
            terms.threshold = terms.threshold.min(distinct.len() as u8);
            terms.cosigners = distinct;
        }
        condition
    })
}

/// Any valid invoice.
pub fn invoice() -> impl Strategy<Value = Invoice> {
    (
        0..KEYS,
        asset(),
        amount().prop_map(|a| Amount::from_minor(a.minor().max(1))),
        invoice_condition(),
        any::<u64>(),
        memo(),
    )
        .prop_map(
            |(payee, asset, amount, condition, expires_at, memo)| Invoice {
                payee: key(payee).public_key(),
                amount,
                asset,
                condition,
                expires_at,
                memo,
            },
        )
        .boxed()
}

/// Either condition: holder accepts, or a witness commit.
pub fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        1 => Just(Condition::HolderAccepts),
        1 => witness_condition().prop_map(Condition::WitnessCommit),
    ]
}

/// A conditional IOU (either condition) and the index of its signer.
pub fn conditional_iou() -> impl Strategy<Value = (usize, ConditionalIou)> {
    (
        line(),
        id(),
        amount().prop_map(|a| Amount::from_minor(a.minor().max(1))),
        condition(),
        any::<[u8; 32]>(),
        any::<u64>(),
        memo(),
    )
        .prop_map(
            |((i, _, line), id, amount, condition, payment_id, expires_at, memo)| {
                (
                    i,
                    ConditionalIou {
                        line,
                        id,
                        amount,
                        condition,
                        payment_id,
                        expires_at,
                        memo,
                    },
                )
            },
        )
        .boxed()
}

/// A routed conditional IOU (always a witness condition) and the index of its signer.
pub fn routed_iou() -> impl Strategy<Value = (usize, ConditionalIou)> {
    (conditional_iou(), witness_condition())
        .prop_map(|((i, mut body), condition)| {
            body.condition = Condition::WitnessCommit(condition);
            (i, body)
        })
        .boxed()
}

/// Forwarding instructions: up to [`MAX_HOPS`] hops to fixed keys with non-zero amounts.
pub fn onward() -> impl Strategy<Value = Onward> {
    fn hop() -> impl Strategy<Value = Hop> {
        (0..KEYS, amount()).prop_map(|(k, a)| Hop {
            next: key(k).public_key(),
            amount: Amount::from_minor(a.minor().max(1)),
        })
    }
    (
        prop_oneof![
            4 => prop::collection::vec(hop(), 0..=3),
            1 => prop::collection::vec(hop(), 0..=MAX_HOPS),
        ],
        any::<bool>(),
    )
        .prop_map(|(hops, payer_publishes)| Onward {
            hops,
            payer_publishes,
        })
        .boxed()
}

/// A proof as a decoder accepts it (the bundle is not checked): any secret, a fixed log's key
/// or any text up to [`MAX_VKEY_LEN`] bytes, a short or a maximal bundle of any bytes.
pub fn witness_proof() -> impl Strategy<Value = WitnessProof> {
    (
        any::<[u8; 32]>(),
        prop_oneof![
            3 => (0..WITNESS_LOGS).prop_map(witness_vkey),
            1 => ".{0,64}",
            1 => Just("x".repeat(MAX_VKEY_LEN)),
        ],
        prop_oneof![
            5 => prop::collection::vec(any::<u8>(), 0..96),
            1 => Just(vec![0xab; MAX_BUNDLE_LEN]),
        ],
    )
        .prop_map(|(p, log, bundle)| WitnessProof { p, log, bundle })
        .boxed()
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
        ReleaseReason::CannotForward,
        ReleaseReason::FeeTooLow,
        ReleaseReason::UnknownPayment,
        ReleaseReason::PaymentFailed,
        ReleaseReason::WitnessUnavailable,
        ReleaseReason::WitnessNotAccepted,
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
        (routed_iou(), onward())
            .prop_map(|((k, b), onward)| Message::Forward(Signed::sign(b, key(k)), onward)),
        (any::<[u8; 32]>(), witness_proof())
            .prop_map(|(hash, proof)| Message::Proof { hash, proof }),
        routed_iou().prop_map(|(k, b)| Message::Issued(Signed::sign(b, key(k)))),
    ]
    .boxed()
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

/// The encoding of a witness condition on its own (what `routed::decode_condition` reads), cut
/// out of a conditional IOU that carries it.
pub fn condition_bytes(condition: &WitnessCondition) -> Vec<u8> {
    let body = ConditionalIou {
        line: LineId {
            issuer: key(0).public_key(),
            holder: key(1).public_key(),
            asset: usd(),
        },
        id: 0,
        amount: Amount::from_minor(1),
        condition: Condition::WitnessCommit(condition.clone()),
        payment_id: [0; 32],
        expires_at: 0,
        memo: String::new(),
    };
    let bytes = reencode(&body);
    // Version, kind, issuer, holder, asset (`03 555344 02`), id, amount, condition tag...
    let start = 2 + 32 + 32 + 5 + 8 + 8 + 1;
    // ...and after the condition: payment id, expires at, memo length (no memo bytes).
    let end = bytes.len() - (32 + 8 + 4);
    bytes[start..end].to_vec()
}

/// The encoding of forwarding instructions on their own.
pub fn onward_bytes(onward: &Onward) -> Vec<u8> {
    let mut w = Writer::new();
    onward.encode(&mut w);
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
    pub settlements: BTreeMap<[u8; 32], atomicity_core::SettlementRecord>,
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
                StoreOp::PutSettlement(r) => {
                    self.settlements.insert(r.id, (**r).clone());
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
            settlements: self.settlements.values().cloned().collect(),
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
