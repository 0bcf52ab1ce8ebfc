//! Random op sequences give the same results on [`SqliteStore`] and [`MemoryStore`].
#![allow(missing_docs)]

mod common;

use std::sync::LazyLock;

use atomicity_core::{
    Amount, Asset, ConditionalRecord, Direction, Evidence, EvidenceRecord, FeePolicy,
    ForwardRecord, HashlockRecord, HashlockRole, HashlockStatus, Limits, LineRecord, PaymentRecord,
    PaymentStatus, PeerRecord, ProofRecord, PublicKey, SettlementRecord, SettlementRequest,
    SettlementRole, SettlementStatus, Signed, StoreOp, settlement::MAX_NOTE_LEN,
};
use atomicity_store::{MemoryStore, SqliteStore, Store, StoreError};
use common::{credit_evidence, entry_key, key, method, settle_request, sorted, swap_request};
use proptest::prelude::*;

static KEYS: LazyLock<Vec<PublicKey>> = LazyLock::new(|| (1..=3).map(key).collect());

fn a_key() -> impl Strategy<Value = PublicKey> {
    (0..KEYS.len()).prop_map(|i| KEYS[i].clone())
}

fn an_asset() -> impl Strategy<Value = Asset> {
    prop_oneof![
        Just(Asset::new("USD", 2).expect("USD")),
        Just(Asset::new("USD", 0).expect("USD:0")),
        Just(Asset::new("BTC", 8).expect("BTC")),
    ]
}

fn a_dir() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Out), Just(Direction::In)]
}

/// Mostly small, sometimes at the edges of `u64`.
fn a_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..4u64,
        1 => Just(u64::MAX),
        1 => Just(1 << 63),
        1 => any::<u64>(),
    ]
}

/// A conditional's id: mostly a few small ones, so that puts and deletes meet.
fn an_id() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0..3u64,
        1 => Just(u64::MAX),
        1 => Just(1 << 63),
    ]
}

/// Mostly storable, sometimes above `i64::MAX` (which must fail the commit in both stores).
fn a_time() -> impl Strategy<Value = u64> {
    prop_oneof![
        20 => 0..5u64,
        2 => Just(i64::MAX as u64),
        1 => Just(u64::MAX),
    ]
}

fn some_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..6)
}

fn some_text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z]{1,3}", ".{0,4}"]
}

fn a_status() -> impl Strategy<Value = PaymentStatus> {
    prop_oneof![
        Just(PaymentStatus::Pending),
        Just(PaymentStatus::Completed),
        some_text().prop_map(PaymentStatus::Failed),
    ]
}

/// A fee policy's ppm: mostly none, sometimes at the edge of `u32`.
fn a_ppm() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0..3u32,
        1 => Just(u32::MAX),
        1 => any::<u32>(),
    ]
}

/// A payment hash from a small pool, so that puts meet.
/// Payment hash number `n`: the hash of the secret `[n; 32]`.
fn the_hash(n: u8) -> [u8; 32] {
    atomicity_core::payment_hash(&[n; 32])
}

fn a_hash() -> impl Strategy<Value = [u8; 32]> {
    (0..4u8).prop_map(the_hash)
}

/// A proof's bytes: often one of a few that start with the secret of [`the_hash`]`(n)`, as a
/// real proof's encoding does, so that rows share proofs with the proofs table.
fn a_proof() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        some_bytes(),
        (0..4u8, 0..2u8).prop_map(|(n, v)| [&[n; 32][..], &[v]].concat()),
    ]
}

fn a_hashlock_status() -> impl Strategy<Value = HashlockStatus> {
    prop_oneof![
        Just(HashlockStatus::Open),
        Just(HashlockStatus::Publishing),
        Just(HashlockStatus::Done),
        Just(HashlockStatus::Failed),
    ]
}

fn a_hashlock_role() -> impl Strategy<Value = HashlockRole> {
    prop_oneof![
        Just(HashlockRole::Payee),
        Just(HashlockRole::Payer),
        Just(HashlockRole::Swap),
    ]
}

