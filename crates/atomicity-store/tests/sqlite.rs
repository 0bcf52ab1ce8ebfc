//! Behaviour specific to [`SqliteStore`]: durability across reopen, migrations, corruption.
#![allow(missing_docs)]

mod common;

use atomicity_core::{
    Amount, Direction, Evidence, FeePolicy, HashlockRecord, HashlockRole, HashlockStatus,
    PaymentStatus, SettlementStatus, Snapshot, StoreOp,
};
use atomicity_store::{SCHEMA_VERSION, SqliteStore, Store, StoreError};
use common::*;
use rusqlite::Connection;

fn all_kinds_of_ops() -> Vec<StoreOp> {
    let (a, b) = (key(1), key(2));
    let gone = conditional(&a, &usd(), Direction::In, 9, Some(vec![4]));
    let mut with_fees = line(&a, &usd(), 500, 2);
    with_fees.fees = FeePolicy {
        base: Amount::from_minor(3),
        ppm: 250,
    };
    let mut routed = conditional(&a, &usd(), Direction::Out, 1, None);
    routed.onward = Some(vec![1, 1]);
    routed.proof = Some(vec![2, 2]);
    routed.claimed = true;
    let gone_link = forward(&b, 5, &a, 6);
    let mut issued = hashlock(2, HashlockStatus::Publishing, 3, 4);
    issued.issued = vec![vec![1], Vec::new(), vec![2, 3]];
    vec![
        StoreOp::PutPeer(peer(&a, Some("https://a.example"))),
        StoreOp::PutPeer(peer(&b, None)),
        StoreOp::PutLine(with_fees),
        StoreOp::PutLine(line(&b, &btc(), 7, 0)),
        StoreOp::PutConditional(routed),
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
        StoreOp::PutForward(forward(&a, 1, &b, 0)),
        StoreOp::PutForward(gone_link.clone()),
        delete_forward(&gone_link),
        StoreOp::PutHashlock(hashlock(1, HashlockStatus::Open, 1, 1)),
        StoreOp::PutHashlock(issued),
        StoreOp::PutHashlock(hashlock(3, HashlockStatus::Done, 2, 5)),
        StoreOp::PutHashlock(swap_hashlock(4, HashlockStatus::Open, 6)),
        StoreOp::PutProof(proof(3, 5)),
        StoreOp::PutSettlement(Box::new(settlement(1, SettlementStatus::Requested, 1, 1))),
        StoreOp::PutSettlement(Box::new(paid_settlement(
            2,
            "usd-atomicity-key",
            credit_evidence(2),
            2,
            3,
        ))),
        StoreOp::PutSettlement(Box::new(swap_settlement(3, 3, 4))),
        StoreOp::PutSettlement(Box::new(paid_settlement(
            4,
            "usd-manual-note",
            Evidence::Reference("txid 00ff".into()),
            4,
            4,
        ))),
    ]
}

