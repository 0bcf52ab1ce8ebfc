//! Random op sequences give the same results on [`SqliteStore`] and [`MemoryStore`].
#![allow(missing_docs)]

mod common;

use std::sync::LazyLock;

use atomicity_core::{
    Amount, Asset, ConditionalRecord, Direction, EvidenceRecord, Limits, LineRecord, PaymentRecord,
    PaymentStatus, PeerRecord, PublicKey, StoreOp,
};
use atomicity_store::{MemoryStore, SqliteStore, Store, StoreError};
use common::{entry_key, key, sorted};
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
    )
        .prop_map(
            |(peer, asset, accept, issue, next_id, out_state, in_state)| {
                StoreOp::PutLine(LineRecord {
                    peer,
                    asset,
                    limits: Limits {
                        accept: Amount::from_minor(accept),
                        issue: Amount::from_minor(issue),
                    },
                    next_id,
                    out_state,
                    in_state,
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
    )
        .prop_map(|(peer, asset, dir, id, iou, answer)| {
            StoreOp::PutConditional(ConditionalRecord {
                peer,
                asset,
                dir,
                id,
                iou,
                answer,
            })
        });
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
    prop_oneof![
        3 => peer,
        4 => line,
        4 => conditional,
        3 => delete,
        3 => payment,
        1 => evidence,
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
        }
        // And the file still says the same after a reopen.
        drop(sqlite);
        let mut reopened = SqliteStore::open(&dir.path().join("atomicity.db")).expect("reopen");
        prop_assert_eq!(
            sorted(reopened.load().expect("reopened load")),
            sorted(memory.load().expect("memory load"))
        );
    }
}
