//! Who may use this node: members (with argon2id passwords), their sessions and API tokens,
//! partner nodes (with their keys and what they may read and write), and invitations for
//! new partners. Kept in the node's SQLite database, on a connection of its own so that
//! logins never wait behind document writes.

use std::path::Path;
use std::sync::Mutex;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ibis_shared::model::Role;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::federation::{nonce, NodePublicKey};
use crate::init::now_ms;
use crate::store::DATABASE_FILE;

/// How long a login session lasts.
pub const SESSION_DAYS: i64 = 14;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (argon2 will hash anything, but a megabyte "password" is an
/// attack, not a password).
pub const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    Exists(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("{0}")]
    Federation(#[from] crate::federation::FederationError),
}

/// A member of this organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
}

/// What a partner node may do here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acl {
    /// Receive published practices, catalogues, the directory and events.
    pub read: bool,
    /// Send changes to them (made by its members, or relayed from further partners).
    pub write: bool,
}

impl Acl {
    pub const FULL: Acl = Acl {
        read: true,
        write: true,
    };

    pub fn describe(self) -> &'static str {
        match (self.read, self.write) {
            (true, true) => "read+write",
            (true, false) => "read",
            (false, true) => "write",
            (false, false) => "none",
        }
    }
}

/// A partner node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// Its sync URL, if this node dials it (`wss://partner.example.org/sync`).
    pub url: String,
    /// Its public key; empty for plain automerge-repo servers, which cannot authenticate.
    pub public_key: String,
    /// The organization (its id in the directory) it was invited as or registered for;
    /// empty for a relay without one, which never changes this organization's documents.
    pub organization: String,
    pub acl: Acl,
}

fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn valid_name(kind: &str, name: &str) -> Result<(), RegistryError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.trim() != name || name.chars().any(char::is_control) {
        return Err(RegistryError::Invalid(format!(
            "a {kind} name is 1-{MAX_NAME_CHARS} characters, without surrounding spaces"
        )));
    }
    Ok(())
}

pub struct Registry {
    conn: Mutex<Connection>,
}

impl Registry {
    /// Opens the registry of a data dir whose database already exists (the store creates
    /// and migrates it).
    pub fn open(data_dir: &Path) -> Result<Self, RegistryError> {
        let conn = Connection::open(data_dir.join(DATABASE_FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, RegistryError>,
    ) -> Result<R, RegistryError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| RegistryError::Invalid("registry lock poisoned".into()))?;
        f(&conn)
    }

    // ---- members ----

