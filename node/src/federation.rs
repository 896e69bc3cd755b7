//! How nodes prove who they are to each other: each has an ed25519 key, and a connection
//! between partners starts with a challenge-response in both directions.
//!
//! 1. The dialing node opens `/sync?node=<its public key>&cnonce=<random>`.
//! 2. The accepting node answers the upgrade with its public key, its signature over the
//!    dialer's nonce (`x-ibis-node`, `x-ibis-node-signature`) and a fresh challenge of its
//!    own (`x-ibis-challenge`). The dialer checks the signature against the key it expects.
//! 3. The dialer's first frame is a text frame `ibis-auth/1 <signature over the challenge>`.
//!    The acceptor checks it against the partner's registered key; only then does the
//!    automerge-repo handshake begin, with the connection bound to that partner.
//!
//! Plain automerge-repo servers (the JS sync server, samod) do none of this; a dial to a
//! peer registered without a key skips it.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

pub const KEY_FILE: &str = "node.key";
pub const HEADER_NODE: &str = "x-ibis-node";
pub const HEADER_SIGNATURE: &str = "x-ibis-node-signature";
pub const HEADER_CHALLENGE: &str = "x-ibis-challenge";
pub const AUTH_PREFIX: &str = "ibis-auth/1 ";

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("cannot read or write the node key {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the node key file {0} is not 32 bytes")]
    BadKeyFile(String),
    #[error("not a node public key: {0}")]
    BadPublicKey(String),
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("randomness unavailable: {0}")]
    Random(String),
}

/// 32 random bytes, base64url.
pub fn nonce() -> Result<String, FederationError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| FederationError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A node's public key, as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePublicKey(VerifyingKey);

impl NodePublicKey {
    pub fn parse(text: &str) -> Result<Self, FederationError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|e| FederationError::BadPublicKey(e.to_string()))?;
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| FederationError::BadPublicKey(format!("{} bytes, not 32", bytes.len())))?;
        VerifyingKey::from_bytes(&arr)
            .map(Self)
            .map_err(|e| FederationError::BadPublicKey(e.to_string()))
    }

    pub fn verify(&self, message: &str, signature: &str) -> Result<(), FederationError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(signature.trim())
            .map_err(|e| FederationError::BadSignature(e.to_string()))?;
        let arr: [u8; 64] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| FederationError::BadSignature("not 64 bytes".into()))?;
        self.0
            .verify(message.as_bytes(), &Signature::from_bytes(&arr))
            .map_err(|e| FederationError::BadSignature(e.to_string()))
    }
}

impl std::fmt::Display for NodePublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0.as_bytes()))
    }
}

/// This node's signing key.
pub struct NodeKey(SigningKey);

impl NodeKey {
    /// Loads `node.key` from the data dir, creating it (readable by the owner only) if
    /// absent.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, FederationError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| FederationError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let seed: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| FederationError::BadKeyFile(path.display().to_string()))?;
                Ok(Self(SigningKey::from_bytes(&seed)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| FederationError::Random(e.to_string()))?;
                write_private(&path, &seed).map_err(io)?;
                Ok(Self(SigningKey::from_bytes(&seed)))
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn public(&self) -> NodePublicKey {
        NodePublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, message: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.0.sign(message.as_bytes()).to_bytes())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// What the accepting node signs: the dialer's nonce, bound to both keys.
pub fn accept_message(cnonce: &str, acceptor: &NodePublicKey, dialer: &NodePublicKey) -> String {
    format!("ibis-federation/1 accept {cnonce} {acceptor} {dialer}")
}

/// What the dialing node signs: the acceptor's challenge, bound to both keys.
pub fn dial_message(challenge: &str, dialer: &NodePublicKey, acceptor: &NodePublicKey) -> String {
    format!("ibis-federation/1 dial {challenge} {dialer} {acceptor}")
}

/// What a partner answers when an invitation is redeemed.
#[derive(Debug, serde::Deserialize)]
pub struct Joined {
    pub directory: String,
    pub node_key: String,
    /// The inviting organization's name, and its id.
    pub organization: String,
    #[serde(default)]
    pub inviter_organization: String,
    /// The organization id the invitation made for the new node.
    #[serde(default)]
    pub organization_id: String,
}

/// `http(s)://host:port` → `ws(s)://host:port/sync`.
pub fn sync_url_of(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/sync")
}

/// Redeems an invitation at a partner node (a plain HTTP/1.1 POST; for https partners,
/// run this through the reverse proxy's plain-HTTP side or use `--join` with keys).
pub fn redeem_invitation(
    base: &str,
    invite: &str,
    org_name: &str,
    data_dir: &std::path::Path,
    public_url: &str,
) -> anyhow::Result<Joined> {
    use anyhow::Context;
    use std::io::{Read, Write};
    let rest = base
        .trim_end_matches('/')
        .strip_prefix("http://")
        .context("--join-url must be an http:// address (see the operator guide for https)")?;
    std::fs::create_dir_all(data_dir)?;
    let key = NodeKey::load_or_create(data_dir)?;
    let body = serde_json::json!({
        "invite": invite,
        "name": org_name,
        "public_key": key.public().to_string(),
        "url": if public_url.is_empty() { String::new() } else { sync_url_of(public_url) },
    })
    .to_string();
    let mut stream =
        std::net::TcpStream::connect(rest).with_context(|| format!("cannot reach {base}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    write!(
        stream,
        "POST /api/federation/join HTTP/1.1\r\nHost: {rest}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.take(1 << 20).read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("the partner sent no HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!("the partner refused the invitation: {}", body.trim());
    }
    serde_json::from_str(body).context("the partner's answer is not what ibis expects")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_signatures_verify_only_for_their_message() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::load_or_create(dir.path()).unwrap();
        let again = NodeKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.public(), again.public());
        let other_dir = tempfile::tempdir().unwrap();
        let other = NodeKey::load_or_create(other_dir.path()).unwrap();

        let challenge = nonce().unwrap();
        let message = dial_message(&challenge, &key.public(), &other.public());
        let sig = key.sign(&message);
        let public = NodePublicKey::parse(&key.public().to_string()).unwrap();
        assert!(public.verify(&message, &sig).is_ok());
        // Another challenge, or the roles swapped, or another key: refused.
        let replay = dial_message(&nonce().unwrap(), &key.public(), &other.public());
        assert!(public.verify(&replay, &sig).is_err());
        let swapped = dial_message(&challenge, &other.public(), &key.public());
        assert!(public.verify(&swapped, &sig).is_err());
        assert!(other.public().verify(&message, &sig).is_err());
        assert!(public.verify(&message, "not base64!").is_err());
        assert!(NodePublicKey::parse("short").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        NodeKey::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
