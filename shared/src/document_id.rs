//! Document ids as automerge-repo spells them.
//!
//! A document id is 16 random bytes (a UUID v4). On the wire and in URLs it is written with
//! bs58check: base58 of the bytes followed by a 4-byte double-SHA-256 checksum. A URL is
//! `automerge:<id>`, optionally followed by `#head1|head2` (bs58check-encoded change hashes)
//! which pins a view at those heads; ibis accepts and keeps the heads but syncs the whole
//! document.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

/// The longest id string we accept; bs58check of 16 bytes is 25 or 26 characters. Anything
/// much longer is refused before any decoding work is done.
const MAX_ID_CHARS: usize = 64;
const URL_PREFIX: &str = "automerge:";

/// Why a string or byte slice is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentIdError {
    #[error("document id is empty")]
    Empty,
    #[error("document id is {0} characters long, more than any valid id")]
    TooLong(usize),
    #[error("document id is not valid base58: {0}")]
    Base58(String),
    #[error("document id checksum does not match")]
    Checksum,
    #[error("document id must be 16 bytes, found {0}")]
    WrongLength(usize),
    #[error("not an automerge URL (expected `automerge:<id>`)")]
    NotAUrl,
    #[error("invalid head in automerge URL: {0}")]
    BadHead(String),
}

/// The id of one Automerge document: 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId([u8; 16]);

impl DocumentId {
    /// A fresh random id (UUID v4).
    pub fn random() -> Self {
        Self(*uuid::Uuid::new_v4().as_bytes())
    }

    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses raw bytes (as samod sometimes sends and as ibis stores them).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DocumentIdError> {
        let arr: [u8; 16] = bytes
            .try_into()
            .map_err(|_| DocumentIdError::WrongLength(bytes.len()))?;
        Ok(Self(arr))
    }

    /// Parses the bs58check form used on the wire. Legacy UUID strings (with dashes), which
    /// older peers used, are accepted too.
    pub fn parse(s: &str) -> Result<Self, DocumentIdError> {
        if s.is_empty() {
            return Err(DocumentIdError::Empty);
        }
        if s.len() > MAX_ID_CHARS {
            return Err(DocumentIdError::TooLong(s.len()));
        }
        if s.len() == 36 && s.as_bytes().get(8) == Some(&b'-') {
            if let Ok(uuid) = uuid::Uuid::parse_str(s) {
                return Ok(Self(*uuid.as_bytes()));
            }
        }
        if let Some(id) = LAST_PARSED.with(|last| {
            let last = last.borrow();
            last.as_ref()
                .filter(|(spelling, _)| spelling == s)
                .map(|(_, id)| *id)
        }) {
            return Ok(id);
        }
        let bytes = bs58::decode(s)
            .with_check(None)
            .into_vec()
            .map_err(|e| match e {
                bs58::decode::Error::InvalidChecksum { .. } => DocumentIdError::Checksum,
                other => DocumentIdError::Base58(other.to_string()),
            })?;
        let id = Self::from_slice(&bytes)?;
        LAST_PARSED.with(|last| *last.borrow_mut() = Some((s.to_owned(), id)));
        Ok(id)
    }

    /// A document id as people and programs write it: bare, or as an `automerge:` URL
    /// (with `#heads` or not).
    /// Only the id is read: heads, if any, are not checked (use [`AutomergeUrl::parse`]
    /// for them).
    pub fn parse_id_or_url(s: &str) -> Result<Self, DocumentIdError> {
        let id = s.strip_prefix(URL_PREFIX).unwrap_or(s);
        Self::parse(id.split_once('#').map_or(id, |(id, _)| id))
    }

    /// The `automerge:<id>` URL of this document.
    pub fn url(&self) -> String {
        format!("{URL_PREFIX}{self}")
    }
}

// The last id spelled and the last spelling parsed, per thread. A change relayed to 99
// peers is 99 messages naming the same document, and their 99 acknowledgements name it
// again; bs58check (base58 plus a double SHA-256) was ~7% of the node's time doing that.
thread_local! {
    static LAST_SPELLED: RefCell<Option<(DocumentId, String)>> = const { RefCell::new(None) };
    static LAST_PARSED: RefCell<Option<(String, DocumentId)>> = const { RefCell::new(None) };
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spelled = LAST_SPELLED.with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some((id, spelling)) if id == self => spelling.clone(),
                _ => {
                    let spelling = bs58::encode(&self.0).with_check().into_string();
                    *last = Some((*self, spelling.clone()));
                    spelling
                }
            }
        });
        f.write_str(&spelled)
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

