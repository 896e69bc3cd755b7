//! The node's durable storage: one SQLite database in WAL mode.
//!
//! Tables: `chunks` (each document's snapshot and incremental changes, in order),
//! `sync_states` (how far we are in sync with each peer store, per document) and `meta`
//! (the node's identity and settings). A batch of writes is one transaction; with
//! `synchronous = FULL` a committed batch survives a crash or power loss, so no peer is
//! told the node holds a change before it is on disk (see `host`).

use std::path::Path;

use ibis_shared::protocol::StorageId;
use ibis_shared::sync::{StoreOp, StoredDocument};
use ibis_shared::DocumentId;
use rusqlite::{params, Connection, OptionalExtension};

/// The database file inside a data dir.
pub const DATABASE_FILE: &str = "ibis.sqlite3";

/// How long a sync state is kept without being saved again (90 days).
const SYNC_STATES_KEPT_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// Largest chunk accepted from the database (anything larger is treated as corrupt).
const MAX_CHUNK_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("this data dir was made by a newer ibis-node (schema version {found}; this one understands up to {supported})")]
    TooNew { found: i64, supported: i64 },
    #[error("cannot migrate the data dir to this version: {0}")]
    Migration(String),
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync on every commit: survives power loss.
    #[default]
    Full,
    /// fsync at WAL checkpoints only: survives a crash of the node (kill -9), not of the
    /// machine.
    Normal,
}

/// The data dir's schema version: its tables and the shapes of the documents it holds.
/// 3: practices split into internal and public documents (`crate::migrate`), partners bound
/// to an organization, erased documents remembered, sync states dated, untyped documents
/// charged to their creators.
pub const SCHEMA_VERSION: i64 = 3;

pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        let conn = Connection::open(data_dir.join(DATABASE_FILE))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            match durability {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            },
        )?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let store = Self { conn };
        store.migrate(data_dir)?;
        store.prune_sync_states()?;
        Ok(store)
    }

    fn migrate(&self, data_dir: &Path) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            self.conn.execute_batch(
                "BEGIN;
                 CREATE TABLE chunks (
                     document BLOB NOT NULL,
                     seq INTEGER NOT NULL,
                     bytes BLOB NOT NULL,
                     PRIMARY KEY (document, seq)
                 ) WITHOUT ROWID;
                 CREATE TABLE sync_states (
                     document BLOB NOT NULL,
                     peer TEXT NOT NULL,
                     state BLOB NOT NULL,
                     PRIMARY KEY (document, peer)
                 ) WITHOUT ROWID;
                 CREATE TABLE meta (
                     key TEXT PRIMARY KEY,
                     value TEXT NOT NULL
                 );
                 PRAGMA user_version = 1;
                 COMMIT;",
            )?;
        }
        if version < 2 {
            // People, their sessions and tokens; partner nodes; invitations.
            self.conn.execute_batch(
                "BEGIN;
                 CREATE TABLE users (
                     name TEXT PRIMARY KEY,
                     role TEXT NOT NULL,
                     password_hash TEXT NOT NULL,
                     created_at INTEGER NOT NULL
                 );
                 CREATE TABLE sessions (
                     token_hash BLOB PRIMARY KEY,
                     user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
                     kind TEXT NOT NULL,
                     label TEXT NOT NULL DEFAULT '',
                     created_at INTEGER NOT NULL,
                     expires_at INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE TABLE peers (
                     name TEXT PRIMARY KEY,
                     url TEXT NOT NULL DEFAULT '',
                     public_key TEXT NOT NULL DEFAULT '',
                     may_read INTEGER NOT NULL,
                     may_write INTEGER NOT NULL,
                     added_at INTEGER NOT NULL
                 );
                 CREATE TABLE invites (
                     token_hash BLOB PRIMARY KEY,
                     name TEXT NOT NULL,
                     created_at INTEGER NOT NULL,
                     expires_at INTEGER NOT NULL,
                     used_at INTEGER
                 ) WITHOUT ROWID;
                 PRAGMA user_version = 2;
                 COMMIT;",
            )?;
        }
        if version < 3 {
            // The tables of version 3; the documents are migrated by `crate::migrate`, in
            // the same transaction, when an older data dir holds any.
            let tx = self.conn.unchecked_transaction()?;
            tx.execute_batch(
                "ALTER TABLE peers ADD COLUMN organization TEXT NOT NULL DEFAULT '';
                 ALTER TABLE invites ADD COLUMN organization TEXT NOT NULL DEFAULT '';
                 ALTER TABLE sync_states ADD COLUMN saved_at INTEGER NOT NULL DEFAULT 0;
                 CREATE TABLE erased_documents (
                     document BLOB PRIMARY KEY,
                     erased_at INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE TABLE untyped_documents (
                     document BLOB PRIMARY KEY,
                     organization TEXT NOT NULL
                 ) WITHOUT ROWID;",
            )?;
            if version == 2 {
                crate::migrate::split_practices(&tx, data_dir)
                    .map_err(|e| StoreError::Migration(e.to_string()))?;
            }
            tx.execute_batch("PRAGMA user_version = 3;")?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Every document with stored chunks.
    pub fn document_ids(&self) -> Result<Vec<DocumentId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT document FROM chunks ORDER BY document")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut ids = Vec::new();
        for row in rows {
            let bytes = row?;
            ids.push(
                DocumentId::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt(format!("document key: {e}")))?,
            );
        }
        Ok(ids)
    }

    /// Writes `bytes` durably and frees them again (for the real writes that follow): fails
    /// as they would while the disk, or the database's cap, is full.
    pub fn probe_room(&mut self, bytes: usize) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('storage_probe', zeroblob(?1))
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [bytes as i64],
        )?;
        tx.commit()?;
        self.conn
            .execute("DELETE FROM meta WHERE key = 'storage_probe'", [])?;
        Ok(())
    }

    /// Caps the database at `mb` MiB: past it, writes fail as they would on a full disk.
    pub fn limit_size(&self, mb: u64) -> Result<(), StoreError> {
        let page: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))?;
        let pages = (mb as i64).saturating_mul(1024 * 1024) / page.max(1);
        self.conn
            .pragma_update(None, "max_page_count", pages.max(1))?;
        Ok(())
    }

    /// Documents erased here (withdrawn by their organization): never stored again.
    pub fn erased_ids(&self) -> Result<Vec<DocumentId>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT document FROM erased_documents")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut ids = Vec::new();
        for row in rows {
            ids.push(
                DocumentId::from_slice(&row?)
                    .map_err(|e| StoreError::Corrupt(format!("erased document key: {e}")))?,
            );
        }
        Ok(ids)
    }

    /// Sync states not saved for this long are dropped at start: a peer that has not
    /// been back for three months resyncs from its heads, which is cheap, and made-up
    /// storage ids do not pile up.
    fn prune_sync_states(&self) -> Result<(), StoreError> {
        let cutoff = crate::init::now_ms() - SYNC_STATES_KEPT_MS;
        self.conn.execute(
            "DELETE FROM sync_states WHERE saved_at < ?1 AND saved_at > 0",
            [cutoff],
        )?;
        Ok(())
    }

    /// A document's chunks and saved sync states; `None` if it has no chunks.
    pub fn load(&self, id: &DocumentId) -> Result<Option<StoredDocument>, StoreError> {
        load_document(&self.conn, id)
    }

    /// Starts a transaction for a batch of writes (and reads that must see them).
    pub fn transaction(&mut self) -> Result<Batch<'_>, StoreError> {
        Ok(Batch {
            tx: self.conn.transaction()?,
        })
    }

    /// Applies writes in one transaction.
    pub fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let batch = self.transaction()?;
        for op in ops {
            batch.write(op)?;
        }
        batch.commit()
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Copies the whole database to `path` (a consistent snapshot, while the node runs).
    pub fn backup_to(&self, path: &Path) -> Result<(), StoreError> {
        self.conn
            .execute("VACUUM INTO ?1", [path.to_string_lossy().as_ref()])?;
        Ok(())
    }

    /// Bytes stored for documents and sync states, for metrics.
    pub fn stored_bytes(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT (SELECT COALESCE(SUM(LENGTH(bytes)), 0) FROM chunks)
                  + (SELECT COALESCE(SUM(LENGTH(state)), 0) FROM sync_states)",
            [],
            |r| r.get(0),
        )?)
    }
}

