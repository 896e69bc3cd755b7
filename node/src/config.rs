//! `ibis.toml`: who this node is and how it runs. Written by `ibis-node init`; the address,
//! partners, app directory, open mode and durability can also be given to `serve` as flags
//! or `IBIS_*` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ibis_shared::model::directory::Organization;
use ibis_shared::DocumentId;
use serde::{Deserialize, Serialize};

use crate::store::Durability;

pub const CONFIG_FILE: &str = "ibis.toml";
/// A config file larger than this is refused before parsing.
const MAX_CONFIG_BYTES: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes; a configuration file is at most {MAX_CONFIG_BYTES}")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How people are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No accounts: every visitor acts as an admin of this organization. For demos and
    /// tests on a trusted machine.
    Open,
    /// Members log in; anonymous visitors read published practices only.
    #[default]
    Accounts,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Open => "open",
            AuthMode::Accounts => "accounts",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub website: String,
    /// Who may change a published practice (its public document, live): the
    /// organization's review setting.
    #[serde(default)]
    pub published_edits: PublishedEdits,
}

/// Who may change a published practice's public document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishedEdits {
    /// Every member who edits (editors, reviewers, admins): edits go live.
    #[default]
    Editors,
    /// Reviewers and admins only: what the public reads is changed by those who publish.
    Reviewers,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentsConfig {
    /// The network directory.
    pub directory: DocumentId,
    /// This organization's published catalogue.
    pub catalogue: DocumentId,
    /// This organization's private workspace.
    pub workspace: DocumentId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub peer_id: String,
    pub storage_id: String,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where people reach this node (`https://ibis.example.org`); shown in the directory.
    #[serde(default)]
    pub public_url: String,
    /// Partner nodes to dial (`wss://partner.example.org/sync`).
    #[serde(default)]
    pub peers: Vec<String>,
    /// The built app to serve at `/`.
    #[serde(default)]
    pub app_dir: Option<PathBuf>,
    #[serde(default)]
    pub durability: Durability,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Reverse proxies (IP addresses or networks: `["127.0.0.1", "10.0.0.0/8"]`) whose
    /// `X-Forwarded-For` or `Forwarded: for=` names the client. From anyone else those
    /// headers are ignored and the client is the TCP peer. Empty by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// The most the database may grow to, in MiB (none by default: the disk's size).
    /// Past it, writes fail as on a full disk: the node stops taking changes until there
    /// is room (see `host::storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_database_mb: Option<u64>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_max_connections() -> usize {
    2_000
}

/// Open `/sync` connections an anonymous visitor may have, per client address.
pub const DEFAULT_SYNC_CONNECTIONS_PER_ADDRESS: usize = 64;
/// Open `/sync` connections a member may have, per account, whatever the address.
pub const DEFAULT_SYNC_CONNECTIONS_PER_MEMBER: usize = 32;
/// Open `/sync` connections a partner may have, per node key.
pub const DEFAULT_SYNC_CONNECTIONS_PER_PARTNER: usize = 4;

/// `[limits]`: how much one client may hold open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Anonymous visitors, per client address (see `node.trusted_proxies`).
    #[serde(default = "default_sync_connections_per_address")]
    pub sync_connections_per_address: usize,
    /// Members, per account.
    #[serde(default = "default_sync_connections_per_member")]
    pub sync_connections_per_member: usize,
    /// Partner nodes, per key.
    #[serde(default = "default_sync_connections_per_partner")]
    pub sync_connections_per_partner: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            sync_connections_per_address: DEFAULT_SYNC_CONNECTIONS_PER_ADDRESS,
            sync_connections_per_member: DEFAULT_SYNC_CONNECTIONS_PER_MEMBER,
            sync_connections_per_partner: DEFAULT_SYNC_CONNECTIONS_PER_PARTNER,
        }
    }
}

fn default_sync_connections_per_address() -> usize {
    DEFAULT_SYNC_CONNECTIONS_PER_ADDRESS
}

fn default_sync_connections_per_member() -> usize {
    DEFAULT_SYNC_CONNECTIONS_PER_MEMBER
}

fn default_sync_connections_per_partner() -> usize {
    DEFAULT_SYNC_CONNECTIONS_PER_PARTNER
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    #[serde(default)]
    pub mode: AuthMode,
}

/// The whole `ibis.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub organization: OrganizationConfig,
    pub documents: DocumentsConfig,
    pub node: NodeSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub limits: LimitsSection,
}

