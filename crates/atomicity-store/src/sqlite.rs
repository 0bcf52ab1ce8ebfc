//! The SQLite store: one file in WAL mode, versioned migrations, cached statements.
//!
//! Encoding of values:
//!
//! * keys and payment ids: 32-byte `BLOB`s;
//! * assets: `asset_code TEXT` and `asset_scale INTEGER`, decoded through `Asset::new`;
//! * amounts, ids and counters (`u64`): `INTEGER`, bit-cast to `i64` (values above `i64::MAX`
//!   read as negative numbers in SQL but round-trip exactly);
//! * Unix-second timestamps: plain non-negative `INTEGER`s (above `i64::MAX` is refused), so
//!   that SQL orders them correctly;
//! * directions: `'out'` / `'in'`; payment status `'pending'` / `'completed'` / `'failed'`,
//!   with the failure reason in its own column;
//! * a line's fee policy: `fee_base` (an amount, as above) and `fee_ppm` (the `u32` as is);
//! * a conditional IOU's `claimed`: `INTEGER` 0 or 1;
//! * a hashlock's role `'payee'` / `'payer'` / `'swap'` (a swap's secret is 32 zero bytes until
//!   it is known), its status [`HashlockStatus::as_str`]
//!   (`'open'` / `'publishing'` / `'paid'` / `'failed'`), its `expires_at` bit-cast like a
//!   `u64` (it is never compared in SQL), and its `issued` list as one `BLOB`: each item as a
//!   4-byte big-endian length followed by its bytes, concatenated (the empty list is the empty
//!   blob);
//! * a settlement's role [`SettlementRole::as_str`] (`'requester'` / `'payer'`), its status
//!   [`SettlementStatus::as_str`] (`'requested'` / `'paying'` / `'paid'` / `'done'` /
//!   `'refused'` / `'failed'`), its signed request as [`Signed::to_bytes`] (decoded without
//!   checking the signature; its id must be the row's), its method as the endpoint id's text or
//!   `NULL`, its evidence as [`Evidence::to_bytes`] or `NULL`, and `delivered` as `INTEGER` 0
//!   or 1;
//! * signed states, IOUs, answers, forwarding instructions, conditions and proofs: opaque
//!   `BLOB`s in the core's canonical encoding;
//! * a proof is stored once: a conditional IOU's or hashlock's proof that the `proofs` table
//!   holds byte for byte (under the hash of its secret, which a proof's encoding starts with) is
//!   not copied into the row: the conditional keeps `proof_hash` and the hashlock
//!   `proof_shared = 1` instead, and reads join the proof back. A proof that differs from the
//!   one kept for its hash (another log's, say) stays in the row.
//!
//! [`HashlockStatus::as_str`]: atomicity_core::HashlockStatus::as_str
//! [`SettlementRole::as_str`]: atomicity_core::SettlementRole::as_str
//! [`SettlementStatus::as_str`]: atomicity_core::SettlementStatus::as_str
//! [`Signed::to_bytes`]: atomicity_core::Signed::to_bytes
//! [`Evidence::to_bytes`]: atomicity_core::Evidence::to_bytes

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use atomicity_core::{
    Amount, Asset, Blob, ConditionalRecord, Evidence, EvidenceRecord, FeePolicy, ForwardRecord,
    HashlockRecord, Limits, LineRecord, PaymentRecord, PaymentStatus, PeerRecord, ProofRecord,
    PublicKey, SettlementRecord, SettlementRole, SettlementStatus, Snapshot, StoreOp, payment_hash,
    published::EndpointId,
};
use rusqlite::{Connection, Row, TransactionBehavior, ffi, params};

use crate::{
    Store, StoreError, check_evidence_time, check_hashlock, check_payment_times, check_proof_time,
    check_settlement, decode_issued, decode_settlement_request, parse_direction,
    parse_hashlock_status, parse_role, role_as_str,
};

/// `PRAGMA application_id` of an Atomicity database: `ATOM` in ASCII.
const APPLICATION_ID: i64 = 0x4154_4F4D;