#[test]
fn reopen_returns_what_was_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atomicity.db");
    let (snapshot, history, evidence, hashlocks, settlements) = {
        let mut store = SqliteStore::open(&path).expect("open");
        store.commit(&all_kinds_of_ops()).expect("commit");
        // A failed commit after it must not disturb what was committed.
        let bad = vec![StoreOp::PutLine(line(&key(5), &usd(), 1, 0))];
        assert!(store.commit(&bad).is_err());
        (
            sorted(store.load().expect("load")),
            store.history(100).expect("history"),
            store.evidence().expect("evidence"),
            store.hashlocks(100).expect("hashlocks"),
            store.settlements(100).expect("settlements"),
        )
    };
    assert_eq!(snapshot.peers.len(), 2);
    assert_eq!(snapshot.conditionals.len(), 2);
    assert_eq!(snapshot.pending_payments.len(), 1);
    assert_eq!(snapshot.forwards.len(), 1);
    assert_eq!(snapshot.hashlocks.len(), 3);
    assert_eq!(hashlocks.len(), 4);
    assert_eq!(snapshot.settlements.len(), 4);
    assert_eq!(settlements.len(), 4);
    let mut store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(sorted(store.load().expect("load")), snapshot);
    assert_eq!(store.history(100).expect("history"), history);
    assert_eq!(store.evidence().expect("evidence"), evidence);
    assert_eq!(store.hashlocks(100).expect("hashlocks"), hashlocks);
    assert_eq!(store.settlements(100).expect("settlements"), settlements);
    assert_eq!(
        store.settlement(&[3; 32]).expect("settlement"),
        Some(swap_settlement(3, 3, 4))
    );
    assert_eq!(store.proof(&[3; 32]).expect("proof"), Some(proof(3, 5)));
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
    // Nor can an unknown hashlock role or status, a `claimed` other than 0/1, or a ppm
    // outside `u32`.
    assert!(
        raw.execute("UPDATE hashlocks SET role = 'bystander'", [])
            .is_err()
    );
    assert!(
        raw.execute("UPDATE hashlocks SET status = 'paid?'", [])
            .is_err()
    );
    assert!(
        raw.execute("UPDATE conditionals SET claimed = 2", [])
            .is_err()
    );
    assert!(
        raw.execute("UPDATE lines SET fee_ppm = 4294967296", [])
            .is_err()
    );

    // An `issued` list whose last item is cut short.
    raw.execute(
        "UPDATE hashlocks SET issued = X'0000000201' WHERE status = 'open'",
        [],
    )
    .expect("corrupt issued");
    let err = store.load().expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(matches!(store.hashlocks(10), Err(StoreError::Corrupt(_))));
    assert!(matches!(
        store.hashlock(&[1; 32]),
        Err(StoreError::Corrupt(_))
    ));
    raw.execute("UPDATE hashlocks SET issued = X''", [])
        .expect("repair");
    store.load().expect("repaired");

    // A finished hashlock is not loaded, so only the user's view sees its corruption.
    raw.execute(
        "UPDATE hashlocks SET payee = ?1 WHERE status = 'paid'",
        [&bad_key[..]],
    )
    .expect("corrupt payee");
    store.load().expect("finished hashlocks are not loaded");
    assert!(matches!(store.hashlocks(10), Err(StoreError::Corrupt(_))));
    assert!(matches!(
        store.hashlock(&[3; 32]),
        Err(StoreError::Corrupt(_))
    ));
    assert!(store.hashlock(&[1; 32]).expect("intact").is_some());
    // A secret of the wrong length cannot be written.
    raw.execute("UPDATE hashlocks SET p = X'00' WHERE status = 'paid'", [])
        .expect_err("the schema checks the secret's length");
    raw.execute("UPDATE hashlocks SET payee = ?1", [&key(1).as_bytes()[..]])
        .expect("repair");
    store.hashlocks(10).expect("repaired");
}

