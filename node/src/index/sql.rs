//! The index's SQL below [`PracticeIndex`](super::PracticeIndex): its write transactions,
//! a practice's rows removed, the count of writes the facet table follows, the facet
//! table read from the rows, and the FTS5 query for a search's text.

use ibis_shared::model::facets::words;
use ibis_shared::model::record::PracticeRecord;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::facet_table::FacetTable;
use super::IndexError;

/// A transaction that takes the write lock first. The index shares its database with
/// the store: a deferred one that read (a rowid) before writing would fail at once, with
/// "database is locked", whenever another connection committed in between, because
/// SQLite cannot carry a reader's snapshot forward into a write. Taking the lock up
/// front waits for the other writer instead (`busy_timeout`).
pub(super) fn write_transaction(
    c: &mut Connection,
) -> Result<rusqlite::Transaction<'_>, IndexError> {
    Ok(c.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

pub(super) fn remove_rows(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<(), IndexError> {
    // The text row is found by the rowid it shares with the practice's row: FTS5 looks a
    // rowid up, but a condition on its unindexed `id` column reads the whole table. That
    // scan made every edit cost a read of the whole catalogue's text, and importing 10,000
    // practices quadratic (70% of the node's time, perf).
    let rowid: Option<i64> = tx
        .prepare_cached("SELECT rowid FROM practice_index WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if let Some(rowid) = rowid {
        tx.prepare_cached("DELETE FROM practice_text WHERE rowid = ?1")?
            .execute([rowid])?;
    }
    tx.prepare_cached("DELETE FROM practice_index WHERE id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM practice_facets WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

pub(super) fn parse_record(json: &str) -> Result<PracticeRecord, IndexError> {
    serde_json::from_str(json).map_err(|e| IndexError::Corrupt(format!("indexed record: {e}")))
}

/// Counts the index's writes (in `meta`, in each write's own transaction): the facet
/// table is read again when the database has writes it has not seen — another node's
/// process on the same data dir, a writer of this one still finishing as it stops.
pub(super) const GENERATION_KEY: &str = "practice_index_generation";

pub(super) fn generation(c: &Connection) -> Result<i64, IndexError> {
    Ok(c.query_row(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1",
        [GENERATION_KEY],
        |r| r.get(0),
    )
    .optional()?
    .unwrap_or(0))
}

/// Reads the whole facet table from the index's rows.
pub(super) fn load_into(c: &Connection, table: &mut FacetTable) -> Result<(), IndexError> {
    table.clear();
    table.generation = generation(c)?;
    let mut stmt = c.prepare("SELECT rowid, id, record FROM practice_index")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (rowid, id, json) = row?;
        table.put(rowid, id, &parse_record(&json)?);
    }
    Ok(())
}

/// The FTS5 query for a search's text: every word must match, as a prefix; quoting
/// keeps FTS5 syntax out of user input. `None` when the text has no words.
pub(super) fn text_query(text: &str) -> Option<String> {
    let terms = words(text);
    (!terms.is_empty()).then(|| {
        terms
            .iter()
            .map(|w| format!("\"{}\"*", w.replace('"', "")))
            .collect::<Vec<_>>()
            .join(" ")
    })
}
