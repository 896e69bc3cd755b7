//! One peer × one document: what we know of this peer for this document, and the sync
//! state between us.
//!
//! Every rule about "what we know of peer X for document D" lives here: whether it has the
//! document, whether we asked it, whether we refused its change, and its automerge sync
//! state, live or parked while the document is out of memory. The engine decides when;
//! a [`Channel`] keeps the state consistent.

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};

use crate::DocumentId;

use super::memo::SyncMemo;
use super::receive::nothing_to_send;

/// Where this peer stands with one document, from our point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum PeerHas {
    /// Nothing known yet.
    #[default]
    Unknown,
    /// It sent heads: it has the document.
    Has,
    /// It asked us for the document (a `request`, or a sync with no heads).
    Wants,
    /// It told us it does not have the document (`doc-unavailable`), or we told it.
    Unavailable,
}

/// Sync state with a peer for one document. Kept encoded ("parked") while the document is
/// evicted from memory, which keeps only the shared heads: enough for a cheap resync.
#[derive(Debug)]
enum SyncSlot {
    Live(Box<sync::State>),
    Parked(Vec<u8>),
}

/// A sync message generated for the peer.
pub(crate) struct Generated {
    /// The encoded message.
    pub data: Vec<u8>,
    /// It carries changes the peer was not sent before (pacing waits for its answer).
    pub carries_changes: bool,
}

#[derive(Debug)]
pub(crate) struct Channel {
    sync: SyncSlot,
    has: PeerHas,
    /// We sent this peer a `request` and wait for its answer.
    asked: bool,
    /// We refused a change of this peer's to this document. Its replica has diverged on a
    /// branch we will not take, so until it reconnects we neither read its sync messages
    /// for the document nor send it ours: each would carry the refused change again, and the
    /// two sides would answer each other for ever.
    refused: bool,
}

impl Channel {
    /// A channel whose sync state starts from `saved` (an encoded state saved for this
    /// peer's storage id; empty for none). It is parked until [`Self::make_live`].
    pub fn new(saved: Vec<u8>) -> Self {
        Self {
            sync: SyncSlot::Parked(saved),
            has: PeerHas::Unknown,
            asked: false,
            refused: false,
        }
    }

    /// Decodes a parked sync state (a fresh one if it is empty or unreadable).
    pub fn make_live(&mut self, id: DocumentId) {
        if let SyncSlot::Parked(bytes) = &self.sync {
            let state = if bytes.is_empty() {
                sync::State::new()
            } else {
                sync::State::decode(bytes).unwrap_or_else(|e| {
                    tracing::warn!(document = %id, error = %e, "saved sync state unreadable; starting afresh");
                    sync::State::new()
                })
            };
            self.sync = SyncSlot::Live(Box::new(state));
        }
    }

    /// The document leaves memory: the sync state is kept encoded.
    pub fn park(&mut self) {
        if let SyncSlot::Live(state) = &self.sync {
            self.sync = SyncSlot::Parked(state.encode());
        }
    }

    pub fn has(&self) -> PeerHas {
        self.has
    }

    /// True while we wait for the peer's answer to our `request`.
    pub fn asked(&self) -> bool {
        self.asked
    }

    /// True when we asked the peer and it may still answer with the document.
    pub fn awaiting_answer(&self) -> bool {
        self.asked && matches!(self.has, PeerHas::Unknown | PeerHas::Has)
    }

    pub fn is_refused(&self) -> bool {
        self.refused
    }

    /// The live sync state (`None` while parked).
    pub fn live_state(&self) -> Option<&sync::State> {
        match &self.sync {
            SyncSlot::Live(state) => Some(state),
            SyncSlot::Parked(_) => None,
        }
    }

    /// The live sync state, to update as a message is received (`None` while parked).
    pub fn live_state_mut(&mut self) -> Option<&mut sync::State> {
        match &mut self.sync {
            SyncSlot::Live(state) => Some(state),
            SyncSlot::Parked(_) => None,
        }
    }

    /// True when the peer told us it holds exactly `heads`.
    pub fn in_sync_at(&self, heads: &[ChangeHash]) -> bool {
        self.live_state()
            .is_some_and(|state| state.their_heads.as_deref() == Some(heads))
    }