#[test]
fn corrupt_settlement_rows_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atomicity.db");
    let mut store = SqliteStore::open(&path).expect("open");
    store.commit(&all_kinds_of_ops()).expect("commit");
    let raw = Connection::open(&path).expect("raw");
    let id = [2u8; 32];
    let good: Vec<u8> = raw
        .query_row(
            "SELECT request FROM settlements WHERE id = ?1",
            [&id[..]],
            |r| r.get(0),
        )
        .expect("stored request");
    assert_eq!(good, settle_request(2).to_bytes());

    // What the schema refuses: an unknown status or role, `delivered` other than 0/1, an id or
    // peer of the wrong length, a negative timestamp.
    for bad in [
        "UPDATE settlements SET status = 'settled'",
        "UPDATE settlements SET role = 'bystander'",
        "UPDATE settlements SET delivered = 2",
        "UPDATE settlements SET id = X'02'",
        "UPDATE settlements SET peer = X'02'",
        "UPDATE settlements SET created_at = -1",
        "UPDATE settlements SET note = NULL",
        "UPDATE settlements SET request = NULL",
    ] {
        assert!(raw.execute(bad, []).is_err(), "{bad}");
    }

    // What only decoding catches: each is reported by load, settlements and settlement(id) as
    // corruption, and repaired before the next.
    let bad_key = (0u8..=255)
        .map(|b| [b; 32])
        .find(|bytes| atomicity_core::PublicKey::try_from(bytes).is_err())
        .expect("some invalid key");
    let corruptions: Vec<(&str, Vec<u8>)> = vec![
        // Not a signed request.
        (
            "UPDATE settlements SET request = ?2 WHERE id = ?1",
            vec![1, 2, 3],
        ),
        // A valid request, for another settlement.
        (
            "UPDATE settlements SET request = ?2 WHERE id = ?1",
            settle_request(1).to_bytes(),
        ),
        // Evidence that does not decode.
        (
            "UPDATE settlements SET evidence = ?2 WHERE id = ?1",
            vec![9, 9],
        ),
        // Evidence with trailing bytes.
        (
            "UPDATE settlements SET evidence = ?2 WHERE id = ?1",
            [Evidence::Preimage([1; 32]).to_bytes(), vec![0]].concat(),
        ),
        // Not a public key.
        (
            "UPDATE settlements SET peer = ?2 WHERE id = ?1",
            bad_key.to_vec(),
        ),
        // Not an endpoint id.
        (
            "UPDATE settlements SET method = CAST(?2 AS TEXT) WHERE id = ?1",
            b"Lightning".to_vec(),
        ),
    ];
    let before = store.settlement(&id).expect("intact");
    for (sql, value) in corruptions {
        raw.execute(sql, rusqlite::params![&id[..], value])
            .expect(sql);
        let err = store.load().expect_err(sql);
        assert!(matches!(err, StoreError::Corrupt(_)), "{sql}: {err:?}");
        assert!(
            matches!(store.settlements(10), Err(StoreError::Corrupt(_))),
            "{sql}"
        );
        assert!(
            matches!(store.settlement(&id), Err(StoreError::Corrupt(_))),
            "{sql}"
        );
        // The other rows still read.
        assert!(store.settlement(&[1; 32]).expect("intact").is_some());
        store
            .commit(&[StoreOp::PutSettlement(Box::new(
                before.clone().expect("stored"),
            ))])
            .expect("repair");
        assert_eq!(store.settlement(&id).expect("repaired"), before);
    }
    store.load().expect("repaired");
}

