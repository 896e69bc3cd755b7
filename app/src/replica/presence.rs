//! Who else has a practice open: presence, as ephemeral messages `{name, field, session}`
//! that every peer sharing the document relays (ibis or a JS automerge-repo app).

use ibis_shared::DocumentId;
use leptos::prelude::*;

use super::Replica;

/// Someone's presence on a document, from ephemeral messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    pub name: String,
    pub field: String,
    pub at: f64,
}

impl Replica {
    /// An ephemeral message arrived: presence is kept (the last minute's); other
    /// ephemeral messages are not ours to show.
    pub(super) fn seen(&self, document: DocumentId, data: &[u8]) {
        let Ok(p) = ibis_shared::presence::Presence::decode(data) else {
            return;
        };
        let now = js_sys::Date::now();
        let mut presence = self.presence.borrow_mut();
        presence.retain(|(d, s, seen)| {
            seen.at >= now - 60_000.0 && (*d != document || *s != p.session)
        });
        let seen = Presence {
            name: p.name,
            field: p.field,
            at: now,
        };
        presence.push((document, p.session, seen));
        self.signals.presence.update(|p| *p += 1);
    }

    /// Tells others who share the document that we are here.
    pub fn announce_presence(&self, id: DocumentId, name: &str, field: &str) {
        let payload = ibis_shared::presence::Presence {
            name: name.to_owned(),
            field: field.to_owned(),
            session: self.engine.borrow().config().ephemeral_session_id.clone(),
        };
        self.engine
            .borrow_mut()
            .send_ephemeral(id, payload.encode());
        self.pump();
    }

    /// Others seen on a document in the last 30 seconds.
    pub fn present(&self, id: &DocumentId) -> Vec<Presence> {
        let cutoff = js_sys::Date::now() - 30_000.0;
        self.presence
            .borrow()
            .iter()
            .filter(|(d, _, p)| d == id && p.at >= cutoff)
            .map(|(_, _, p)| p.clone())
            .collect()
    }
}
