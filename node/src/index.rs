//! The practice index behind the node's read-only HTTP API: one row per practice (its
//! public record), its facet values, and an FTS5 table for full-text search.
//!
//! Search filters, orders and counts in memory ([`facet_table`]); FTS5 finds the words and
//! SQLite keeps the records (`sql`). It is derived data: documents are the truth. The
//! index follows document changes a moment after they happen (see [`indexer`]) and is
//! rebuilt from storage when its version changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use automerge::Automerge;
use ibis_shared::model::facets::Facet;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::review::ReviewState;
use ibis_shared::DocumentId;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::store::DATABASE_FILE;

mod entry;
mod facet_table;
pub mod indexer;
mod sql;

pub use entry::IndexEntry;
use facet_table::FacetTable;
pub use facet_table::Place;
use sql::{
    generation, load_into, parse_record, remove_rows, text_query, write_transaction, GENERATION_KEY,
};

/// Bump to rebuild every node's index at its next start. 2: a practice's text row shares
/// its `practice_index` row's rowid.
const INDEX_VERSION: &str = "2";
pub(crate) const VERSION_KEY: &str = "practice_index_version";

/// Makes the next start rebuild the index (after documents were written offline).
pub fn mark_stale(store: &crate::store::Store) -> Result<(), crate::store::StoreError> {
    store.set_meta(VERSION_KEY, "stale")
}
/// Most results one page returns.
pub const MAX_PAGE: usize = 200;
/// Most distinct values reported per facet.
const MAX_FACET_VALUES: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("index data is corrupt: {0}")]
    Corrupt(String),
}

/// A search.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub text: String,
    /// Facet filters: values of one facet are alternatives, facets combine.
    pub filters: BTreeMap<Facet, BTreeSet<String>>,
    /// Review states the caller may see.
    pub visible: Vec<ReviewState>,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SearchResult {
    pub total: usize,
    pub results: Vec<PracticeRecord>,
    /// For each facet, its values among all results (every filter applied) and how many
    /// results have each, most frequent first.
    pub facets: BTreeMap<&'static str, Vec<(String, usize)>>,
}

pub struct PracticeIndex {
    conn: Mutex<Connection>,
    /// Locked after `conn` when both are.
    facet_table: Mutex<FacetTable>,
}