/// How long to wait for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations, in order: migration `i` takes the schema from version `i` to `i + 1`.
/// Never edit one that has shipped; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    PRAGMA application_id = 1096044365; -- APPLICATION_ID

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
    ",
    // 2: routed payments: fee policies on lines, forwarding instructions, proofs and claims on
    // conditional IOUs, forwarding links, payment secrets and proofs of publication. Existing
    // rows get no fees, no instructions or proof, and `claimed = 0`.
    "
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
    ",
    // 3: settlements, and hashlocks of role 'swap'. SQLite cannot alter a CHECK, so hashlocks
    // is rebuilt with the same columns, constraints and indexes and its rows copied over.
    "
    CREATE TABLE hashlocks_new (
        hash        BLOB    NOT NULL PRIMARY KEY CHECK (length(hash) = 32),
        p           BLOB    NOT NULL CHECK (length(p) = 32),
        role        TEXT    NOT NULL CHECK (role IN ('payee', 'payer', 'swap')),
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

    INSERT INTO hashlocks_new (hash, p, role, payee, asset_code, asset_scale, amount, condition,
                               expires_at, memo, status, proof, issued, created_at, updated_at)
    SELECT hash, p, role, payee, asset_code, asset_scale, amount, condition, expires_at, memo,
           status, proof, issued, created_at, updated_at
    FROM hashlocks;

    DROP TABLE hashlocks;
    ALTER TABLE hashlocks_new RENAME TO hashlocks;

    CREATE INDEX hashlocks_newest
        ON hashlocks (updated_at DESC, created_at DESC, hash);
    CREATE INDEX hashlocks_unfinished
        ON hashlocks (hash) WHERE status IN ('open', 'publishing');

    CREATE TABLE settlements (
        id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 32),
        role        TEXT    NOT NULL CHECK (role IN ('requester', 'payer')),
        peer        BLOB    NOT NULL CHECK (length(peer) = 32),
        request     BLOB    NOT NULL,
        status      TEXT    NOT NULL
            CHECK (status IN ('requested', 'paying', 'paid', 'done', 'refused', 'failed')),
        method      TEXT,
        evidence    BLOB,
        note        TEXT    NOT NULL,
        delivered   INTEGER NOT NULL CHECK (delivered IN (0, 1)),
        created_at  INTEGER NOT NULL CHECK (created_at >= 0),
        updated_at  INTEGER NOT NULL CHECK (updated_at >= 0)
    ) STRICT;

    CREATE INDEX settlements_newest
        ON settlements (created_at DESC, id);
    ",
    // 4: fewer random page writes per payment. The index of unfinished payment secrets follows
    // their creation time instead of their hash, and the history indexes end with the row id
    // (implicitly) instead of the hash: a row that changes now is then moved to an index page
    // of recent rows, not a random one. Under load a payee wrote 16 of its 52 pages per commit
    // into the unfinished index and 8 into the newest one; a payer 7 of 53 into the newest.
    // The history keeps its order: ties in time are sorted by hash after the index.
    "
    DROP INDEX hashlocks_unfinished;
    CREATE INDEX hashlocks_unfinished
        ON hashlocks (created_at) WHERE status IN ('open', 'publishing');
    DROP INDEX hashlocks_newest;
    CREATE INDEX hashlocks_newest ON hashlocks (updated_at DESC, created_at DESC);
    DROP INDEX payments_newest;
    CREATE INDEX payments_newest ON payments (updated_at DESC, created_at DESC);
    ",
    // 5: a proof is stored once, in `proofs`: conditionals and hashlocks whose proof is the one
    // kept there refer to it instead of holding a copy (1.1 KB each: a hop held three copies
    // of every proof). Existing rows keep their copies.
    "
    ALTER TABLE conditionals ADD COLUMN proof_hash BLOB
        CHECK (proof_hash IS NULL OR (length(proof_hash) = 32 AND proof IS NULL));
    ALTER TABLE hashlocks ADD COLUMN proof_shared INTEGER NOT NULL DEFAULT 0
        CHECK (proof_shared IN (0, 1) AND (proof_shared = 0 OR proof IS NULL));
    ",
];

/// The newest schema version this code knows (the database's `PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const PUT_PEER: &str = "
    INSERT INTO peers (key, url) VALUES (?1, ?2)
    ON CONFLICT (key) DO UPDATE SET url = excluded.url";

const PUT_LINE: &str = "
    INSERT INTO lines (peer, asset_code, asset_scale, accept, issue, next_id, out_state, in_state,
                       fee_base, fee_ppm)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
    ON CONFLICT (peer, asset_code, asset_scale) DO UPDATE SET
        accept = excluded.accept, issue = excluded.issue, next_id = excluded.next_id,
        out_state = excluded.out_state, in_state = excluded.in_state,
        fee_base = excluded.fee_base, fee_ppm = excluded.fee_ppm";

const PUT_CONDITIONAL: &str = "
    INSERT INTO conditionals (peer, asset_code, asset_scale, dir, id, iou, answer, onward, proof,
                              claimed, proof_hash)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
    ON CONFLICT (peer, asset_code, asset_scale, dir, id) DO UPDATE SET
        iou = excluded.iou, answer = excluded.answer, onward = excluded.onward,
        proof = excluded.proof, claimed = excluded.claimed, proof_hash = excluded.proof_hash";

const DELETE_CONDITIONAL: &str = "
    DELETE FROM conditionals
    WHERE peer = ?1 AND asset_code = ?2 AND asset_scale = ?3 AND dir = ?4 AND id = ?5";

