//! What logging in may cost the node, and how failures are counted.
//!
//! A password check is an argon2id hash: about 19 MiB and tens of milliseconds of one
//! core. So at most [`MAX_CONCURRENT_HASHES`] run at once, at most [`MAX_WAITING_LOGINS`]
//! more wait for their turn, and any login past that is answered [`BUSY`] at once, without
//! hashing. A name that does not exist is hashed too (for equal timing), through the same
//! gate.
//!
//! Failures are counted per (name, client address) and per client address, within
//! [`FAILURE_WINDOW`] of the first: past [`MAX_FAILURES_PER_NAME_AND_ADDRESS`] that name
//! cannot be tried from that address, past [`MAX_FAILURES_PER_ADDRESS`] no name can be,
//! until the window ends. A lockout never applies to another address, so nobody can lock a
//! member out by failing with their name. An attempt is counted when it is let through
//! (under one lock with the check, so concurrent attempts cannot all pass it) and the count
//! is taken back if it succeeds. Each table holds at most [`MAX_TRACKED`] entries: expired
//! ones are dropped as the table is used, and the oldest when it is full.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Password hashes that may run at once (argon2id's default takes 19 MiB each).
pub const MAX_CONCURRENT_HASHES: usize = 2;
/// Logins that may wait for a hash to finish; past that a login is answered [`BUSY`].
pub const MAX_WAITING_LOGINS: usize = 32;
/// How long failures are remembered, from the first one: also the longest lockout.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed logins for one name from one client address before that pair is locked out.
pub const MAX_FAILURES_PER_NAME_AND_ADDRESS: u32 = 5;
/// Failed logins from one client address, whatever the names, before it is locked out.
pub const MAX_FAILURES_PER_ADDRESS: u32 = 20;
/// Entries each failure table holds at most (per pair and per address).
pub const MAX_TRACKED: usize = 10_000;
/// The answer to a login that found the waiting room full.
pub const BUSY: &str = "the node is busy; try again in a few seconds";

/// Why a login was not tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many logins are waiting for a hash.
    Busy,
    /// Too many failures for this name from this address.
    NameLocked { wait: Duration },
    /// Too many failures from this address.
    AddressLocked { wait: Duration },
}

impl Refusal {
    /// What the client is told.
    pub fn message(&self) -> String {
        let minutes = |wait: &Duration| wait.as_secs().div_ceil(60).max(1);
        match self {
            Refusal::Busy => BUSY.to_owned(),
            Refusal::NameLocked { wait } => format!(
                "too many failed logins for this name; try again in {} minutes",
                minutes(wait)
            ),
            Refusal::AddressLocked { wait } => format!(
                "too many failed logins from this address; try again in {} minutes",
                minutes(wait)
            ),
        }
    }

    /// How long to wait, in seconds (for `Retry-After`).
    pub fn retry_after(&self) -> u64 {
        match self {
            Refusal::Busy => 5,
            Refusal::NameLocked { wait } | Refusal::AddressLocked { wait } => wait.as_secs().max(1),
        }
    }
}

/// A login's place in the waiting room; becomes a [`HashPermit`] when its turn comes.
pub struct Admission {
    waiting: OwnedSemaphorePermit,
    hashing: Arc<Semaphore>,
}

impl Admission {
    /// Waits for a hash slot. Move the permit into the task that hashes: the slot stays
    /// taken until the hash is done, even if the request that asked is gone.
    pub async fn turn(self) -> Option<HashPermit> {
        let hashing = self.hashing.acquire_owned().await.ok()?;
        Some(HashPermit {
            _hashing: hashing,
            _waiting: self.waiting,
        })
    }
}

/// The right to run one password hash.
pub struct HashPermit {
    _hashing: OwnedSemaphorePermit,
    _waiting: OwnedSemaphorePermit,
}

/// A login attempt counted as a failure in advance; give it back with
/// [`LoginGuard::succeeded`] or [`LoginGuard::release`].
#[derive(Debug)]
pub struct Attempt {
    name: String,
    address: IpAddr,
    pair_since: Instant,
    address_since: Instant,
}

pub struct LoginGuard {
    /// Hashing plus waiting.
    waiting: Arc<Semaphore>,
    hashing: Arc<Semaphore>,
    failures: Mutex<Failures>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self::new(MAX_TRACKED)
    }
}

struct Failures {
    pairs: Table<(String, IpAddr)>,
    addresses: Table<IpAddr>,
}

