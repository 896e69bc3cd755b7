//! How much one connection may make the node spend, by who is on the other end: the one
//! place these numbers are defined. The engine enforces its part ([`PeerLimits`], through
//! [`crate::policy::NodePolicy`]); the host enforces the rest before a frame reaches the
//! engine (`server/sync.rs`, `connection.rs`). The README's operator section quotes them.
//!
//! Anonymous visitors read the public catalogue and write nothing, so they get small
//! frames, a small queue and no forwarded requests; members and partners move whole
//! documents and the catalogue's changes.

use std::time::Duration;

use ibis_shared::sync::PeerLimits;

/// Everything bounded per connection, for one class of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// What the engine enforces.
    pub engine: PeerLimits,
    /// Bytes of frames read from the socket and not yet taken in by the engine: past it,
    /// the connection stops reading (TCP pushes back on the sender).
    pub max_queued_inbound_bytes: usize,
    /// Bytes per second read from the socket, sustained (four seconds' worth may come at
    /// once): past it, reading pauses (TCP pushes back). Frames the node refuses still
    /// cost it a look at their envelope; this bounds how many.
    pub max_inbound_bytes_per_second: usize,
    /// A connection that sends nothing for this long is closed (`None`: never; partners
    /// replicate quietly for hours, and WebSocket pings tell a dead one).
    pub idle_timeout: Option<Duration>,
}

const MIB: usize = 1024 * 1024;

/// Anonymous visitors.
pub const ANONYMOUS: ConnectionLimits = ConnectionLimits {
    engine: PeerLimits {
        // Requests and acknowledgements only: a Bloom filter for thousands of changes
        // fits many times over.
        max_frame_bytes: 256 * 1024,
        // A fresh browser asks for the whole catalogue at once (5,000 requests) and
        // answers each document twice.
        messages_per_second: 2_000,
        message_burst: 12_000,
        max_unknown_documents: 16,
        forward_requests: false,
        keep_sync_states: false,
    },
    max_queued_inbound_bytes: MIB,
    max_inbound_bytes_per_second: MIB,
    idle_timeout: Some(Duration::from_secs(10 * 60)),
};

/// Members of this organization.
pub const MEMBER: ConnectionLimits = ConnectionLimits {
    engine: PeerLimits {
        max_frame_bytes: 16 * MIB,
        messages_per_second: 20_000,
        message_burst: 40_000,
        max_unknown_documents: 256,
        forward_requests: true,
        keep_sync_states: true,
    },
    max_queued_inbound_bytes: 32 * MIB,
    max_inbound_bytes_per_second: 32 * MIB,
    idle_timeout: Some(Duration::from_secs(60 * 60)),
};

/// Partner nodes and relays.
pub const PARTNER: ConnectionLimits = ConnectionLimits {
    engine: PeerLimits {
        max_frame_bytes: 16 * MIB,
        messages_per_second: 20_000,
        message_burst: 40_000,
        max_unknown_documents: 4_096,
        forward_requests: true,
        keep_sync_states: true,
    },
    max_queued_inbound_bytes: 32 * MIB,
    max_inbound_bytes_per_second: 32 * MIB,
    idle_timeout: None,
};

/// WebSocket pings go to every connection this often; one that has sent nothing (not
/// even a pong) for [`DEAD_AFTER`] is closed.
pub const PING_EVERY: Duration = Duration::from_secs(30);
pub const DEAD_AFTER: Duration = Duration::from_secs(90);

/// Documents of no ibis type (other applications' documents relayed through the node)
/// one organization (or one relay without one) may have had the node store, and their
/// bytes in all.
pub const UNTYPED_DOCUMENTS_PER_ORGANIZATION: usize = 1_000;
pub const UNTYPED_BYTES_PER_ORGANIZATION: u64 = 256 * MIB as u64;
