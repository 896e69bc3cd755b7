//! `ibis-node import`: practices from a JSON array or a CSV file into the organization's
//! workspace (and catalogue, for published ones), with a report for every row. Rows that
//! fail are reported and skipped; the others are imported.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use ibis_shared::model::catalogue::{set_entries, Entry};
use ibis_shared::model::publication::new_public_document;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::validation::{summarize, FieldError};
use ibis_shared::model::{Author, DocumentKind};
use ibis_shared::sync::StoreOp;
use ibis_shared::DocumentId;

use crate::config::Config;
use crate::init::{load_document, now_ms, snapshot, DataDirLock};
use crate::store::Store;

/// The largest file `import` reads.
pub const MAX_IMPORT_BYTES: u64 = 64 * 1024 * 1024;
/// The most rows one import takes.
pub const MAX_IMPORT_ROWS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// What happened to one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOutcome {
    /// `id` is the internal practice; `public`, its public practice if the row was
    /// published (or archived).
    Imported {
        id: DocumentId,
        public: Option<DocumentId>,
    },
    Failed(Vec<FieldError>),
}

#[derive(Debug, Default)]
pub struct Report {
    /// (row number from 1, outcome)
    pub rows: Vec<(usize, RowOutcome)>,
    /// Rows without coordinates that the gazetteer placed (by city and country).
    pub placed: usize,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.rows
            .iter()
            .filter(|(_, o)| matches!(o, RowOutcome::Failed(_)))
            .count()
    }
}

/// Parses the file into records (or per-row errors).
pub fn read_records(
    path: &Path,
    format: Format,
) -> anyhow::Result<Vec<Result<PracticeRecord, Vec<FieldError>>>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > MAX_IMPORT_BYTES {
        bail!(
            "{} is {size} bytes; import takes files up to {MAX_IMPORT_BYTES} bytes",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rows = match format {
        Format::Json => {
            let values: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a JSON array", path.display()))?;
            values
                .into_iter()
                .map(|v| {
                    serde_json::from_value::<PracticeRecord>(v)
                        .map_err(|e| vec![FieldError::new("record", e.to_string())])
                })
                .collect::<Vec<_>>()
        }
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(false)
                .from_reader(bytes.as_slice());
            let headers: Vec<String> = reader
                .headers()
                .with_context(|| format!("{} has no CSV header row", path.display()))?
                .iter()
                .map(str::to_owned)
                .collect();
            reader
                .records()
                .map(|row| match row {
                    Ok(row) => {
                        let fields: Vec<(String, String)> = headers
                            .iter()
                            .cloned()
                            .zip(row.iter().map(str::to_owned))
                            .collect();
                        PracticeRecord::from_csv_fields(&fields)
                    }
                    Err(e) => Err(vec![FieldError::new("row", e.to_string())]),
                })
                .collect()
        }
    };
    if rows.len() > MAX_IMPORT_ROWS {
        bail!(
            "{} has {} rows; import takes at most {MAX_IMPORT_ROWS} at a time",
            path.display(),
            rows.len()
        );
    }
    Ok(rows)
}

