//! The node's rules for the sync engine: who may read which document, and which changes are
//! accepted from whom.
//!
//! - Members of this organization see everything the node holds, drafts included.
//! - Anonymous visitors and partner nodes see published (and archived) practices, the
//!   catalogues, the directory and events — never drafts, never the workspace.
//! - Every incoming change is applied to a scratch copy first; the result must still be a
//!   valid document of the same type, and the review state may only move as the sender's
//!   role allows. Anonymous visitors change nothing.

use automerge::Automerge;
use ibis_shared::model::catalogue::Listing;
use ibis_shared::model::directory::Directory;
use ibis_shared::model::event::Event;
use ibis_shared::model::review::{may_change_state, ReviewState, Role};
use ibis_shared::model::validation::{check_practice, summarize};
use ibis_shared::model::{kind_of, DocumentKind, Practice};
use ibis_shared::protocol::{PeerId, PeerMetadata};
use ibis_shared::sync::{Direction, PeerRole, Policy};
use ibis_shared::DocumentId;

use crate::registry::Acl;

/// Who is on the other end of a connection, as established at the HTTP upgrade or dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person using the app, or a script.
    Visitor(Access),
    /// A partner node, or another automerge-repo server this node replicates with.
    Partner { name: String, acl: Acl },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Anonymous,
    Member { name: String, role: Role },
}

impl Principal {
    fn role(&self) -> Option<Role> {
        match self {
            Principal::Visitor(Access::Member { role, .. }) => Some(*role),
            _ => None,
        }
    }

    fn is_member(&self) -> bool {
        self.role().is_some()
    }
}

#[derive(Debug, Clone)]
pub struct NodePolicy {
    /// This node's organization id.
    pub organization: String,
    /// This organization's private workspace document.
    pub workspace: DocumentId,
}

impl NodePolicy {
    fn check(
        &self,
        principal: &Principal,
        before: &Automerge,
        after: &Automerge,
    ) -> Result<(), String> {
        if matches!(principal, Principal::Visitor(Access::Anonymous)) {
            return Err("anonymous visitors cannot change documents; log in first".into());
        }
        if let Principal::Partner { name, acl } = principal {
            if !acl.write {
                return Err(format!("partner {name} may read but not send changes"));
            }
        }
        let before_empty = before.get_heads().is_empty();
        let kind = kind_of(after);
        if !before_empty && kind_of(before) != kind {
            return Err("a document's type cannot change".into());
        }
        let partner = matches!(principal, Principal::Partner { .. });
        match kind {
            None => Ok(()),
            Some(DocumentKind::Practice) => self.check_practice(principal, before, after),
            Some(DocumentKind::Workspace) => {
                if partner {
                    return Err("the workspace is private to its organization".into());
                }
                Listing::load(after, DocumentKind::Workspace)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Some(DocumentKind::Catalogue) => {
                let listing =
                    Listing::load(after, DocumentKind::Catalogue).map_err(|e| e.to_string())?;
                if partner && listing.organization == self.organization {
                    return Err("only this organization changes its own catalogue".into());
                }
                Ok(())
            }
            Some(DocumentKind::Directory) => self.check_directory(principal, before, after),
            Some(DocumentKind::Event) => {
                let event = Event::load(after).map_err(|e| e.to_string())?;
                let errors = event.validate();
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(format!("invalid event: {}", summarize(&errors)))
                }
            }
        }
    }

    fn check_practice(
        &self,
        principal: &Principal,
        before: &Automerge,
        after: &Automerge,
    ) -> Result<(), String> {
        let practice = Practice::load(after).map_err(|e| format!("not a valid practice: {e}"))?;
        let errors = check_practice(&practice);
        if !errors.is_empty() {
            return Err(format!("invalid practice: {}", summarize(&errors)));
        }
        let to = practice.state();
        let from = if before.get_heads().is_empty() {
            None
        } else {
            Practice::load(before).ok().map(|p| p.state())
        };
        match principal {
            Principal::Partner { .. } => {
                if !to.is_public() {
                    return Err("partners share published practices only".into());
                }
                let ours = practice.provenance.home_organization == self.organization;
                if ours && from.is_some_and(|f| f != to) {
                    return Err(
                        "only this organization's members change the review state of its practices"
                            .into(),
                    );
                }
                Ok(())
            }
            Principal::Visitor(_) => {
                let from = from.unwrap_or(ReviewState::Draft);
                if may_change_state(from, to, principal.role()) {
                    Ok(())
                } else {
                    Err(format!(
                        "a {} may not move a practice from {from} to {to}",
                        principal.role().map_or("visitor", Role::key)
                    ))
                }
            }
        }
    }

    fn check_directory(
        &self,
        principal: &Principal,
        before: &Automerge,
        after: &Automerge,
    ) -> Result<(), String> {
        let new = Directory::load(after).map_err(|e| e.to_string())?;
        let old = Directory::load(before).unwrap_or_default();
        for (org, entry) in &new.organizations {
            if old.organizations.get(org) == Some(entry) {
                continue;
            }
            let errors = entry.validate();
            if !errors.is_empty() {
                return Err(format!("invalid entry for {org}: {}", summarize(&errors)));
            }
            let ours = *org == self.organization;
            match principal {
                Principal::Partner { .. } if ours => {
                    return Err("only this organization changes its own directory entry".into())
                }
                Principal::Visitor(_) if !ours => {
                    return Err("members change only their own organization's entry".into())
                }
                _ => {}
            }
        }
        Ok(())
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
            Some(DocumentKind::Workspace) => false,
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
        _id: &DocumentId,
        before: &Automerge,
        after: &Automerge,
    ) -> Result<(), String> {
        self.check(principal, before, after)
    }

    /// A document of no ibis type (another application's, sharing the node) that this
    /// principal may write: [`NodePolicy::check`] accepts any change that leaves it
    /// untyped, so the change is applied in place and only its type is checked after.
    fn may_check_in_place(
        &self,
        principal: &Principal,
        _: &DocumentId,
        current: &Automerge,
    ) -> bool {
        let may_write = match principal {
            Principal::Visitor(Access::Anonymous) => false,
            Principal::Visitor(Access::Member { .. }) => true,
            Principal::Partner { acl, .. } => acl.write,
        };
        may_write && !current.get_heads().is_empty() && kind_of(current).is_none()
    }

    fn check_in_place(
        &self,
        _: &Principal,
        _: &DocumentId,
        _before: &[automerge::ChangeHash],
        after: &Automerge,
    ) -> Result<(), String> {
        // Untyped before (see `may_check_in_place`), so it must stay untyped.
        match kind_of(after) {
            None => Ok(()),
            Some(_) => Err("a document's type cannot change".into()),
        }
    }
}

#[cfg(test)]
mod tests;
