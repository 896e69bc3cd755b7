//! Archives and backups.
//!
//! An **archive** (`ibis-node export`) is the organization's catalogue as one portable
//! file: a gzipped tar holding every document as an Automerge binary
//! (`documents/<id>.automerge`), the practices as JSON records (`practices.json`, for
//! people and other tools), and a `manifest.json`. Importing an archive into any node
//! (`ibis-node import FILE.tar.gz`) merges each document into what that node has, so the
//! catalogue comes out identical — an archive any partner can re-host.
//!
//! A **backup** (`ibis-node backup`) is a consistent copy of a node's database, key and
//! configuration, taken while it runs.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context};
use automerge::Automerge;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::Practice;
use ibis_shared::sync::StoreOp;
use ibis_shared::DocumentId;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::init::{load_document, now_ms, DataDirLock};
use crate::store::Store;

/// Largest archive `import` reads, compressed and uncompressed.
pub const MAX_ARCHIVE_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest single document in an archive.
const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;
const FORMAT: &str = "ibis-archive/1";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub organization_id: String,
    pub organization_name: String,
    pub directory: String,
    pub catalogue: String,
    pub documents: usize,
    pub practices: usize,
    pub created_at: i64,
}

/// What an archive held and what importing it did.
#[derive(Debug, Default, PartialEq)]
pub struct ArchiveReport {
    pub documents: usize,
    pub new_documents: usize,
    pub merged_documents: usize,
    pub practices: usize,
}

fn tar_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime((now_ms() / 1000).max(0) as u64);
    header.set_cksum();
    builder.append_data(&mut header, path, bytes)
}

/// Writes every document of a (stopped or running) node into an archive.
pub fn export(data_dir: &Path, out: &Path) -> anyhow::Result<Manifest> {
    let config = Config::load(data_dir)?;
    let store = Store::open(data_dir, config.node.durability)?;
    let ids = store.document_ids()?;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    let mut records = Vec::new();
    let mut documents = 0;
    for id in &ids {
        let doc = match load_document(&store, id) {
            Ok(Some(doc)) => doc,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(document = %id, error = %e, "not exported: stored data does not load");
                continue;
            }
        };
        if let Ok(practice) = Practice::load(&doc) {
            records.push(PracticeRecord::from_practice(Some(*id), &practice, true));
        }
        tar_entry(
            &mut builder,
            &format!("documents/{id}.automerge"),
            &doc.save(),
        )?;
        documents += 1;
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        organization_id: config.organization.id.clone(),
        organization_name: config.organization.name.clone(),
        directory: config.documents.directory.url(),
        catalogue: config.documents.catalogue.url(),
        documents,
        practices: records.len(),
        created_at: now_ms(),
    };
    tar_entry(
        &mut builder,
        "practices.json",
        &serde_json::to_vec_pretty(&records)?,
    )?;
    tar_entry(
        &mut builder,
        "manifest.json",
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    builder.into_inner()?.finish()?.sync_all()?;
    Ok(manifest)
}

/// True if the file starts like a gzip stream (an archive rather than JSON or CSV).
pub fn is_archive(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|()| magic == [0x1f, 0x8b])
        .unwrap_or(false)
}

/// Merges an archive's documents into a stopped node.
pub fn import(data_dir: &Path, archive: &Path) -> anyhow::Result<ArchiveReport> {
    let config = Config::load(data_dir)?;
    let _lock = DataDirLock::acquire(data_dir)?;
    let size = std::fs::metadata(archive)
        .with_context(|| format!("cannot read {}", archive.display()))?
        .len();
    if size > MAX_ARCHIVE_BYTES {
        bail!(
            "{} is {size} bytes; archives are at most {MAX_ARCHIVE_BYTES}",
            archive.display()
        );
    }
    let mut store = Store::open(data_dir, config.node.durability)?;
    let file = std::fs::File::open(archive)?;
    let gz = flate2::read::GzDecoder::new(file).take(MAX_ARCHIVE_BYTES);
    let mut tar = tar::Archive::new(gz);
    let mut report = ArchiveReport::default();
    let mut manifest: Option<Manifest> = None;
    let mut writes = Vec::new();
    for entry in tar.entries().context("not a readable archive")? {
        let mut entry = entry.context("damaged archive entry")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if entry.size() > MAX_DOCUMENT_BYTES {
            bail!(
                "{path} is {} bytes; too large for an archive entry",
                entry.size()
            );
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes)?;
        if path == "manifest.json" {
            manifest = Some(serde_json::from_slice(&bytes).context("manifest.json is not valid")?);
            continue;
        }
        let Some(name) = path
            .strip_prefix("documents/")
            .and_then(|n| n.strip_suffix(".automerge"))
        else {
            continue;
        };
        let id = DocumentId::parse(name).with_context(|| format!("{path}: not a document id"))?;
        let mut incoming =
            Automerge::load(&bytes).with_context(|| format!("{path} does not load"))?;
        report.documents += 1;
        if Practice::load(&incoming).is_ok() {
            report.practices += 1;
        }
        match load_document(&store, &id)? {
            None => {
                writes.push(StoreOp::ReplaceWithSnapshot {
                    document: id,
                    snapshot: bytes,
                });
                report.new_documents += 1;
            }
            Some(mut ours) => {
                let before = ours.get_heads();
                ours.merge(&mut incoming)
                    .with_context(|| format!("{path} cannot be merged"))?;
                if ours.get_heads() != before {
                    writes.push(StoreOp::AppendChanges {
                        document: id,
                        chunk: ours.save_after(&before),
                    });
                    report.merged_documents += 1;
                }
            }
        }
        if writes.len() >= 500 {
            store.apply(&writes)?;
            writes.clear();
        }
    }
    store.apply(&writes)?;
    crate::index::mark_stale(&store)?;
    match manifest {
        Some(m) if m.format == FORMAT => {
            if m.documents != report.documents {
                bail!(
                    "the archive lists {} documents but holds {}; it may be truncated",
                    m.documents,
                    report.documents
                );
            }
        }
        Some(m) => bail!("unknown archive format {}", m.format),
        None => bail!("the archive has no manifest.json"),
    }
    Ok(report)
}