impl PracticeIndex {
    /// Opens the index in a data dir whose database exists; creates its tables if needed.
    pub fn open(data_dir: &Path) -> Result<Self, IndexError> {
        let conn = Connection::open(data_dir.join(DATABASE_FILE))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS practice_index (
                 id TEXT PRIMARY KEY,
                 state TEXT NOT NULL,
                 updated_at INTEGER NOT NULL,
                 published_at INTEGER,
                 record TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS practice_index_published ON practice_index(published_at);
             CREATE TABLE IF NOT EXISTS practice_facets (
                 id TEXT NOT NULL,
                 facet TEXT NOT NULL,
                 value TEXT NOT NULL,
                 PRIMARY KEY (id, facet, value)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS practice_facets_value ON practice_facets(facet, value, id);
             CREATE VIRTUAL TABLE IF NOT EXISTS practice_text USING fts5(
                 id UNINDEXED, title, body, tokenize = 'unicode61 remove_diacritics 2'
             );",
        )?;
        let index = Self {
            conn: Mutex::new(conn),
            facet_table: Mutex::new(FacetTable::default()),
        };
        index.load_facet_table()?;
        Ok(index)
    }

    /// Lists every indexed practice again, from the index's own rows.
    fn load_facet_table(&self) -> Result<(), IndexError> {
        self.with(|c| load_into(c, &mut *self.facet_table()?))
    }

    fn facet_table(&self) -> Result<std::sync::MutexGuard<'_, FacetTable>, IndexError> {
        self.facet_table
            .lock()
            .map_err(|_| IndexError::Corrupt("index lock poisoned".into()))
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, IndexError>,
    ) -> Result<R, IndexError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| IndexError::Corrupt("index lock poisoned".into()))?;
        f(&mut conn)
    }

    pub fn upsert(&self, entries: &[IndexEntry]) -> Result<(), IndexError> {
        self.update(entries, &[])
    }

    /// Writes `entries` and removes the practices of `removed`, in one transaction.
    pub fn update(&self, entries: &[IndexEntry], removed: &[DocumentId]) -> Result<(), IndexError> {
        self.with(|c| {
            let tx = write_transaction(c)?;
            let before = generation(&tx)?;
            for id in removed {
                remove_rows(&tx, &id.to_string())?;
            }
            let mut rowids = Vec::with_capacity(entries.len());
            for e in entries {
                let id = e.id.to_string();
                remove_rows(&tx, &id)?;
                let r = &e.record;
                let json = serde_json::to_string(r).map_err(|e| IndexError::Corrupt(e.to_string()))?;
                tx.prepare_cached(
                    "INSERT INTO practice_index (id, state, updated_at, published_at, record)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![id, r.review_state, r.updated_at, e.published_at, json])?;
                let rowid = tx.last_insert_rowid();
                rowids.push(rowid);
                for facet in Facet::ALL {
                    for value in facet.values(r) {
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO practice_facets (id, facet, value) VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![id, facet.key(), value])?;
                    }
                }
                let body = ibis_shared::search::searchable_text(r);
                tx.prepare_cached(
                    "INSERT INTO practice_text (rowid, id, title, body) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![rowid, id, r.title, body])?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, '1')
                 ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                [GENERATION_KEY],
            )?;
            let after = generation(&tx)?;
            tx.commit()?;
            let mut table = self.facet_table()?;
            if table.generation == before {
                for id in removed {
                    table.remove(&id.to_string());
                }
                for (e, rowid) in entries.iter().zip(rowids) {
                    table.put(rowid, e.id.to_string(), &e.record);
                }
                table.generation = after;
            } else {
                // Someone else wrote since the table was read: read it all again.
                load_into(c, &mut table)?;
            }
            Ok(())
        })
    }

    pub fn remove(&self, id: &DocumentId) -> Result<(), IndexError> {
        self.update(&[], std::slice::from_ref(id))
    }

    pub fn count(&self) -> Result<usize, IndexError> {
        self.with(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM practice_index", [], |r| {
                r.get::<_, i64>(0)
            })? as usize)
        })
    }

    /// One practice, if the caller may see its state.
    pub fn get(
        &self,
        id: &DocumentId,
        visible: &[ReviewState],
    ) -> Result<Option<PracticeRecord>, IndexError> {
        let row: Option<(String, String)> = self.with(|c| {
            Ok(c.query_row(
                "SELECT state, record FROM practice_index WHERE id = ?1",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })?;
        let Some((state, json)) = row else {
            return Ok(None);
        };
        if !visible.iter().any(|s| s.key() == state) {
            return Ok(None);
        }
        Ok(Some(parse_record(&json)?))
    }

    pub fn search(&self, q: &Query) -> Result<SearchResult, IndexError> {
        let hits = self.hits(q)?;
        let limit = q.limit.clamp(1, MAX_PAGE);
        let page: Vec<&facet_table::Row> = hits
            .rows
            .iter()
            .skip(q.offset)
            .take(limit)
            .map(|r| &**r)
            .collect();
        let facets = Facet::ALL
            .iter()
            .zip(hits.facets)
            .map(|(facet, mut counts)| {
                counts.truncate(MAX_FACET_VALUES);
                (facet.key(), counts)
            })
            .collect();
        Ok(SearchResult {
            total: hits.rows.len(),
            results: self.records_of(&page)?,
            facets,
        })
    }

    /// Every matching record (up to `max`), newest first: for exports.
    pub fn records(&self, q: &Query, max: usize) -> Result<Vec<PracticeRecord>, IndexError> {
        let hits = self.hits(q)?;
        let mut out = Vec::new();
        let rows: Vec<&facet_table::Row> = hits.rows.iter().take(max).map(|r| &**r).collect();
        for chunk in rows.chunks(MAX_PAGE) {
            out.extend(self.records_of(chunk)?);
        }
        Ok(out)
    }

    /// Where the practices `q` selects are (places by country and city, most practices
    /// first), and how many could not be placed. A practice without coordinates is at
    /// its city, as the gazetteer has it (read on the first map drawn, not before).
    pub fn places(&self, q: &Query) -> Result<(Vec<Place>, usize), IndexError> {
        let hits = self.hits(q)?;
        let (mut places, without) = self.facet_table()?.places(&hits.rows);
        let mut unplaced = 0;
        let mut at: std::collections::HashMap<(String, String), usize> = places
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.country.clone(), p.city.clone()), i))
            .collect();
        for mut place in without {
            let Some((lat, lon)) = crate::geo::gazetteer::locate(&place.country, &place.city)
            else {
                unplaced += place.practices;
                continue;
            };
            let key = (place.country.clone(), place.city.clone());
            match at.get(&key).and_then(|i| places.get_mut(*i)) {
                Some(p) => {
                    let n = (p.practices + place.practices) as f64;
                    p.lat = (p.lat * p.practices as f64 + lat * place.practices as f64) / n;
                    p.lon = (p.lon * p.practices as f64 + lon * place.practices as f64) / n;
                    p.practices += place.practices;
                }
                None => {
                    (place.lat, place.lon) = (lat, lon);
                    at.insert(key, places.len());
                    places.push(place);
                }
            }
        }
        facet_table::sort_places(&mut places);
        Ok((places, unplaced))
    }

    /// What `q` selects, newest first, with its facet counts.
    ///
    /// The text's rows and the table are read under the database's lock, which every
    /// update holds until the table follows it: a practice re-indexed in between (at a
    /// new rowid) would otherwise be missed.
    fn hits(&self, q: &Query) -> Result<facet_table::Hits, IndexError> {
        let chosen = q
            .filters
            .iter()
            .flat_map(|(facet, values)| values.iter().map(|v| (*facet, v.as_str())));
        self.with(|c| {
            let text = match text_query(&q.text) {
                None => None,
                Some(fts) => {
                    let mut stmt = c.prepare_cached(
                        "SELECT rowid FROM practice_text WHERE practice_text MATCH ?1 ORDER BY rowid",
                    )?;
                    let rows = stmt.query_map([fts], |r| r.get::<_, i64>(0))?;
                    Some(rows.collect::<Result<Vec<_>, _>>()?)
                }
            };
            let mut table = self.facet_table()?;
            if table.generation != generation(c)? {
                load_into(c, &mut table)?;
            }
            Ok(table.hits(&q.visible, text.as_deref(), chosen))
        })
    }

    /// The records of listed rows, in their order, found by id (a practice re-indexed since
    /// it was listed has a new rowid). A practice removed since is left out.
    fn records_of(&self, rows: &[&facet_table::Row]) -> Result<Vec<PracticeRecord>, IndexError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: BTreeMap<String, String> = self.with(|c| {
            let marks = vec!["?"; rows.len()].join(", ");
            let mut stmt = c.prepare(&format!(
                "SELECT id, record FROM practice_index WHERE id IN ({marks})"
            ))?;
            let found = stmt
                .query_map(params_from_iter(rows.iter().map(|r| r.id.as_str())), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok(found)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(json) = found.remove(&row.id) {
                out.push(parse_record(&json)?);
            }
        }
        Ok(out)
    }

    /// The most recently published practices, newest first.
    pub fn recently_published(
        &self,
        limit: usize,
    ) -> Result<Vec<(PracticeRecord, i64)>, IndexError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT record, published_at FROM practice_index
                 WHERE state = 'published' AND published_at IS NOT NULL
                 ORDER BY published_at DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (json, at) = row?;
                out.push((parse_record(&json)?, at));
            }
            Ok(out)
        })
    }

    /// A document as storage holds it (the index shares the store's database), without
    /// asking the engine: for the public pages, which must not keep documents in memory.
    /// `None` if it is not stored or its stored data does not load.
    pub fn stored_document(&self, id: &DocumentId) -> Result<Option<Automerge>, IndexError> {
        let chunks: Vec<Vec<u8>> = self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT bytes FROM chunks WHERE document = ?1 ORDER BY seq")?;
            let rows = stmt.query_map([id.as_bytes().as_slice()], |r| r.get::<_, Vec<u8>>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        if chunks.is_empty() {
            return Ok(None);
        }
        Ok(Automerge::load(&chunks.concat()).ok())
    }

    /// Rebuilds the index from storage if it was built by another version of this code;
    /// how many practices it then holds. Stops between batches once `stop` is set (the
    /// node is shutting down; its next start rebuilds again): a rebuild left running would
    /// write under a node that started on the same data dir since.
    pub fn rebuild_if_stale(
        &self,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<usize, IndexError> {
        let version: Option<String> = self.with(|c| {
            Ok(c.query_row(
                "SELECT value FROM meta WHERE key = 'practice_index_version'",
                [],
                |r| r.get(0),
            )
            .optional()?)
        })?;
        if version.as_deref() == Some(INDEX_VERSION) {
            return Ok(0);
        }
        // Text rows an older version left off their practice's rowid would be missed (or
        // another practice's deleted) by `remove_rows`: drop them first, in one statement.
        // Everything else keeps answering searches while the rebuild (in the background,
        // the node already serving) goes through every document.
        self.with(|c| {
            c.execute(
                "DELETE FROM practice_text WHERE rowid IN (
                     SELECT t.rowid FROM practice_text t
                     LEFT JOIN practice_index p ON p.id = t.id
                     WHERE p.rowid IS NOT t.rowid)",
                [],
            )?;
            Ok(())
        })?;
        let ids: Vec<Vec<u8>> = self.with(|c| {
            let mut stmt = c.prepare("SELECT DISTINCT document FROM chunks")?;
            let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        let mut entries = Vec::new();
        for key in ids {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(0);
            }
            let Ok(id) = DocumentId::from_slice(&key) else {
                continue;
            };
            let Some(doc) = self.stored_document(&id)? else {
                tracing::warn!(document = %id, "not indexed: stored data does not load");
                continue;
            };
            entries.extend(IndexEntry::of(id, &doc));
            if entries.len() >= 500 {
                self.upsert(&entries)?;
                entries.clear();
            }
        }
        self.upsert(&entries)?;
        let count = self.count()?;
        self.with(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [VERSION_KEY, INDEX_VERSION],
            )?;
            Ok(())
        })?;
        self.load_facet_table()?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests;