fn a_hashlock() -> impl Strategy<Value = HashlockRecord> {
    (
        (
            a_hash(),
            any::<[u8; 32]>(),
            a_hashlock_role(),
            a_key(),
            an_asset(),
        ),
        (
            a_u64(),
            some_bytes(),
            a_u64(),
            some_text(),
            a_hashlock_status(),
        ),
        (
            proptest::option::of(a_proof()),
            proptest::collection::vec(some_bytes(), 0..3),
            a_time(),
            a_time(),
        ),
    )
        .prop_map(
            |(
                (hash, p, role, payee, asset),
                (amount, condition, expires_at, memo, status),
                (proof, issued, created_at, updated_at),
            )| HashlockRecord {
                hash,
                p,
                role,
                payee,
                asset,
                amount: Amount::from_minor(amount),
                condition,
                expires_at,
                memo,
                status,
                proof,
                issued,
                created_at,
                updated_at,
            },
        )
}

/// Signed requests for settlement ids `[0; 32]` to `[3; 32]`: a settle and a swap request each.
static REQUESTS: LazyLock<Vec<Signed<SettlementRequest>>> = LazyLock::new(|| {
    (0..4u8)
        .flat_map(|n| [settle_request(n), swap_request(n)])
        .collect()
});

/// Credit evidence for settlement `[0; 32]` (signed once).
static CREDIT: LazyLock<Evidence> = LazyLock::new(|| credit_evidence(0));

fn a_settlement_status() -> impl Strategy<Value = SettlementStatus> {
    prop_oneof![
        Just(SettlementStatus::Requested),
        Just(SettlementStatus::Paying),
        Just(SettlementStatus::Paid),
        Just(SettlementStatus::Done),
        Just(SettlementStatus::Refused),
        Just(SettlementStatus::Failed),
    ]
}

/// Mostly storable, sometimes a reference too long to decode (which must fail the commit in
/// both stores).
fn some_evidence() -> impl Strategy<Value = Option<Evidence>> {
    prop_oneof![
        3 => Just(None),
        2 => any::<[u8; 32]>().prop_map(|p| Some(Evidence::Preimage(p))),
        2 => some_text().prop_map(|t| Some(Evidence::Reference(t))),
        1 => Just(Some(Evidence::Reference("r".repeat(MAX_NOTE_LEN + 1)))),
        2 => Just(Some(CREDIT.clone())),
    ]
}

/// A settlement with an id from a small pool, so that puts meet; sometimes its request is for
/// another id (which must fail the commit in both stores).
fn a_settlement() -> impl Strategy<Value = SettlementRecord> {
    (
        (0..4u8, prop_oneof![8 => Just(0u8), 1 => 1..4u8], 0..2usize),
        (any::<bool>(), a_key(), a_settlement_status()),
        (
            proptest::option::of(prop_oneof![
                Just("usd-atomicity-key"),
                Just("btc-lightning-bolt11"),
            ]),
            some_evidence(),
            some_text(),
            any::<bool>(),
        ),
        (a_time(), a_time()),
    )
        .prop_map(
            |(
                (n, shift, kind),
                (requester, peer, status),
                (via, evidence, note, delivered),
                (created_at, updated_at),
            )| {
                let request = (n + shift) % 4;
                SettlementRecord {
                    id: [n; 32],
                    role: if requester {
                        SettlementRole::Requester
                    } else {
                        SettlementRole::Payer
                    },
                    peer,
                    request: REQUESTS[usize::from(request) * 2 + kind].clone(),
                    status,
                    method: via.map(method),
                    evidence,
                    note,
                    delivered,
                    created_at,
                    updated_at,
                }
            },
        )
}