impl LoginGuard {
    /// A guard whose tables hold at most `capacity` entries each.
    pub fn new(capacity: usize) -> Self {
        Self {
            waiting: Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES + MAX_WAITING_LOGINS)),
            hashing: Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)),
            failures: Mutex::new(Failures {
                pairs: Table::new(capacity),
                addresses: Table::new(capacity),
            }),
        }
    }

    /// A place in the waiting room, or [`Refusal::Busy`].
    pub fn admit(&self) -> Result<Admission, Refusal> {
        let waiting = self
            .waiting
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)?;
        Ok(Admission {
            waiting,
            hashing: self.hashing.clone(),
        })
    }

    /// Checks that `name` may be tried from `address` now and, if so, counts the attempt
    /// as a failure (one decision, under one lock).
    pub fn attempt(&self, name: &str, address: IpAddr, now: Instant) -> Result<Attempt, Refusal> {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.pairs.prune(now);
        f.addresses.prune(now);
        if let Some(wait) = f.addresses.locked(&address, MAX_FAILURES_PER_ADDRESS, now) {
            return Err(Refusal::AddressLocked { wait });
        }
        let pair = (name.to_owned(), address);
        if let Some(wait) = f
            .pairs
            .locked(&pair, MAX_FAILURES_PER_NAME_AND_ADDRESS, now)
        {
            return Err(Refusal::NameLocked { wait });
        }
        let pair_since = f.pairs.count(pair, now);
        let address_since = f.addresses.count(address, now);
        Ok(Attempt {
            name: name.to_owned(),
            address,
            pair_since,
            address_since,
        })
    }

    /// The attempt succeeded: its (name, address) failures are forgotten, and it does not
    /// count against the address.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.pairs.remove(&(attempt.name, attempt.address));
        f.addresses.uncount(&attempt.address, attempt.address_since);
    }

    /// The attempt could not be decided (the node failed): it counts for nothing.
    pub fn release(&self, attempt: Attempt) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.pairs
            .uncount(&(attempt.name, attempt.address), attempt.pair_since);
        f.addresses.uncount(&attempt.address, attempt.address_since);
    }

    /// Entries in the (name, address) and the address tables.
    pub fn tracked(&self) -> (usize, usize) {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        (f.pairs.len(), f.addresses.len())
    }
}

struct Entry {
    failures: u32,
    since: Instant,
    seq: u64,
}

/// Failure counts by key, oldest first by the start of their window.
struct Table<K> {
    entries: HashMap<K, Entry>,
    by_age: BTreeMap<(Instant, u64), K>,
    next_seq: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            next_seq: 0,
            capacity: capacity.max(1),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops the entries whose window has ended.
    fn prune(&mut self, now: Instant) {
        while let Some((&(since, _), _)) = self.by_age.first_key_value() {
            if now.saturating_duration_since(since) < FAILURE_WINDOW {
                break;
            }
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some((_, key)) = self.by_age.pop_first() {
            self.entries.remove(&key);
        }
    }

    /// How long `key` stays locked, if it has `max` failures in its window.
    fn locked(&self, key: &K, max: u32, now: Instant) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        (entry.failures >= max)
            .then(|| FAILURE_WINDOW.saturating_sub(now.saturating_duration_since(entry.since)))
    }

    /// Counts a failure; returns the start of the key's window.
    fn count(&mut self, key: K, now: Instant) -> Instant {
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.failures = entry.failures.saturating_add(1);
            return entry.since;
        }
        while self.entries.len() >= self.capacity {
            self.drop_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_age.insert((now, seq), key.clone());
        self.entries.insert(
            key,
            Entry {
                failures: 1,
                since: now,
                seq,
            },
        );
        now
    }