/// An organization id: 1-64 letters, digits or dashes.
pub fn valid_organization_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Config {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CONFIG_FILE)
    }

    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = Self::path(data_dir);
        let meta = std::fs::metadata(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path,
                size: meta.len(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { path, message })?;
        Ok(config)
    }

    pub fn save(&self, data_dir: &Path) -> Result<(), ConfigError> {
        let path = Self::path(data_dir);
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| ConfigError::Write { path, source })
    }

    pub fn validate(&self) -> Result<(), String> {
        let o = &self.organization;
        if !valid_organization_id(&o.id) {
            return Err("organization.id must be 1-64 letters, digits or dashes".into());
        }
        let errors = self.organization_entry().validate();
        if !errors.is_empty() {
            return Err(format!(
                "organization: {}",
                ibis_shared::model::validation::summarize(&errors)
            ));
        }
        if self.node.peer_id.is_empty() || self.node.peer_id.len() > 128 {
            return Err("node.peer_id must be 1-128 characters".into());
        }
        if uuid::Uuid::parse_str(&self.node.storage_id).is_err() {
            return Err("node.storage_id must be a UUID".into());
        }
        for peer in &self.node.peers {
            if !(peer.starts_with("ws://") || peer.starts_with("wss://")) {
                return Err(format!(
                    "node.peers: `{peer}` must start with ws:// or wss://"
                ));
            }
        }
        if self.node.max_database_mb == Some(0) {
            return Err("node.max_database_mb must be at least 1".into());
        }
        if self.node.max_connections == 0 {
            return Err("node.max_connections must be at least 1".into());
        }
        crate::server::client_address::TrustedProxies::parse(&self.node.trusted_proxies)?;
        for (key, value) in [
            (
                "limits.sync_connections_per_address",
                self.limits.sync_connections_per_address,
            ),
            (
                "limits.sync_connections_per_member",
                self.limits.sync_connections_per_member,
            ),
            (
                "limits.sync_connections_per_partner",
                self.limits.sync_connections_per_partner,
            ),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }

    /// This organization's entry in the network directory.
    pub fn organization_entry(&self) -> Organization {
        let o = &self.organization;
        Organization {
            name: o.name.clone(),
            kind: o.kind.clone(),
            city: o.city.clone(),
            country: o.country.clone(),
            website: o.website.clone(),
            node_url: self.node.public_url.clone(),
            catalogue: self.documents.catalogue.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            organization: OrganizationConfig {
                id: "iom".into(),
                name: "IOM".into(),
                kind: "un-agency".into(),
                city: "Geneva".into(),
                country: "CH".into(),
                website: "https://www.iom.int/".into(),
                published_edits: PublishedEdits::default(),
            },
            documents: DocumentsConfig {
                directory: DocumentId::random(),
                catalogue: DocumentId::random(),
                workspace: DocumentId::random(),
            },
            node: NodeSection {
                peer_id: "ibis-iom".into(),
                storage_id: uuid::Uuid::new_v4().to_string(),
                listen: default_listen(),
                public_url: String::new(),
                peers: vec!["ws://127.0.0.1:9/sync".into()],
                app_dir: None,
                durability: Durability::Full,
                max_connections: 10,
                trusted_proxies: vec!["127.0.0.1".into(), "10.0.0.0/8".into()],
                max_database_mb: None,
            },
            auth: AuthSection::default(),
            limits: LimitsSection::default(),
        }
    }

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let c = config();
        c.save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), c);
    }

    #[test]
    fn new_settings_have_their_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config();
        c.node.trusted_proxies.clear();
        c.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(Config::path(dir.path())).unwrap();
        // A file written before these settings existed still loads, with the defaults.
        let old: String = text
            .lines()
            .take_while(|l| !l.starts_with("[limits]"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(Config::path(dir.path()), old).unwrap();
        let loaded = Config::load(dir.path()).unwrap();
        assert!(loaded.node.trusted_proxies.is_empty());
        assert_eq!(loaded.limits.sync_connections_per_address, 64);
        assert_eq!(loaded.limits.sync_connections_per_member, 32);
        assert_eq!(loaded.limits.sync_connections_per_partner, 4);
        let text = format!(
            "{}\n[limits]\nsync_connections_per_member = 2\n",
            std::fs::read_to_string(Config::path(dir.path())).unwrap()
        );
        std::fs::write(Config::path(dir.path()), text).unwrap();
        let loaded = Config::load(dir.path()).unwrap();
        assert_eq!(loaded.limits.sync_connections_per_member, 2);
        assert_eq!(loaded.limits.sync_connections_per_address, 64);
    }

    #[test]
    fn bad_files_get_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = Config::path(dir.path());
        assert!(matches!(
            Config::load(dir.path()),
            Err(ConfigError::Read { .. })
        ));

        std::fs::write(&path, "organization = 3").unwrap();
        let err = Config::load(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");

        let mut c = config();
        c.node.peers = vec!["http://nope".into()];
        c.save(dir.path()).unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("must start with ws://"), "{err}");

        let mut c = config();
        c.organization.country = "Narnia".into();
        c.save(dir.path()).unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("country"), "{err}");

        std::fs::write(&path, "x".repeat(300 * 1024)).unwrap();
        assert!(matches!(
            Config::load(dir.path()),
            Err(ConfigError::TooLarge { .. })
        ));

        let mut c = config();
        c.node.trusted_proxies = vec!["10.0.0.1/8".into()];
        c.save(dir.path()).unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("node.trusted_proxies: `10.0.0.1/8`") && err.contains("like 10.0.0.0/8"),
            "{err}"
        );

        let mut c = config();
        c.limits.sync_connections_per_partner = 0;
        c.save(dir.path()).unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("limits.sync_connections_per_partner"), "{err}");

        let text = toml::to_string(&config()).unwrap() + "\n[surprise]\nx = 1\n";
        std::fs::write(&path, text).unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("surprise"), "{err}");
    }
}
