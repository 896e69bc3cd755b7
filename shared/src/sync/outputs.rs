//! Taking the engine's outputs: what is queued, then the sync messages owed, generated one
//! peer at a time as the host takes them.
//!
//! A change to a document shared by many peers owes each of them a sync message. Were they
//! all generated before the host took the first, the first peer would wait for the last
//! one's message to be made (about 0.3 ms for 99 peers). Generated on demand, the host can
//! put each frame on the wire while the next is made. The order is the same either way:
//! what was queued before comes first, then the owed messages, one peer after another.

use std::collections::{HashMap, VecDeque};

use super::{Engine, Output, Policy, SyncMemo};
use crate::sync::ConnectionId;
use crate::DocumentId;

/// The engine's outputs, in order (see [`Engine::drain_outputs`]). Dropping it early keeps
/// what it had not generated yet: the next call takes that up.
pub struct Outputs<'a, P: Policy> {
    engine: &'a mut Engine<P>,
    /// This round's owed messages, taken from the engine and not generated yet.
    round: VecDeque<(ConnectionId, DocumentId)>,
    /// How many of `round` are for each document (a document owed to one peer only is not
    /// worth remembering in the memo).
    peers: HashMap<DocumentId, usize>,
    /// Messages already generated in this round; valid while no document changes, which no
    /// input can do while this borrows the engine.
    memo: SyncMemo,
    /// The memory budget was enforced after the last owed message.
    budget_enforced: bool,
}

impl<'a, P: Policy> Outputs<'a, P>
where
    P::Principal: PartialEq,
{
    pub(super) fn new(engine: &'a mut Engine<P>) -> Self {
        // Changes kept to be applied together go in before anything is sent.
        engine.apply_incoming();
        #[cfg(not(target_arch = "wasm32"))]
        {
            engine.deferring = false;
        }
        Self {
            engine,
            round: VecDeque::new(),
            peers: HashMap::new(),
            memo: SyncMemo::default(),
            budget_enforced: false,
        }
    }

    /// Generates every owed message now (they join the engine's queue).
    pub(super) fn generate_all(mut self) {
        while self.generate_next() {}
    }

    /// Does the next piece of owed work; false when none is left.
    fn generate_next(&mut self) -> bool {
        if let Some((conn, id)) = self.round.pop_front() {
            let shared = self.peers.get(&id).is_some_and(|&n| n > 1);
            self.engine
                .sync_one(conn, id, shared.then_some(&mut self.memo));
            return true;
        }
        // Generating can owe more (a peer's state reset): a new round, with a new memo.
        if !self.engine.owed.is_empty() {
            self.round = std::mem::take(&mut self.engine.owed).into_iter().collect();
            self.peers.clear();
            for (_, id) in &self.round {
                *self.peers.entry(*id).or_default() += 1;
            }
            self.memo = SyncMemo::default();
            return true;
        }
        if !self.budget_enforced {
            // Drops documents past the memory budget (a bulk sync loads them faster than
            // ticks come).
            self.budget_enforced = true;
            self.engine.enforce_document_budget_as_it_grows();
            return true;
        }
        false
    }
}

impl<P: Policy> Iterator for Outputs<'_, P>
where
    P::Principal: PartialEq,
{
    type Item = Output;

    fn next(&mut self) -> Option<Output> {
        loop {
            if let Some(output) = self.engine.outputs.pop_front() {
                return Some(output);
            }
            if !self.generate_next() {
                return None;
            }
        }
    }
}

impl<P: Policy> Drop for Outputs<'_, P> {
    fn drop(&mut self) {
        self.engine.owed.extend(self.round.drain(..));
    }
}