/// The schema of version 1 exactly as it shipped (migration 1), frozen here so that this test
/// keeps checking the upgrade from a real version-1 file even if the code changes.
const SCHEMA_V1: &str = "
    PRAGMA application_id = 1096044365;

    CREATE TABLE peers (
        key BLOB NOT NULL PRIMARY KEY CHECK (length(key) = 32),
        url TEXT
    ) STRICT;

    CREATE TABLE lines (
        peer        BLOB    NOT NULL REFERENCES peers (key) DEFERRABLE INITIALLY DEFERRED,
        asset_code  TEXT    NOT NULL,
        asset_scale INTEGER NOT NULL,
        accept      INTEGER NOT NULL,
        issue       INTEGER NOT NULL,
        next_id     INTEGER NOT NULL,
        out_state   BLOB,
        in_state    BLOB,
        PRIMARY KEY (peer, asset_code, asset_scale)
    ) STRICT;

    CREATE TABLE conditionals (
        peer        BLOB    NOT NULL,
        asset_code  TEXT    NOT NULL,
        asset_scale INTEGER NOT NULL,
        dir         TEXT    NOT NULL CHECK (dir IN ('out', 'in')),
        id          INTEGER NOT NULL,
        iou         BLOB    NOT NULL,
        answer      BLOB,
        PRIMARY KEY (peer, asset_code, asset_scale, dir, id),
        FOREIGN KEY (peer, asset_code, asset_scale)
            REFERENCES lines (peer, asset_code, asset_scale) DEFERRABLE INITIALLY DEFERRED
    ) STRICT;

    CREATE TABLE payments (
        entry       BLOB    NOT NULL CHECK (length(entry) = 32) PRIMARY KEY,
        payment_id  BLOB    NOT NULL CHECK (length(payment_id) = 32),
        dir         TEXT    NOT NULL CHECK (dir IN ('out', 'in')),
        peer        BLOB    NOT NULL CHECK (length(peer) = 32),
        asset_code  TEXT    NOT NULL,
        asset_scale INTEGER NOT NULL,
        amount      INTEGER NOT NULL,
        status      TEXT    NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
        failure     TEXT    CHECK ((status = 'failed') = (failure IS NOT NULL)),
        memo        TEXT    NOT NULL,
        created_at  INTEGER NOT NULL CHECK (created_at >= 0),
        updated_at  INTEGER NOT NULL CHECK (updated_at >= 0)
    ) STRICT;

    CREATE INDEX payments_newest
        ON payments (updated_at DESC, created_at DESC, entry);
    CREATE INDEX payments_pending
        ON payments (entry) WHERE status = 'pending';

    CREATE TABLE evidence (
        id       INTEGER PRIMARY KEY,
        peer     BLOB    NOT NULL CHECK (length(peer) = 32),
        what     TEXT    NOT NULL,
        received BLOB    NOT NULL,
        at       INTEGER NOT NULL CHECK (at >= 0)
    ) STRICT;

    PRAGMA user_version = 1;
";

#[test]
fn version_1_database_is_migrated_and_keeps_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v1.db");
    let (a, b) = (key(1), key(2));
    // What version 1 of the program wrote: one row in every table, in WAL mode as it opened it.
    {
        let conn = Connection::open(&path).expect("raw");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.execute_batch(SCHEMA_V1).expect("v1 schema");
        conn.execute(
            "INSERT INTO peers VALUES (?1, 'https://a.example'), (?2, NULL)",
            [&a.as_bytes()[..], &b.as_bytes()[..]],
        )
        .expect("peers");
        conn.execute(
            "INSERT INTO lines VALUES (?1, 'USD', 2, 500, 250, 2, X'01020302', NULL)",
            [&a.as_bytes()[..]],
        )
        .expect("line");
        conn.execute(
            "INSERT INTO conditionals VALUES (?1, 'USD', 2, 'out', 1, X'090107', NULL),
                                             (?1, 'USD', 2, 'in', 1, X'090107', X'030101')",
            [&a.as_bytes()[..]],
        )
        .expect("conditionals");
        let p = payment(1, Direction::Out, &a, PaymentStatus::Pending, 10, 10);
        conn.execute(
            "INSERT INTO payments VALUES (?1, ?2, 'out', ?3, 'USD', 2, 1001, 'pending', NULL,
                                          'payment 1', 10, 10)",
            [&p.entry[..], &p.payment_id[..], &a.as_bytes()[..]],
        )
        .expect("payment");
        conn.execute(
            "INSERT INTO evidence (peer, what, received, at)
             VALUES (?1, 'equivocation', CAST('equivocation' AS BLOB), 42)",
            [&b.as_bytes()[..]],
        )
        .expect("evidence");
    }

    let mut store = SqliteStore::open(&path).expect("open and migrate");
    let expected = sorted(Snapshot {
        peers: vec![peer(&a, Some("https://a.example")), peer(&b, None)],
        // No fees on lines of version 1; no instructions, proof or claim on their IOUs.
        lines: vec![line(&a, &usd(), 500, 2)],
        conditionals: vec![
            conditional(&a, &usd(), Direction::Out, 1, None),
            conditional(&a, &usd(), Direction::In, 1, Some(vec![3, 1, 1])),
        ],
        pending_payments: vec![payment(
            1,
            Direction::Out,
            &a,
            PaymentStatus::Pending,
            10,
            10,
        )],
        ..Snapshot::default()
    });
    assert_eq!(sorted(store.load().expect("load")), expected);
    assert_eq!(store.history(10).expect("history").len(), 1);
    assert_eq!(
        store.evidence().expect("evidence"),
        vec![evidence(&b, "equivocation", 42)]
    );
    assert_eq!(store.hashlocks(10).expect("hashlocks"), Vec::new());

    // The new records can be written, and the old rows take the new fields.
    let mut fees = line(&a, &usd(), 500, 3);
    fees.fees = FeePolicy {
        base: Amount::from_minor(1),
        ppm: 100,
    };
    let mut claimed = conditional(&a, &usd(), Direction::Out, 1, None);
    claimed.proof = Some(vec![7]);
    claimed.claimed = true;
    let link = forward(&b, 0, &a, 1);
    let open = hashlock(1, HashlockStatus::Open, 50, 50);
    store
        .commit(&[
            StoreOp::PutLine(fees.clone()),
            StoreOp::PutConditional(claimed.clone()),
            StoreOp::PutForward(link.clone()),
            StoreOp::PutHashlock(open.clone()),
            StoreOp::PutProof(proof(1, 50)),
        ])
        .expect("commit new records");
    drop(store);

    let mut store = SqliteStore::open(&path).expect("reopen");
    let s = sorted(store.load().expect("load"));
    assert_eq!(s.lines, vec![fees]);
    assert_eq!(
        s.conditionals,
        vec![
            claimed,
            conditional(&a, &usd(), Direction::In, 1, Some(vec![3, 1, 1])),
        ]
    );
    assert_eq!(s.forwards, vec![link]);
    assert_eq!(s.hashlocks, vec![open]);
    assert_eq!(store.proof(&[1; 32]).expect("proof"), Some(proof(1, 50)));
    let version: i64 = Connection::open(&path)
        .expect("raw")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 5);
}