    pub fn add_user(&self, name: &str, role: Role, password: &str) -> Result<(), RegistryError> {
        valid_name("user", name)?;
        check_password(password)?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|e| RegistryError::Hash(e.to_string()))?
            .to_string();
        self.with(|c| {
            let inserted = c.execute(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO NOTHING",
                params![name, role.key(), hash, now_ms()],
            )?;
            if inserted == 0 {
                return Err(RegistryError::Exists(format!("user {name}")));
            }
            Ok(())
        })
    }

    pub fn users(&self) -> Result<Vec<User>, RegistryError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT name, role FROM users ORDER BY name")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut users = Vec::new();
            for row in rows {
                let (name, role) = row?;
                let role = Role::from_key(&role).ok_or_else(|| {
                    RegistryError::Invalid(format!("user {name} has unknown role {role}"))
                })?;
                users.push(User { name, role });
            }
            Ok(users)
        })
    }

    /// Removes a user and ends their sessions and tokens.
    pub fn remove_user(&self, name: &str) -> Result<(), RegistryError> {
        self.with(|c| {
            if c.execute("DELETE FROM users WHERE name = ?1", [name])? == 0 {
                return Err(RegistryError::NotFound("user"));
            }
            revoked(c)
        })
    }

    /// Checks a password. The same error for an unknown user and a wrong password.
    pub fn verify_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<User>, RegistryError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(None);
        }
        let row: Option<(String, String)> = self.with(|c| {
            Ok(c.query_row(
                "SELECT role, password_hash FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })?;
        let Some((role, stored)) = row else {
            // Spend the same effort as a real check, so timing does not reveal names.
            let _ = Argon2::default().hash_password(password.as_bytes());
            return Ok(None);
        };
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| RegistryError::Invalid(format!("stored password hash: {e}")))?;
        if Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_err()
        {
            return Ok(None);
        }
        let role = Role::from_key(&role).ok_or_else(|| {
            RegistryError::Invalid(format!("user {name} has unknown role {role}"))
        })?;
        Ok(Some(User {
            name: name.to_owned(),
            role,
        }))
    }

    /// A new login session; returns the secret for the cookie.
    pub fn start_session(&self, user: &str) -> Result<String, RegistryError> {
        self.issue(user, "session", "", SESSION_DAYS)
    }

    /// A new API token for scripts (`?token=`); returned once, stored hashed.
    pub fn issue_token(&self, user: &str, label: &str, days: i64) -> Result<String, RegistryError> {
        if !(1..=3650).contains(&days) {
            return Err(RegistryError::Invalid(
                "a token lasts 1 to 3650 days".into(),
            ));
        }
        self.issue(user, "token", label, days)
    }

    fn issue(
        &self,
        user: &str,
        kind: &str,
        label: &str,
        days: i64,
    ) -> Result<String, RegistryError> {
        let secret = format!("ibis_{}", nonce()?);
        let now = now_ms();
        self.with(|c| {
            let exists: Option<i64> = c
                .query_row("SELECT 1 FROM users WHERE name = ?1", [user], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Err(RegistryError::NotFound("user"));
            }
            c.execute(
                "INSERT INTO sessions (token_hash, user, kind, label, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    hash_token(&secret),
                    user,
                    kind,
                    label,
                    now,
                    now + days * DAY_MS
                ],
            )?;
            Ok(())
        })?;
        Ok(secret)
    }

    /// The member a session cookie or token belongs to, if it is valid and unexpired.
    pub fn authenticate(&self, secret: &str) -> Result<Option<User>, RegistryError> {
        if secret.len() > 200 {
            return Ok(None);
        }
        let row: Option<(String, String)> = self.with(|c| {
            Ok(c.query_row(
                "SELECT u.name, u.role FROM sessions s JOIN users u ON u.name = s.user
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                params![hash_token(secret), now_ms()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })?;
        Ok(row.and_then(|(name, role)| Role::from_key(&role).map(|role| User { name, role })))
    }

    pub fn end_session(&self, secret: &str) -> Result<(), RegistryError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                [hash_token(secret)],
            )?;
            revoked(c)
        })
    }

    /// Makes a session or token expire at once (for tests and for revoking).
    pub fn expire(&self, secret: &str) -> Result<(), RegistryError> {
        self.with(|c| {
            c.execute(
                "UPDATE sessions SET expires_at = 0 WHERE token_hash = ?1",
                [hash_token(secret)],
            )?;
            revoked(c)
        })
    }

    // ---- partner nodes ----

    pub fn add_peer(&self, peer: &Peer) -> Result<(), RegistryError> {
        check_peer(peer)?;
        self.with(|c| insert_peer(c, peer))
    }

    pub fn peers(&self) -> Result<Vec<Peer>, RegistryError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT name, url, public_key, may_read, may_write, organization FROM peers ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Peer {
                    name: r.get(0)?,
                    url: r.get(1)?,
                    public_key: r.get(2)?,
                    organization: r.get(5)?,
                    acl: Acl {
                        read: r.get(3)?,
                        write: r.get(4)?,
                    },
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Bumped whenever something is revoked (a user or peer removed, a session ended):
    /// a running node rechecks its connections when it changes, whichever process
    /// changed it.
    pub fn revocations(&self) -> Result<i64, RegistryError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'revocations'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
        })
    }

    pub fn peer_by_key(&self, key: &NodePublicKey) -> Result<Option<Peer>, RegistryError> {
        let key = key.to_string();
        Ok(self.peers()?.into_iter().find(|p| p.public_key == key))
    }

    pub fn remove_peer(&self, name: &str) -> Result<(), RegistryError> {
        self.with(|c| {
            if c.execute("DELETE FROM peers WHERE name = ?1", [name])? == 0 {
                return Err(RegistryError::NotFound("peer"));
            }
            revoked(c)
        })
    }

    // ---- invitations ----

    /// A single-use invitation for a new partner, valid for `days`.
    /// A single-use invitation for a new partner called `name`, valid for `days`: the
    /// partner that redeems it is bound to `organization`, the id its node will have in the
    /// directory (chosen here, so nobody can join as an organization that exists).
    pub fn invite(
        &self,
        name: &str,
        organization: &str,
        days: i64,
    ) -> Result<String, RegistryError> {
        valid_name("peer", name)?;
        if !crate::config::valid_organization_id(organization) {
            return Err(RegistryError::Invalid(
                "an organization id is 1-64 letters, digits or dashes".into(),
            ));
        }
        let secret = nonce()?;
        let now = now_ms();
        self.with(|c| {
            c.execute(
                "INSERT INTO invites (token_hash, name, created_at, expires_at, organization) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash_token(&secret), name, now, now + days * DAY_MS, organization],
            )?;
            Ok(())
        })?;
        Ok(secret)
    }

    /// Uses up an invitation; returns what it was made for.
    pub fn redeem_invite(&self, secret: &str) -> Result<Option<Invitation>, RegistryError> {
        self.with(|c| use_invite(c, secret))
    }

    /// A partner joins with an invitation: the invitation is used up and the partner made
    /// by `peer` (from the name the invitation was made for) is added, both or neither. If
    /// the partner is refused (a bad key, a name taken), the invitation can still be used.
    /// `None` if the invitation is unknown, used or expired.
    pub fn join_with_invite(
        &self,
        secret: &str,
        peer: impl FnOnce(Invitation) -> Peer,
    ) -> Result<Option<Peer>, RegistryError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let Some(invited) = use_invite(&tx, secret)? else {
                return Ok(None);
            };
            let peer = peer(invited);
            check_peer(&peer)?;
            insert_peer(&tx, &peer)?;
            tx.commit()?;
            Ok(Some(peer))
        })
    }
}

