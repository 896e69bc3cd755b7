//! Taking in a peer's sync message without walking the whole history.
//!
//! automerge's `receive_sync_message` ends by trimming the state's `sent_hashes` (changes we
//! sent that the peer may not have yet) to those that are not ancestors of the heads the
//! peer just announced. It does that by visiting every ancestor of those heads, even when
//! `sent_hashes` is empty, so every message — a one-line acknowledgement included — costs a
//! walk of the document's entire history. On a busy document that walk was half of the
//! node's time (perf, 10 writers on one document).
//!
//! [`receive_sync_message`] keeps exactly the same bookkeeping (a differential test below
//! compares the resulting documents and states with automerge's on random histories) and
//! does the trimming with a walk that stops as soon as nothing is left to trim, and never
//! descends below the lowest `max_op` still in the set: an ancestor's `max_op` is lower
//! than its descendant's (an operation's counter is greater than every counter it depends
//! on), or equal below an empty change, so past that point there is nothing to find.

use std::collections::{BTreeSet, HashSet};

use automerge::sync::{Capability, Have, Message, MessageFlags, State};
use automerge::{Automerge, AutomergeError, ChangeHash, ReadDoc};

/// Apply `message` from a peer to `doc` and update that peer's sync `state`: the same
/// result as automerge's `SyncDoc::receive_sync_message`.
pub fn receive_sync_message(
    doc: &mut Automerge,
    state: &mut State,
    message: Message,
) -> Result<(), AutomergeError> {
    let before_heads = doc.get_heads();
    let mut changes = Vec::new();
    if take_flags_and_changes(state, &message, &mut changes) {
        doc.load_incremental(&changes)?;
        state.shared_heads = advance_heads(&before_heads, &doc.get_heads(), &state.shared_heads);
    }
    let had_changes = !message.changes.is_empty();
    let Message {
        heads, need, have, ..
    } = message;
    settle_state(doc, state, &before_heads, had_changes, heads, need, have);
    Ok(())
}

/// Apply the messages of several peers, each with changes for the same document, in one
/// `load_incremental` (automerge walks the changed objects' operations, history included,
/// once per call: on a busy document that walk is most of the apply). Each peer's `state`
/// ends as [`receive_sync_message`] would leave it, except that its shared heads gain only
/// what the peer itself announced (the changes of the others are not the peer's to share),
/// so a peer never counts as holding a change it was not sent.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn receive_together<'a>(
    doc: &mut Automerge,
    batch: impl IntoIterator<Item = (&'a mut State, &'a Message)>,
) -> Result<(), AutomergeError> {
    let before_heads = doc.get_heads();
    let mut changes = Vec::new();
    let batch: Vec<(&mut State, &Message, bool)> = batch
        .into_iter()
        .map(|(state, message)| {
            let takes = take_flags_and_changes(state, message, &mut changes);
            (state, message, takes)
        })
        .collect();
    doc.load_incremental(&changes)?;
    let after_heads = doc.get_heads();
    for (state, message, took_changes) in batch {
        if took_changes {
            state.shared_heads.retain(|head| after_heads.contains(head));
        }
        settle_state(
            doc,
            state,
            &before_heads,
            !message.changes.is_empty(),
            message.heads.clone(),
            message.need.clone(),
            message.have.clone(),
        );
    }
    Ok(())
}

/// The first half of taking in a message: what its flags say about the peer, and its
/// changes appended to `changes`, unless we do not take changes from this peer. True when
/// it had changes we take.
fn take_flags_and_changes(state: &mut State, message: &Message, changes: &mut Vec<u8>) -> bool {
    state.in_flight = false;
    if let Some(flags) = message.flags {
        // Only peers that understand version 2 messages send flags.
        let mut capabilities = vec![Capability::MessageV2];
        if flags.contains(MessageFlags::SUPPORTS_SYNC_RESET) {
            capabilities.push(Capability::SyncReset);
        }
        state.their_capabilities = Some(capabilities);
        if flags.contains(MessageFlags::SYNC_RESET) {
            state.sent_hashes.clear();
        }
        state.peer_read_only = flags.contains(MessageFlags::READ_ONLY);
    }
    if message.changes.is_empty() || state.read_only {
        return false;
    }
    for chunk in message.changes.iter() {
        changes.extend_from_slice(chunk);
    }
    true
}

/// The second half, once the changes are in `doc`: what we know the peer holds, and what
/// it said it has, needs and is at.
fn settle_state(
    doc: &Automerge,
    state: &mut State,
    before_heads: &[ChangeHash],
    had_changes: bool,
    heads: Vec<ChangeHash>,
    need: Vec<ChangeHash>,
    have: Vec<Have>,
) {
    trim_sent_hashes(doc, &heads, &mut state.sent_hashes);

    if !had_changes && heads == before_heads {
        state.last_sent_heads.clone_from(&heads);
    }

    let known: Vec<ChangeHash> = heads
        .iter()
        .filter(|hash| has_change(doc, hash))
        .copied()
        .collect();
    if known.len() == heads.len() {
        state.shared_heads.clone_from(&heads);
        // A peer that lost everything: start over with it.
        if heads.is_empty() {
            state.last_sent_heads = Vec::new();
            state.sent_hashes = BTreeSet::new();
        }
    } else {
        let shared: BTreeSet<ChangeHash> =
            state.shared_heads.iter().copied().chain(known).collect();
        state.shared_heads = shared.into_iter().collect();
    }

    state.their_have = Some(have);
    state.their_heads = Some(heads);
    state.their_need = Some(need);
}

