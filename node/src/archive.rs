//! Archives and backups.
//!
//! An **archive** (`ibis-node export`) is the organization's catalogue as one portable
//! file: a gzipped tar holding documents as Automerge binaries
//! (`documents/<id>.automerge`), the practices as JSON records (`practices.json`, for
//! people and other tools), and a `manifest.json`. It comes in two [`Form`]s: **public**
//! (the default) holds what partners may read — public practices, catalogues, the
//! directory, events: an archive anyone may re-host; **full** (`--full`) holds every
//! document, internal practices and the workspace included, with private contacts, for
//! the organization's own keeping, like a backup.
//!
//! Importing an archive into any node (`ibis-node import FILE.tar.gz`) merges each document
//! into what that node has, through the same checks as any change that arrives by sync
//! ([`import`]): bytes are measured before they are loaded, every document is checked by
//! [`NodePolicy`], erased documents stay erased, and an archive with anything refused
//! changes nothing.
//!
//! A **backup** (`ibis-node backup`) is a consistent copy of a node's database, key and
//! configuration, taken while it runs.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use automerge::Automerge;
use ibis_shared::bounds::{measure_chunks, Bounds};
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::review::Role;
use ibis_shared::model::Practice;
use ibis_shared::model::{kind_of, DocumentKind};
use ibis_shared::sync::{Policy, StoreOp};
use ibis_shared::DocumentId;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::init::{load_document, now_ms, DataDirLock};
use crate::policy::{Access, NodePolicy, Owner, Principal};
use crate::quota::UntypedQuota;
use crate::registry::Acl;
use crate::store::Store;

/// Largest archive `import` reads, compressed and uncompressed; also the most bytes of
/// checked writes an import holds before it writes them.
pub const MAX_ARCHIVE_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest single document in an archive.
const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;
const FORMAT: &str = "ibis-archive/1";

/// What an archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// What partners may read: public practices, catalogues, the directory, events. An
    /// archive anyone may re-host.
    Public,
    /// Every document this node holds, internal practices (drafts, review comments) and
    /// the workspace included, and practices' private contacts: the organization's own
    /// copy, to be kept like a backup. Archives made before there were forms are full.
    #[default]
    Full,
}

impl Form {
    pub fn key(self) -> &'static str {
        match self {
            Form::Public => "public",
            Form::Full => "full",
        }
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    #[serde(default)]
    pub form: Form,
    pub organization_id: String,
    pub organization_name: String,
    pub directory: String,
    pub catalogue: String,
    pub documents: usize,
    pub practices: usize,
    pub created_at: i64,
}

/// What `export` wrote.
#[derive(Debug, PartialEq)]
pub struct Exported {
    pub manifest: Manifest,
    /// Documents the form leaves out (the public form: internal practices, the workspace,
    /// drafts, documents of no ibis type).
    pub left_out: usize,
}

