//! Which changes are accepted from whom. Three steps, cheapest first:
//! 1. [`NodePolicy::may_write_as`]: may this principal send changes at all?
//! 2. [`NodePolicy::may_change_stored`]: may it change this document, as the node stores
//!    it? (Asked before the changes are decoded.)
//! 3. [`NodePolicy::check_result`]: is the document the change makes acceptable from it?
//!    (The change applied to a scratch copy.)

use automerge::Automerge;
use ibis_shared::model::catalogue::Listing;
use ibis_shared::model::directory::Directory;
use ibis_shared::model::event::Event;
use ibis_shared::model::review::{may_change_state, ReviewState};
use ibis_shared::model::validation::{check_practice, check_public, summarize};
use ibis_shared::model::{kind_of, DocumentKind, Practice};
use ibis_shared::DocumentId;

use super::owner::{named_owner, Owner};
use super::{Access, NodePolicy, Principal};
use crate::config::PublishedEdits;

impl NodePolicy {
    /// Step 1: anonymous visitors and read-only partners send no changes.
    pub(super) fn may_write_as(&self, principal: &Principal) -> Result<(), String> {
        match principal {
            Principal::Visitor(Access::Anonymous) => {
                Err("anonymous visitors cannot change documents; log in first".into())
            }
            Principal::Partner { name, acl, .. } if !acl.write => {
                Err(format!("partner {name} may read but not send changes"))
            }
            _ => Ok(()),
        }
    }

    /// Step 2, on the stored document (`current`, empty when the node has none: then the
    /// result decides, in step 3).
    pub(super) fn may_change_stored(
        &self,
        principal: &Principal,
        id: &DocumentId,
        current: &Automerge,
    ) -> Result<(), String> {
        self.may_write_as(principal)?;
        if current.get_heads().is_empty() && *id != self.catalogue && *id != self.workspace {
            return Ok(());
        }
        let what = kind_of(current).map_or("document", |k| k.type_name());
        match (principal.is_member(), self.owner(id, current)) {
            (true, Owner::Organization(org)) => Err(format!(
                "this {what} is {}'s: only its organization changes it",
                shown(&org)
            )),
            (false, Owner::Us) => Err(format!(
                "this {what} is {}'s: only its members change it",
                self.organization
            )),
            _ => Ok(()),
        }
    }