fn use_invite(c: &Connection, secret: &str) -> Result<Option<Invitation>, RegistryError> {
    let now = now_ms();
    Ok(c.query_row(
        "UPDATE invites SET used_at = ?2
             WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2
             RETURNING name, organization",
        params![hash_token(secret), now],
        |r| {
            Ok(Invitation {
                name: r.get(0)?,
                organization: r.get(1)?,
            })
        },
    )
    .optional()?)
}

/// Counts a revocation (see [`Registry::revocations`]).
fn revoked(c: &Connection) -> Result<(), RegistryError> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('revocations', '1')
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [],
    )?;
    Ok(())
}

/// What an invitation was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The organization's name, as the inviter wrote it.
    pub name: String,
    /// The organization id it joins as (empty for invitations made before there was one).
    pub organization: String,
}

fn check_peer(peer: &Peer) -> Result<(), RegistryError> {
    valid_name("peer", &peer.name)?;
    if !peer.organization.is_empty() && !crate::config::valid_organization_id(&peer.organization) {
        return Err(RegistryError::Invalid(
            "a partner's organization id is 1-64 letters, digits or dashes".into(),
        ));
    }
    if !peer.public_key.is_empty() {
        NodePublicKey::parse(&peer.public_key)?;
    }
    if !(peer.url.is_empty() || peer.url.starts_with("ws://") || peer.url.starts_with("wss://")) {
        return Err(RegistryError::Invalid(
            "a peer URL starts with ws:// or wss://".into(),
        ));
    }
    if peer.url.is_empty() && peer.public_key.is_empty() {
        return Err(RegistryError::Invalid(
            "a peer needs a URL to dial, a public key to accept, or both".into(),
        ));
    }
    Ok(())
}

