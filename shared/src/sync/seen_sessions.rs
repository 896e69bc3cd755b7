//! The ephemeral (presence) sessions heard from, to drop repeats: the highest `count` seen
//! per (sender, session), bounded in number, the least recently heard forgotten first.
//! Every operation is logarithmic, so a flood of new sessions costs each message the same.

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::PeerId;

use super::Millis;

/// At most this many (sender, session) pairs are remembered; past it the least recently
/// heard goes (a forgotten pair costs at most one duplicate message, never memory).
pub(super) const MAX_SESSIONS: usize = 4_096;

type Key = (PeerId, String);

#[derive(Debug, Default)]
pub(super) struct SeenSessions {
    /// Highest count seen, and when, by (sender, session).
    by_key: BTreeMap<Key, (u64, Millis)>,
    /// The same pairs by when they were last heard.
    by_age: BTreeSet<(Millis, Key)>,
}

impl SeenSessions {
    /// Records a message; false if it repeats (or precedes) one already seen.
    pub fn take(&mut self, sender: &PeerId, session: &str, count: u64, now: Millis) -> bool {
        let key = (sender.clone(), session.to_owned());
        match self.by_key.get(&key) {
            Some((seen, _)) if count <= *seen => return false,
            Some((_, at)) => {
                self.by_age.remove(&(*at, key.clone()));
            }
            None => {
                if self.by_key.len() >= MAX_SESSIONS {
                    if let Some((_, oldest)) = self.by_age.pop_first() {
                        self.by_key.remove(&oldest);
                    }
                }
            }
        }
        self.by_age.insert((now, key.clone()));
        self.by_key.insert(key, (count, now));
        true
    }

    /// Forgets the pairs last heard before `cutoff`.
    pub fn forget_before(&mut self, cutoff: Millis) {
        while let Some((at, _)) = self.by_age.first() {
            if *at >= cutoff {
                break;
            }
            if let Some((_, key)) = self.by_age.pop_first() {
                self.by_key.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_dropped_and_the_least_recently_heard_is_forgotten_first() {
        let mut seen = SeenSessions::default();
        let a = PeerId::new("a");
        assert!(seen.take(&a, "s", 1, 10));
        assert!(!seen.take(&a, "s", 1, 11));
        assert!(seen.take(&a, "s", 2, 12));
        for n in 0..MAX_SESSIONS {
            assert!(seen.take(&PeerId::new("b"), &n.to_string(), 1, 20 + n as u64));
        }
        assert_eq!(seen.len(), MAX_SESSIONS);
        // a's session was heard least recently: gone, so its next message counts again.
        assert!(seen.take(&a, "s", 2, 100_000));
        seen.forget_before(30);
        assert_eq!(seen.len(), MAX_SESSIONS - 9, "b1 to b9 (b0 went for a)");
    }
}
