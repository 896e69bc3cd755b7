//! CBOR encoding and decoding of protocol messages, with size limits.
//!
//! Decoding is strict about what ibis needs and lenient about what peers add: unknown keys are
//! skipped, `null`/`undefined` count as absent, integers may arrive as floats (cbor-x writes
//! large numbers that way), document ids may be bs58check strings or raw 16-byte strings.
//! Anything else — not a map, a missing or mistyped field, an unknown `type`, trailing bytes, a
//! frame or a field over its limit — is a [`DecodeError`] naming the problem.

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use super::{GossipKind, Message, PeerId, PeerMetadata, StorageId};
use crate::cbor;
use crate::document_id::{DocumentId, DocumentIdError};

/// Size limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted at all.
    pub max_frame_bytes: usize,
    /// Longest peer id, storage id, session id or protocol version string.
    pub max_id_bytes: usize,
    /// Longest `error` message text.
    pub max_text_bytes: usize,
    /// Most entries in `supportedProtocolVersions`.
    pub max_versions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024 * 1024,
            max_id_bytes: 256,
            max_text_bytes: 4096,
            max_versions: 16,
        }
    }
}

/// Why a frame is not a valid protocol message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { size: usize, limit: usize },
    #[error("malformed CBOR: {0}")]
    Cbor(String),
    #[error("message is not a CBOR map")]
    NotAMap,
    #[error("message has {0} trailing bytes after the CBOR map")]
    TrailingBytes(usize),
    #[error("message has no `type` field")]
    MissingType,
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("`{message_type}` message lacks the `{field}` field")]
    MissingField {
        message_type: &'static str,
        field: &'static str,
    },
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `{field}` appears twice")]
    DuplicateField { field: &'static str },
    #[error("field `{field}` is {size} bytes, more than the limit of {limit}")]
    FieldTooLong {
        field: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("invalid documentId: {0}")]
    DocumentId(#[from] DocumentIdError),
}

impl From<minicbor::decode::Error> for DecodeError {
    fn from(e: minicbor::decode::Error) -> Self {
        DecodeError::Cbor(e.to_string())
    }
}

/// The fields of a message as read off the wire, before the `type` decides which are needed.
#[derive(Default)]
struct Fields {
    message_type: Option<String>,
    sender_id: Option<PeerId>,
    target_id: Option<PeerId>,
    document_id: Option<DocumentId>,
    data: Option<Vec<u8>>,
    session_id: Option<String>,
    count: Option<u64>,
    message: Option<String>,
    supported_versions: Option<Vec<String>>,
    selected_version: Option<String>,
    peer_metadata: Option<PeerMetadata>,
}

/// Decodes one frame.
pub fn decode(frame: &[u8], limits: &Limits) -> Result<Message, DecodeError> {
    if frame.len() > limits.max_frame_bytes {
        return Err(DecodeError::FrameTooLarge {
            size: frame.len(),
            limit: limits.max_frame_bytes,
        });
    }
    let mut d = Decoder::new(frame);
    let fields = read_fields(&mut d, limits)?;
    let rest = frame.len() - d.position();
    if rest != 0 {
        return Err(DecodeError::TrailingBytes(rest));
    }
    build(fields)
}

fn read_fields<'b>(d: &mut Decoder<'b>, limits: &Limits) -> Result<Fields, DecodeError> {
    let mut f = Fields::default();
    cbor::for_each_entry(
        d,
        || DecodeError::NotAMap,
        |key, d| {
            match key {
                "type" => set(
                    &mut f.message_type,
                    "type",
                    read_text(d, "type", limits.max_id_bytes)?,
                )?,
                "senderId" => set(
                    &mut f.sender_id,
                    "senderId",
                    read_peer_id(d, "senderId", limits)?,
                )?,
                "targetId" => set(
                    &mut f.target_id,
                    "targetId",
                    read_peer_id(d, "targetId", limits)?,
                )?,
                "documentId" => set(&mut f.document_id, "documentId", read_document_id(d)?)?,
                "data" => set(&mut f.data, "data", read_bytes(d, "data")?)?,
                "sessionId" => set(
                    &mut f.session_id,
                    "sessionId",
                    read_text(d, "sessionId", limits.max_id_bytes)?,
                )?,
                "count" => set(&mut f.count, "count", read_count(d)?)?,
                "message" => set(
                    &mut f.message,
                    "message",
                    read_text(d, "message", limits.max_text_bytes)?,
                )?,
                "supportedProtocolVersions" => set(
                    &mut f.supported_versions,
                    "supportedProtocolVersions",
                    read_versions(d, limits)?,
                )?,
                "selectedProtocolVersion" => set(
                    &mut f.selected_version,
                    "selectedProtocolVersion",
                    read_text(d, "selectedProtocolVersion", limits.max_id_bytes)?,
                )?,
                "peerMetadata" => {
                    if let Some(meta) = read_peer_metadata(d, limits)? {
                        set(&mut f.peer_metadata, "peerMetadata", meta)?;
                    }
                }
                _ => d.skip()?,
            }
            Ok(())
        },
    )?;
    Ok(f)
}

