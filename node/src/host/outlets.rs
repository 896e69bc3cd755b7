//! Where each connection's frames go: its outbound queue, and how many storage jobs still
//! hold frames for it.
//!
//! The engine task and the storage thread both send frames. A frame that must wait for a
//! commit travels with its storage job and is *held* until the job is durable; a frame that
//! need not wait goes out at once, unless an earlier frame to the same connection is still
//! held, in which case it waits behind it. So every connection gets its frames in the order
//! the engine produced them, whichever thread sends them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use ibis_shared::sync::ConnectionId;
use tokio::sync::mpsc;

use super::Outbound;

#[derive(Clone, Default)]
pub(super) struct Outlets(Arc<Mutex<HashMap<ConnectionId, Outlet>>>);

struct Outlet {
    tx: mpsc::Sender<Outbound>,
    /// Storage jobs not yet committed that carry frames for this connection.
    held: usize,
}

/// Frames that must wait for their storage job's commit, in order, and the connections
/// whose hold that job counts.
#[derive(Default)]
pub(super) struct Held {
    pub deliveries: Vec<(ConnectionId, Outbound)>,
    pub holding: HashSet<ConnectionId>,
}

/// What became of one job's deliveries so far.
#[derive(Default)]
pub(super) struct Dispatched {
    pub held: Held,
    /// Connections whose queue was full.
    pub too_slow: Vec<ConnectionId>,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }
}

impl Outlets {
    fn table(&self) -> MutexGuard<'_, HashMap<ConnectionId, Outlet>> {
        // A panic elsewhere while holding the lock leaves the table itself consistent
        // (every update is a single insert, remove or counter change).
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn open(&self, conn: ConnectionId, tx: mpsc::Sender<Outbound>) {
        self.table().insert(conn, Outlet { tx, held: 0 });
    }

    pub fn remove(&self, conn: ConnectionId) {
        self.table().remove(&conn);
    }

    pub fn connections(&self) -> Vec<ConnectionId> {
        self.table().keys().copied().collect()
    }

    /// Sends `out` now, ahead of anything held (for closing at shutdown or on failure).
    pub fn send_now(&self, conn: ConnectionId, out: Outbound) {
        if let Some(outlet) = self.table().get(&conn) {
            let _ = outlet.tx.try_send(out);
        }
    }

    /// Closes every connection now, ahead of anything held.
    pub fn close_all(&self, reason: &str) {
        for outlet in self.table().values() {
            let _ = outlet.tx.try_send(Outbound::Close(reason.to_owned()));
        }
    }

    /// One delivery of a job: sent now, unless its connection must wait for the job's
    /// commit (`must_wait`) or already has frames held, in which case it joins what the job
    /// holds (for the storage job to release). A connection whose queue was full is noted
    /// in `dispatched.too_slow`. The host calls this for each frame as soon as the engine
    /// has made it, so the first peers have theirs while the engine makes the rest.
    pub fn send_or_hold(
        &self,
        dispatched: &mut Dispatched,
        conn: ConnectionId,
        out: Outbound,
        must_wait: bool,
    ) {
        let mut table = self.table();
        let Some(outlet) = table.get_mut(&conn) else {
            return;
        };
        let held = &mut dispatched.held;
        if held.holding.contains(&conn) || outlet.held > 0 || must_wait {
            if held.holding.insert(conn) {
                outlet.held += 1;
            }
            held.deliveries.push((conn, out));
        } else if let Err(mpsc::error::TrySendError::Full(_)) = outlet.tx.try_send(out) {
            if !dispatched.too_slow.contains(&conn) {
                dispatched.too_slow.push(conn);
            }
        }
    }

    /// After the job's commit: sends its held frames, in order, and lifts its holds.
    /// Returns the connections whose queue was full.
    pub fn release(&self, held: Held) -> Vec<ConnectionId> {
        let mut too_slow = Vec::new();
        let mut table = self.table();
        for (conn, out) in held.deliveries {
            let Some(outlet) = table.get(&conn) else {
                continue;
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = outlet.tx.try_send(out) {
                if !too_slow.contains(&conn) {
                    too_slow.push(conn);
                }
            }
        }
        for conn in held.holding {
            if let Some(outlet) = table.get_mut(&conn) {
                outlet.held = outlet.held.saturating_sub(1);
            }
        }
        too_slow
    }
}