const PUT_PAYMENT: &str = "
    INSERT INTO payments (payment_id, dir, peer, asset_code, asset_scale, amount, status,
                          failure, memo, created_at, updated_at, entry)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
    ON CONFLICT (entry) DO UPDATE SET
        payment_id = excluded.payment_id, dir = excluded.dir, peer = excluded.peer, asset_code = excluded.asset_code,
        asset_scale = excluded.asset_scale, amount = excluded.amount,
        status = excluded.status, failure = excluded.failure, memo = excluded.memo,
        created_at = excluded.created_at, updated_at = excluded.updated_at";

const PUT_EVIDENCE: &str = "
    INSERT INTO evidence (peer, what, received, at) VALUES (?1, ?2, ?3, ?4)";

const PUT_FORWARD: &str = "
    INSERT INTO forwards (in_peer, asset_code, asset_scale, in_id, out_peer, out_id)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (in_peer, asset_code, asset_scale, in_id) DO UPDATE SET
        out_peer = excluded.out_peer, out_id = excluded.out_id";

const DELETE_FORWARD: &str = "
    DELETE FROM forwards
    WHERE in_peer = ?1 AND asset_code = ?2 AND asset_scale = ?3 AND in_id = ?4";

const PUT_HASHLOCK: &str = "
    INSERT INTO hashlocks (hash, p, role, payee, asset_code, asset_scale, amount, condition,
                           expires_at, memo, status, proof, issued, created_at, updated_at,
                           proof_shared)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
    ON CONFLICT (hash) DO UPDATE SET
        p = excluded.p, role = excluded.role, payee = excluded.payee,
        asset_code = excluded.asset_code, asset_scale = excluded.asset_scale,
        amount = excluded.amount, condition = excluded.condition,
        expires_at = excluded.expires_at, memo = excluded.memo, status = excluded.status,
        proof = excluded.proof, issued = excluded.issued, created_at = excluded.created_at,
        updated_at = excluded.updated_at, proof_shared = excluded.proof_shared";

const PUT_SETTLEMENT: &str = "
    INSERT OR REPLACE INTO settlements (id, role, peer, request, status, method, evidence, note,
                                        delivered, created_at, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// The first proof for a hash is kept: `at` is when it was first learned.
const PUT_PROOF: &str = "
    INSERT INTO proofs (hash, proof, at) VALUES (?1, ?2, ?3) ON CONFLICT (hash) DO NOTHING";

const SELECT_PROOF: &str = "SELECT hash, proof, at FROM proofs WHERE hash = ?1";

/// 1 if `proofs` keeps exactly these bytes for the hash, 0 if other bytes, no row if none.
const SAME_PROOF: &str = "SELECT proof = ?2 FROM proofs WHERE hash = ?1";

const SELECT_PEERS: &str = "SELECT key, url FROM peers";

const SELECT_LINES: &str = "
    SELECT peer, asset_code, asset_scale, accept, issue, next_id, out_state, in_state, fee_base,
           fee_ppm
    FROM lines";

const SELECT_CONDITIONALS: &str = "
    SELECT c.peer, c.asset_code, c.asset_scale, c.dir, c.id, c.iou, c.answer, c.onward,
           coalesce(c.proof, p.proof), c.claimed, c.proof_hash
    FROM conditionals AS c LEFT JOIN proofs AS p ON p.hash = c.proof_hash";

const SELECT_FORWARDS: &str = "
    SELECT in_peer, asset_code, asset_scale, in_id, out_peer, out_id FROM forwards";

const HASHLOCK_COLUMNS: &str = "
    SELECT hash, p, role, payee, asset_code, asset_scale, amount, condition, expires_at, memo,
           status,
           CASE proof_shared
               WHEN 1 THEN (SELECT proofs.proof FROM proofs WHERE proofs.hash = hashlocks.hash)
               ELSE proof
           END,
           issued, created_at, updated_at, proof_shared
    FROM hashlocks";

const SETTLEMENT_COLUMNS: &str = "
    SELECT id, role, peer, request, status, method, evidence, note, delivered, created_at,
           updated_at
    FROM settlements";

const PAYMENT_COLUMNS: &str = "
    SELECT payment_id, dir, peer, asset_code, asset_scale, amount, status, failure, memo,
           created_at, updated_at, entry
    FROM payments";

const SELECT_EVIDENCE: &str = "SELECT peer, what, received, at FROM evidence ORDER BY id";

/// A [`Store`] in one SQLite file.
///
/// Opened with `journal_mode=WAL`, `synchronous=FULL` (every commit is fsynced before it
/// returns), `foreign_keys=ON` and a busy timeout. The references a line has to its peer and a
/// conditional IOU to its line are deferred foreign keys, checked when a commit ends.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens the database at `path`, creating it if missing, and migrates it to
    /// [`SCHEMA_VERSION`]. Refuses a database of another application
    /// ([`StoreError::ForeignDatabase`]) or written by a newer version
    /// ([`StoreError::NewerSchema`]).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        check_version(&conn)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::JournalMode(mode));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(32);
        let mut store = SqliteStore { conn };
        store.migrate()?;
        Ok(store)
    }

    /// Applies the migrations the database has not had yet, each in its own transaction that
    /// also bumps `user_version`.
    fn migrate(&mut self) -> Result<(), StoreError> {
        for (done, sql) in (0..).zip(MIGRATIONS) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Read again under the write lock: another process may have migrated meanwhile.
            let version = check_version(&tx)?;
            if version > done {
                continue;
            }
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", done + 1)?;
            tx.commit()?;
        }
        Ok(())
    }
}

