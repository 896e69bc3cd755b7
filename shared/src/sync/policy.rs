//! Who may see and change what: the host's rules, consulted by the engine.
//!
//! The engine knows nothing about users, roles or partner organizations. The host attaches a
//! `Principal` (whoever authenticated the connection) and the engine asks the policy at every
//! decision point. Policies are pure: no I/O, so the engine stays deterministic.

use automerge::Automerge;

use crate::protocol::{PeerId, PeerMetadata};
use crate::DocumentId;

use super::{Direction, Refusal};

/// What one connection may make the engine spend, by who is on the other end. Anonymous
/// visitors get much less than members and partners (the host's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    /// Largest frame accepted from this peer.
    pub max_frame_bytes: usize,
    /// Sustained messages per second, and the burst above it.
    pub messages_per_second: u32,
    pub message_burst: u32,
    /// Documents storage does not hold that the peer may be waiting for at once (asked
    /// for, or told it cannot have): past it, more such requests are answered
    /// `doc-unavailable` at once, and nothing is kept for them.
    pub max_unknown_documents: usize,
    /// Ask replica peers for documents this peer requests and we lack (an anonymous
    /// request would otherwise make every partner look for a made-up id).
    pub forward_requests: bool,
    /// Keep sync states under the storage id the peer announces, for its next visit. A
    /// peer whose storage id we cannot trust (anyone can make one up) gets none: each made
    /// up id would be rows in storage for ever.
    pub keep_sync_states: bool,
}

impl Default for PeerLimits {
    /// Generous limits, for trusted peers (tests, the app's own node).
    fn default() -> Self {
        Self {
            max_frame_bytes: crate::protocol::Limits::default().max_frame_bytes,
            messages_per_second: 20_000,
            message_burst: 40_000,
            max_unknown_documents: 4_096,
            forward_requests: true,
            keep_sync_states: true,
        }
    }
}

/// How we treat a peer once admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// A full replica (a partner node, or the node an app syncs with): we offer it every
    /// document it may read, forward requests for missing documents to it, and track bulk
    /// sync progress with it.
    Replica,
    /// A client (a browser, a script): it gets what it asks for and what it has sent us.
    Client,
}

pub trait Policy {
    /// Whoever the host authenticated the connection as.
    type Principal: Clone + std::fmt::Debug;

    /// Called at the handshake. `Err` refuses the peer with that reason.
    fn admit(
        &self,
        principal: &Self::Principal,
        direction: Direction,
        peer_id: &PeerId,
        metadata: &PeerMetadata,
    ) -> Result<PeerRole, String>;

    /// What a connection from this principal may make us spend.
    fn limits(&self, _principal: &Self::Principal) -> PeerLimits {
        PeerLimits::default()
    }

    /// Two connections claim the same peer id: does `new` take it from `old`? (A partner
    /// that proved its key wins over an anonymous socket that joined with its peer id.)
    /// When false the newcomer is refused. A reconnect from the same principal always
    /// replaces the old connection.
    fn outranks(&self, _new: &Self::Principal, _old: &Self::Principal) -> bool {
        false
    }

    /// May this principal send changes at all? Asked before anything of a sync message's
    /// changes is read. `Err` names the reason, sent back to the peer.
    fn may_write(&self, _principal: &Self::Principal) -> Result<(), Refusal> {
        Ok(())
    }

    /// May this principal send changes to this document, as storage holds it (`current`
    /// is empty when we have none)? Asked before the changes are decoded, so a document's
    /// owner is read from what we store, never from what the sender claims.
    fn may_change(
        &self,
        _principal: &Self::Principal,
        _document: &DocumentId,
        _current: &Automerge,
    ) -> Result<(), Refusal> {
        Ok(())
    }

    /// May this principal receive the document (as it is now)?
    fn may_read(&self, principal: &Self::Principal, document: &DocumentId, doc: &Automerge)
        -> bool;

    /// May this principal receive the document whatever it holds? When true, a peer with
    /// nothing of a stored document is answered from what storage holds without loading
    /// it, so [`Policy::may_read`] is not asked. Say true only where it would say true for
    /// any content.
    fn may_read_any(&self, _principal: &Self::Principal, _document: &DocumentId) -> bool {
        false
    }

    /// Must changes from this principal to this document be checked with
    /// [`Policy::check_write`]? Checking costs a copy of the document per incoming change, so
    /// a policy that trusts everyone says no.
    fn needs_write_check(&self, principal: &Self::Principal, document: &DocumentId) -> bool;

    /// May this principal turn `before` into `after`? `Err` names the reason, which is sent
    /// back to the peer.
    fn check_write(
        &self,
        principal: &Self::Principal,
        document: &DocumentId,
        before: &Automerge,
        after: &Automerge,
    ) -> Result<(), Refusal>;

    /// May changes from this principal to the document, as it is now (`current`), be
    /// applied in place and then checked with [`Policy::check_in_place`] instead of on a
    /// scratch copy? Say yes only where that check decides exactly as
    /// [`Policy::check_write`] would: a refused change is then undone by rebuilding the
    /// document at its previous heads, which costs the copy only when it happens. This is
    /// what keeps a large, often-changed document from costing a copy per change.
    fn may_check_in_place(
        &self,
        _principal: &Self::Principal,
        _document: &DocumentId,
        _current: &Automerge,
    ) -> bool {
        false
    }

    /// The check for changes applied in place (see [`Policy::may_check_in_place`]):
    /// `after` is the document with them, `before` its heads without them.
    fn check_in_place(
        &self,
        _principal: &Self::Principal,
        _document: &DocumentId,
        _before: &[automerge::ChangeHash],
        _after: &Automerge,
    ) -> Result<(), Refusal> {
        Ok(())
    }
}

/// Everyone may read and write everything. Peers we dialed are replicas; peers that dialed us
/// are clients. Used by the app (whose only peer is its node) and by tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenPolicy;

impl Policy for OpenPolicy {
    type Principal = ();

    fn admit(
        &self,
        _: &(),
        direction: Direction,
        _: &PeerId,
        _: &PeerMetadata,
    ) -> Result<PeerRole, String> {
        Ok(match direction {
            Direction::Outgoing => PeerRole::Replica,
            Direction::Incoming => PeerRole::Client,
        })
    }

    fn may_read(&self, _: &(), _: &DocumentId, _: &Automerge) -> bool {
        true
    }

    fn may_read_any(&self, _: &(), _: &DocumentId) -> bool {
        true
    }

    fn needs_write_check(&self, _: &(), _: &DocumentId) -> bool {
        false
    }

    fn check_write(
        &self,
        _: &(),
        _: &DocumentId,
        _: &Automerge,
        _: &Automerge,
    ) -> Result<(), Refusal> {
        Ok(())
    }
}