/// A consistent copy of a node's database, key and configuration, taken while it runs.
pub fn backup(data_dir: &Path, out_dir: &Path) -> anyhow::Result<()> {
    let config = Config::load(data_dir)?;
    if out_dir.exists() && std::fs::read_dir(out_dir)?.next().is_some() {
        bail!("{} is not empty", out_dir.display());
    }
    std::fs::create_dir_all(out_dir)?;
    let store = Store::open(data_dir, config.node.durability)?;
    store.backup_to(&out_dir.join(crate::store::DATABASE_FILE))?;
    for file in [crate::config::CONFIG_FILE, crate::federation::KEY_FILE] {
        let from = data_dir.join(file);
        if from.exists() {
            std::fs::copy(&from, out_dir.join(file))
                .with_context(|| format!("cannot copy {}", from.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{init, InitOptions};

    #[test]
    fn an_exported_catalogue_imports_identically_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        init(&InitOptions::new(&a, "IOM")).unwrap();
        let json = dir.path().join("p.json");
        std::fs::write(
            &json,
            r#"[{"title": "Welcome desks", "summary": "Desks.", "city": "Lisbon", "country": "PT",
                 "themes": ["reception-services"], "review_state": "published",
                 "contact_name": "Private Person"},
                {"title": "A draft", "city": "Porto", "country": "PT"}]"#,
        )
        .unwrap();
        crate::import::import(&a, &json, crate::import::Format::Json, "t").unwrap();
        let archive = dir.path().join("iom.tar.gz");
        let manifest = export(&a, &archive).unwrap();
        assert_eq!(manifest.practices, 2);
        assert!(is_archive(&archive));
        assert!(!is_archive(&json));

        let b = dir.path().join("b");
        init(&InitOptions::new(&b, "Mirror")).unwrap();
        let report = import(&b, &archive).unwrap();
        assert_eq!(report.documents, manifest.documents);
        assert_eq!(report.practices, 2);
        // Importing again changes nothing.
        let again = import(&b, &archive).unwrap();
        assert_eq!((again.new_documents, again.merged_documents), (0, 0));

        let heads = |dir: &Path| {
            let store = Store::open(dir, crate::store::Durability::Full).unwrap();
            let mut practices = Vec::new();
            for id in store.document_ids().unwrap() {
                let doc = load_document(&store, &id).unwrap().unwrap();
                if Practice::load(&doc).is_ok() {
                    let mut h = doc.get_heads();
                    h.sort();
                    practices.push((id, h));
                }
            }
            practices.sort();
            practices
        };
        assert_eq!(heads(&a), heads(&b));

        // A truncated archive is refused with a reason (what was read before the damage is
        // merged, which is harmless: merging is idempotent).
        let bytes = std::fs::read(&archive).unwrap();
        let cut = dir.path().join("cut.tar.gz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let c = dir.path().join("c");
        init(&InitOptions::new(&c, "C")).unwrap();
        assert!(import(&c, &cut).is_err());
    }

    #[test]
    fn a_backup_is_a_working_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let info = init(&InitOptions::new(&a, "IOM")).unwrap();
        let copy = dir.path().join("backup");
        backup(&a, &copy).unwrap();
        let config = Config::load(&copy).unwrap();
        assert_eq!(config.organization.id, info.organization_id);
        let store = Store::open(&copy, config.node.durability).unwrap();
        assert_eq!(store.document_ids().unwrap().len(), 3);
        assert!(backup(&a, &copy).is_err(), "never overwrites");
    }
}