/// Reads `application_id` and `user_version`, refusing a foreign or newer database.
fn check_version(conn: &Connection) -> Result<i64, StoreError> {
    let application_id: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(StoreError::ForeignDatabase { application_id });
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 0 {
        return Err(StoreError::Corrupt(format!(
            "negative user_version {version}"
        )));
    }
    Ok(version)
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        // One read transaction, so that the queries see the same commit.
        let tx = self.conn.transaction()?;
        let snapshot = Snapshot {
            peers: query(&tx, SELECT_PEERS, [], peer_from_row)?,
            lines: query(&tx, SELECT_LINES, [], line_from_row)?,
            conditionals: query(&tx, SELECT_CONDITIONALS, [], conditional_from_row)?,
            pending_payments: query(
                &tx,
                &format!("{PAYMENT_COLUMNS} WHERE status = 'pending'"),
                [],
                payment_from_row,
            )?,
            forwards: query(&tx, SELECT_FORWARDS, [], forward_from_row)?,
            hashlocks: query(
                &tx,
                &format!("{HASHLOCK_COLUMNS} WHERE status IN ('open', 'publishing')"),
                [],
                hashlock_from_row,
            )?,
            settlements: query(&tx, SETTLEMENT_COLUMNS, [], settlement_from_row)?,
        };
        tx.commit()?;
        Ok(snapshot)
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        // Take the write lock up front, so that the transaction cannot fail to upgrade later.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // A conditional or hashlock may refer to a proof this batch stores, wherever it comes.
        let mut batch_proofs = HashMap::new();
        for op in ops {
            if let StoreOp::PutProof(p) = op {
                batch_proofs.entry(p.hash).or_insert(p.proof.as_slice());
            }
        }
        for op in ops {
            apply(&tx, op, &batch_proofs)?;
        }
        // On error the dropped transaction rolls back.
        tx.commit().map_err(|e| {
            if e.sqlite_extended_error_code() == Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) {
                StoreError::Dangling(
                    "a line without its peer or a conditional IOU without its line".into(),
                )
            } else {
                StoreError::Sqlite(e)
            }
        })
    }

    fn history(&mut self, limit: usize) -> Result<Vec<PaymentRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        query(
            &self.conn,
            &format!(
                "{PAYMENT_COLUMNS}
                 ORDER BY updated_at DESC, created_at DESC, entry LIMIT ?1"
            ),
            [limit],
            payment_from_row,
        )
    }

    fn evidence(&mut self) -> Result<Vec<EvidenceRecord>, StoreError> {
        query(&self.conn, SELECT_EVIDENCE, [], evidence_from_row)
    }

    fn hashlocks(&self, limit: usize) -> Result<Vec<HashlockRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        query(
            &self.conn,
            &format!(
                "{HASHLOCK_COLUMNS}
                 ORDER BY updated_at DESC, created_at DESC, hash LIMIT ?1"
            ),
            [limit],
            hashlock_from_row,
        )
    }

    fn hashlock(&self, hash: &[u8; 32]) -> Result<Option<HashlockRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{HASHLOCK_COLUMNS} WHERE hash = ?1"))?;
        let mut rows = stmt.query([&hash[..]])?;
        rows.next()?.map(hashlock_from_row).transpose()
    }

    fn settlements(&self, limit: usize) -> Result<Vec<SettlementRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        query(
            &self.conn,
            &format!("{SETTLEMENT_COLUMNS} ORDER BY created_at DESC, id LIMIT ?1"),
            [limit],
            settlement_from_row,
        )
    }

    fn settlement(&self, id: &[u8; 32]) -> Result<Option<SettlementRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SETTLEMENT_COLUMNS} WHERE id = ?1"))?;
        let mut rows = stmt.query([&id[..]])?;
        rows.next()?.map(settlement_from_row).transpose()
    }

    fn proof(&self, hash: &[u8; 32]) -> Result<Option<ProofRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(SELECT_PROOF)?;
        let mut rows = stmt.query([&hash[..]])?;
        rows.next()?.map(proof_from_row).transpose()
    }
}

