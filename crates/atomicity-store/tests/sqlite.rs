//! Behaviour specific to [`SqliteStore`]: durability across reopen, migrations, corruption.
#![allow(missing_docs)]

mod common;

use atomicity_core::{Direction, PaymentStatus, StoreOp};
use atomicity_store::{SCHEMA_VERSION, SqliteStore, Store, StoreError};
use common::*;
use rusqlite::Connection;

fn all_kinds_of_ops() -> Vec<StoreOp> {
    let (a, b) = (key(1), key(2));
    let gone = conditional(&a, &usd(), Direction::In, 9, Some(vec![4]));
    vec![
        StoreOp::PutPeer(peer(&a, Some("https://a.example"))),
        StoreOp::PutPeer(peer(&b, None)),
        StoreOp::PutLine(line(&a, &usd(), 500, 2)),
        StoreOp::PutLine(line(&b, &btc(), 7, 0)),
        StoreOp::PutConditional(conditional(&a, &usd(), Direction::Out, 1, None)),
        StoreOp::PutConditional(conditional(&b, &btc(), Direction::In, 0, Some(vec![3]))),
        StoreOp::PutConditional(gone.clone()),
        delete(&gone),
        StoreOp::PutPayment(payment(1, Direction::Out, &a, PaymentStatus::Pending, 1, 1)),
        StoreOp::PutPayment(payment(
            2,
            Direction::In,
            &b,
            PaymentStatus::Completed,
            2,
            3,
        )),
        StoreOp::PutEvidence(evidence(&b, "equivocation", 4)),
    ]
}

#[test]
fn reopen_returns_what_was_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atomicity.db");
    let (snapshot, history, evidence) = {
        let mut store = SqliteStore::open(&path).expect("open");
        store.commit(&all_kinds_of_ops()).expect("commit");
        // A failed commit after it must not disturb what was committed.
        let bad = vec![StoreOp::PutLine(line(&key(5), &usd(), 1, 0))];
        assert!(store.commit(&bad).is_err());
        (
            sorted(store.load().expect("load")),
            store.history(100).expect("history"),
            store.evidence().expect("evidence"),
        )
    };
    assert_eq!(snapshot.peers.len(), 2);
    assert_eq!(snapshot.conditionals.len(), 2);
    assert_eq!(snapshot.pending_payments.len(), 1);
    let mut store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(sorted(store.load().expect("load")), snapshot);
    assert_eq!(store.history(100).expect("history"), history);
    assert_eq!(store.evidence().expect("evidence"), evidence);
}

#[test]
fn committed_data_is_visible_to_another_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atomicity.db");
    let mut store = SqliteStore::open(&path).expect("open");
    store.commit(&all_kinds_of_ops()).expect("commit");
    // Without closing the store: what commit returned for is in the database.
    let other = Connection::open(&path).expect("second connection");
    let peers: i64 = other
        .query_row("SELECT count(*) FROM peers", [], |r| r.get(0))
        .expect("count");
    assert_eq!(peers, 2);
    let mut second = SqliteStore::open(&path).expect("second store");
    assert_eq!(
        sorted(second.load().expect("load")),
        sorted(store.load().expect("load"))
    );
}

#[test]
fn reopen_keeps_the_schema_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atomicity.db");
    drop(SqliteStore::open(&path).expect("create"));
    drop(SqliteStore::open(&path).expect("reopen"));
    let conn = Connection::open(&path).expect("raw");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A database from a future version of this program.
    let path = dir.path().join("future.db");
    drop(SqliteStore::open(&path).expect("create"));
    Connection::open(&path)
        .expect("raw")
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    match SqliteStore::open(&path) {
        Err(StoreError::NewerSchema { found, supported }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    // A bare file with only a high user_version.
    let path = dir.path().join("bare.db");
    Connection::open(&path)
        .expect("raw")
        .pragma_update(None, "user_version", 99)
        .expect("set");
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::NewerSchema { found: 99, .. })
    ));
}

#[test]
fn foreign_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    let conn = Connection::open(&path).expect("raw");
    conn.pragma_update(None, "application_id", 1234)
        .expect("set");
    conn.execute_batch("CREATE TABLE peers (x); INSERT INTO peers VALUES (1);")
        .expect("other app's table");
    drop(conn);
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::ForeignDatabase {
            application_id: 1234
        })
    ));
    // Untouched: still the other application's data.
    let conn = Connection::open(&path).expect("raw");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM peers", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 1);
}

#[test]
fn corrupt_rows_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atomicity.db");
    let mut store = SqliteStore::open(&path).expect("open");
    store.commit(&all_kinds_of_ops()).expect("commit");
    let raw = Connection::open(&path).expect("raw");

    // An asset code the core does not accept.
    raw.execute(
        "UPDATE payments SET asset_code = 'us-d' WHERE status = 'pending'",
        [],
    )
    .expect("corrupt asset");
    let err = store.load().expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(matches!(store.history(10), Err(StoreError::Corrupt(_))));
    raw.execute("UPDATE payments SET asset_code = 'USD'", [])
        .expect("repair");
    store.load().expect("repaired");

    // 32 bytes that are not a point on the curve.
    let bad_key = (0u8..=255)
        .map(|b| [b; 32])
        .find(|bytes| atomicity_core::PublicKey::try_from(bytes).is_err())
        .expect("some invalid key");
    raw.execute("UPDATE evidence SET peer = ?1", [&bad_key[..]])
        .expect("corrupt key");
    let err = store.evidence().expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");

    // An unknown direction cannot even be written: the schema checks it.
    assert!(
        raw.execute("UPDATE conditionals SET dir = 'sideways'", [])
            .is_err()
    );
}

#[test]
fn open_fails_cleanly_on_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(SqliteStore::open(dir.path()).is_err());
}
