//! One connection's state: where its handshake is, who is on the other end, how far each
//! shared document is in sync with it, and how fast it is allowed to talk.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::protocol::{PeerId, PeerMetadata};
use crate::DocumentId;

use super::channel::Channel;
use super::policy::{PeerLimits, PeerRole};
use super::{Direction, Millis};

#[derive(Debug)]
pub(crate) enum Phase {
    /// Incoming: waiting for the peer's `join`.
    AwaitingJoin { deadline: Millis },
    /// Outgoing: we sent `join`, waiting for `peer`.
    AwaitingPeer { deadline: Millis },
    /// Handshake done.
    Ready(ReadyPeer),
}

#[derive(Debug, Clone)]
pub(crate) struct ReadyPeer {
    pub peer_id: PeerId,
    pub metadata: PeerMetadata,
    pub role: PeerRole,
}

impl ReadyPeer {
    /// The storage id under which sync states with this peer are worth keeping.
    pub fn durable_storage_id(&self) -> Option<&crate::protocol::StorageId> {
        if self.metadata.is_ephemeral {
            None
        } else {
            self.metadata.storage_id.as_ref()
        }
    }
}

/// Token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Millis,
}

impl RateLimiter {
    pub fn new(rate: u32, burst: u32, now: Millis) -> Self {
        Self {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token; false when the connection is over its rate.
    pub fn allow(&mut self, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.last) as f64 / 1000.0;
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The bulk sync of every document with a replica peer, a window at a time.
#[derive(Debug, Default)]
pub(crate) struct BulkSync {
    pub queue: VecDeque<DocumentId>,
    /// Documents offered and not yet settled, with the time they were offered.
    pub in_flight: BTreeMap<DocumentId, Millis>,
    pub done: usize,
    pub total: usize,
}

#[derive(Debug)]
pub(crate) struct Connection<Principal> {
    pub direction: Direction,
    pub principal: Principal,
    pub phase: Phase,
    pub docs: BTreeMap<DocumentId, Channel>,
    pub rate: RateLimiter,
    pub bulk: BulkSync,
    /// What this connection may make us spend (the policy's limits for its principal,
    /// within the engine's own).
    pub limits: PeerLimits,
    /// Documents it asked for that we had nothing of, still empty: at most
    /// `limits.max_unknown_documents`.
    pub unknown: BTreeSet<DocumentId>,
}

impl<P> Connection<P> {
    pub fn new(
        direction: Direction,
        principal: P,
        phase: Phase,
        limits: PeerLimits,
        now: Millis,
    ) -> Self {
        Self {
            direction,
            principal,
            phase,
            docs: BTreeMap::new(),
            rate: RateLimiter::new(limits.messages_per_second, limits.message_burst, now),
            bulk: BulkSync::default(),
            limits,
            unknown: BTreeSet::new(),
        }
    }

    /// The storage id under which sync states with this peer are kept, if they are.
    pub fn kept_storage_id(&self) -> Option<&crate::protocol::StorageId> {
        if !self.limits.keep_sync_states {
            return None;
        }
        self.ready().and_then(ReadyPeer::durable_storage_id)
    }

    pub fn ready(&self) -> Option<&ReadyPeer> {
        match &self.phase {
            Phase::Ready(peer) => Some(peer),
            _ => None,
        }
    }

    pub fn is_replica(&self) -> bool {
        self.ready().is_some_and(|p| p.role == PeerRole::Replica)
    }

    pub fn handshake_deadline(&self) -> Option<Millis> {
        match self.phase {
            Phase::AwaitingJoin { deadline } | Phase::AwaitingPeer { deadline } => Some(deadline),
            Phase::Ready(_) => None,
        }
    }
}