/// Writes (and reads) inside one transaction.
pub struct Batch<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl Batch<'_> {
    pub fn write(&self, op: &StoreOp) -> Result<(), StoreError> {
        match op {
            StoreOp::AppendChanges { document, chunk } => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO chunks (document, seq, bytes)
                         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM chunks WHERE document = ?1), ?2)",
                    )?
                    .execute(params![document.as_bytes().as_slice(), chunk])?;
            }
            StoreOp::ReplaceWithSnapshot { document, snapshot } => {
                self.tx
                    .prepare_cached("DELETE FROM chunks WHERE document = ?1")?
                    .execute([document.as_bytes().as_slice()])?;
                self.tx
                    .prepare_cached("INSERT INTO chunks (document, seq, bytes) VALUES (?1, 1, ?2)")?
                    .execute(params![document.as_bytes().as_slice(), snapshot])?;
            }
            StoreOp::SaveSyncState {
                document,
                peer,
                state,
            } => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO sync_states (document, peer, state, saved_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(document, peer) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at",
                    )?
                    .execute(params![
                        document.as_bytes().as_slice(),
                        peer.as_str(),
                        state,
                        crate::init::now_ms()
                    ])?;
            }
            StoreOp::Erase { document } => {
                let key = document.as_bytes();
                self.tx
                    .prepare_cached("DELETE FROM chunks WHERE document = ?1")?
                    .execute([key.as_slice()])?;
                self.tx
                    .prepare_cached("DELETE FROM sync_states WHERE document = ?1")?
                    .execute([key.as_slice()])?;
                self.tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO erased_documents (document, erased_at) VALUES (?1, ?2)",
                    )?
                    .execute(params![key.as_slice(), crate::init::now_ms()])?;
            }
        }
        Ok(())
    }

    pub fn load(&self, id: &DocumentId) -> Result<Option<StoredDocument>, StoreError> {
        load_document(&self.tx, id)
    }

    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }
}

fn load_document(conn: &Connection, id: &DocumentId) -> Result<Option<StoredDocument>, StoreError> {
    let key = id.as_bytes().as_slice();
    let mut chunks = Vec::new();
    {
        let mut stmt =
            conn.prepare_cached("SELECT bytes FROM chunks WHERE document = ?1 ORDER BY seq")?;
        for row in stmt.query_map([key], |r| r.get::<_, Vec<u8>>(0))? {
            let chunk = row?;
            if chunk.len() > MAX_CHUNK_BYTES {
                return Err(StoreError::Corrupt(format!(
                    "a chunk of {id} is {} bytes",
                    chunk.len()
                )));
            }
            chunks.push(chunk);
        }
    }
    if chunks.is_empty() {
        return Ok(None);
    }
    let mut stmt =
        conn.prepare_cached("SELECT peer, state FROM sync_states WHERE document = ?1")?;
    let sync_states = stmt
        .query_map([key], |r| {
            Ok((
                StorageId::new(r.get::<_, String>(0)?),
                r.get::<_, Vec<u8>>(1)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(StoredDocument {
        chunks,
        sync_states,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let id = DocumentId::random();
        {
            let mut store = Store::open(dir.path(), Durability::Full).unwrap();
            store
                .apply(&[
                    StoreOp::AppendChanges {
                        document: id,
                        chunk: vec![1],
                    },
                    StoreOp::AppendChanges {
                        document: id,
                        chunk: vec![2],
                    },
                    StoreOp::SaveSyncState {
                        document: id,
                        peer: StorageId::new("peer"),
                        state: vec![9],
                    },
                ])
                .unwrap();
            store.set_meta("k", "v").unwrap();
        }
        let mut store = Store::open(dir.path(), Durability::Full).unwrap();
        let loaded = store.load(&id).unwrap().unwrap();
        assert_eq!(loaded.chunks, vec![vec![1], vec![2]]);
        assert_eq!(loaded.sync_states, vec![(StorageId::new("peer"), vec![9])]);
        assert_eq!(store.meta("k").unwrap().as_deref(), Some("v"));
        assert_eq!(store.document_ids().unwrap(), vec![id]);

        store
            .apply(&[StoreOp::ReplaceWithSnapshot {
                document: id,
                snapshot: vec![3],
            }])
            .unwrap();
        assert_eq!(store.load(&id).unwrap().unwrap().chunks, vec![vec![3]]);
        assert_eq!(store.load(&DocumentId::random()).unwrap(), None);
    }

    #[test]
    fn a_corrupt_document_key_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Normal).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO chunks (document, seq, bytes) VALUES (x'0102', 1, x'00')",
                [],
            )
            .unwrap();
        assert!(matches!(store.document_ids(), Err(StoreError::Corrupt(_))));
    }
}
