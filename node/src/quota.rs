//! Documents of no ibis type (another application's, synced through the node) are relayed
//! as any automerge-repo server would, but each organization (or relay without one) may
//! have the node store a bounded number of them, and bounded bytes: whoever created one is
//! charged for it, whoever changes it later.
//!
//! Who created which is kept in the `untyped_documents` table, written as documents are
//! admitted; their bytes are followed from the engine's writes, and at start read back
//! from what storage holds. A node that dies between admitting a document and writing its
//! row forgets to charge it: bounded by how often the node can be killed, not by the sender.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use ibis_shared::sync::StoreOp;
use ibis_shared::DocumentId;
use rusqlite::{params, Connection};

use crate::limits::{UNTYPED_BYTES_PER_ORGANIZATION, UNTYPED_DOCUMENTS_PER_ORGANIZATION};
use crate::store::DATABASE_FILE;

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

#[derive(Debug, Default)]
struct Ledger {
    /// Each untyped document's creator and its stored bytes.
    documents: HashMap<DocumentId, (String, u64)>,
    /// Per creator: documents and bytes.
    totals: HashMap<String, (usize, u64)>,
    /// Admitted and not yet written down.
    unsaved: Vec<(DocumentId, String)>,
}

pub struct UntypedQuota {
    ledger: Mutex<Ledger>,
    db: Option<Mutex<Connection>>,
    max_documents: usize,
    max_bytes: u64,
}