/// What migration 2 added, exactly as it shipped, frozen like [`SCHEMA_V1`]: with it, a
/// version-2 file.
const SCHEMA_V2: &str = "
    ALTER TABLE lines ADD COLUMN fee_base INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE lines ADD COLUMN fee_ppm INTEGER NOT NULL DEFAULT 0
        CHECK (fee_ppm BETWEEN 0 AND 4294967295);

    ALTER TABLE conditionals ADD COLUMN onward BLOB;
    ALTER TABLE conditionals ADD COLUMN proof BLOB;
    ALTER TABLE conditionals ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0
        CHECK (claimed IN (0, 1));

    CREATE TABLE forwards (
        in_peer     BLOB    NOT NULL CHECK (length(in_peer) = 32),
        asset_code  TEXT    NOT NULL,
        asset_scale INTEGER NOT NULL,
        in_id       INTEGER NOT NULL,
        out_peer    BLOB    NOT NULL CHECK (length(out_peer) = 32),
        out_id      INTEGER NOT NULL,
        PRIMARY KEY (in_peer, asset_code, asset_scale, in_id)
    ) STRICT;

    CREATE TABLE hashlocks (
        hash        BLOB    NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
        p           BLOB    NOT NULL CHECK (length(p) = 32),
        role        TEXT    NOT NULL CHECK (role IN ('payee', 'payer')),
        payee       BLOB    NOT NULL CHECK (length(payee) = 32),
        asset_code  TEXT    NOT NULL,
        asset_scale INTEGER NOT NULL,
        amount      INTEGER NOT NULL,
        condition   BLOB    NOT NULL,
        expires_at  INTEGER NOT NULL,
        memo        TEXT    NOT NULL,
        status      TEXT    NOT NULL
            CHECK (status IN ('open', 'publishing', 'paid', 'failed')),
        proof       BLOB,
        issued      BLOB    NOT NULL,
        created_at  INTEGER NOT NULL CHECK (created_at >= 0),
        updated_at  INTEGER NOT NULL CHECK (updated_at >= 0)
    ) STRICT;

    CREATE INDEX hashlocks_newest
        ON hashlocks (updated_at DESC, created_at DESC, hash);
    CREATE INDEX hashlocks_unfinished
        ON hashlocks (hash) WHERE status IN ('open', 'publishing');

    CREATE TABLE proofs (
        hash  BLOB    NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
        proof BLOB    NOT NULL,
        at    INTEGER NOT NULL CHECK (at >= 0)
    ) STRICT;

    PRAGMA user_version = 2;