fn an_op() -> impl Strategy<Value = StoreOp> {
    let peer = (a_key(), proptest::option::of(some_text()))
        .prop_map(|(key, url)| StoreOp::PutPeer(PeerRecord { key, url }));
    let line = (
        a_key(),
        an_asset(),
        a_u64(),
        a_u64(),
        a_u64(),
        proptest::option::of(some_bytes()),
        proptest::option::of(some_bytes()),
        (a_u64(), a_ppm()),
    )
        .prop_map(
            |(peer, asset, accept, issue, next_id, out_state, in_state, (base, ppm))| {
                StoreOp::PutLine(LineRecord {
                    peer,
                    asset,
                    limits: Limits {
                        accept: Amount::from_minor(accept),
                        issue: Amount::from_minor(issue),
                    },
                    fees: FeePolicy {
                        base: Amount::from_minor(base),
                        ppm,
                    },
                    next_id,
                    out_state: out_state.map(Into::into),
                    in_state: in_state.map(Into::into),
                })
            },
        );
    let conditional = (
        a_key(),
        an_asset(),
        a_dir(),
        an_id(),
        some_bytes(),
        proptest::option::of(some_bytes()),
        (
            proptest::option::of(some_bytes()),
            proptest::option::of(a_proof()),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(peer, asset, dir, id, iou, answer, (onward, proof, claimed))| {
                StoreOp::PutConditional(ConditionalRecord {
                    peer,
                    asset,
                    dir,
                    id,
                    iou: iou.into(),
                    answer: answer.map(Into::into),
                    onward,
                    proof,
                    claimed,
                })
            },
        );
    let delete = (a_key(), an_asset(), a_dir(), an_id()).prop_map(|(peer, asset, dir, id)| {
        StoreOp::DeleteConditional {
            peer,
            asset,
            dir,
            id,
        }
    });
    let payment = (
        (0..4u8, a_dir(), a_key(), an_asset(), a_u64()),
        (a_status(), some_text(), a_time(), a_time()),
    )
        .prop_map(
            |((id, dir, peer, asset, amount), (status, memo, created_at, updated_at))| {
                StoreOp::PutPayment(PaymentRecord {
                    entry: entry_key(id, dir),
                    payment_id: [id; 32],
                    dir,
                    peer,
                    asset,
                    amount: Amount::from_minor(amount),
                    status,
                    memo,
                    created_at,
                    updated_at,
                })
            },
        );
    let evidence =
        (a_key(), some_text(), some_bytes(), a_time()).prop_map(|(peer, what, received, at)| {
            StoreOp::PutEvidence(EvidenceRecord {
                peer,
                what,
                received,
                at,
            })
        });
    let forward = (an_asset(), a_key(), an_id(), a_key(), an_id()).prop_map(
        |(asset, in_peer, in_id, out_peer, out_id)| {
            StoreOp::PutForward(ForwardRecord {
                asset,
                in_peer,
                in_id,
                out_peer,
                out_id,
            })
        },
    );
    let delete_forward =
        (an_asset(), a_key(), an_id()).prop_map(|(asset, in_peer, in_id)| StoreOp::DeleteForward {
            asset,
            in_peer,
            in_id,
        });
    let hashlock = a_hashlock().prop_map(StoreOp::PutHashlock);
    let settlement = a_settlement().prop_map(|s| StoreOp::PutSettlement(Box::new(s)));
    let proof = (a_hash(), a_proof(), a_time())
        .prop_map(|(hash, proof, at)| StoreOp::PutProof(ProofRecord { hash, proof, at }));
    prop_oneof![
        3 => peer,
        4 => line,
        4 => conditional,
        3 => delete,
        3 => payment,
        1 => evidence,
        2 => forward,
        2 => delete_forward,
        3 => hashlock,
        3 => settlement,
        3 => proof,
    ]
}

/// A first batch that stores every peer and some of the lines, so that later batches mostly
/// succeed and build up state (random batches alone often leave references dangling).
fn a_prelude() -> impl Strategy<Value = Vec<StoreOp>> {
    proptest::collection::vec((any::<bool>(), an_asset()), KEYS.len()).prop_map(|choices| {
        let mut ops: Vec<StoreOp> = KEYS
            .iter()
            .map(|key| {
                StoreOp::PutPeer(PeerRecord {
                    key: key.clone(),
                    url: None,
                })
            })
            .collect();
        for (key, (with_line, asset)) in KEYS.iter().zip(choices) {
            if with_line {
                ops.push(StoreOp::PutLine(LineRecord {
                    peer: key.clone(),
                    asset,
                    limits: Limits::default(),
                    fees: FeePolicy::default(),
                    next_id: 0,
                    out_state: None,
                    in_state: None,
                }));
            }
        }
        ops
    })
}

/// What kind of error a commit gave, comparable across stores.
fn outcome(result: Result<(), StoreError>) -> Result<(), String> {
    result.map_err(|e| match e {
        StoreError::OutOfRange { field, value } => format!("out of range {field} {value}"),
        StoreError::Dangling(_) => "dangling".to_string(),
        StoreError::Unstorable { field, .. } => format!("unstorable {field}"),
        other => panic!("unexpected error {other:?}"),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_and_memory_agree(
        prelude in a_prelude(),
        batches in proptest::collection::vec(proptest::collection::vec(an_op(), 0..12), 1..8),
        limit in 0..6usize,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sqlite = SqliteStore::open(&dir.path().join("atomicity.db")).expect("open");
        let mut memory = MemoryStore::new();
        for ops in std::iter::once(&prelude).chain(&batches) {
            let got = outcome(sqlite.commit(ops));
            let want = outcome(memory.commit(ops));
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(
                sorted(sqlite.load().expect("sqlite load")),
                sorted(memory.load().expect("memory load"))
            );
            prop_assert_eq!(
                sqlite.history(usize::MAX).expect("sqlite history"),
                memory.history(usize::MAX).expect("memory history")
            );
            prop_assert_eq!(
                sqlite.history(limit).expect("sqlite history"),
                memory.history(limit).expect("memory history")
            );
            prop_assert_eq!(
                sqlite.evidence().expect("sqlite evidence"),
                memory.evidence().expect("memory evidence")
            );
            prop_assert_eq!(
                sqlite.hashlocks(usize::MAX).expect("sqlite hashlocks"),
                memory.hashlocks(usize::MAX).expect("memory hashlocks")
            );
            prop_assert_eq!(
                sqlite.hashlocks(limit).expect("sqlite hashlocks"),
                memory.hashlocks(limit).expect("memory hashlocks")
            );
            prop_assert_eq!(
                sqlite.settlements(usize::MAX).expect("sqlite settlements"),
                memory.settlements(usize::MAX).expect("memory settlements")
            );
            prop_assert_eq!(
                sqlite.settlements(limit).expect("sqlite settlements"),
                memory.settlements(limit).expect("memory settlements")
            );
            for n in 0..5u8 {
                prop_assert_eq!(
                    sqlite.hashlock(&the_hash(n)).expect("sqlite hashlock"),
                    memory.hashlock(&the_hash(n)).expect("memory hashlock")
                );
                prop_assert_eq!(
                    sqlite.settlement(&[n; 32]).expect("sqlite settlement"),
                    memory.settlement(&[n; 32]).expect("memory settlement")
                );
                prop_assert_eq!(
                    sqlite.proof(&the_hash(n)).expect("sqlite proof"),
                    memory.proof(&the_hash(n)).expect("memory proof")
                );
            }
        }
        // And the file still says the same after a reopen.
        drop(sqlite);
        let mut reopened = SqliteStore::open(&dir.path().join("atomicity.db")).expect("reopen");
        prop_assert_eq!(
            sorted(reopened.load().expect("reopened load")),
            sorted(memory.load().expect("memory load"))
        );
        prop_assert_eq!(
            reopened.hashlocks(usize::MAX).expect("reopened hashlocks"),
            memory.hashlocks(usize::MAX).expect("memory hashlocks")
        );
        prop_assert_eq!(
            reopened.settlements(usize::MAX).expect("reopened settlements"),
            memory.settlements(usize::MAX).expect("memory settlements")
        );
    }
}
