//! The witness service's SQLite file: the log's leaves and its latest signed checkpoint.
//!
//! Opened with `journal_mode=WAL` and `synchronous=FULL` (a commit is fsynced before it
//! returns), versioned by `PRAGMA user_version`. Leaves are stored in their canonical encoding
//! ([`Leaf::to_bytes`]) under their index; they are only ever appended.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, params};
use thiserror::Error;

use crate::leaf::{Leaf, LeafError};

/// `PRAGMA application_id` of a witness database: `ATWL` in ASCII.
const APPLICATION_ID: i64 = 0x4154_574C;

/// How long to wait for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    PRAGMA application_id = 1096046412; -- APPLICATION_ID

    CREATE TABLE leaves (
        idx  INTEGER PRIMARY KEY CHECK (idx >= 0),
        data BLOB    NOT NULL
    ) STRICT;

    CREATE TABLE checkpoints (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        size INTEGER NOT NULL CHECK (size >= 0),
        note TEXT    NOT NULL
    ) STRICT;
    ",
];

/// The newest schema version this code knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const INSERT_LEAF: &str = "INSERT INTO leaves (idx, data) VALUES (?1, ?2)";
const PUT_CHECKPOINT: &str = "
    INSERT INTO checkpoints (id, size, note) VALUES (1, ?1, ?2)
    ON CONFLICT (id) DO UPDATE SET size = excluded.size, note = excluded.note";

/// What can go wrong with the witness database.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file belongs to another application.
    #[error("not a witness database (application_id {0:#x})")]
    ForeignDatabase(i64),
    /// The file was written by a newer version.
    #[error("database schema version {0} is newer than this program's {SCHEMA_VERSION}")]
    NewerSchema(i64),
    /// WAL could not be enabled.
    #[error("cannot enable WAL (journal mode is {0})")]
    JournalMode(String),
    /// A stored leaf does not decode, or the indices have a gap.
    #[error("corrupt leaf {index}: {reason}")]
    Corrupt {
        /// The leaf index.
        index: i64,
        /// What is wrong.
        reason: String,
    },
    /// A leaf was appended at an index that does not follow the stored ones.
    #[error("append at {got}, but the log has {expected} leaves")]
    Gap {
        /// The stored size.
        expected: u64,
        /// The first index given.
        got: u64,
    },
}

impl From<(i64, LeafError)> for StoreError {
    fn from((index, e): (i64, LeafError)) -> StoreError {
        StoreError::Corrupt {
            index,
            reason: e.to_string(),
        }
    }
}

/// The witness log's durable storage.
#[derive(Debug)]
pub struct WitnessStore {
    conn: Connection,
    size: u64,
}

fn check_version(conn: &Connection) -> Result<i64, StoreError> {
    let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if app != 0 && app != APPLICATION_ID {
        return Err(StoreError::ForeignDatabase(app));
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema(version));
    }
    Ok(version)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl WitnessStore {
    /// Opens (creating if missing) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<WitnessStore, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        check_version(&conn)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::JournalMode(mode));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.set_prepared_statement_cache_capacity(16);
        for (done, sql) in (0..).zip(MIGRATIONS) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if check_version(&tx)? > done {
                continue;
            }
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", done + 1)?;
            tx.commit()?;
        }
        let count: i64 = conn.query_row("SELECT count(*) FROM leaves", [], |r| r.get(0))?;
        Ok(WitnessStore {
            conn,
            size: u64::try_from(count).unwrap_or(0),
        })
    }

    /// Number of stored leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Every stored leaf, in order; fails on a gap or a leaf that does not decode.
    pub fn load_leaves(&self) -> Result<Vec<Leaf>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT idx, data FROM leaves ORDER BY idx")?;
        let mut rows = stmt.query([])?;
        let mut leaves = Vec::new();
        while let Some(row) = rows.next()? {
            let index: i64 = row.get(0)?;
            if index != to_i64(leaves.len() as u64) {
                return Err(StoreError::Corrupt {
                    index,
                    reason: format!("expected index {}", leaves.len()),
                });
            }
            let data: Vec<u8> = row.get(1)?;
            leaves.push(Leaf::from_bytes(&data).map_err(|e| StoreError::from((index, e)))?);
        }
        Ok(leaves)
    }

    /// The latest stored checkpoint note and its size.
    pub fn checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size, note FROM checkpoints WHERE id = 1")?;
        let mut rows = stmt.query([])?;
        match rows.next()? {
            Some(row) => {
                let size: i64 = row.get(0)?;
                Ok(Some((u64::try_from(size).unwrap_or(0), row.get(1)?)))
            }
            None => Ok(None),
        }
    }

    /// Appends `leaves` at index `first` (which must be the stored size) and records
    /// `checkpoint` as the latest note, all in one durable transaction.
    pub fn append(
        &mut self,
        first: u64,
        leaves: &[Leaf],
        checkpoint: Option<(u64, &str)>,
    ) -> Result<(), StoreError> {
        if first != self.size {
            return Err(StoreError::Gap {
                expected: self.size,
                got: first,
            });
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(INSERT_LEAF)?;
            for (i, leaf) in (first..).zip(leaves) {
                insert.execute(params![to_i64(i), leaf.to_bytes()])?;
            }
            if let Some((size, note)) = checkpoint {
                tx.prepare_cached(PUT_CHECKPOINT)?
                    .execute(params![to_i64(size), note])?;
            }
        }
        tx.commit()?;
        self.size = first + leaves.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_survive_reopen_and_gaps_are_refused() {
        let dir = std::env::temp_dir().join(format!(
            "atomicity-witness-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("witness.db");
        let leaves = [
            Leaf::Block { block: 0, time: 5 },
            Leaf::Commit {
                block: 0,
                p: [7; 32],
            },
        ];
        {
            let mut store = WitnessStore::open(&path).expect("open");
            assert_eq!(store.size(), 0);
            store
                .append(0, &leaves, Some((2, "note\n")))
                .expect("append");
            assert!(matches!(
                store.append(5, &leaves, None),
                Err(StoreError::Gap { .. })
            ));
        }
        let store = WitnessStore::open(&path).expect("reopen");
        assert_eq!(store.size(), 2);
        assert_eq!(store.load_leaves().expect("load"), leaves.to_vec());
        assert_eq!(
            store.checkpoint().expect("cp"),
            Some((2, "note\n".to_string()))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