/// Runs one op inside the commit's transaction, with a cached statement.
fn apply(conn: &Connection, op: &StoreOp, batch_proofs: &BatchProofs) -> Result<(), StoreError> {
    match op {
        StoreOp::PutPeer(p) => {
            conn.prepare_cached(PUT_PEER)?
                .execute(params![&p.key.as_bytes()[..], p.url])?;
        }
        StoreOp::PutLine(l) => {
            conn.prepare_cached(PUT_LINE)?.execute(params![
                &l.peer.as_bytes()[..],
                l.asset.code(),
                l.asset.scale(),
                amount_to_sql(l.limits.accept),
                amount_to_sql(l.limits.issue),
                u64_to_sql(l.next_id),
                l.out_state.as_ref().map(Blob::bytes),
                l.in_state.as_ref().map(Blob::bytes),
                amount_to_sql(l.fees.base),
                l.fees.ppm,
            ])?;
        }
        StoreOp::PutConditional(c) => {
            // A proof's encoding starts with its secret; a wrong guess only keeps the copy.
            let hash = c
                .proof
                .as_deref()
                .and_then(|proof| proof.first_chunk::<32>())
                .map(payment_hash);
            let (proof, proof_hash) = match (c.proof.as_deref(), hash) {
                (Some(proof), Some(hash)) if kept_proof(conn, batch_proofs, &hash, proof)? => {
                    (None, Some(hash))
                }
                (proof, _) => (proof, None),
            };
            conn.prepare_cached(PUT_CONDITIONAL)?.execute(params![
                &c.peer.as_bytes()[..],
                c.asset.code(),
                c.asset.scale(),
                c.dir.as_str(),
                u64_to_sql(c.id),
                c.iou.bytes(),
                c.answer.as_ref().map(Blob::bytes),
                c.onward,
                proof,
                c.claimed,
                proof_hash.as_ref().map(|h| &h[..]),
            ])?;
        }
        StoreOp::DeleteConditional {
            peer,
            asset,
            dir,
            id,
        } => {
            conn.prepare_cached(DELETE_CONDITIONAL)?.execute(params![
                &peer.as_bytes()[..],
                asset.code(),
                asset.scale(),
                dir.as_str(),
                u64_to_sql(*id),
            ])?;
        }
        StoreOp::PutPayment(p) => {
            let (created_at, updated_at) = check_payment_times(p)?;
            let failure = match &p.status {
                PaymentStatus::Failed(reason) => Some(reason.as_str()),
                PaymentStatus::Pending | PaymentStatus::Completed => None,
            };
            conn.prepare_cached(PUT_PAYMENT)?.execute(params![
                &p.payment_id[..],
                p.dir.as_str(),
                &p.peer.as_bytes()[..],
                p.asset.code(),
                p.asset.scale(),
                amount_to_sql(p.amount),
                p.status.as_str(),
                failure,
                p.memo,
                created_at,
                updated_at,
                &p.entry[..],
            ])?;
        }
        StoreOp::PutEvidence(e) => {
            let at = check_evidence_time(e)?;
            conn.prepare_cached(PUT_EVIDENCE)?.execute(params![
                &e.peer.as_bytes()[..],
                e.what,
                e.received,
                at,
            ])?;
        }
        StoreOp::PutForward(f) => {
            conn.prepare_cached(PUT_FORWARD)?.execute(params![
                &f.in_peer.as_bytes()[..],
                f.asset.code(),
                f.asset.scale(),
                u64_to_sql(f.in_id),
                &f.out_peer.as_bytes()[..],
                u64_to_sql(f.out_id),
            ])?;
        }
        StoreOp::DeleteForward {
            asset,
            in_peer,
            in_id,
        } => {
            conn.prepare_cached(DELETE_FORWARD)?.execute(params![
                &in_peer.as_bytes()[..],
                asset.code(),
                asset.scale(),
                u64_to_sql(*in_id),
            ])?;
        }
        StoreOp::PutHashlock(h) => {
            let (created_at, updated_at, issued) = check_hashlock(h)?;
            let shared = match h.proof.as_deref() {
                Some(proof) => kept_proof(conn, batch_proofs, &h.hash, proof)?,
                None => false,
            };
            conn.prepare_cached(PUT_HASHLOCK)?.execute(params![
                &h.hash[..],
                &h.p[..],
                role_as_str(h.role),
                &h.payee.as_bytes()[..],
                h.asset.code(),
                h.asset.scale(),
                amount_to_sql(h.amount),
                h.condition,
                u64_to_sql(h.expires_at),
                h.memo,
                h.status.as_str(),
                if shared { None } else { h.proof.as_deref() },
                issued,
                created_at,
                updated_at,
                shared,
            ])?;
        }
        StoreOp::PutSettlement(s) => {
            let row = check_settlement(s)?;
            conn.prepare_cached(PUT_SETTLEMENT)?.execute(params![
                &s.id[..],
                s.role.as_str(),
                &s.peer.as_bytes()[..],
                row.request,
                s.status.as_str(),
                s.method.as_ref().map(EndpointId::as_str),
                row.evidence,
                s.note,
                s.delivered,
                row.created_at,
                row.updated_at,
            ])?;
        }
        StoreOp::PutProof(p) => {
            let at = check_proof_time(p)?;
            conn.prepare_cached(PUT_PROOF)?
                .execute(params![&p.hash[..], p.proof, at])?;
        }
    }
    Ok(())
}