fn set<T>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateField { field });
    }
    *slot = Some(value);
    Ok(())
}

/// True (and consumed) when the next value is CBOR `null` or `undefined`.
fn absent(d: &mut Decoder<'_>) -> Result<bool, DecodeError> {
    match d.datatype()? {
        Type::Null | Type::Undefined => {
            d.skip()?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn read_text(
    d: &mut Decoder<'_>,
    field: &'static str,
    limit: usize,
) -> Result<String, DecodeError> {
    if d.datatype()? != Type::String {
        return Err(DecodeError::WrongType {
            field,
            expected: "a text string",
        });
    }
    let s = d.str()?;
    if s.len() > limit {
        return Err(DecodeError::FieldTooLong {
            field,
            size: s.len(),
            limit,
        });
    }
    Ok(s.to_owned())
}

fn read_peer_id(
    d: &mut Decoder<'_>,
    field: &'static str,
    limits: &Limits,
) -> Result<PeerId, DecodeError> {
    read_text(d, field, limits.max_id_bytes).map(PeerId::new)
}

fn read_bytes(d: &mut Decoder<'_>, field: &'static str) -> Result<Vec<u8>, DecodeError> {
    if d.datatype()? != Type::Bytes {
        return Err(DecodeError::WrongType {
            field,
            expected: "a byte string",
        });
    }
    Ok(d.bytes()?.to_vec())
}

fn read_document_id(d: &mut Decoder<'_>) -> Result<DocumentId, DecodeError> {
    match d.datatype()? {
        Type::String => Ok(DocumentId::parse(d.str()?)?),
        Type::Bytes => Ok(DocumentId::from_slice(d.bytes()?)?),
        _ => Err(DecodeError::WrongType {
            field: "documentId",
            expected: "a bs58check string or 16 bytes",
        }),
    }
}

/// Reads a non-negative integer that may have been written as a float.
fn read_count(d: &mut Decoder<'_>) -> Result<u64, DecodeError> {
    let wrong = DecodeError::WrongType {
        field: "count",
        expected: "a non-negative integer",
    };
    match d.datatype()? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Ok(d.u64()?),
        Type::F16 | Type::F32 | Type::F64 => {
            let x = d.f64()?;
            // 2^53: the largest integer a JavaScript number holds exactly.
            if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= 9_007_199_254_740_992.0 {
                Ok(x as u64)
            } else {
                Err(wrong)
            }
        }
        _ => Err(wrong),
    }
}

fn read_versions(d: &mut Decoder<'_>, limits: &Limits) -> Result<Vec<String>, DecodeError> {
    let wrong = DecodeError::WrongType {
        field: "supportedProtocolVersions",
        expected: "an array of text strings",
    };
    let len = match d.datatype()? {
        Type::Array | Type::ArrayIndef => d.array()?,
        _ => return Err(wrong),
    };
    let mut versions = Vec::new();
    let mut remaining = len;
    loop {
        match remaining {
            Some(0) => break,
            Some(ref mut n) => *n -= 1,
            None => {
                if d.datatype()? == Type::Break {
                    d.skip()?;
                    break;
                }
            }
        }
        if versions.len() == limits.max_versions {
            return Err(DecodeError::FieldTooLong {
                field: "supportedProtocolVersions",
                size: versions.len() + 1,
                limit: limits.max_versions,
            });
        }
        versions.push(read_text(
            d,
            "supportedProtocolVersions",
            limits.max_id_bytes,
        )?);
    }
    Ok(versions)
}

fn read_peer_metadata(
    d: &mut Decoder<'_>,
    limits: &Limits,
) -> Result<Option<PeerMetadata>, DecodeError> {
    if absent(d)? {
        return Ok(None);
    }
    let len = match d.datatype()? {
        Type::Map | Type::MapIndef => d.map()?,
        _ => {
            return Err(DecodeError::WrongType {
                field: "peerMetadata",
                expected: "a map",
            })
        }
    };
    let mut meta = PeerMetadata::default();
    let mut remaining = len;
    loop {
        match remaining {
            Some(0) => break,
            Some(ref mut n) => *n -= 1,
            None => {
                if d.datatype()? == Type::Break {
                    d.skip()?;
                    break;
                }
            }
        }
        let key = if d.datatype()? == Type::String {
            d.str()?
        } else {
            d.skip()?;
            ""
        };
        match key {
            "storageId" => {
                if !absent(d)? {
                    meta.storage_id = Some(StorageId::new(read_text(
                        d,
                        "peerMetadata.storageId",
                        limits.max_id_bytes,
                    )?));
                }
            }
            "isEphemeral" => {
                if !absent(d)? {
                    if d.datatype()? != Type::Bool {
                        return Err(DecodeError::WrongType {
                            field: "peerMetadata.isEphemeral",
                            expected: "a boolean",
                        });
                    }
                    meta.is_ephemeral = d.bool()?;
                }
            }
            _ => d.skip()?,
        }
    }
    Ok(Some(meta))
}

fn build(f: Fields) -> Result<Message, DecodeError> {
    let message_type = f.message_type.ok_or(DecodeError::MissingType)?;
    macro_rules! need {
        ($ty:literal, $field:ident, $name:literal) => {
            f.$field.ok_or(DecodeError::MissingField {
                message_type: $ty,
                field: $name,
            })?
        };
    }
    Ok(match message_type.as_str() {
        "join" => Message::Join {
            sender_id: need!("join", sender_id, "senderId"),
            // Absent means "1" in automerge-repo's server adapter.
            supported_protocol_versions: f
                .supported_versions
                .unwrap_or_else(|| vec![super::PROTOCOL_V1.to_owned()]),
            peer_metadata: f.peer_metadata,
        },
        "peer" => Message::Peer {
            sender_id: need!("peer", sender_id, "senderId"),
            target_id: need!("peer", target_id, "targetId"),
            selected_protocol_version: f
                .selected_version
                .unwrap_or_else(|| super::PROTOCOL_V1.to_owned()),
            peer_metadata: f.peer_metadata,
        },
        "request" => Message::Request {
            sender_id: need!("request", sender_id, "senderId"),
            target_id: need!("request", target_id, "targetId"),
            document_id: need!("request", document_id, "documentId"),
            data: need!("request", data, "data"),
        },
        "sync" => Message::Sync {
            sender_id: need!("sync", sender_id, "senderId"),
            target_id: need!("sync", target_id, "targetId"),
            document_id: need!("sync", document_id, "documentId"),
            data: need!("sync", data, "data"),
        },
        "doc-unavailable" => Message::DocUnavailable {
            sender_id: need!("doc-unavailable", sender_id, "senderId"),
            target_id: need!("doc-unavailable", target_id, "targetId"),
            document_id: need!("doc-unavailable", document_id, "documentId"),
        },
        "ephemeral" => Message::Ephemeral {
            sender_id: need!("ephemeral", sender_id, "senderId"),
            target_id: need!("ephemeral", target_id, "targetId"),
            document_id: need!("ephemeral", document_id, "documentId"),
            session_id: need!("ephemeral", session_id, "sessionId"),
            count: need!("ephemeral", count, "count"),
            data: need!("ephemeral", data, "data"),
        },
        "error" => Message::Error {
            sender_id: f.sender_id,
            message: f.message.unwrap_or_default(),
        },
        "leave" => Message::Leave {
            sender_id: need!("leave", sender_id, "senderId"),
        },
        "remote-subscription-change" => Message::Gossip {
            kind: GossipKind::RemoteSubscriptionChange,
            sender_id: need!("remote-subscription-change", sender_id, "senderId"),
        },
        "remote-heads-changed" => Message::Gossip {
            kind: GossipKind::RemoteHeadsChanged,
            sender_id: need!("remote-heads-changed", sender_id, "senderId"),
        },
        _ => return Err(DecodeError::UnknownType(message_type)),
    })
}

/// Encodes one message as a CBOR map, the way automerge-repo peers expect it.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut e = Encoder::new(Vec::with_capacity(64 + payload_len(message)));
    match write_message(&mut e, message) {
        Ok(()) => e.into_writer(),
        // Writing into a Vec has no error type (`Infallible`), and no value written here has
        // a custom encoding that could fail.
        Err(err) => unreachable!("encoding into a Vec cannot fail: {err}"),
    }
}

fn write_message<W: minicbor::encode::Write>(
    e: &mut Encoder<W>,
    message: &Message,
) -> Result<(), minicbor::encode::Error<W::Error>> {
    match message {
        Message::Join {
            sender_id,
            supported_protocol_versions,
            peer_metadata,
        } => {
            e.map(3 + u64::from(peer_metadata.is_some()))?;
            e.str("type")?.str("join")?;
            e.str("senderId")?.str(sender_id.as_str())?;
            e.str("supportedProtocolVersions")?
                .array(supported_protocol_versions.len() as u64)?;
            for v in supported_protocol_versions {
                e.str(v)?;
            }
            if let Some(meta) = peer_metadata {
                encode_metadata(e, meta)?;
            }
        }
        Message::Peer {
            sender_id,
            target_id,
            selected_protocol_version,
            peer_metadata,
        } => {
            e.map(4 + u64::from(peer_metadata.is_some()))?;
            e.str("type")?.str("peer")?;
            e.str("senderId")?.str(sender_id.as_str())?;
            e.str("targetId")?.str(target_id.as_str())?;
            e.str("selectedProtocolVersion")?
                .str(selected_protocol_version)?;
            if let Some(meta) = peer_metadata {
                encode_metadata(e, meta)?;
            }
        }
        Message::Request {
            sender_id,
            target_id,
            document_id,
            data,
        }
        | Message::Sync {
            sender_id,
            target_id,
            document_id,
            data,
        } => {
            e.map(5)?;
            e.str("type")?.str(message.type_name())?;
            e.str("senderId")?.str(sender_id.as_str())?;
            e.str("targetId")?.str(target_id.as_str())?;
            e.str("documentId")?.str(&document_id.to_string())?;
            e.str("data")?.bytes(data)?;
        }
        Message::DocUnavailable {
            sender_id,
            target_id,
            document_id,
        } => {
            e.map(4)?;
            e.str("type")?.str("doc-unavailable")?;
            e.str("senderId")?.str(sender_id.as_str())?;
            e.str("targetId")?.str(target_id.as_str())?;
            e.str("documentId")?.str(&document_id.to_string())?;
        }
        Message::Ephemeral {
            sender_id,
            target_id,
            document_id,
            session_id,
            count,
            data,
        } => {
            e.map(7)?;
            e.str("type")?.str("ephemeral")?;
            e.str("senderId")?.str(sender_id.as_str())?;
            e.str("targetId")?.str(target_id.as_str())?;
            e.str("documentId")?.str(&document_id.to_string())?;
            e.str("sessionId")?.str(session_id)?;
            e.str("count")?.u64(*count)?;
            e.str("data")?.bytes(data)?;
        }
        Message::Error { sender_id, message } => {
            e.map(2 + u64::from(sender_id.is_some()))?;
            e.str("type")?.str("error")?;
            if let Some(sender_id) = sender_id {
                e.str("senderId")?.str(sender_id.as_str())?;
            }
            e.str("message")?.str(message)?;
        }
        Message::Leave { sender_id } | Message::Gossip { sender_id, .. } => {
            e.map(2)?;
            e.str("type")?.str(message.type_name())?;
            e.str("senderId")?.str(sender_id.as_str())?;
        }
    }
    Ok(())
}

fn encode_metadata<W: minicbor::encode::Write>(
    e: &mut Encoder<W>,
    meta: &PeerMetadata,
) -> Result<(), minicbor::encode::Error<W::Error>> {
    e.str("peerMetadata")?;
    e.map(1 + u64::from(meta.storage_id.is_some()))?;
    if let Some(storage_id) = &meta.storage_id {
        e.str("storageId")?.str(storage_id.as_str())?;
    }
    e.str("isEphemeral")?.bool(meta.is_ephemeral)?;
    Ok(())
}

fn payload_len(message: &Message) -> usize {
    match message {
        Message::Request { data, .. }
        | Message::Sync { data, .. }
        | Message::Ephemeral { data, .. } => data.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
