//! The watchtower's SQLite file: watched logs, what was cosigned, every checkpoint seen,
//! refused checkpoints, the monitor's copy of each log, and every verified fork proof.
//!
//! Opened with `journal_mode=WAL` and `synchronous=FULL`, versioned by `PRAGMA user_version`.
//! [`TowerStore::apply`] writes one batch of [`Change`]s in one transaction, so the watchtower
//! never answers for a state it could lose.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use thiserror::Error;

use crate::fork::ForkProof;
use crate::watchtower::{Change, Indictment};

/// `PRAGMA application_id` of a watchtower database: `ATWT` in ASCII.
const APPLICATION_ID: i64 = 0x4154_5754;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    PRAGMA application_id = 1096046420; -- APPLICATION_ID

    CREATE TABLE logs (
        origin        TEXT PRIMARY KEY,
        vkey          TEXT NOT NULL,
        url           TEXT,
        cosigned_note TEXT,
        monitor_note  TEXT
    ) STRICT;

    CREATE TABLE seen (
        origin TEXT    NOT NULL REFERENCES logs (origin),
        size   INTEGER NOT NULL CHECK (size >= 0),
        note   TEXT    NOT NULL,
        PRIMARY KEY (origin, size)
    ) STRICT;

    CREATE TABLE refused (
        id     INTEGER PRIMARY KEY,
        origin TEXT    NOT NULL REFERENCES logs (origin),
        note   TEXT    NOT NULL,
        reason TEXT    NOT NULL,
        time   INTEGER NOT NULL,
        UNIQUE (origin, note)
    ) STRICT;

    CREATE TABLE leaves (
        origin TEXT    NOT NULL REFERENCES logs (origin),
        idx    INTEGER NOT NULL CHECK (idx >= 0),
        data   BLOB    NOT NULL,
        PRIMARY KEY (origin, idx)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE indictments (
        id       INTEGER PRIMARY KEY,
        vkey     TEXT    NOT NULL,
        proof    BLOB    NOT NULL,
        received INTEGER NOT NULL,
        UNIQUE (vkey, proof)
    ) STRICT;
    ",
];

/// The newest schema version this code knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What can go wrong with the watchtower database.
#[derive(Debug, Error)]
pub enum TowerStoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file belongs to another application.
    #[error("not a watchtower database (application_id {0:#x})")]
    ForeignDatabase(i64),
    /// The file was written by a newer version.
    #[error("database schema version {0} is newer than this program's {SCHEMA_VERSION}")]
    NewerSchema(i64),
    /// WAL could not be enabled.
    #[error("cannot enable WAL (journal mode is {0})")]
    JournalMode(String),
    /// A stored row does not decode.
    #[error("corrupt database: {0}")]
    Corrupt(String),
}

/// One watched log as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLog {
    /// The log's verifier key.
    pub vkey: String,
    /// Where the monitor downloads it from.
    pub url: Option<String>,
    /// The latest cosigned checkpoint note.
    pub cosigned: Option<String>,
    /// Every checkpoint note seen, by increasing size.
    pub seen: Vec<String>,
    /// The monitor's leaves, from index 0.
    pub leaves: Vec<Vec<u8>>,
    /// The checkpoint note the leaves lead to.
    pub monitor_note: Option<String>,
}

/// A refused checkpoint, kept as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The log's origin.
    pub origin: String,
    /// The signed note.
    pub note: String,
    /// Why it was refused.
    pub reason: String,
    /// When.
    pub time: u64,
}