/// What an archive held and what importing it did.
#[derive(Debug, Default, PartialEq)]
pub struct ArchiveReport {
    /// The archive's form, as its manifest says.
    pub form: Form,
    /// Documents in the archive, skipped ones included.
    pub documents: usize,
    pub new_documents: usize,
    pub merged_documents: usize,
    /// Practices (public or internal) among the documents imported.
    pub practices: usize,
    /// Documents erased here (withdrawn by their organization), never imported again.
    pub skipped: Vec<DocumentId>,
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

/// Writes the documents of a (stopped or running) node into an archive: in the public
/// form, those a partner may read ([`NodePolicy::may_read`]) and nothing of no ibis type;
/// in the full form, every one.
pub fn export(data_dir: &Path, out: &Path, form: Form) -> anyhow::Result<Exported> {
    let config = Config::load(data_dir)?;
    let store = Store::open(data_dir, config.node.durability)?;
    // Only reads are asked of it: no quota is consulted.
    let policy = NodePolicy::new(&config, Arc::new(UntypedQuota::in_memory(0, 0)));
    let partner = Principal::Partner {
        name: "export".into(),
        organization: None,
        acl: Acl::FULL,
    };
    let ids = store.document_ids()?;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    let mut records = Vec::new();
    let mut documents = 0;
    let mut left_out = 0;
    for id in &ids {
        let doc = match load_document(&store, id) {
            Ok(Some(doc)) => doc,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(document = %id, error = %e, "not exported: stored data does not load");
                continue;
            }
        };
        if form == Form::Public && !(kind_of(&doc).is_some() && policy.may_read(&partner, id, &doc))
        {
            left_out += 1;
            continue;
        }
        if let Ok(practice) = Practice::load(&doc) {
            records.push(PracticeRecord::from_practice(
                Some(*id),
                &practice,
                form == Form::Full,
            ));
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
        form,
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
    Ok(Exported { manifest, left_out })
}

/// True if the file starts like a gzip stream (an archive rather than JSON or CSV).
pub fn is_archive(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|()| magic == [0x1f, 0x8b])
        .unwrap_or(false)
}

/// Checks an archive's documents as changes to what this node stores.
struct Checker {
    policy: NodePolicy,
    /// For documents this organization owns: the operator vouches for them as an admin.
    admin: Principal,
    /// For everyone else's: relayed, as a partner of no organization would relay them.
    relay: Principal,
    bounds: Bounds,
}

/// A document that passed, and what importing it writes.
struct Checked {
    write: Option<StoreOp>,
    new: bool,
    practice: bool,
}

impl Checker {
    fn new(config: &Config, quota: Arc<UntypedQuota>, archive: &Path) -> Self {
        let file = archive
            .file_name()
            .map_or_else(|| "archive".into(), |n| n.to_string_lossy().into_owned());
        Self {
            policy: NodePolicy::new(config, quota),
            admin: Principal::Visitor(Access::Member {
                name: "archive import".into(),
                role: Role::Admin,
            }),
            relay: Principal::Partner {
                name: format!("archive {file}"),
                organization: None,
                acl: Acl::FULL,
            },
            bounds: Bounds::default(),
        }
    }