    /// Step 3: the document as the change leaves it (`after`), against what it was.
    pub(super) fn check_result(
        &self,
        principal: &Principal,
        id: &DocumentId,
        before: &Automerge,
        after: &Automerge,
    ) -> Result<(), String> {
        self.may_change_stored(principal, id, before)?;
        let new = before.get_heads().is_empty();
        let kind = kind_of(after);
        if !new && kind_of(before) != kind {
            return Err("a document's type cannot change".into());
        }
        let Some(kind) = kind else {
            return self.check_untyped(principal, id, new);
        };
        // Whose it is: fixed once it exists; when new, its first version names it, and
        // only someone who may create documents for that organization may.
        let owner = named_owner(kind, after).unwrap_or_default();
        if kind != DocumentKind::Directory {
            if new {
                self.may_create_for(principal, &owner)?;
            } else if named_owner(kind, before).unwrap_or_default() != owner {
                return Err(format!(
                    "a {}'s organization cannot change",
                    kind.type_name()
                ));
            }
        }
        match kind {
            DocumentKind::InternalPractice => {
                self.check_internal_practice(principal, before, after)
            }
            DocumentKind::Practice => self.check_public_practice(principal, before, after, &owner),
            DocumentKind::Catalogue | DocumentKind::Workspace => {
                self.check_listing(principal, id, kind, after)
            }
            DocumentKind::Directory => self.check_directory(principal, before, after),
            DocumentKind::Event => {
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

    /// Members create documents for their own organization; partners and relays for
    /// any organization but this one.
    fn may_create_for(&self, principal: &Principal, owner: &str) -> Result<(), String> {
        let ours = owner == self.organization;
        match (principal.is_member(), ours) {
            (true, false) => Err(format!(
                "members create documents for {} only, not for {}",
                self.organization,
                shown(owner)
            )),
            (false, true) => Err(format!(
                "only {}'s members create its documents",
                self.organization
            )),
            _ => Ok(()),
        }
    }

    /// Documents of no ibis type: relayed for anyone who may write, but another
    /// organization (or a relay) may have the node store only so many, in count and bytes.
    /// This organization's members are not counted: they answer for what they store.
    fn check_untyped(
        &self,
        principal: &Principal,
        id: &DocumentId,
        new: bool,
    ) -> Result<(), String> {
        let creator = match principal {
            Principal::Visitor(_) => return Ok(()),
            Principal::Partner {
                organization: Some(org),
                ..
            } => org.clone(),
            Principal::Partner { name, .. } => format!("relay {name}"),
        };
        if new {
            self.untyped.admit(*id, &creator)
        } else {
            self.untyped.may_grow(id)
        }
    }

    fn check_internal_practice(
        &self,
        principal: &Principal,
        before: &Automerge,
        after: &Automerge,
    ) -> Result<(), String> {
        let Some(role) = principal.role() else {
            return Err("internal practices never leave their organization".into());
        };
        let practice = Practice::load(after).map_err(|e| format!("not a valid practice: {e}"))?;
        let errors = check_practice(&practice);
        if !errors.is_empty() {
            return Err(format!("invalid practice: {}", summarize(&errors)));
        }
        let to = practice.state();
        let allowed = match state_before(before) {
            Some(from) => may_change_state(from, to, Some(role)),
            // A new one (a draft, or a record imported by an admin as it stood): in a
            // state this role could have brought it to.
            None => match to {
                ReviewState::Draft | ReviewState::Submitted => true,
                ReviewState::Published => role.can_review(),
                ReviewState::Archived => role >= ibis_shared::model::Role::Admin,
            },
        };
        let from = state_before(before).unwrap_or(ReviewState::Draft);
        if !allowed {
            return Err(format!(
                "a {} may not move a practice from {from} to {to}",
                role.key()
            ));
        }
        Ok(())
    }

    fn check_public_practice(
        &self,
        principal: &Principal,
        before: &Automerge,
        after: &Automerge,
        owner: &str,
    ) -> Result<(), String> {
        let practice = Practice::load(after).map_err(|e| format!("not a valid practice: {e}"))?;
        let mut errors = check_practice(&practice);
        errors.extend(check_public(&practice, None));
        if !errors.is_empty() {
            return Err(format!("invalid public practice: {}", summarize(&errors)));
        }
        let Some(role) = principal.role() else {
            // A partner's relay of another organization's public practice.
            return Ok(());
        };
        debug_assert_eq!(owner, self.organization);
        let from = state_before(before);
        match from {
            None if !role.can_review() => {
                return Err(format!("a {} may not publish a practice", role.key()))
            }
            Some(_) if self.published_edits == PublishedEdits::Reviewers && !role.can_review() => {
                return Err(
                    "published practices are changed by reviewers here (published_edits = reviewers)"
                        .into(),
                )
            }
            _ => {}
        }
        let to = practice.state();
        if !may_change_state(from.unwrap_or(to), to, Some(role)) {
            return Err(format!(
                "a {} may not move a practice from {} to {to}",
                role.key(),
                from.unwrap_or(to)
            ));
        }
        self.check_authorship(before, after)
    }

    /// A public document names the organization, never a person: in every new change's
    /// message and in its provenance.
    fn check_authorship(&self, before: &Automerge, after: &Automerge) -> Result<(), String> {
        let org = &self.organization_name;
        for change in after.get_changes(&before.get_heads()) {
            let by = change
                .message()
                .and_then(|m| m.split_once('\n'))
                .map(|(_, by)| by);
            if by.is_some_and(|by| by != org) {
                return Err(format!(
                    "a change to a public document names `{}`; only the organization ({org}) is named",
                    by.unwrap_or_default()
                ));
            }
        }
        let provenance = |doc: &Automerge| {
            Practice::load(doc)
                .ok()
                .map(|p| (p.provenance.created_by, p.provenance.updated_by))
        };
        let old = provenance(before);
        if let Some((created, updated)) = provenance(after) {
            for (field, value, was) in [
                ("created_by", created, old.as_ref().map(|o| &o.0)),
                ("updated_by", updated, old.as_ref().map(|o| &o.1)),
            ] {
                if Some(&value) != was && value != *org {
                    return Err(format!(
                        "provenance.{field} names `{value}`; only the organization ({org}) is named"
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_listing(
        &self,
        principal: &Principal,
        id: &DocumentId,
        kind: DocumentKind,
        after: &Automerge,
    ) -> Result<(), String> {
        let listing = Listing::load(after, kind).map_err(|e| e.to_string())?;
        let ours = listing.organization == self.organization;
        match kind {
            DocumentKind::Workspace if *id != self.workspace || !principal.is_member() => {
                Err("a workspace is private to its organization".into())
            }
            DocumentKind::Catalogue if ours && *id != self.catalogue => Err(format!(
                "{}'s catalogue is {}; no other document is",
                self.organization, self.catalogue
            )),
            _ => Ok(()),
        }
    }

    /// Each entry is changed, or removed, only by its own organization (partners pass
    /// others' on, as relayed), and is valid.
    fn check_directory(
        &self,
        principal: &Principal,
        before: &Automerge,
        after: &Automerge,
    ) -> Result<(), String> {
        let new = Directory::load(after).map_err(|e| e.to_string())?;
        let old = Directory::load(before).unwrap_or_default();
        let keys = old.organizations.keys().chain(new.organizations.keys());
        for org in keys {
            let (was, is) = (old.organizations.get(org), new.organizations.get(org));
            if was == is {
                continue;
            }
            let ours = *org == self.organization;
            match (principal.is_member(), ours) {
                (false, true) => {
                    return Err(format!(
                        "only {}'s members change its directory entry",
                        self.organization
                    ))
                }
                (true, false) => {
                    return Err(format!(
                        "members change {}'s directory entry only, not {}'s",
                        self.organization,
                        shown(org)
                    ))
                }
                _ => {}
            }
            if let Some(entry) = is {
                let errors = entry.validate();
                if !errors.is_empty() {
                    return Err(format!("invalid entry for {org}: {}", summarize(&errors)));
                }
            }
        }
        Ok(())
    }
}

fn state_before(before: &Automerge) -> Option<ReviewState> {
    if before.get_heads().is_empty() {
        None
    } else {
        Practice::load(before).ok().map(|p| p.state())
    }
}

fn shown(org: &str) -> &str {
    if org.is_empty() {
        "no organization"
    } else {
        org
    }
}