/// The watchtower's durable storage.
#[derive(Debug)]
pub struct TowerStore {
    conn: Connection,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> Result<u64, TowerStoreError> {
    u64::try_from(n).map_err(|_| TowerStoreError::Corrupt(format!("negative number {n}")))
}

impl TowerStore {
    /// Opens (creating if missing) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<TowerStore, TowerStoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if app != 0 && app != APPLICATION_ID {
            return Err(TowerStoreError::ForeignDatabase(app));
        }
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(TowerStoreError::NewerSchema(version));
        }
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(TowerStoreError::JournalMode(mode));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let start = usize::try_from(version).unwrap_or(usize::MAX);
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(start) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(migration)?;
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(i + 1).unwrap_or(i64::MAX),
            )?;
            tx.commit()?;
        }
        Ok(TowerStore { conn })
    }

    /// Writes a batch of changes in one durable transaction (all or nothing).
    pub fn apply(&mut self, changes: &[Change]) -> Result<(), TowerStoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for change in changes {
            match change {
                Change::Log { vkey, url } => {
                    let origin = crate::note::Verifier::from_vkey(vkey)
                        .map_err(|e| TowerStoreError::Corrupt(e.to_string()))?
                        .name()
                        .to_owned();
                    tx.execute(
                        "INSERT INTO logs (origin, vkey, url) VALUES (?1, ?2, ?3)
                         ON CONFLICT (origin) DO UPDATE SET url = excluded.url",
                        params![origin, vkey, url],
                    )?;
                }
                Change::Cosigned { origin, note, .. } => {
                    tx.execute(
                        "UPDATE logs SET cosigned_note = ?2 WHERE origin = ?1",
                        params![origin, note],
                    )?;
                }
                Change::Seen { origin, size, note } => {
                    tx.execute(
                        "INSERT OR IGNORE INTO seen (origin, size, note) VALUES (?1, ?2, ?3)",
                        params![origin, to_i64(*size), note],
                    )?;
                }
                Change::Refused {
                    origin,
                    note,
                    reason,
                    time,
                } => {
                    tx.execute(
                        "INSERT OR IGNORE INTO refused (origin, note, reason, time)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![origin, note, reason, to_i64(*time)],
                    )?;
                }
                Change::Leaves {
                    origin,
                    start,
                    leaves,
                    note,
                } => {
                    let mut insert = tx.prepare_cached(
                        "INSERT INTO leaves (origin, idx, data) VALUES (?1, ?2, ?3)",
                    )?;
                    for (index, data) in (*start..).zip(leaves) {
                        insert.execute(params![origin, to_i64(index), data])?;
                    }
                    tx.execute(
                        "UPDATE logs SET monitor_note = ?2 WHERE origin = ?1",
                        params![origin, note],
                    )?;
                }
                Change::Indicted { vkey, indictment } => {
                    tx.execute(
                        "INSERT OR IGNORE INTO indictments (vkey, proof, received)
                         VALUES (?1, ?2, ?3)",
                        params![vkey, indictment.proof, to_i64(indictment.received)],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every watched log, with its leaves.
    pub fn load_logs(&self) -> Result<Vec<StoredLog>, TowerStoreError> {
        let mut logs = Vec::new();
        let mut stmt = self.conn.prepare(
            "SELECT origin, vkey, url, cosigned_note, monitor_note FROM logs ORDER BY origin",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        for row in rows {
            let (origin, vkey, url, cosigned, monitor_note) = row?;
            let seen = self
                .conn
                .prepare("SELECT note FROM seen WHERE origin = ?1 ORDER BY size")?
                .query_map([&origin], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut leaves = Vec::new();
            let mut stmt = self
                .conn
                .prepare("SELECT idx, data FROM leaves WHERE origin = ?1 ORDER BY idx")?;
            let mut rows = stmt.query([&origin])?;
            while let Some(r) = rows.next()? {
                let index = to_u64(r.get(0)?)?;
                if index != leaves.len() as u64 {
                    return Err(TowerStoreError::Corrupt(format!(
                        "{origin}: leaf {index} follows {} leaves",
                        leaves.len()
                    )));
                }
                leaves.push(r.get::<_, Vec<u8>>(1)?);
            }
            logs.push(StoredLog {
                vkey,
                url,
                cosigned,
                seen,
                leaves,
                monitor_note,
            });
        }
        Ok(logs)
    }

    /// Every stored fork proof, by log key, in the order received.
    pub fn load_indictments(&self) -> Result<Vec<(String, Indictment)>, TowerStoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT vkey, proof, received FROM indictments ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (vkey, proof, received) = row?;
            let kind = ForkProof::from_bytes(&proof)
                .map_err(|e| TowerStoreError::Corrupt(format!("stored fork proof: {e}")))?
                .kind();
            out.push((
                vkey,
                Indictment {
                    kind,
                    proof,
                    received: to_u64(received)?,
                },
            ));
        }
        Ok(out)
    }

    /// The refused checkpoints of one log, newest first (at most `limit`).
    pub fn refusals(&self, origin: &str, limit: u32) -> Result<Vec<Refusal>, TowerStoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT origin, note, reason, time FROM refused WHERE origin = ?1
             ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![origin, limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (origin, note, reason, time) = row?;
            out.push(Refusal {
                origin,
                note,
                reason,
                time: to_u64(time)?,
            });
        }
        Ok(out)
    }

    /// Whether the database has any watched log.
    pub fn is_empty(&self) -> Result<bool, TowerStoreError> {
        let any: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM logs LIMIT 1", [], |r| r.get(0))
            .optional()?;
        Ok(any.is_none())
    }
}