/// True when automerge's `generate_sync_message` would return nothing for this peer (and
/// leave its state as it is), decided without building a bloom filter. We already told the
/// peer our current heads, and either our last message is still unanswered, or the peer
/// answered with exactly our heads, asked for nothing, and its summary covers what we have
/// since its last sync. That is every peer that acknowledged a change, so a change relayed
/// to 99 readers is followed by 99 acknowledgements that each cost a comparison and a
/// short walk. Anything else returns false and is left to automerge.
pub(super) fn nothing_to_send(doc: &Automerge, state: &State) -> bool {
    let heads = doc.get_heads();
    if heads.is_empty() || !state.have_responded || state.last_sent_heads != heads {
        return false;
    }
    // Checked first by automerge: a summary after a sync we do not know gets a reset.
    let first_have = state.their_have.as_ref().and_then(|haves| haves.first());
    if let Some(have) = first_have {
        if !have.last_sync.iter().all(|hash| has_change(doc, hash)) {
            return false;
        }
    }
    if state.in_flight {
        return true;
    }
    if state.their_heads.as_ref() != Some(&heads)
        || !state.their_need.as_ref().is_none_or(|need| need.is_empty())
    {
        return false;
    }
    match state.their_have.as_deref() {
        None | Some([]) => true,
        Some([have]) => summary_covers(doc, &heads, have),
        Some(_) => false,
    }
}

/// Changes a summary may leave to check before we let automerge decide.
const SUMMARY_WALK_LIMIT: usize = 64;

/// Whether every change we have that is not behind `have.last_sync` is in its bloom
/// filter (then automerge would find nothing to send). Walks back from our heads, stopping
/// at changes the last sync includes on its own actors' chains; gives up (false) past
/// [`SUMMARY_WALK_LIMIT`] changes. Changes it cannot place only make it say false.
fn summary_covers(doc: &Automerge, heads: &[ChangeHash], have: &Have) -> bool {
    // The peer synced at exactly what we have (each of our heads is in its last sync, which
    // we hold): everything we have is behind it. What an acknowledgement usually says, and
    // answered without reading any change's metadata.
    if heads.iter().all(|head| have.last_sync.contains(head))
        && have.last_sync.iter().all(|hash| has_change(doc, hash))
    {
        return true;
    }
    let mut synced = Vec::with_capacity(have.last_sync.len());
    for hash in &have.last_sync {
        let Some(change) = doc.get_change_meta_by_hash(hash) else {
            return false;
        };
        synced.push((change.actor.into_owned(), change.seq));
    }
    let mut to_visit = heads.to_vec();
    let mut visited = HashSet::new();
    while let Some(hash) = to_visit.pop() {
        if !visited.insert(hash) {
            continue;
        }
        if visited.len() > SUMMARY_WALK_LIMIT {
            return false;
        }
        let Some(change) = doc.get_change_meta_by_hash(&hash) else {
            return false;
        };
        // At or behind the last sync on the same actor's chain: the peer had it then.
        let behind_sync = synced
            .iter()
            .any(|(actor, seq)| *actor == *change.actor && change.seq <= *seq);
        if behind_sync {
            continue;
        }
        if !have.bloom.contains_hash(&hash) {
            return false;
        }
        to_visit.extend(change.deps);
    }
    true
}

/// Whether the document holds the change. `get_missing_deps` is a hash lookup, where
/// `get_change_meta_by_hash` builds the change's whole metadata (a fifth of the node's time
/// taking in 99 acknowledgements). It also lists what queued changes lack, so when the
/// answer is not clear from it (something is queued) the metadata decides.
fn has_change(doc: &Automerge, hash: &ChangeHash) -> bool {
    let missing = doc.get_missing_deps(std::slice::from_ref(hash));
    if missing.is_empty() {
        return true;
    }
    if missing.contains(hash) {
        return false;
    }
    doc.get_change_meta_by_hash(hash).is_some()
}

/// The heads we share after applying changes: our new heads plus the old shared heads that
/// are still heads, sorted.
fn advance_heads(
    old_heads: &[ChangeHash],
    new_heads: &[ChangeHash],
    old_shared: &[ChangeHash],
) -> Vec<ChangeHash> {
    let added = new_heads.iter().filter(|head| !old_heads.contains(head));
    let still_heads = old_shared.iter().filter(|head| new_heads.contains(head));
    let advanced: BTreeSet<ChangeHash> = added.chain(still_heads).copied().collect();
    advanced.into_iter().collect()
}

/// Remove from `sent` every change that `heads` (those we know) include.
fn trim_sent_hashes(doc: &Automerge, heads: &[ChangeHash], sent: &mut BTreeSet<ChangeHash>) {
    // The heads are where the walk starts: a sent change among them goes first, found by
    // lookup. An acknowledgement of what we just sent leaves nothing else to trim, and
    // costs no walk and no metadata (building a change's metadata was half of the node's
    // time taking in the 99 acknowledgements that follow a relayed change).
    for head in heads {
        if sent.contains(head) && has_change(doc, head) {
            sent.remove(head);
        }
    }
    // A sent change we do not hold (cannot happen; we sent it) is never any head's ancestor.
    let Some(floor) = sent
        .iter()
        .filter_map(|hash| doc.get_change_meta_by_hash(hash))
        .map(|change| change.max_op)
        .min()
    else {
        return;
    };
    let mut to_visit: Vec<ChangeHash> = heads.to_vec();
    let mut visited = HashSet::new();
    while let Some(hash) = to_visit.pop() {
        if sent.is_empty() {
            return;
        }
        if !visited.insert(hash) {
            continue;
        }
        let Some(change) = doc.get_change_meta_by_hash(&hash) else {
            continue;
        };
        sent.remove(&hash);
        // A change's ancestors have lower max_ops (or equal, below an empty change), so
        // below the floor there is no sent change left to find.
        if change.max_op >= floor {
            to_visit.extend(change.deps);
        }
    }
}

#[cfg(test)]
mod tests;
