//! `ibis-node init`: a new data dir with the organization's identity and documents, in a new
//! network or joining an existing one; and the lock that keeps two processes from using one
//! data dir at once.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use automerge::Automerge;
use ibis_shared::model::catalogue::new_listing;
use ibis_shared::model::directory::{self, new_directory};
use ibis_shared::model::{Author, DocumentKind, Role};
use ibis_shared::sync::StoreOp;
use ibis_shared::DocumentId;
use serde::Serialize;

use crate::config::{
    AuthMode, AuthSection, Config, DocumentsConfig, NodeSection, OrganizationConfig,
};
use crate::store::{Durability, Store};

const LOCK_FILE: &str = "ibis.lock";

/// Holds a data dir for one process; released on drop.
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{} is in use by another ibis-node process (stop it first)",
                data_dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// Which network the new node belongs to.
#[derive(Debug, Clone)]
pub enum Network {
    /// Start a new network with this name.
    New { name: String },
    /// Join the network whose directory is this document (it arrives from a partner).
    Join { directory: DocumentId },
}

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub org_name: String,
    /// Chosen from the name when absent.
    pub org_id: Option<String>,
    pub org_kind: String,
    pub city: String,
    pub country: String,
    pub website: String,
    pub public_url: String,
    pub network: Network,
    pub auth: AuthMode,
}

impl InitOptions {
    /// Defaults for a node called `org_name` in a new network.
    pub fn new(data_dir: impl Into<PathBuf>, org_name: &str) -> Self {
        Self {
            data_dir: data_dir.into(),
            org_name: org_name.to_owned(),
            org_id: None,
            org_kind: String::new(),
            city: String::new(),
            country: String::new(),
            website: String::new(),
            public_url: String::new(),
            network: Network::New {
                name: "ibis network".into(),
            },
            auth: AuthMode::Accounts,
        }
    }
}

/// Who a node is: what `init --json` prints and `/api/node` builds on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub organization_id: String,
    pub organization_name: String,
    pub directory: String,
    pub catalogue: String,
    pub workspace: String,
    pub peer_id: String,
    pub storage_id: String,
}

impl NodeInfo {
    pub fn from_config(config: &Config) -> Self {
        Self {
            organization_id: config.organization.id.clone(),
            organization_name: config.organization.name.clone(),
            directory: config.documents.directory.url(),
            catalogue: config.documents.catalogue.url(),
            workspace: config.documents.workspace.url(),
            peer_id: config.node.peer_id.clone(),
            storage_id: config.node.storage_id.clone(),
        }
    }
}

/// The author of changes the node makes itself.
pub fn node_author(config: &Config) -> Author {
    Author {
        name: format!("{} node", config.organization.name),
        organization: config.organization.id.clone(),
        role: Role::Admin,
    }
}

fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
        if s.len() >= 24 {
            break;
        }
    }
    let s = s.trim_end_matches('-').to_owned();
    if s.is_empty() {
        "org".into()
    } else {
        s
    }
}

/// A new organization id for an organization called `name`: its slug and a random suffix.
pub fn new_organization_id(name: &str) -> String {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    format!("{}-{suffix}", slug(name))
}