impl UntypedQuota {
    /// Kept in the data dir's database (whose tables the store created).
    pub fn open(data_dir: &Path) -> Result<Self, QuotaError> {
        let conn = Connection::open(data_dir.join(DATABASE_FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut ledger = Ledger::default();
        {
            let mut stmt = conn.prepare(
                "SELECT u.document, u.organization,
                        (SELECT COALESCE(SUM(LENGTH(bytes)), 0) FROM chunks c WHERE c.document = u.document)
                 FROM untyped_documents u",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (id, owner, bytes) = row?;
                let Ok(id) = DocumentId::from_slice(&id) else {
                    continue;
                };
                ledger.charge(id, owner, bytes.max(0) as u64);
            }
        }
        Ok(Self {
            ledger: Mutex::new(ledger),
            db: Some(Mutex::new(conn)),
            max_documents: UNTYPED_DOCUMENTS_PER_ORGANIZATION,
            max_bytes: UNTYPED_BYTES_PER_ORGANIZATION,
        })
    }

    /// Kept in memory only, with these limits (tests).
    pub fn in_memory(max_documents: usize, max_bytes: u64) -> Self {
        Self {
            ledger: Mutex::new(Ledger::default()),
            db: None,
            max_documents,
            max_bytes,
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new untyped document from `owner`: charged to it, or refused if it has as many
    /// (or as many bytes) as it may.
    pub fn admit(&self, id: DocumentId, owner: &str) -> Result<(), String> {
        let mut ledger = self.ledger();
        if ledger.documents.contains_key(&id) {
            return Ok(());
        }
        let (count, bytes) = ledger.totals.get(owner).copied().unwrap_or_default();
        if count >= self.max_documents {
            return Err(format!(
                "{owner} already has {count} documents of no ibis type here, the most one organization may have"
            ));
        }
        if bytes >= self.max_bytes {
            return Err(over_bytes(owner, bytes, self.max_bytes));
        }
        ledger.charge(id, owner.to_owned(), 0);
        ledger.unsaved.push((id, owner.to_owned()));
        Ok(())
    }

    /// May the untyped document grow? Refused once its creator is over its bytes.
    pub fn may_grow(&self, id: &DocumentId) -> Result<(), String> {
        let ledger = self.ledger();
        let Some((owner, _)) = ledger.documents.get(id) else {
            return Ok(());
        };
        let (_, bytes) = ledger.totals.get(owner).copied().unwrap_or_default();
        if bytes >= self.max_bytes {
            return Err(over_bytes(owner, bytes, self.max_bytes));
        }
        Ok(())
    }

    /// Follows a write the engine asked storage to make, and writes down who created the
    /// documents admitted since the last call.
    pub fn observe(&self, op: &StoreOp) {
        let mut ledger = self.ledger();
        let (id, bytes, replace) = match op {
            StoreOp::AppendChanges { document, chunk } => (document, chunk.len(), false),
            StoreOp::ReplaceWithSnapshot { document, snapshot } => (document, snapshot.len(), true),
            StoreOp::SaveSyncState { .. } => return,
            StoreOp::Erase { document } => {
                if let Some((owner, held)) = ledger.documents.remove(document) {
                    if let Some(total) = ledger.totals.get_mut(&owner) {
                        total.0 = total.0.saturating_sub(1);
                        total.1 = total.1.saturating_sub(held);
                    }
                }
                return;
            }
        };
        let Some((owner, held)) = ledger.documents.get_mut(id) else {
            return;
        };
        let old = *held;
        *held = if replace {
            bytes as u64
        } else {
            old + bytes as u64
        };
        let new = *held;
        let owner = owner.clone();
        if let Some(total) = ledger.totals.get_mut(&owner) {
            total.1 = total.1 - old.min(total.1) + new;
        }
    }

    /// Writes down who created the documents admitted since the last call.
    pub fn save(&self) {
        let unsaved = std::mem::take(&mut self.ledger().unsaved);
        let (Some(db), false) = (&self.db, unsaved.is_empty()) else {
            return;
        };
        let conn = db.lock().unwrap_or_else(|p| p.into_inner());
        for (id, owner) in unsaved {
            if let Err(e) = conn.execute(
                "INSERT OR IGNORE INTO untyped_documents (document, organization) VALUES (?1, ?2)",
                params![id.as_bytes().as_slice(), owner],
            ) {
                tracing::warn!(document = %id, error = %e, "cannot record who created an untyped document");
            }
        }
    }

    /// (documents, bytes) charged to `owner`.
    pub fn usage(&self, owner: &str) -> (usize, u64) {
        self.ledger().totals.get(owner).copied().unwrap_or_default()
    }
}

impl Ledger {
    fn charge(&mut self, id: DocumentId, owner: String, bytes: u64) {
        let total = self.totals.entry(owner.clone()).or_default();
        total.0 += 1;
        total.1 += bytes;
        self.documents.insert(id, (owner, bytes));
    }
}

fn over_bytes(owner: &str, bytes: u64, max: u64) -> String {
    format!(
        "{owner}'s documents of no ibis type already take {} MiB here, the most one organization may have ({} MiB)",
        bytes / (1024 * 1024),
        max / (1024 * 1024)
    )
}

/// Storage that charges the writes it commits to the untyped documents' creators.
pub struct Charged<S> {
    pub inner: S,
    pub quota: std::sync::Arc<UntypedQuota>,
}

impl<S: crate::host::Storage> crate::host::Storage for Charged<S> {
    fn apply_and_load(
        &mut self,
        writes: &[&StoreOp],
        loads: &[DocumentId],
    ) -> Result<Vec<crate::host::Loaded>, crate::host::StorageError> {
        let result = self.inner.apply_and_load(writes, loads)?;
        for op in writes {
            self.quota.observe(op);
        }
        self.quota.save();
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creators_are_charged_documents_and_bytes() {
        let quota = UntypedQuota::in_memory(2, 100);
        let (a, b, c) = (
            DocumentId::from_bytes([1; 16]),
            DocumentId::from_bytes([2; 16]),
            DocumentId::from_bytes([3; 16]),
        );
        quota.admit(a, "unaoc").unwrap();
        quota.admit(a, "unaoc").unwrap();
        quota.admit(b, "unaoc").unwrap();
        assert!(quota
            .admit(c, "unaoc")
            .unwrap_err()
            .contains("already has 2"));
        quota.admit(c, "nlc").unwrap();
        quota.observe(&StoreOp::AppendChanges {
            document: a,
            chunk: vec![0; 60],
        });
        quota.observe(&StoreOp::AppendChanges {
            document: a,
            chunk: vec![0; 50],
        });
        assert_eq!(quota.usage("unaoc"), (2, 110));
        assert!(quota.may_grow(&b).unwrap_err().contains("already take"));
        assert!(quota.may_grow(&c).is_ok());
        // A snapshot replaces what was held.
        quota.observe(&StoreOp::ReplaceWithSnapshot {
            document: a,
            snapshot: vec![0; 30],
        });
        assert_eq!(quota.usage("unaoc"), (2, 30));
        assert!(quota.may_grow(&b).is_ok());
    }
}
