//! One sync message for many peers: after a change, every peer that was up to date with a
//! document is in the same sync state, and automerge's `generate_sync_message` is a pure
//! function of the document and that state. So within one flush of owed messages, a
//! document's message is generated once per distinct peer state and the result (the
//! message, and the state it leaves behind) is reused for the others. With 99 readers on
//! one document that is one bloom filter and one walk of the change graph instead of 99.

use std::collections::HashMap;

use automerge::sync::{self, SyncDoc};
use automerge::Automerge;

use crate::DocumentId;

/// Distinct peer states remembered per document; peers beyond that are served one by one
/// (so comparing states never costs more than generating would).
const STATES_PER_DOCUMENT: usize = 4;

/// What one state generated: the state before, the state after, the encoded message.
type Generated = (sync::State, sync::State, Option<Vec<u8>>);

/// Messages generated during one flush. Valid only while no document changes.
#[derive(Default)]
pub(super) struct SyncMemo(HashMap<DocumentId, Vec<Generated>>);

impl SyncMemo {
    /// The encoded sync message for a peer in `state` (advancing `state` as
    /// `generate_sync_message` would), reusing one generated for a peer in the same state.
    pub(super) fn generate(
        &mut self,
        id: DocumentId,
        doc: &Automerge,
        state: &mut sync::State,
    ) -> Option<Vec<u8>> {
        let seen = self.0.entry(id).or_default();
        if let Some((_, after, data)) = seen.iter().find(|(before, _, _)| before == state) {
            state.clone_from(after);
            return data.clone();
        }
        if seen.len() >= STATES_PER_DOCUMENT {
            return doc.generate_sync_message(state).map(|m| m.encode());
        }
        let before = state.clone();
        let data = doc.generate_sync_message(state).map(|m| m.encode());
        seen.push((before, state.clone(), data.clone()));
        data
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::ROOT;

    use super::*;

    /// Two peers that received the same document, and a change after.
    fn setup() -> (Automerge, sync::State, sync::State) {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        let _ = tx.put(ROOT, "title", "Welcome desks");
        tx.commit();
        let mut states = [sync::State::new(), sync::State::new()];
        for state in &mut states {
            let mut peer = Automerge::new();
            let mut peer_state = sync::State::new();
            for _ in 0..4 {
                if let Some(m) = doc.generate_sync_message(state) {
                    peer.receive_sync_message(&mut peer_state, m).unwrap();
                }
                if let Some(m) = peer.generate_sync_message(&mut peer_state) {
                    doc.receive_sync_message(state, m).unwrap();
                }
            }
        }
        let mut tx = doc.transaction();
        let _ = tx.put(ROOT, "city", "Lisbon");
        tx.commit();
        let [a, b] = states;
        (doc, a, b)
    }

    #[test]
    fn peers_in_the_same_state_get_what_generating_for_each_would_give() {
        let (doc, a, b) = setup();
        assert_eq!(a, b, "both peers are up to date the same way");
        let (mut direct_a, mut direct_b) = (a.clone(), b.clone());
        let direct = [
            doc.generate_sync_message(&mut direct_a).map(|m| m.encode()),
            doc.generate_sync_message(&mut direct_b).map(|m| m.encode()),
        ];
        let id = DocumentId::random();
        let mut memo = SyncMemo::default();
        let (mut memo_a, mut memo_b) = (a, b);
        let memoized = [
            memo.generate(id, &doc, &mut memo_a),
            memo.generate(id, &doc, &mut memo_b),
        ];
        assert!(direct[0].is_some(), "the change is owed");
        assert_eq!(memoized, direct);
        assert_eq!((memo_a, memo_b), (direct_a, direct_b));
        assert_eq!(memo.0[&id].len(), 1, "generated once");
    }

    #[test]
    fn a_peer_in_another_state_gets_its_own_message() {
        let (doc, a, _) = setup();
        let id = DocumentId::random();
        let mut memo = SyncMemo::default();
        let mut up_to_date = a;
        let mut fresh = sync::State::new();
        let mut fresh_direct = sync::State::new();
        let first = memo.generate(id, &doc, &mut up_to_date);
        let second = memo.generate(id, &doc, &mut fresh);
        assert_ne!(first, second);
        assert_eq!(
            second,
            doc.generate_sync_message(&mut fresh_direct)
                .map(|m| m.encode())
        );
        assert_eq!(fresh, fresh_direct);
        assert_eq!(memo.0[&id].len(), 2);
    }
}