    /// Takes back a failure counted in the window that started at `since`.
    fn uncount(&mut self, key: &K, since: Instant) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        if entry.since != since {
            return;
        }
        entry.failures = entry.failures.saturating_sub(1);
        if entry.failures == 0 {
            self.remove(key);
        }
    }

    fn remove(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.by_age.remove(&(entry.since, entry.seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn a_name_is_locked_only_from_the_address_that_failed() {
        let guard = LoginGuard::default();
        let t0 = Instant::now();
        let attacker = addr(1);
        for _ in 0..MAX_FAILURES_PER_NAME_AND_ADDRESS {
            guard.attempt("amy", attacker, t0).unwrap();
        }
        let refused = guard.attempt("amy", attacker, t0).unwrap_err();
        assert!(matches!(refused, Refusal::NameLocked { wait } if wait == FAILURE_WINDOW));
        assert_eq!(
            refused.message(),
            "too many failed logins for this name; try again in 15 minutes"
        );
        // Another name from the attacker, and amy from elsewhere, are still tried.
        guard.attempt("bob", attacker, t0).unwrap();
        let amy = guard.attempt("amy", addr(2), t0).unwrap();
        guard.succeeded(amy);
        // The window ends.
        let later = t0 + FAILURE_WINDOW - Duration::from_secs(61);
        assert_eq!(
            guard.attempt("amy", attacker, later).unwrap_err().message(),
            "too many failed logins for this name; try again in 2 minutes"
        );
        guard.attempt("amy", attacker, t0 + FAILURE_WINDOW).unwrap();
    }

    #[test]
    fn an_address_is_locked_for_every_name() {
        let guard = LoginGuard::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            guard.attempt(&format!("name-{i}"), addr(1), t0).unwrap();
        }
        assert!(matches!(
            guard.attempt("amy", addr(1), t0),
            Err(Refusal::AddressLocked { .. })
        ));
        guard.attempt("amy", addr(2), t0).unwrap();
    }

    #[test]
    fn success_clears_the_pair_and_gives_back_the_address_count() {
        let guard = LoginGuard::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES_PER_NAME_AND_ADDRESS - 1 {
            guard.attempt("amy", addr(1), t0).unwrap();
        }
        let right = guard.attempt("amy", addr(1), t0).unwrap();
        guard.succeeded(right);
        // Her earlier failures are forgotten with the success...
        for _ in 0..MAX_FAILURES_PER_NAME_AND_ADDRESS {
            guard.attempt("amy", addr(1), t0).unwrap();
        }
        assert!(guard.attempt("amy", addr(1), t0).is_err());
        // ...and attempts the node could not decide count for nothing.
        let guard = LoginGuard::default();
        for _ in 0..MAX_FAILURES_PER_ADDRESS * 2 {
            let attempt = guard.attempt("amy", addr(1), t0).unwrap();
            guard.release(attempt);
        }
        assert_eq!(guard.tracked(), (0, 0));
    }

    #[test]
    fn concurrent_attempts_cannot_all_pass_the_check() {
        let guard = Arc::new(LoginGuard::default());
        let t0 = Instant::now();
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64)
                .map(|_| {
                    let guard = guard.clone();
                    s.spawn(move || guard.attempt("amy", addr(1), t0).is_ok())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap_or(false)))
                .sum()
        });
        assert_eq!(passed, MAX_FAILURES_PER_NAME_AND_ADDRESS as usize);
    }

    #[test]
    fn the_tables_stay_bounded() {
        let guard = LoginGuard::new(100);
        let t0 = Instant::now();
        for i in 0..1_000u32 {
            let at = t0 + Duration::from_millis(u64::from(i));
            guard.attempt(&format!("name-{i}"), addr(i), at).unwrap();
            let (pairs, addresses) = guard.tracked();
            assert!(pairs <= 100 && addresses <= 100, "{pairs} {addresses}");
        }
        assert_eq!(guard.tracked(), (100, 100));
        // The oldest were dropped: the newest is still counted.
        let newest = t0 + Duration::from_millis(999);
        for _ in 1..MAX_FAILURES_PER_NAME_AND_ADDRESS {
            guard.attempt("name-999", addr(999), newest).unwrap();
        }
        assert!(guard.attempt("name-999", addr(999), newest).is_err());
        // Expired entries go as the table is used.
        guard
            .attempt(
                "someone",
                addr(5_000),
                t0 + FAILURE_WINDOW + Duration::from_secs(1),
            )
            .unwrap();
        assert_eq!(guard.tracked(), (1, 1));
        // At full size (the default), a flood from many addresses keeps to the bound.
        let guard = LoginGuard::default();
        for i in 0..(MAX_TRACKED as u32 + 500) {
            guard.attempt("x", addr(i), t0).unwrap();
        }
        assert_eq!(guard.tracked(), (MAX_TRACKED, MAX_TRACKED));
    }

    #[tokio::test]
    async fn the_waiting_room_is_bounded() {
        let guard = LoginGuard::default();
        let mut admitted = Vec::new();
        for _ in 0..MAX_CONCURRENT_HASHES + MAX_WAITING_LOGINS {
            admitted.push(guard.admit().unwrap());
        }
        assert_eq!(guard.admit().err(), Some(Refusal::Busy));
        let mut hashing = Vec::new();
        for admission in admitted.drain(..MAX_CONCURRENT_HASHES) {
            hashing.push(admission.turn().await.unwrap());
        }
        // A third must wait for a hash to end.
        let third = admitted.pop().unwrap();
        let waiting = tokio::spawn(third.turn());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(hashing.pop());
        assert!(waiting.await.unwrap().is_some());
        // Each finished login frees its place.
        assert!(guard.admit().is_ok());
    }
}
