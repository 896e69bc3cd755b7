//! How many `/sync` connections each client holds open: anonymous visitors per client
//! address, members per account, partners per node key (the caps are `[limits]` in
//! `ibis.toml`). A connection takes a [`Slot`] before it is upgraded and gives it back when
//! the slot is dropped: at the end of the connection's task, or with the task's closure if
//! the upgrade never completes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::metrics::ClientKind;

/// Whose share a connection counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// An anonymous visitor, by client address.
    Address(IpAddr),
    /// A member, by account name.
    Member(String),
    /// A partner node, by its public key.
    Partner(String),
}

impl Client {
    pub fn kind(&self) -> ClientKind {
        match self {
            Client::Address(_) => ClientKind::Anonymous,
            Client::Member(_) => ClientKind::Member,
            Client::Partner(_) => ClientKind::Partner,
        }
    }

    /// What a refused client is told.
    pub fn refusal(&self, cap: usize) -> String {
        let whose = match self {
            Client::Address(_) => "from this address",
            Client::Member(_) => "for this account",
            Client::Partner(_) => "for this node key",
        };
        format!("too many open connections {whose} (at most {cap}); close some and try again")
    }
}

/// Open connections per client. Only clients with a connection open have an entry, so
/// the table is as large as the number of open connections at most.
#[derive(Debug, Default)]
pub struct ConnectionSlots {
    open: Mutex<HashMap<Client, usize>>,
}

impl ConnectionSlots {
    /// A slot for `client` if it has fewer than `cap` open.
    pub fn acquire(self: &Arc<Self>, client: Client, cap: usize) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client.clone()).or_insert(0);
        if *count >= cap {
            if *count == 0 {
                open.remove(&client);
            }
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: self.clone(),
            client,
        })
    }

    /// Connections `client` holds open.
    pub fn open(&self, client: &Client) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(client).copied().unwrap_or(0)
    }

    /// Clients with a connection open.
    pub fn clients(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One open connection's place in its client's share; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<ConnectionSlots>,
    client: Client,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_client_and_given_back() {
        let slots = Arc::new(ConnectionSlots::default());
        let here = Client::Address("127.0.0.1".parse().unwrap());
        let held: Vec<Slot> = (0..3)
            .map(|_| slots.acquire(here.clone(), 3).unwrap())
            .collect();
        assert!(slots.acquire(here.clone(), 3).is_none());
        let amy = Client::Member("amy".into());
        let amys = slots.acquire(amy.clone(), 1).unwrap();
        assert!(slots.acquire(amy.clone(), 1).is_none());
        assert_eq!(slots.open(&here), 3);
        drop(held);
        assert_eq!(slots.open(&here), 0);
        drop(amys);
        assert_eq!(slots.clients(), 0, "no entry is left behind");
        assert!(slots.acquire(here, 0).is_none());
        assert_eq!(slots.clients(), 0);
        assert_eq!(
            amy.refusal(32),
            "too many open connections for this account (at most 32); close some and try again"
        );
    }
}