/// The first proof for each hash that a batch stores.
type BatchProofs<'a> = HashMap<[u8; 32], &'a [u8]>;

/// Whether `proofs` keeps exactly `proof` for `hash` once the batch is committed, so that a row
/// can refer to it: the proof it already keeps, or else the batch's first for the hash.
fn kept_proof(
    conn: &Connection,
    batch_proofs: &BatchProofs,
    hash: &[u8; 32],
    proof: &[u8],
) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached(SAME_PROOF)?;
    let mut rows = stmt.query(params![&hash[..], proof])?;
    Ok(match rows.next()? {
        Some(row) => row.get::<_, i64>(0)? == 1,
        None => batch_proofs.get(hash) == Some(&proof),
    })
}

/// Runs a cached query and decodes every row.
fn query<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    decode: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

fn u64_to_sql(value: u64) -> i64 {
    value.cast_signed()
}

fn amount_to_sql(amount: Amount) -> i64 {
    u64_to_sql(amount.minor())
}

fn u64_from_row(row: &Row<'_>, idx: usize) -> Result<u64, StoreError> {
    Ok(row.get::<_, i64>(idx)?.cast_unsigned())
}

fn amount_from_row(row: &Row<'_>, idx: usize) -> Result<Amount, StoreError> {
    u64_from_row(row, idx).map(Amount::from_minor)
}

fn time_from_row(row: &Row<'_>, idx: usize, what: &str) -> Result<u64, StoreError> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is negative: {value}")))
}

fn bytes32_from_row(row: &Row<'_>, idx: usize, what: &str) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = row.get(idx)?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt(format!("{what} has {} bytes, not 32", bytes.len())))
}

fn key_from_row(row: &Row<'_>, idx: usize, what: &str) -> Result<PublicKey, StoreError> {
    let bytes = bytes32_from_row(row, idx, what)?;
    PublicKey::try_from(&bytes)
        .map_err(|e| StoreError::Corrupt(format!("{what} is not a public key: {e}")))
}

/// Reads an asset from two adjacent columns: code, then scale.
fn asset_from_row(row: &Row<'_>, idx: usize, what: &str) -> Result<Asset, StoreError> {
    let code: String = row.get(idx)?;
    let scale: i64 = row.get(idx + 1)?;
    let scale = u8::try_from(scale)
        .map_err(|_| StoreError::Corrupt(format!("{what}: asset scale {scale}")))?;
    Asset::new(&code, scale).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn direction_from_row(
    row: &Row<'_>,
    idx: usize,
    what: &str,
) -> Result<atomicity_core::Direction, StoreError> {
    let dir: String = row.get(idx)?;
    parse_direction(&dir).ok_or_else(|| StoreError::Corrupt(format!("{what}: direction {dir:?}")))
}

fn peer_from_row(row: &Row<'_>) -> Result<PeerRecord, StoreError> {
    Ok(PeerRecord {
        key: key_from_row(row, 0, "peer key")?,
        url: row.get(1)?,
    })
}

fn line_from_row(row: &Row<'_>) -> Result<LineRecord, StoreError> {
    Ok(LineRecord {
        peer: key_from_row(row, 0, "line peer")?,
        asset: asset_from_row(row, 1, "line")?,
        limits: Limits {
            accept: amount_from_row(row, 3)?,
            issue: amount_from_row(row, 4)?,
        },
        fees: FeePolicy {
            base: amount_from_row(row, 8)?,
            ppm: {
                let ppm: i64 = row.get(9)?;
                u32::try_from(ppm)
                    .map_err(|_| StoreError::Corrupt(format!("line fee_ppm {ppm}")))?
            },
        },
        next_id: u64_from_row(row, 5)?,
        out_state: row.get::<_, Option<Vec<u8>>>(6)?.map(Blob::from),
        in_state: row.get::<_, Option<Vec<u8>>>(7)?.map(Blob::from),
    })
}

fn conditional_from_row(row: &Row<'_>) -> Result<ConditionalRecord, StoreError> {
    let proof: Option<Vec<u8>> = row.get(8)?;
    let proof_hash: Option<Vec<u8>> = row.get(10)?;
    if proof.is_none() && proof_hash.is_some() {
        return Err(StoreError::Corrupt(
            "a conditional's proof is missing from the proofs table".into(),
        ));
    }
    Ok(ConditionalRecord {
        peer: key_from_row(row, 0, "conditional peer")?,
        asset: asset_from_row(row, 1, "conditional")?,
        dir: direction_from_row(row, 3, "conditional")?,
        id: u64_from_row(row, 4)?,
        iou: Blob::from(row.get::<_, Vec<u8>>(5)?),
        answer: row.get::<_, Option<Vec<u8>>>(6)?.map(Blob::from),
        onward: row.get(7)?,
        proof,
        claimed: match row.get::<_, i64>(9)? {
            0 => false,
            1 => true,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "conditional claimed = {other}"
                )));
            }
        },
    })
}