fn insert_peer(c: &Connection, peer: &Peer) -> Result<(), RegistryError> {
    if !peer.organization.is_empty() {
        let bound: Option<String> = c
            .query_row(
                "SELECT name FROM peers WHERE organization = ?1",
                [&peer.organization],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(other) = bound {
            return Err(RegistryError::Exists(format!(
                "a partner for organization {} (peer {other})",
                peer.organization
            )));
        }
    }
    let inserted = c.execute(
        "INSERT INTO peers (name, url, public_key, may_read, may_write, added_at, organization)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO NOTHING",
        params![
            peer.name,
            peer.url,
            peer.public_key,
            peer.acl.read,
            peer.acl.write,
            now_ms(),
            peer.organization
        ],
    )?;
    if inserted == 0 {
        return Err(RegistryError::Exists(format!("peer {}", peer.name)));
    }
    Ok(())
}

pub fn check_password(password: &str) -> Result<(), RegistryError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(RegistryError::Invalid(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(RegistryError::Invalid(format!(
            "a password has at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A cookie or token secret taken from a request: never logged.
pub fn looks_like_secret(s: &str) -> bool {
    s.starts_with("ibis_") && s.len() < 200 && URL_SAFE_NO_PAD.decode(&s[5..]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durability, Store};

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path(), Durability::Normal).unwrap();
        let r = Registry::open(dir.path()).unwrap();
        (dir, r)
    }

    #[test]
    fn passwords_sessions_and_tokens() {
        let (_dir, r) = registry();
        r.add_user("amy", Role::Editor, "correct horse battery")
            .unwrap();
        assert!(matches!(
            r.add_user("amy", Role::Admin, "another long password"),
            Err(RegistryError::Exists(_))
        ));
        assert!(matches!(
            r.add_user("bob", Role::Admin, "short"),
            Err(RegistryError::Invalid(_))
        ));
        assert_eq!(r.verify_password("amy", "wrong password!").unwrap(), None);
        assert_eq!(
            r.verify_password("nobody", "correct horse battery")
                .unwrap(),
            None
        );
        let amy = r
            .verify_password("amy", "correct horse battery")
            .unwrap()
            .unwrap();
        assert_eq!(amy.role, Role::Editor);

        let session = r.start_session("amy").unwrap();
        assert!(looks_like_secret(&session));
        assert_eq!(r.authenticate(&session).unwrap(), Some(amy.clone()));
        assert_eq!(r.authenticate("ibis_forged").unwrap(), None);
        r.end_session(&session).unwrap();
        assert_eq!(r.authenticate(&session).unwrap(), None);

        let token = r.issue_token("amy", "script", 30).unwrap();
        assert_eq!(r.authenticate(&token).unwrap(), Some(amy));
        r.expire(&token).unwrap();
        assert_eq!(r.authenticate(&token).unwrap(), None);

        let token = r.issue_token("amy", "script", 30).unwrap();
        r.remove_user("amy").unwrap();
        assert_eq!(
            r.authenticate(&token).unwrap(),
            None,
            "removing a user ends its tokens"
        );
        assert!(matches!(
            r.remove_user("amy"),
            Err(RegistryError::NotFound("user"))
        ));
    }

    #[test]
    fn peers_and_invitations() {
        let (dir, r) = registry();
        let key = crate::federation::NodeKey::load_or_create(dir.path()).unwrap();
        let peer = Peer {
            name: "UNAOC".into(),
            url: "ws://127.0.0.1:9/sync".into(),
            public_key: key.public().to_string(),
            organization: String::new(),
            acl: Acl::FULL,
        };
        r.add_peer(&peer).unwrap();
        assert_eq!(r.peers().unwrap(), vec![peer.clone()]);
        assert_eq!(r.peer_by_key(&key.public()).unwrap(), Some(peer));
        assert!(matches!(
            r.add_peer(&Peer {
                name: "bad".into(),
                url: "http://nope".into(),
                public_key: String::new(),
                organization: String::new(),
                acl: Acl::FULL
            }),
            Err(RegistryError::Invalid(_))
        ));
        r.remove_peer("UNAOC").unwrap();
        assert!(r.peers().unwrap().is_empty());

        let invite = r.invite("NLC", "nlc-1234", 7).unwrap();
        assert_eq!(
            r.redeem_invite(&invite).unwrap(),
            Some(Invitation {
                name: "NLC".into(),
                organization: "nlc-1234".into()
            })
        );
        assert_eq!(r.redeem_invite(&invite).unwrap(), None, "single use");
        assert_eq!(r.redeem_invite("made-up").unwrap(), None);
    }

    #[test]
    fn a_refused_partner_does_not_use_up_its_invitation() {
        let (dir, r) = registry();
        let key = crate::federation::NodeKey::load_or_create(dir.path())
            .unwrap()
            .public()
            .to_string();
        let partner = |name: &str, public_key: &str| {
            let (name, public_key) = (name.to_owned(), public_key.to_owned());
            move |invited: Invitation| Peer {
                name: if name.is_empty() { invited.name } else { name },
                url: String::new(),
                public_key,
                organization: invited.organization,
                acl: Acl::FULL,
            }
        };
        r.add_peer(&partner("NLC", &key)(Invitation {
            name: String::new(),
            organization: "nlc".into(),
        }))
        .unwrap();
        let invite = r.invite("UNAOC", "unaoc-9", 7).unwrap();
        assert!(matches!(
            r.join_with_invite(&invite, partner("", "not a key")),
            Err(RegistryError::Federation(_))
        ));
        assert!(matches!(
            r.join_with_invite(&invite, partner("NLC", &key)),
            Err(RegistryError::Exists(_))
        ));
        assert!(matches!(
            r.join_with_invite(&invite, partner(" padded ", &key)),
            Err(RegistryError::Invalid(_))
        ));
        assert_eq!(r.peers().unwrap().len(), 1, "nothing was added");
        let joined = r
            .join_with_invite(&invite, partner("", &key))
            .unwrap()
            .unwrap();
        assert_eq!(joined.name, "UNAOC");
        assert_eq!(
            joined.organization, "unaoc-9",
            "bound to what it was invited as"
        );
        assert_eq!(r.peers().unwrap().len(), 2);
        assert_eq!(
            r.join_with_invite(&invite, partner("Again", &key)).unwrap(),
            None,
            "used up once the partner is added"
        );
        assert_eq!(
            r.join_with_invite("made-up", partner("X", &key)).unwrap(),
            None
        );
    }
}