/// Imports into a stopped node's data dir.
pub fn import(
    data_dir: &Path,
    path: &Path,
    format: Format,
    importer: &str,
) -> anyhow::Result<Report> {
    let config = Config::load(data_dir)?;
    let _lock = DataDirLock::acquire(data_dir)?;
    let rows = read_records(path, format)?;
    let mut store = Store::open(data_dir, config.node.durability)?;
    let author = Author {
        name: importer.to_owned(),
        organization: config.organization.id.clone(),
        role: ibis_shared::model::Role::Admin,
    };
    let now = now_ms();
    let total = rows.len();
    let mut report = Report::default();
    let mut writes = Vec::new();
    let mut stderr = std::io::stderr();
    for (i, row) in rows.into_iter().enumerate() {
        let outcome = row
            .map(|mut record| {
                report.placed += usize::from(place(&mut record));
                record
            })
            .and_then(|record| record.to_practice(&author, now))
            .and_then(|practice| {
                practice_documents(&practice, &author, &config.organization.name, now)
                    .map_err(|e| vec![FieldError::new("practice", e.to_string())])
            });
        match outcome {
            Ok((internal, public)) => {
                let id = DocumentId::random();
                writes.push(snapshot(id, &internal));
                let public = public.map(|(public_id, doc)| {
                    writes.push(snapshot(public_id, &doc));
                    public_id
                });
                report
                    .rows
                    .push((i + 1, RowOutcome::Imported { id, public }));
            }
            Err(errors) => report.rows.push((i + 1, RowOutcome::Failed(errors))),
        }
        if (i + 1) % 50 == 0 || i + 1 == total {
            let _ = write!(stderr, "\rimporting: {}/{total}", i + 1);
            let _ = stderr.flush();
        }
    }
    let _ = writeln!(stderr);
    for kind in [DocumentKind::Workspace, DocumentKind::Catalogue] {
        let id = match kind {
            DocumentKind::Workspace => config.documents.workspace,
            _ => config.documents.catalogue,
        };
        let mut doc = load_document(&store, &id)?
            .with_context(|| format!("the organization's {} is missing", kind.type_name()))?;
        let before = doc.get_heads();
        let listed: Vec<DocumentId> = report
            .rows
            .iter()
            .filter_map(|(_, outcome)| match (kind, outcome) {
                (DocumentKind::Workspace, RowOutcome::Imported { id, .. }) => Some(*id),
                (_, RowOutcome::Imported { public, .. }) => *public,
                _ => None,
            })
            .collect();
        if !listed.is_empty() {
            set_entries(&mut doc, kind, Entry::Practice, &listed, true, &author, now)?;
        }
        if doc.get_heads() != before {
            writes.push(StoreOp::AppendChanges {
                document: id,
                chunk: doc.save_after(&before),
            });
        }
    }
    store.apply(&writes)?;
    crate::index::mark_stale(&store)?;
    Ok(report)
}

/// The documents of an imported practice: its internal practice and, when the record
/// says it is published (or archived; an importing admin vouches for it), its public
/// practice, linked.
pub fn practice_documents(
    practice: &ibis_shared::model::Practice,
    author: &Author,
    organization_name: &str,
    now: i64,
) -> Result<
    (
        automerge::Automerge,
        Option<(DocumentId, automerge::Automerge)>,
    ),
    ibis_shared::model::ModelError,
> {
    let state = practice.state();
    if !state.is_public() {
        return Ok((practice.create(author, now)?, None));
    }
    let public_id = DocumentId::random();
    let public = new_public_document(practice, author, organization_name, state, now)?;
    let mut internal = practice.clone();
    internal.public = public_id.url();
    Ok((internal.create(author, now)?, Some((public_id, public))))
}

/// Gives a record without coordinates those of its city, if the gazetteer knows it;
/// whether it did. Coordinates a record has are its own: they are never replaced.
pub fn place(record: &mut PracticeRecord) -> bool {
    if record.latitude.is_some() || record.longitude.is_some() {
        return false;
    }
    match crate::geo::gazetteer::locate(&record.country, &record.city) {
        Some((lat, lon)) => {
            record.latitude = Some(lat);
            record.longitude = Some(lon);
            true
        }
        None => false,
    }
}

/// The report as lines for people.
pub fn describe(report: &Report) -> Vec<String> {
    report
        .rows
        .iter()
        .map(|(row, outcome)| match outcome {
            RowOutcome::Imported { id, public } => match public {
                Some(public) => format!(
                    "row {row}: imported {}, published as {}",
                    id.url(),
                    public.url()
                ),
                None => format!("row {row}: imported {} (draft)", id.url()),
            },
            RowOutcome::Failed(errors) => format!("row {row}: not imported: {}", summarize(errors)),
        })
        .collect()
}