fn forward_from_row(row: &Row<'_>) -> Result<ForwardRecord, StoreError> {
    Ok(ForwardRecord {
        in_peer: key_from_row(row, 0, "forward in_peer")?,
        asset: asset_from_row(row, 1, "forward")?,
        in_id: u64_from_row(row, 3)?,
        out_peer: key_from_row(row, 4, "forward out_peer")?,
        out_id: u64_from_row(row, 5)?,
    })
}

fn proof_from_row(row: &Row<'_>) -> Result<ProofRecord, StoreError> {
    Ok(ProofRecord {
        hash: bytes32_from_row(row, 0, "proof hash")?,
        proof: row.get(1)?,
        at: time_from_row(row, 2, "proof at")?,
    })
}

fn hashlock_from_row(row: &Row<'_>) -> Result<HashlockRecord, StoreError> {
    let role: String = row.get(2)?;
    let status: String = row.get(10)?;
    let issued: Vec<u8> = row.get(12)?;
    let proof: Option<Vec<u8>> = row.get(11)?;
    if proof.is_none() && row.get::<_, i64>(15)? == 1 {
        return Err(StoreError::Corrupt(
            "a hashlock's proof is missing from the proofs table".into(),
        ));
    }
    Ok(HashlockRecord {
        hash: bytes32_from_row(row, 0, "hashlock hash")?,
        p: bytes32_from_row(row, 1, "hashlock secret")?,
        role: parse_role(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("hashlock role {role:?}")))?,
        payee: key_from_row(row, 3, "hashlock payee")?,
        asset: asset_from_row(row, 4, "hashlock")?,
        amount: amount_from_row(row, 6)?,
        condition: row.get(7)?,
        expires_at: u64_from_row(row, 8)?,
        memo: row.get(9)?,
        status: parse_hashlock_status(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("hashlock status {status:?}")))?,
        proof,
        issued: decode_issued(&issued).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "hashlock issued list of {} bytes is not length-prefixed items",
                issued.len()
            ))
        })?,
        created_at: time_from_row(row, 13, "hashlock created_at")?,
        updated_at: time_from_row(row, 14, "hashlock updated_at")?,
    })
}

fn settlement_from_row(row: &Row<'_>) -> Result<SettlementRecord, StoreError> {
    let id = bytes32_from_row(row, 0, "settlement id")?;
    let role: String = row.get(1)?;
    let request: Vec<u8> = row.get(3)?;
    let status: String = row.get(4)?;
    let method: Option<String> = row.get(5)?;
    let evidence: Option<Vec<u8>> = row.get(6)?;
    Ok(SettlementRecord {
        id,
        role: SettlementRole::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("settlement role {role:?}")))?,
        peer: key_from_row(row, 2, "settlement peer")?,
        request: decode_settlement_request(&request, &id)
            .map_err(|why| StoreError::Corrupt(format!("settlement: {why}")))?,
        status: SettlementStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("settlement status {status:?}")))?,
        method: method
            .map(|m| EndpointId::parse(&m))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("settlement method: {e}")))?,
        evidence: evidence
            .map(|e| Evidence::from_bytes(&e))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("settlement evidence: {e}")))?,
        note: row.get(7)?,
        delivered: match row.get::<_, i64>(8)? {
            0 => false,
            1 => true,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "settlement delivered = {other}"
                )));
            }
        },
        created_at: time_from_row(row, 9, "settlement created_at")?,
        updated_at: time_from_row(row, 10, "settlement updated_at")?,
    })
}

fn payment_from_row(row: &Row<'_>) -> Result<PaymentRecord, StoreError> {
    let status: String = row.get(6)?;
    let failure: Option<String> = row.get(7)?;
    let status = match (status.as_str(), failure) {
        ("pending", None) => PaymentStatus::Pending,
        ("completed", None) => PaymentStatus::Completed,
        ("failed", Some(reason)) => PaymentStatus::Failed(reason),
        (status, failure) => {
            return Err(StoreError::Corrupt(format!(
                "payment status {status:?} with failure {failure:?}"
            )));
        }
    };
    Ok(PaymentRecord {
        entry: bytes32_from_row(row, 11, "payment entry")?,
        payment_id: bytes32_from_row(row, 0, "payment id")?,
        dir: direction_from_row(row, 1, "payment")?,
        peer: key_from_row(row, 2, "payment peer")?,
        asset: asset_from_row(row, 3, "payment")?,
        amount: amount_from_row(row, 5)?,
        status,
        memo: row.get(8)?,
        created_at: time_from_row(row, 9, "payment created_at")?,
        updated_at: time_from_row(row, 10, "payment updated_at")?,
    })
}