impl FromStr for DocumentId {
    type Err = DocumentIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for DocumentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for DocumentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let s = s.strip_prefix(URL_PREFIX).unwrap_or(&s);
        Self::parse(s).map_err(serde::de::Error::custom)
    }
}

/// A parsed `automerge:<id>[#head|head…]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutomergeUrl {
    pub document_id: DocumentId,
    /// Heads the URL pins, if any (each a 32-byte change hash).
    pub heads: Vec<automerge::ChangeHash>,
}

impl AutomergeUrl {
    pub fn parse(s: &str) -> Result<Self, DocumentIdError> {
        let rest = s.strip_prefix(URL_PREFIX).ok_or(DocumentIdError::NotAUrl)?;
        let (id, heads) = match rest.split_once('#') {
            Some((id, heads)) => (id, Some(heads)),
            None => (rest, None),
        };
        let document_id = DocumentId::parse(id)?;
        let mut parsed = Vec::new();
        if let Some(heads) = heads.filter(|h| !h.is_empty()) {
            for head in heads.split('|') {
                let bytes = bs58::decode(head)
                    .with_check(None)
                    .into_vec()
                    .map_err(|e| DocumentIdError::BadHead(e.to_string()))?;
                let hash = automerge::ChangeHash::try_from(bytes.as_slice())
                    .map_err(|e| DocumentIdError::BadHead(e.to_string()))?;
                parsed.push(hash);
            }
        }
        Ok(Self {
            document_id,
            heads: parsed,
        })
    }
}

