//! One connection to a peer: where its handshake is, who is on the other end, how far each
//! shared document is in sync with it, and how fast it is allowed to talk.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::protocol::{PeerId, PeerMetadata, StorageId};
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
    peer_id: PeerId,
    metadata: PeerMetadata,
    role: PeerRole,
}

impl ReadyPeer {
    pub fn new(peer_id: PeerId, metadata: PeerMetadata, role: PeerRole) -> Self {
        Self {
            peer_id,
            metadata,
            role,
        }
    }

    pub fn peer_id(&self) -> &PeerId {
        &self.peer_id
    }

    /// The storage id under which sync states with this peer are worth keeping.
    pub fn durable_storage_id(&self) -> Option<&StorageId> {
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
    queue: VecDeque<DocumentId>,
    /// Documents offered and not yet settled, with the time they were offered.
    in_flight: BTreeMap<DocumentId, Millis>,
    done: usize,
    total: usize,
}

impl BulkSync {
    /// Starts over with these documents to offer; returns how many there are.
    pub fn start(&mut self, documents: impl IntoIterator<Item = DocumentId>) -> usize {
        self.queue = documents.into_iter().collect();
        self.total = self.queue.len();
        self.done = 0;
        self.total
    }

    /// The next document to offer, now in flight; `None` when the window is full or
    /// nothing is left.
    pub fn next_to_offer(&mut self, window: usize, now: Millis) -> Option<DocumentId> {
        if self.in_flight.len() >= window {
            return None;
        }
        let id = self.queue.pop_front()?;
        self.in_flight.insert(id, now);
        Some(id)
    }

    pub fn is_in_flight(&self, id: &DocumentId) -> bool {
        self.in_flight.contains_key(id)
    }

    /// Counts an in-flight document as done: `(done, total)`, or `None` if it was not in
    /// flight.
    pub fn settle(&mut self, id: &DocumentId) -> Option<(usize, usize)> {
        self.in_flight.remove(id)?;
        self.done += 1;
        Some((self.done, self.total))
    }

    /// Drops a document from the window without counting it (it was erased).
    pub fn forget(&mut self, id: &DocumentId) {
        self.in_flight.remove(id);
    }

    /// Documents in flight, with when each was offered.
    pub fn in_flight(&self) -> impl Iterator<Item = (DocumentId, Millis)> + '_ {
        self.in_flight.iter().map(|(id, since)| (*id, *since))
    }
}

#[derive(Debug)]
pub(crate) struct Connection<Principal> {
    direction: Direction,
    principal: Principal,
    phase: Phase,
    /// What we know of the peer for each document it shares with us.
    channels: BTreeMap<DocumentId, Channel>,
    rate: RateLimiter,
    bulk: BulkSync,
    /// What this connection may make us spend (the policy's limits for its principal,
    /// within the engine's own).
    limits: PeerLimits,
    /// Documents it asked for that we had nothing of, still empty: at most
    /// `limits.max_unknown_documents`.
    unknown: BTreeSet<DocumentId>,
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
            channels: BTreeMap::new(),
            rate: RateLimiter::new(limits.messages_per_second, limits.message_burst, now),
            bulk: BulkSync::default(),
            limits,
            unknown: BTreeSet::new(),
        }
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn principal(&self) -> &P {
        &self.principal
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn limits(&self) -> &PeerLimits {
        &self.limits
    }

    /// The handshake is done.
    pub fn set_ready(&mut self, peer: ReadyPeer) {
        self.phase = Phase::Ready(peer);
    }

    /// Takes one message from the rate budget; false when the connection is over its rate.
    pub fn allow_message(&mut self, now: Millis) -> bool {
        self.rate.allow(now)
    }

    pub fn bulk(&self) -> &BulkSync {
        &self.bulk
    }

    pub fn bulk_mut(&mut self) -> &mut BulkSync {
        &mut self.bulk
    }

    pub fn channel(&self, id: &DocumentId) -> Option<&Channel> {
        self.channels.get(id)
    }

    pub fn channel_mut(&mut self, id: &DocumentId) -> Option<&mut Channel> {
        self.channels.get_mut(id)
    }

    /// Who is on the other end, and the document's channel to update as it is judged.
    pub fn principal_and_channel_mut(&mut self, id: &DocumentId) -> Option<(&P, &mut Channel)> {
        let channel = self.channels.get_mut(id)?;
        Some((&self.principal, channel))
    }

    /// The channel for the document, made if there is none: its sync state starts from
    /// the one saved for this peer's storage id among `saved_states` (the document's, when
    /// it is in memory), if such states are kept for this peer.
    pub fn open_channel(
        &mut self,
        id: DocumentId,
        saved_states: Option<&BTreeMap<StorageId, Vec<u8>>>,
    ) -> &mut Channel {
        let saved = self
            .kept_storage_id()
            .and_then(|s| saved_states.and_then(|states| states.get(s)));
        self.channels
            .entry(id)
            .or_insert_with(|| Channel::new(saved.cloned().unwrap_or_default()))
    }

    /// Every channel, the connection being gone.
    pub fn into_channels(self) -> impl Iterator<Item = (DocumentId, Channel)> {
        self.channels.into_iter()
    }

    /// Forgets everything about the document (it was erased).
    pub fn forget_document(&mut self, id: &DocumentId) {
        self.channels.remove(id);
        self.unknown.remove(id);
        self.bulk.forget(id);
    }

    /// Notes that the peer waits for a document we have nothing of. False when it already
    /// waits for as many as its limits allow.
    pub fn note_unknown(&mut self, id: DocumentId) -> bool {
        if self.unknown.contains(&id) {
            return true;
        }
        if self.unknown.len() < self.limits.max_unknown_documents {
            self.unknown.insert(id);
            return true;
        }
        false
    }

    /// The document has content now: it no longer counts against the unknown limit.
    pub fn known_now(&mut self, id: &DocumentId) {
        self.unknown.remove(id);
    }

    /// The storage id under which sync states with this peer are kept, if they are.
    pub fn kept_storage_id(&self) -> Option<&StorageId> {
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