fn evidence_from_row(row: &Row<'_>) -> Result<EvidenceRecord, StoreError> {
    Ok(EvidenceRecord {
        peer: key_from_row(row, 0, "evidence peer")?,
        what: row.get(1)?,
        received: row.get(2)?,
        at: time_from_row(row, 3, "evidence at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_settings() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let store = SqliteStore::open(&dir.path().join("db.sqlite"))?;
        let get = |name: &str| -> Result<i64, StoreError> {
            Ok(store.conn.pragma_query_value(None, name, |r| r.get(0))?)
        };
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        assert_eq!(mode, "wal");
        assert_eq!(get("synchronous")?, 2, "synchronous=FULL");
        assert_eq!(get("foreign_keys")?, 1);
        assert_eq!(get("busy_timeout")?, 5000);
        assert_eq!(get("user_version")?, SCHEMA_VERSION);
        assert_eq!(get("application_id")?, APPLICATION_ID);
        Ok(())
    }

    #[test]
    fn queries_use_the_indexes() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let store = SqliteStore::open(&dir.path().join("db.sqlite"))?;
        let plan = |sql: &str| -> Result<String, StoreError> {
            let rows = query(&store.conn, &format!("EXPLAIN QUERY PLAN {sql}"), [], |r| {
                Ok(r.get::<_, String>(3)?)
            })?;
            Ok(rows.join("; "))
        };
        let history = plan(&format!(
            "{PAYMENT_COLUMNS} ORDER BY updated_at DESC, created_at DESC, entry LIMIT 5"
        ))?;
        // Read in index order; only rows tied in time are sorted (by hash), never the table.
        let no_full_sort = |plan: &str| {
            plan.matches("TEMP B-TREE").count()
                == plan
                    .matches("TEMP B-TREE FOR LAST TERM OF ORDER BY")
                    .count()
        };
        assert!(history.contains("payments_newest"), "{history}");
        assert!(no_full_sort(&history), "{history}");
        let pending = plan(&format!("{PAYMENT_COLUMNS} WHERE status = 'pending'"))?;
        assert!(pending.contains("payments_pending"), "{pending}");
        let hashlocks = plan(&format!(
            "{HASHLOCK_COLUMNS} ORDER BY updated_at DESC, created_at DESC, hash LIMIT 5"
        ))?;
        assert!(hashlocks.contains("hashlocks_newest"), "{hashlocks}");
        assert!(no_full_sort(&hashlocks), "{hashlocks}");
        let unfinished = plan(&format!(
            "{HASHLOCK_COLUMNS} WHERE status IN ('open', 'publishing')"
        ))?;
        assert!(unfinished.contains("hashlocks_unfinished"), "{unfinished}");
        let settlements = plan(&format!(
            "{SETTLEMENT_COLUMNS} ORDER BY created_at DESC, id LIMIT 5"
        ))?;
        assert!(settlements.contains("settlements_newest"), "{settlements}");
        assert!(!settlements.contains("TEMP B-TREE"), "{settlements}");
        Ok(())
    }

    /// A database at schema version 1 with a line and a conditional, migrated in place.
    #[test]
    fn migration_2_keeps_version_1_rows() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let path = dir.path().join("db.sqlite");
        {
            let conn = Connection::open(&path)?;
            conn.execute_batch(MIGRATIONS[0])?;
            conn.pragma_update(None, "user_version", 1)?;
            let peer = [7u8; 32];
            conn.execute("INSERT INTO peers (key) VALUES (?1)", [&peer[..]])?;
            conn.execute(
                "INSERT INTO lines VALUES (?1, 'USD', 2, 10, 5, 3, NULL, X'01')",
                [&peer[..]],
            )?;
            conn.execute(
                "INSERT INTO conditionals VALUES (?1, 'USD', 2, 'in', 1, X'09', NULL)",
                [&peer[..]],
            )?;
        }
        let store = SqliteStore::open(&path)?;
        let row: (i64, i64) =
            store
                .conn
                .query_row("SELECT fee_base, fee_ppm FROM lines", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        assert_eq!(row, (0, 0));
        let row: (Option<Vec<u8>>, Option<Vec<u8>>, i64) =
            store
                .conn
                .query_row("SELECT onward, proof, claimed FROM conditionals", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        assert_eq!(row, (None, None, 0));
        let tables: i64 = store.conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name IN ('forwards', 'hashlocks')",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(tables, 2);
        assert_eq!(
            store
                .conn
                .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?,
            SCHEMA_VERSION
        );
        Ok(())
    }
}