/// The wall clock in milliseconds since the Unix epoch (0 before it): the times the node
/// stores (accounts, sessions, sync states, imports, archives), and its tests' clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Creates and fills a data dir.
pub fn init(options: &InitOptions) -> anyhow::Result<NodeInfo> {
    let dir = &options.data_dir;
    if dir.exists() {
        // Only a node key made while redeeming an invitation may be there already.
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let other = entries.any(|e| {
            e.map(|e| e.file_name() != crate::federation::KEY_FILE)
                .unwrap_or(true)
        });
        if other {
            bail!("{} is not empty; init wants a new directory", dir.display());
        }
    } else {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _lock = DataDirLock::acquire(dir)?;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let org_id = match &options.org_id {
        Some(id) => id.clone(),
        None => new_organization_id(&options.org_name),
    };
    let directory_id = match &options.network {
        Network::New { .. } => DocumentId::random(),
        Network::Join { directory } => *directory,
    };
    let config = Config {
        organization: OrganizationConfig {
            id: org_id.clone(),
            name: options.org_name.clone(),
            kind: options.org_kind.clone(),
            city: options.city.clone(),
            country: options.country.to_ascii_uppercase(),
            website: options.website.clone(),
            published_edits: Default::default(),
        },
        documents: DocumentsConfig {
            directory: directory_id,
            catalogue: DocumentId::random(),
            workspace: DocumentId::random(),
        },
        node: NodeSection {
            peer_id: format!("ibis-node-{org_id}-{suffix}"),
            storage_id: uuid::Uuid::new_v4().to_string(),
            listen: "127.0.0.1:8080".parse()?,
            public_url: options.public_url.clone(),
            peers: Vec::new(),
            app_dir: None,
            durability: Durability::Full,
            max_connections: 2_000,
            trusted_proxies: Vec::new(),
            max_database_mb: None,
        },
        auth: AuthSection { mode: options.auth },
        limits: Default::default(),
    };
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;

    let author = node_author(&config);
    let now = now_ms();
    let mut directory_doc = new_directory(directory_id)?;
    if let Network::New { name } = &options.network {
        directory::set_name(&mut directory_doc, name, &author, now)?;
    }
    directory::register(
        &mut directory_doc,
        &org_id,
        &config.organization_entry(),
        &author,
        now,
    )?;
    let catalogue = new_listing(DocumentKind::Catalogue, &org_id)?;
    let workspace = new_listing(DocumentKind::Workspace, &org_id)?;

    crate::federation::NodeKey::load_or_create(dir)?;
    let mut store = Store::open(dir, config.node.durability)?;
    store.apply(&[
        snapshot(directory_id, &directory_doc),
        snapshot(config.documents.catalogue, &catalogue),
        snapshot(config.documents.workspace, &workspace),
    ])?;
    config.save(dir)?;
    Ok(NodeInfo::from_config(&config))
}

pub fn snapshot(id: DocumentId, doc: &Automerge) -> StoreOp {
    StoreOp::ReplaceWithSnapshot {
        document: id,
        snapshot: doc.save(),
    }
}

/// Reads a document straight from storage (for offline commands).
pub fn load_document(store: &Store, id: &DocumentId) -> anyhow::Result<Option<Automerge>> {
    let Some(stored) = store.load(id)? else {
        return Ok(None);
    };
    let bytes: Vec<u8> = stored.chunks.concat();
    Ok(Some(Automerge::load(&bytes).with_context(|| {
        format!("stored document {id} does not load")
    })?))
}

/// Brings this organization's directory entry up to date with its configuration (say,
/// after the public URL changed). Run at start, before the engine.
pub fn refresh_directory_entry(store: &mut Store, config: &Config) -> anyhow::Result<()> {
    let id = config.documents.directory;
    let mut doc = match load_document(store, &id)? {
        Some(doc) => doc,
        None => new_directory(id)?,
    };
    let entry = config.organization_entry();
    let current = directory::Directory::load(&doc)
        .ok()
        .and_then(|d| d.organizations.get(&config.organization.id).cloned());
    if current.as_ref() == Some(&entry) {
        return Ok(());
    }
    let before = doc.get_heads();
    directory::register(
        &mut doc,
        &config.organization.id,
        &entry,
        &node_author(config),
        now_ms(),
    )?;
    store.apply(&[StoreOp::AppendChanges {
        document: id,
        chunk: doc.save_after(&before),
    }])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(
            slug("National League of Cities"),
            "national-league-of-citie"
        );
        assert_eq!(slug("IOM"), "iom");
        assert_eq!(slug("  ¡Ñ!  "), "org");
    }

    #[test]
    fn init_writes_identity_and_documents_and_refuses_a_used_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node");
        let info = init(&InitOptions::new(&path, "IOM")).unwrap();
        assert!(info.organization_id.starts_with("iom-"));
        let config = Config::load(&path).unwrap();
        let store = Store::open(&path, Durability::Full).unwrap();
        let directory = load_document(&store, &config.documents.directory)
            .unwrap()
            .unwrap();
        let dir_doc = directory::Directory::load(&directory).unwrap();
        assert_eq!(dir_doc.name, "ibis network");
        assert_eq!(
            dir_doc.organizations[&info.organization_id].catalogue,
            config.documents.catalogue.to_string()
        );
        assert!(init(&InitOptions::new(&path, "IOM"))
            .unwrap_err()
            .to_string()
            .contains("not empty"));
    }

    #[test]
    fn a_joining_node_merges_cleanly_into_the_network_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = init(&InitOptions::new(dir.path().join("a"), "IOM")).unwrap();
        let directory = DocumentId::parse_id_or_url(&first.directory).unwrap();
        let mut second = InitOptions::new(dir.path().join("b"), "UNAOC");
        second.network = Network::Join { directory };
        let second = init(&second).unwrap();
        let load = |name: &str| {
            let store = Store::open(&dir.path().join(name), Durability::Full).unwrap();
            load_document(&store, &directory).unwrap().unwrap()
        };
        let mut a = load("a");
        let mut b = load("b");
        a.merge(&mut b).unwrap();
        let merged = directory::Directory::load(&a).unwrap();
        assert_eq!(merged.name, "ibis network");
        assert!(merged.organizations.contains_key(&first.organization_id));
        assert!(merged.organizations.contains_key(&second.organization_id));
    }

    #[test]
    fn a_data_dir_is_used_by_one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let second = DataDirLock::acquire(dir.path());
        assert!(second.is_err());
        drop(lock);
        assert!(DataDirLock::acquire(dir.path()).is_ok());
    }
}