";

/// Writes a hashlock row the way version 2 of the program did.
fn insert_v2_hashlock(conn: &Connection, h: &HashlockRecord, role: &str) {
    conn.execute(
        "INSERT INTO hashlocks VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
                                       ?14, ?15)",
        rusqlite::params![
            &h.hash[..],
            &h.p[..],
            role,
            &h.payee.as_bytes()[..],
            h.asset.code(),
            h.asset.scale(),
            h.amount.minor().cast_signed(),
            h.condition,
            h.expires_at.cast_signed(),
            h.memo,
            h.status.as_str(),
            h.proof,
            // Each item as a 4-byte big-endian length and its bytes.
            h.issued
                .iter()
                .flat_map(|i| {
                    let len = u32::try_from(i.len()).expect("short item");
                    len.to_be_bytes().into_iter().chain(i.iter().copied())
                })
                .collect::<Vec<u8>>(),
            i64::try_from(h.created_at).expect("time"),
            i64::try_from(h.updated_at).expect("time"),
        ],
    )
    .expect("v2 hashlock");
}

#[test]
fn version_2_database_is_migrated_and_keeps_its_hashlocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v2.db");
    let mut open = hashlock(1, HashlockStatus::Open, 10, 11);
    open.issued = vec![vec![1, 2], Vec::new()];
    let mut paid = hashlock(2, HashlockStatus::Done, 12, 13);
    paid.role = HashlockRole::Payer;
    paid.expires_at = u64::MAX;
    paid.amount = Amount::from_minor(u64::MAX);
    {
        let conn = Connection::open(&path).expect("raw");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.execute_batch(SCHEMA_V1).expect("v1 schema");
        conn.execute_batch(SCHEMA_V2).expect("v2 schema");
        insert_v2_hashlock(&conn, &open, "payee");
        insert_v2_hashlock(&conn, &paid, "payer");
        // Version 2 could not store a swap.
        let refused = conn.execute(
            "INSERT INTO hashlocks SELECT ?1, p, 'swap', payee, asset_code, asset_scale, amount,
                    condition, expires_at, memo, status, proof, issued, created_at, updated_at
             FROM hashlocks LIMIT 1",
            [&[3u8; 32][..]],
        );
        assert!(refused.is_err());
    }

    let mut store = SqliteStore::open(&path).expect("open and migrate");
    assert_eq!(
        store.hashlocks(10).expect("hashlocks"),
        vec![paid.clone(), open.clone()]
    );
    assert_eq!(store.load().expect("load").hashlocks, vec![open.clone()]);
    assert_eq!(store.settlements(10).expect("settlements"), Vec::new());

    // The rebuilt table has its indexes back, and nothing of the copy is left.
    let raw = Connection::open(&path).expect("raw");
    let mut names: Vec<String> = raw
        .prepare("SELECT name FROM sqlite_schema WHERE tbl_name IN ('hashlocks', 'hashlocks_new')")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names");
    names.sort();
    assert_eq!(
        names,
        vec![
            "hashlocks",
            "hashlocks_newest",
            "hashlocks_unfinished",
            "sqlite_autoindex_hashlocks_1",
        ]
    );
    // Its constraints are the same, but for the role.
    assert!(
        raw.execute("UPDATE hashlocks SET role = 'bystander'", [])
            .is_err()
    );
    assert!(raw.execute("UPDATE hashlocks SET p = X'00'", []).is_err());
    assert!(
        raw.execute("UPDATE hashlocks SET status = 'paid?'", [])
            .is_err()
    );
    assert!(
        raw.execute("UPDATE hashlocks SET created_at = -1", [])
            .is_err()
    );

    // Swaps and settlements can now be written, and survive a reopen.
    let swap = swap_hashlock(3, HashlockStatus::Open, 20);
    let s = swap_settlement(3, 20, 20);
    store
        .commit(&[
            StoreOp::PutHashlock(swap.clone()),
            StoreOp::PutSettlement(Box::new(s.clone())),
        ])
        .expect("commit new records");
    drop(store);
    let mut store = SqliteStore::open(&path).expect("reopen");
    let loaded = sorted(store.load().expect("load"));
    assert_eq!(loaded.hashlocks, vec![open, swap]);
    assert_eq!(loaded.settlements, vec![s]);
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn open_fails_cleanly_on_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(SqliteStore::open(dir.path()).is_err());
}

