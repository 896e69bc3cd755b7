//! Presence: who is looking at (or editing) a practice right now.
//!
//! Sent as automerge-repo `ephemeral` messages, never stored. The payload is CBOR, as JS
//! automerge-repo encodes and decodes every ephemeral payload (`handle.broadcast(message)`
//! → cbor-x), so JS apps sharing a node can read ibis presence and send their own:
//! a map `{ name, field, session }`. Unknown keys are ignored; anything else is refused
//! with a reason, within size limits.

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use crate::cbor;

/// Largest payload read.
pub const MAX_PAYLOAD_BYTES: usize = 1024;
/// Longest display name kept.
pub const MAX_NAME_BYTES: usize = 200;
/// Longest field name or session id kept.
pub const MAX_TAG_BYTES: usize = 100;

/// One person's presence on a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The name they show to others.
    pub name: String,
    /// The field they are editing, or empty when only reading.
    pub field: String,
    /// Their browser session (one person may have several tabs).
    pub session: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PresenceError {
    #[error("a presence payload of {0} bytes is over the limit of {MAX_PAYLOAD_BYTES}")]
    TooLarge(usize),
    #[error("a presence payload must be a CBOR map")]
    NotAMap,
    #[error("presence `{0}` is missing or empty")]
    Missing(&'static str),
    #[error("presence `{field}` is {size} bytes, over the limit of {limit}")]
    FieldTooLong {
        field: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("presence `{0}` must be text")]
    NotText(&'static str),
    #[error("{0} bytes after the presence payload")]
    TrailingBytes(usize),
    #[error("malformed presence payload: {0}")]
    Cbor(String),
}

impl From<minicbor::decode::Error> for PresenceError {
    fn from(e: minicbor::decode::Error) -> Self {
        PresenceError::Cbor(e.to_string())
    }
}

impl Presence {
    /// The payload to send: a CBOR map of three text fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = e
            .map(3)
            .and_then(|e| e.str("name")?.str(&self.name))
            .and_then(|e| e.str("field")?.str(&self.field))
            .and_then(|e| e.str("session")?.str(&self.session));
        e.into_writer()
    }

    /// Reads a payload from any peer; `name` and `session` are required.
    pub fn decode(payload: &[u8]) -> Result<Self, PresenceError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(PresenceError::TooLarge(payload.len()));
        }
        let mut d = Decoder::new(payload);
        let (mut name, mut field, mut session) = (None, None, None);
        cbor::for_each_entry(
            &mut d,
            || PresenceError::NotAMap,
            |key, d| {
                match key {
                    "name" => name = Some(read_text(d, "name", MAX_NAME_BYTES)?),
                    "field" => field = Some(read_text(d, "field", MAX_TAG_BYTES)?),
                    "session" => session = Some(read_text(d, "session", MAX_TAG_BYTES)?),
                    _ => d.skip()?,
                }
                Ok(())
            },
        )?;
        let rest = payload.len() - d.position();
        if rest != 0 {
            return Err(PresenceError::TrailingBytes(rest));
        }
        let name = name
            .filter(|n| !n.trim().is_empty())
            .ok_or(PresenceError::Missing("name"))?;
        let session = session
            .filter(|s| !s.is_empty())
            .ok_or(PresenceError::Missing("session"))?;
        Ok(Presence {
            name,
            field: field.unwrap_or_default(),
            session,
        })
    }
}

fn read_text(
    d: &mut Decoder<'_>,
    field: &'static str,
    limit: usize,
) -> Result<String, PresenceError> {
    if d.datatype()? != Type::String {
        return Err(PresenceError::NotText(field));
    }
    let text = d.str()?;
    if text.len() > limit {
        return Err(PresenceError::FieldTooLong {
            field,
            size: text.len(),
            limit,
        });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amy() -> Presence {
        Presence {
            name: "Amy".into(),
            field: "summary".into(),
            session: "s-1".into(),
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| {
                let pair = std::str::from_utf8(pair).unwrap_or("00");
                u8::from_str_radix(pair, 16).unwrap_or(0)
            })
            .collect()
    }

    #[test]
    fn what_is_encoded_decodes_back() {
        assert_eq!(Presence::decode(&amy().encode()), Ok(amy()));
    }

    #[test]
    fn reads_what_js_automerge_repo_sends() {
        // Captured from cbor-x as automerge-repo configures it (`useRecords: false`):
        // {session: "s-1", name: "Amy", cursor: 7, field: "summary"}. A map with a 16-bit
        // length, another key order, an extra key.
        let from_js = hex(
            "b900046773657373696f6e63732d31646e616d6563416d7966637572736f72\
                           07656669656c646773756d6d617279",
        );
        assert_eq!(Presence::decode(&from_js), Ok(amy()));
    }

    #[test]
    fn refuses_what_is_not_presence_with_a_reason() {
        assert_eq!(
            Presence::decode(br#"{"name":"Amy"}"#),
            Err(PresenceError::NotAMap)
        );
        let no_session = Presence {
            session: String::new(),
            ..amy()
        };
        assert_eq!(
            Presence::decode(&no_session.encode()),
            Err(PresenceError::Missing("session"))
        );
        let long = Presence {
            name: "x".repeat(MAX_NAME_BYTES + 1),
            ..amy()
        };
        assert!(matches!(
            Presence::decode(&long.encode()),
            Err(PresenceError::FieldTooLong { field: "name", .. })
        ));
        let mut trailing = amy().encode();
        trailing.push(0);
        assert_eq!(
            Presence::decode(&trailing),
            Err(PresenceError::TrailingBytes(1))
        );
        assert_eq!(
            Presence::decode(&vec![0xa0; MAX_PAYLOAD_BYTES + 1]),
            Err(PresenceError::TooLarge(MAX_PAYLOAD_BYTES + 1))
        );
        // A name that is a number, and a truncated payload.
        assert_eq!(
            Presence::decode(&[0xa1, 0x64, b'n', b'a', b'm', b'e', 0x07]),
            Err(PresenceError::NotText("name"))
        );
        assert!(matches!(
            Presence::decode(&amy().encode()[..10]),
            Err(PresenceError::Cbor(_))
        ));
    }
}