impl fmt::Display for AutomergeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{URL_PREFIX}{}", self.document_id)?;
        for (i, head) in self.heads.iter().enumerate() {
            let sep = if i == 0 { '#' } else { '|' };
            write!(
                f,
                "{sep}{}",
                bs58::encode(head.0).with_check().into_string()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_read_bare_or_as_a_url_with_or_without_heads() {
        let id = DocumentId::random();
        for text in [
            id.to_string(),
            id.url(),
            format!("{}#3xG8BRWvTKJx5dWxJbmPKN7nmsQSEE7pC9E9qVDeCzJA", id.url()),
        ] {
            assert_eq!(DocumentId::parse_id_or_url(&text), Ok(id), "{text}");
        }
        assert!(DocumentId::parse_id_or_url("automerge:").is_err());
        assert!(DocumentId::parse_id_or_url("not an id").is_err());
    }

    #[test]
    fn an_id_read_from_a_url_ignores_its_heads_and_agrees_with_the_url_parser() {
        let id = DocumentId::random();
        // Heads are not decoded: anything after `#` is left alone.
        assert_eq!(
            DocumentId::parse_id_or_url(&format!("{}#nothead", id.url())),
            Ok(id)
        );
        assert_eq!(
            DocumentId::parse_id_or_url(&format!("{}#", id.url())),
            Ok(id)
        );
        let url = AutomergeUrl {
            document_id: id,
            heads: vec![automerge::ChangeHash([7; 32])],
        }
        .to_string();
        assert_eq!(
            DocumentId::parse_id_or_url(&url),
            Ok(AutomergeUrl::parse(&url).unwrap().document_id)
        );
        // The id before `#` is still checked.
        let mut damaged = id.url();
        damaged.pop();
        assert!(DocumentId::parse_id_or_url(&format!("{damaged}#x")).is_err());
        assert!(DocumentId::parse_id_or_url(&format!("automerge:#{id}")).is_err());
    }

    #[test]
    fn round_trips_through_bs58check() {
        for _ in 0..100 {
            let id = DocumentId::random();
            let text = id.to_string();
            assert_eq!(DocumentId::parse(&text), Ok(id));
        }
    }

    #[test]
    fn ids_spelled_and_parsed_in_turn_stay_themselves() {
        let (a, b) = (DocumentId::random(), DocumentId::random());
        let (sa, sb) = (a.to_string(), b.to_string());
        for _ in 0..3 {
            assert_eq!(a.to_string(), sa);
            assert_eq!(b.to_string(), sb);
            assert_eq!(DocumentId::parse(&sa).unwrap(), a);
            assert_eq!(DocumentId::parse(&sb).unwrap(), b);
            assert_eq!(
                DocumentId::parse(&sa).unwrap(),
                a,
                "the same spelling twice"
            );
        }
        let mut damaged = sa.clone();
        damaged.pop();
        assert!(DocumentId::parse(&damaged).is_err());
        assert_eq!(DocumentId::parse(&sa).unwrap(), a);
    }

    #[test]
    fn known_vector_from_automerge_repo() {
        // Vectors printed by @automerge/automerge-repo 2.5.6 (`stringifyAutomergeUrl`).
        let zero = DocumentId::from_bytes([0; 16]);
        assert_eq!(zero.url(), "automerge:11111111111111114Ki9Gx");
        let id = DocumentId::from_bytes([
            57, 173, 121, 81, 246, 9, 69, 255, 190, 147, 127, 244, 186, 234, 141, 27,
        ]);
        assert_eq!(id.to_string(), "oc8YCwQ7ShkTzJqwpdMn1LzSfjJ");
        assert_eq!(DocumentId::parse("oc8YCwQ7ShkTzJqwpdMn1LzSfjJ"), Ok(id));
        // `encodeHeads(["07" * 32])`
        let url = AutomergeUrl {
            document_id: zero,
            heads: vec![automerge::ChangeHash([7; 32])],
        };
        assert_eq!(
            url.to_string(),
            "automerge:11111111111111114Ki9Gx#46WPtSJH9Mc1rNbRaWo6k2v6Bm8dc1FuCFxS2n6gFo7M27Ucu"
        );
    }

    #[test]
    fn checksum_failure_is_an_error_not_a_panic() {
        let mut text = DocumentId::random().to_string().into_bytes();
        // Flip the last character to another base58 digit.
        let last = text.len() - 1;
        text[last] = if text[last] == b'2' { b'3' } else { b'2' };
        let text = String::from_utf8(text).unwrap();
        assert_eq!(DocumentId::parse(&text), Err(DocumentIdError::Checksum));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(DocumentId::parse(""), Err(DocumentIdError::Empty));
        assert!(matches!(
            DocumentId::parse("0OIl"),
            Err(DocumentIdError::Base58(_))
        ));
        assert!(matches!(
            DocumentId::parse(&"z".repeat(200)),
            Err(DocumentIdError::TooLong(200))
        ));
        // A valid bs58check string of the wrong length.
        let short = bs58::encode([1u8, 2, 3]).with_check().into_string();
        assert_eq!(
            DocumentId::parse(&short),
            Err(DocumentIdError::WrongLength(3))
        );
        assert_eq!(
            DocumentId::from_slice(&[0; 15]),
            Err(DocumentIdError::WrongLength(15))
        );
    }

    #[test]
    fn accepts_legacy_uuid_strings() {
        let uuid = uuid::Uuid::new_v4();
        let id = DocumentId::parse(&uuid.to_string()).unwrap();
        assert_eq!(id.as_bytes(), uuid.as_bytes());
    }

    #[test]
    fn urls_with_and_without_heads() {
        let id = DocumentId::random();
        let url = AutomergeUrl::parse(&id.url()).unwrap();
        assert_eq!(url.document_id, id);
        assert!(url.heads.is_empty());

        let head = automerge::ChangeHash([7; 32]);
        let with_heads = AutomergeUrl {
            document_id: id,
            heads: vec![head, automerge::ChangeHash([9; 32])],
        };
        let text = with_heads.to_string();
        assert!(text.contains('#') && text.contains('|'));
        assert_eq!(AutomergeUrl::parse(&text).unwrap(), with_heads);

        assert_eq!(
            AutomergeUrl::parse(&id.to_string()),
            Err(DocumentIdError::NotAUrl)
        );
        assert!(matches!(
            AutomergeUrl::parse(&format!("{}#nothead", id.url())),
            Err(DocumentIdError::BadHead(_))
        ));
    }
}
