//! Why the engine turns a peer away. A [`Violation`] of the protocol closes the connection
//! (the peer hears it in an `error` first); a [`Refusal`] of a change keeps the connection
//! but not the change. Their texts are what peers and hosts read.

use crate::bounds::BoundsError;
use crate::protocol::{DecodeError, PeerId};
use crate::DocumentId;

/// A peer broke the protocol: the connection is closed with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("text frames are not part of the protocol")]
    TextFrame,
    #[error("message rate limit exceeded")]
    RateLimited,
    #[error("handshake timed out")]
    HandshakeTimedOut,
    #[error("invalid message: {0}")]
    Undecodable(DecodeError),
    /// The peer's `join` offers no version we speak.
    #[error("unsupported protocol version")]
    NoCommonVersion,
    /// The peer's `peer` picked a version we do not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(String),
    #[error("expected `{expected}` before any other message, got `{got}`")]
    BeforeHandshake {
        expected: &'static str,
        got: &'static str,
    },
    #[error("unexpected `{0}` after the handshake")]
    AfterHandshake(&'static str),
    /// The policy refused the peer at the handshake.
    #[error("not admitted: {0}")]
    NotAdmitted(String),
    #[error("peer id {0} is already connected")]
    PeerIdTaken(PeerId),
    #[error("ephemeral message of {size} bytes exceeds the limit of {limit}")]
    EphemeralTooLarge { size: usize, limit: usize },
    /// A sync message whose envelope is malformed or claims too much, or that does not
    /// decode.
    #[error("invalid sync message for {document}: {error}")]
    InvalidSyncMessage { document: DocumentId, error: String },
    /// A sync message whose changes come to too much once inflated.
    #[error("sync message for {document} refused: {error}")]
    Unbounded {
        document: DocumentId,
        error: BoundsError,
    },
    /// Automerge could not apply the message's changes.
    #[error("automerge rejected the sync message for {document}: {error}")]
    NotApplicable { document: DocumentId, error: String },
    /// Changes applied together were refused and could not be undone (a bug in
    /// automerge): the peers start over.
    #[error("changes to {0} could not be applied")]
    NotUndone(DocumentId),
}

impl Violation {
    /// A sync message for `document` that does not read (`error` says why).
    pub(super) fn invalid_sync_message(document: DocumentId, error: impl ToString) -> Self {
        Violation::InvalidSyncMessage {
            document,
            error: error.to_string(),
        }
    }
}

/// Why a peer's change (or the host's own) is not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The policy's rule, in its words (sent back to the peer).
    #[error("{0}")]
    Rule(String),
    /// The changes alone are larger than a whole document may be.
    #[error(
        "the change is {} KiB, more than a whole document may be ({} KiB)",
        .change_bytes.div_ceil(1024),
        .limit / 1024
    )]
    ChangeTooLarge { change_bytes: usize, limit: usize },
    /// The document would be stored larger than it may be.
    #[error(
        "the document would be {} KiB, over the limit of {} KiB for one document",
        .size.div_ceil(1024),
        .limit / 1024
    )]
    DocumentTooLarge { size: usize, limit: usize },
}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Refusal::Rule(reason)
    }
}

impl From<&str> for Refusal {
    fn from(reason: &str) -> Self {
        Refusal::Rule(reason.to_owned())
    }
}