    /// Measures `bytes` before loading them, merges them into what the store holds and
    /// asks the policy about the result; the reason if anything refuses it.
    fn check(&self, store: &Store, id: &DocumentId, bytes: &[u8]) -> Result<Checked, String> {
        measure_chunks(bytes, &self.bounds).map_err(|e| format!("refused unread: {e}"))?;
        let mut incoming = Automerge::load(bytes).map_err(|e| format!("does not load: {e}"))?;
        let stored = load_document(store, id).map_err(|e| format!("{e:#}"))?;
        let new = stored.is_none();
        let before = stored.unwrap_or_else(Automerge::new);
        let mut after = before.clone();
        after
            .merge(&mut incoming)
            .map_err(|e| format!("cannot be merged: {e}"))?;
        drop(incoming);
        let practice = matches!(
            kind_of(&after),
            Some(DocumentKind::Practice | DocumentKind::InternalPractice)
        );
        if after.get_heads() == before.get_heads() {
            return Ok(Checked {
                write: None,
                new,
                practice,
            });
        }
        // Whose it is: what the node stores says; a new document, what it names.
        let owner = self.policy.owner(id, if new { &after } else { &before });
        let principal = if owner == Owner::Us {
            &self.admin
        } else {
            &self.relay
        };
        self.policy
            .check_write(principal, id, &before, &after)
            .map_err(|refusal| refusal.to_string())?;
        // What was checked is written, and nothing else (such as changes automerge
        // queued for want of their dependencies).
        let write = if new {
            StoreOp::ReplaceWithSnapshot {
                document: *id,
                snapshot: after.save(),
            }
        } else {
            StoreOp::AppendChanges {
                document: *id,
                chunk: after.save_after(&before.get_heads()),
            }
        };
        Ok(Checked {
            write: Some(write),
            new,
            practice,
        })
    }
}

fn write_len(op: &StoreOp) -> u64 {
    match op {
        StoreOp::AppendChanges { chunk: bytes, .. }
        | StoreOp::ReplaceWithSnapshot {
            snapshot: bytes, ..
        } => bytes.len() as u64,
        _ => 0,
    }
}

/// Merges an archive's documents into a stopped node, through the checks every change
/// arriving by sync passes:
/// - each document's bytes are measured ([`measure_chunks`]) before automerge loads them,
///   so an entry that would inflate to gigabytes is refused unread;
/// - each document, merged with what this node stores, is checked by [`NodePolicy`] as a
///   change by an admin of this organization when this organization owns it (by what the
///   node stores, or for a new document by what it names), otherwise as relayed by a
///   partner of no organization: other organizations' internal practices and workspaces,
///   invalid events or directory entries are refused;
/// - documents erased here are skipped.
///
/// Everything is read and checked before anything is written, in one transaction: an
/// archive with anything refused changes nothing, and the error lists every refusal.
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
    let quota = Arc::new(UntypedQuota::open(data_dir)?);
    let checker = Checker::new(&config, quota.clone(), archive);
    let erased: HashSet<DocumentId> = store.erased_ids()?.into_iter().collect();
    let file = std::fs::File::open(archive)?;
    let gz = flate2::read::GzDecoder::new(file).take(MAX_ARCHIVE_BYTES);
    let mut tar = tar::Archive::new(gz);
    let mut report = ArchiveReport::default();
    let mut manifest: Option<Manifest> = None;
    let mut seen = HashSet::new();
    let mut refused = Vec::new();
    let mut writes = Vec::new();
    let mut held = 0u64;
    for entry in tar.entries().context("not a readable archive")? {
        let mut entry = entry.context("damaged archive entry")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let name = path
            .strip_prefix("documents/")
            .and_then(|n| n.strip_suffix(".automerge"))
            .map(str::to_owned);
        if name.is_none() && path != "manifest.json" {
            continue;
        }
        if entry.size() > MAX_DOCUMENT_BYTES {
            bail!(
                "{path} is {} bytes; too large for an archive entry (at most {MAX_DOCUMENT_BYTES})",
                entry.size()
            );
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .with_context(|| format!("{path}: damaged archive entry"))?;
        let Some(name) = name else {
            manifest = Some(serde_json::from_slice(&bytes).context("manifest.json is not valid")?);
            continue;
        };
        report.documents += 1;
        let id = match DocumentId::parse(&name) {
            Ok(id) => id,
            Err(e) => {
                refused.push(format!("{path}: not a document id ({e})"));
                continue;
            }
        };
        if !seen.insert(id) {
            refused.push(format!("{path}: the archive holds this document twice"));
            continue;
        }
        if erased.contains(&id) {
            report.skipped.push(id);
            continue;
        }
        let checked = match checker.check(&store, &id, &bytes) {
            Ok(checked) => checked,
            Err(reason) => {
                refused.push(format!("{path}: {reason}"));
                continue;
            }
        };
        report.practices += usize::from(checked.practice);
        let Some(write) = checked.write else {
            continue;
        };
        held += write_len(&write);
        if held > MAX_ARCHIVE_BYTES {
            bail!(
                "{} makes more than {MAX_ARCHIVE_BYTES} bytes of changes; nothing was imported",
                archive.display()
            );
        }
        if checked.new {
            report.new_documents += 1;
        } else {
            report.merged_documents += 1;
        }
        writes.push(write);
    }
    match manifest {
        Some(m) if m.format == FORMAT => {
            if m.documents != report.documents {
                bail!(
                    "the archive lists {} documents but holds {}; it may be truncated",
                    m.documents,
                    report.documents
                );
            }
            report.form = m.form;
        }
        Some(m) => bail!("unknown archive format {}", m.format),
        None => bail!("the archive has no manifest.json"),
    }
    if !refused.is_empty() {
        bail!(
            "{} was not imported (nothing was written): {} of its documents {} refused:\n  {}",
            archive.display(),
            refused.len(),
            if refused.len() == 1 { "is" } else { "are" },
            refused.join("\n  ")
        );
    }
    store.apply(&writes)?;
    for op in &writes {
        quota.observe(op);
    }
    quota.save();
    crate::index::mark_stale(&store)?;
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

    /// Every stored document's id and sorted heads.
    fn stored(dir: &Path) -> Vec<(DocumentId, Vec<automerge::ChangeHash>)> {
        let store = Store::open(dir, crate::store::Durability::Full).unwrap();
        let mut all = Vec::new();
        for id in store.document_ids().unwrap() {
            let doc = load_document(&store, &id).unwrap().unwrap();
            let mut heads = doc.get_heads();
            heads.sort();
            all.push((id, heads));
        }
        all
    }

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
        let exported = export(&a, &archive, Form::Public).unwrap();
        let manifest = exported.manifest;
        // The published row's public practice; its internal practice, the draft and the
        // workspace stay home.
        assert_eq!(manifest.form, Form::Public);
        assert_eq!((manifest.documents, manifest.practices), (3, 1));
        assert_eq!(exported.left_out, 3);
        assert!(is_archive(&archive));
        assert!(!is_archive(&json));

        let b = dir.path().join("b");
        init(&InitOptions::new(&b, "Mirror")).unwrap();
        let report = import(&b, &archive).unwrap();
        assert_eq!(report.form, Form::Public);
        assert_eq!(report.documents, manifest.documents);
        assert_eq!((report.new_documents, report.practices), (3, 1));
        // Importing again changes nothing.
        let again = import(&b, &archive).unwrap();
        assert_eq!((again.new_documents, again.merged_documents), (0, 0));
        // Every exported document is in b as it is in a.
        let in_b = stored(&b);
        let same: Vec<_> = stored(&a)
            .into_iter()
            .filter(|(id, heads)| in_b.iter().any(|(other, h)| other == id && h == heads))
            .collect();
        assert_eq!(same.len(), manifest.documents);

        // The full form holds everything, and is this organization's own: re-imported
        // here it changes nothing; elsewhere its internal documents are refused, and
        // nothing at all is written.
        let full = dir.path().join("iom-full.tar.gz");
        let exported = export(&a, &full, Form::Full).unwrap();
        assert_eq!(exported.manifest.form, Form::Full);
        assert_eq!(
            (exported.manifest.documents, exported.manifest.practices),
            (6, 3)
        );
        assert_eq!(exported.left_out, 0);
        let home = import(&a, &full).unwrap();
        assert_eq!(home.form, Form::Full);
        assert_eq!((home.new_documents, home.merged_documents), (0, 0));
        let before = stored(&b);
        let error = format!("{:#}", import(&b, &full).unwrap_err());
        assert!(error.contains("nothing was written"), "{error}");
        assert!(
            error.contains("internal practices never leave their organization"),
            "{error}"
        );
        assert!(
            error.contains("a workspace is private to its organization"),
            "{error}"
        );
        assert_eq!(stored(&b), before);

        // A truncated archive is refused with a reason, and nothing of it is written.
        let bytes = std::fs::read(&full).unwrap();
        let cut = dir.path().join("cut.tar.gz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let c = dir.path().join("c");
        init(&InitOptions::new(&c, "C")).unwrap();
        let before = stored(&c);
        assert!(import(&c, &cut).is_err());
        assert_eq!(stored(&c), before);
    }

    #[test]
    fn a_manifest_without_a_form_is_a_full_archive() {
        let manifest: Manifest = serde_json::from_str(
            r#"{"format": "ibis-archive/1", "organization_id": "iom", "organization_name": "IOM",
                "directory": "automerge:x", "catalogue": "automerge:y", "documents": 0,
                "practices": 0, "created_at": 0}"#,
        )
        .unwrap();
        assert_eq!(manifest.form, Form::Full);
        let public = serde_json::to_value(Manifest {
            form: Form::Public,
            ..manifest
        })
        .unwrap();
        assert_eq!(public["form"], "public");
        assert_eq!(public["format"], "ibis-archive/1");
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