/// A conditional's or hashlock's proof that the proofs table keeps is stored there only, and
/// read back whole; a different proof for the same hash keeps its own copy.
#[test]
fn a_proof_is_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("atomicity.db");
    let a = key(1);
    // A proof's encoding starts with its secret; the rest is opaque to the store.
    let secret = [7u8; 32];
    let hash = atomicity_core::payment_hash(&secret);
    let kept = [&secret[..], &[1, 2, 3]].concat();
    let other = [&secret[..], &[9, 9]].concat();
    let mut claimed = conditional(&a, &usd(), Direction::In, 1, Some(vec![3]));
    claimed.proof = Some(kept.clone());
    let mut revealed = conditional(&a, &usd(), Direction::Out, 2, None);
    revealed.proof = Some(other.clone());
    let mut paid = hashlock(4, HashlockStatus::Done, 1, 2);
    paid.hash = hash;
    paid.proof = Some(kept.clone());
    let ops = vec![
        StoreOp::PutPeer(peer(&a, None)),
        StoreOp::PutLine(line(&a, &usd(), 100, 3)),
        StoreOp::PutConditional(claimed.clone()),
        StoreOp::PutConditional(revealed.clone()),
        StoreOp::PutHashlock(paid.clone()),
        // Last in the batch, yet the rows above refer to it.
        StoreOp::PutProof(atomicity_core::ProofRecord {
            hash,
            proof: kept.clone(),
            at: 2,
        }),
    ];
    SqliteStore::open(&path)
        .expect("open")
        .commit(&ops)
        .expect("commit");

    let conn = Connection::open(&path).expect("raw");
    type Row = (i64, Option<Vec<u8>>, Option<Vec<u8>>);
    let rows: Vec<Row> = conn
        .prepare("SELECT id, proof, proof_hash FROM conditionals ORDER BY id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows,
        vec![
            (1, None, Some(hash.to_vec())),
            (2, Some(other.clone()), None)
        ]
    );
    let (proof, shared): (Option<Vec<u8>>, i64) = conn
        .query_row("SELECT proof, proof_shared FROM hashlocks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("hashlock row");
    assert_eq!((proof, shared), (None, 1));
    drop(conn);

    let mut store = SqliteStore::open(&path).expect("reopen");
    let snapshot = sorted(store.load().expect("load"));
    assert_eq!(snapshot.conditionals, vec![revealed, claimed]);
    assert_eq!(store.hashlock(&hash).expect("hashlock"), Some(paid.clone()));
    assert_eq!(store.hashlocks(10).expect("hashlocks"), vec![paid]);
    drop(store);

    // A row that refers to a proof the table lost is reported, not read as unproven.
    let conn = Connection::open(&path).expect("raw");
    conn.execute("DELETE FROM proofs", []).expect("delete");
    drop(conn);
    let mut store = SqliteStore::open(&path).expect("reopen");
    assert!(matches!(store.load(), Err(StoreError::Corrupt(_))));
    assert!(matches!(store.hashlock(&hash), Err(StoreError::Corrupt(_))));
}