    /// The peer sent a sync message for the document (`asks`: a `request`, or no heads).
    /// False when it is not read: a refused peer, or a state not live.
    pub fn heard_sync(&mut self, asks: bool) -> bool {
        if self.refused || self.live_state().is_none() {
            return false;
        }
        self.asked = false;
        if asks {
            if self.has != PeerHas::Has {
                self.has = PeerHas::Wants;
            }
        } else {
            self.has = PeerHas::Has;
        }
        true
    }

    /// The peer does not have the document: it said so, we told it so, or it did not
    /// answer our request.
    pub fn unavailable(&mut self) {
        self.has = PeerHas::Unavailable;
        self.asked = false;
    }

    /// Our request went unanswered too long: it counts as "does not have it".
    pub fn request_expired(&mut self) {
        if self.asked {
            self.unavailable();
        }
    }

    /// We told the peer it may not have the document.
    pub fn told_unavailable(&mut self) {
        self.has = PeerHas::Unavailable;
    }

    /// We refused a change of the peer's (see [`Channel::refused`]).
    pub fn refuse(&mut self) {
        self.refused = true;
    }

    /// Whether a fresh peer's request on this channel may be answered from storage:
    /// nothing refused, and nothing answered yet.
    pub fn may_answer_fresh(&self) -> bool {
        !self.refused && !self.live_state().is_some_and(|state| state.have_responded)
    }

    /// We answered a fresh peer from storage, leaving it in `state`.
    pub fn answered_fresh(&mut self, state: sync::State) {
        self.sync = SyncSlot::Live(Box::new(state));
        self.asked = false;
        if self.has != PeerHas::Has {
            self.has = PeerHas::Wants;
        }
    }

    /// The peer acknowledged our answer from storage at `heads`: in sync there, the state
    /// is parked as eviction would park it (only the shared heads are kept; a later change
    /// resyncs from them).
    pub fn acknowledged_at(&mut self, heads: Vec<ChangeHash>) {
        let mut parked = sync::State::new();
        parked.shared_heads = heads;
        self.sync = SyncSlot::Parked(parked.encode());
        self.has = PeerHas::Has;
        self.asked = false;
    }

    /// A `request` for the document, from a fresh sync state (the request must carry a
    /// full first message even if an earlier exchange left one in flight). `None` when
    /// the state is parked or there is nothing to say.
    pub fn request(&mut self, doc: &Automerge) -> Option<Vec<u8>> {
        let state = self.live_state_mut()?;
        *state = sync::State::new();
        let message = doc.generate_sync_message(state)?;
        self.asked = true;
        if self.has == PeerHas::Unavailable {
            self.has = PeerHas::Unknown;
        }
        Some(message.encode())
    }

    /// Whether a sync message to the peer would say anything: a live state, not refused,
    /// and something the peer lacks or must hear.
    pub fn has_something_to_send(&self, doc: &Automerge) -> bool {
        !self.refused && self.live_state().is_some_and(|s| !nothing_to_send(doc, s))
    }

    /// Generates the next sync message for the peer (`memo` shares it with peers in the
    /// same state).
    pub fn generate(
        &mut self,
        id: DocumentId,
        doc: &Automerge,
        memo: Option<&mut SyncMemo>,
    ) -> Option<Generated> {
        let state = self.live_state_mut()?;
        let sent_before = state.sent_hashes.len();
        let data = match memo {
            Some(memo) => memo.generate(id, doc, state),
            None => doc.generate_sync_message(state).map(|m| m.encode()),
        };
        let carries_changes = state.sent_hashes.len() > sent_before;
        data.map(|data| Generated {
            data,
            carries_changes,
        })
    }

    /// The sync state worth saving for the peer's next visit (one that shares heads).
    pub fn into_saved_state(self) -> Option<Vec<u8>> {
        match self.sync {
            SyncSlot::Live(state) if !state.shared_heads.is_empty() => Some(state.encode()),
            SyncSlot::Parked(bytes) if !bytes.is_empty() => Some(bytes),
            _ => None,
        }
    }
}
