//! The node's rules for the sync engine: who may read which document, which changes are
//! accepted from whom, and what each connection may spend. ARCHITECTURE.md ("Trust") is
//! the threat model these rules implement.
//!
//! - Members of this organization read everything the node holds; they change what this
//!   organization owns, as their role allows, and documents of no ibis type.
//! - Anonymous visitors and partners read public documents only: public practices,
//!   catalogues, the directory, events — never an internal practice or the workspace.
//!   Anonymous visitors change nothing.
//! - Partners (and relays without an organization) never change what this organization
//!   owns; other organizations' public documents they pass on are accepted as relayed.
//! - Who owns a document is read from what the node stores ([`owner`]), before a change
//!   is decoded; the result of a change is then checked on a scratch copy ([`changes`]).

mod changes;
mod owner;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use automerge::Automerge;
use ibis_shared::model::review::Role;
use ibis_shared::model::{kind_of, DocumentKind, Practice};
use ibis_shared::protocol::{PeerId, PeerMetadata};
use ibis_shared::sync::{Direction, PeerLimits, PeerRole, Policy, Refusal};
use ibis_shared::DocumentId;

use crate::config::{Config, PublishedEdits};
use crate::limits::{ConnectionLimits, ANONYMOUS, MEMBER, PARTNER};
use crate::quota::UntypedQuota;
use crate::registry::Acl;

pub use owner::Owner;

/// Who is on the other end of a connection, as established at the HTTP upgrade or dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person using the app, or a script.
    Visitor(Access),
    /// A partner node, or another automerge-repo server this node replicates with.
    Partner {
        name: String,
        /// The organization it was invited as (or registered for); `None` for a relay
        /// without one (a plain automerge-repo sync server).
        organization: Option<String>,
        acl: Acl,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Anonymous,
    Member { name: String, role: Role },
}

impl Principal {
    pub fn role(&self) -> Option<Role> {
        match self {
            Principal::Visitor(Access::Member { role, .. }) => Some(*role),
            _ => None,
        }
    }

    pub fn is_member(&self) -> bool {
        self.role().is_some()
    }

    /// What a connection from this principal may spend.
    pub fn limits(&self) -> ConnectionLimits {
        match self {
            Principal::Visitor(Access::Anonymous) => ANONYMOUS,
            Principal::Visitor(Access::Member { .. }) => MEMBER,
            Principal::Partner { .. } => PARTNER,
        }
    }

    /// Which of two principals claiming one peer id keeps it: a partner that proved its
    /// key, then a member, then an anonymous visitor.
    fn rank(&self) -> u8 {
        match self {
            Principal::Visitor(Access::Anonymous) => 0,
            Principal::Visitor(Access::Member { .. }) => 1,
            Principal::Partner { .. } => 2,
        }
    }
}

#[derive(Clone)]
pub struct NodePolicy {
    /// This node's organization id.
    pub organization: String,
    /// Its name: the author of its public documents.
    pub organization_name: String,
    /// This organization's catalogue and private workspace.
    pub catalogue: DocumentId,
    pub workspace: DocumentId,
    /// Who may change a published practice.
    pub published_edits: PublishedEdits,
    /// Documents of no ibis type, charged to whoever created them.
    pub untyped: Arc<UntypedQuota>,
}

impl NodePolicy {
    pub fn new(config: &Config, untyped: Arc<UntypedQuota>) -> Self {
        Self {
            organization: config.organization.id.clone(),
            organization_name: config.organization.name.clone(),
            catalogue: config.documents.catalogue,
            workspace: config.documents.workspace,
            published_edits: config.organization.published_edits,
            untyped,
        }
    }
}

impl Policy for NodePolicy {
    type Principal = Principal;

    fn admit(
        &self,
        principal: &Principal,
        _direction: Direction,
        _peer_id: &PeerId,
        _metadata: &PeerMetadata,
    ) -> Result<PeerRole, String> {
        Ok(match principal {
            Principal::Partner { .. } => PeerRole::Replica,
            Principal::Visitor(_) => PeerRole::Client,
        })
    }

    fn limits(&self, principal: &Principal) -> PeerLimits {
        principal.limits().engine
    }

    fn outranks(&self, new: &Principal, old: &Principal) -> bool {
        new.rank() > old.rank()
    }

    fn may_write(&self, principal: &Principal) -> Result<(), Refusal> {
        Ok(self.may_write_as(principal)?)
    }

    fn may_change(
        &self,
        principal: &Principal,
        id: &DocumentId,
        current: &Automerge,
    ) -> Result<(), Refusal> {
        Ok(self.may_change_stored(principal, id, current)?)
    }

    fn may_read(&self, principal: &Principal, id: &DocumentId, doc: &Automerge) -> bool {
        if principal.is_member() {
            return true;
        }
        if let Principal::Partner { acl, .. } = principal {
            if !acl.read {
                return false;
            }
        }
        if *id == self.workspace {
            return false;
        }
        match kind_of(doc) {
            Some(kind) if kind.is_internal() => false,
            Some(DocumentKind::Practice) => {
                Practice::load(doc).is_ok_and(|p| p.state().is_public())
            }
            _ => true,
        }
    }

    fn may_read_any(&self, principal: &Principal, _id: &DocumentId) -> bool {
        // Members read everything, the workspace included (see `may_read`); everyone else
        // sees a practice only once it is public, which takes its content to tell.
        principal.is_member()
    }

    fn needs_write_check(&self, _: &Principal, _: &DocumentId) -> bool {
        true
    }

    fn check_write(
        &self,
        principal: &Principal,
        id: &DocumentId,
        before: &Automerge,
        after: &Automerge,
    ) -> Result<(), Refusal> {
        Ok(self.check_result(principal, id, before, after)?)
    }

    /// A document of no ibis type (another application's, sharing the node) that this
    /// principal may write: [`NodePolicy::check_write`] accepts any change that leaves it
    /// untyped within its creator's quota, so the change is applied in place and only
    /// that is checked after.
    fn may_check_in_place(
        &self,
        principal: &Principal,
        _: &DocumentId,
        current: &Automerge,
    ) -> bool {
        self.may_write_as(principal).is_ok()
            && !current.get_heads().is_empty()
            && kind_of(current).is_none()
    }

    fn check_in_place(
        &self,
        _: &Principal,
        id: &DocumentId,
        _before: &[automerge::ChangeHash],
        after: &Automerge,
    ) -> Result<(), Refusal> {
        // Untyped before (see `may_check_in_place`), so it must stay untyped.
        match kind_of(after) {
            None => Ok(self.untyped.may_grow(id)?),
            Some(_) => Err("a document's type cannot change".into()),
        }
    }
}
