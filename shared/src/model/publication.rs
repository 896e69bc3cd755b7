//! Publishing: how an internal practice gets, keeps and gives up its public practice.
//!
//! Automerge keeps every change a document ever had, and replicas offer old changes again,
//! so a document that leaves its organization must never have held anything private. The
//! **internal practice** holds drafts, every field, the contact whether or not it
//! consented, the review and its comments, and people's names; it never leaves its node.
//! When a reviewer publishes it, a **public practice** is made: a new document, with a new
//! id, whose first change holds the public fields only ([`public_projection`]), written in
//! the organization's name ([`organization_author`]). From then on the public practice is
//! edited live (text merges keystroke by keystroke) and the internal one keeps what is
//! private. What was published cannot be unpublished: a public practice that must lose
//! something (a contact withdrew consent, a mistake to erase) is *withdrawn* — its
//! organization's catalogue lists it as such and every ibis replica erases it — and, if
//! there is something left to show, republished under a new id ([`withdraw`]).

use automerge::Automerge;
use autosurgeon::{hydrate, reconcile, Text};

use super::practice::{Contact, Review, TextField};
use super::review::{transition, ReviewAction, ReviewState};
use super::text_edit;
use super::validation::{check_complete, check_practice, check_public, FieldError};
use super::{commit_options, Author, DocumentKind, ModelError, Practice};
use crate::DocumentId;

/// The author of changes to a public document: the organization, never a person.
pub fn organization_author(author: &Author, organization_name: &str) -> Author {
    Author {
        name: organization_name.to_owned(),
        organization: author.organization.clone(),
        role: author.role,
    }
}

/// A practice's public fields, as its public practice holds them in `state`: the contact
/// only with consent, no comments, no link home, the organization as author.
pub fn public_projection(p: &Practice, organization_name: &str, state: ReviewState) -> Practice {
    let mut public = p.clone();
    // Texts read from one document cannot be written into another as they are (they
    // remember where they were read): the public practice gets new ones, same words.
    for field in TextField::ALL {
        let value = field.of(&public).as_str().to_owned();
        *field.of_mut(&mut public) = Text::with_value(value);
    }
    for translation in public.translations.values_mut() {
        for field in TextField::ALL {
            if let Some(text) = field.of_translation(translation) {
                *text = Text::with_value(text.as_str());
            }
        }
    }
    public.kind = DocumentKind::Practice.type_name().to_owned();
    public.review = Review {
        state: state.key().to_owned(),
        comments: Vec::new(),
    };
    if !public.contact.consent {
        public.contact = Contact::default();
    }
    public.public = String::new();
    public.provenance.created_by = organization_name.to_owned();
    public.provenance.updated_by = organization_name.to_owned();
    public
}

/// A new public practice document holding `p`'s public fields, in one change made in the
/// organization's name.
pub fn new_public_document(
    p: &Practice,
    author: &Author,
    organization_name: &str,
    state: ReviewState,
    now_ms: i64,
) -> Result<Automerge, ModelError> {
    let mut public = public_projection(p, organization_name, state);
    public.provenance.updated_at = now_ms;
    let mut errors = check_practice(&public);
    errors.extend(check_public(&public, Some(organization_name)));
    if !errors.is_empty() {
        return Err(ModelError::Invalid(errors));
    }
    let by = organization_author(author, organization_name);
    let mut doc = Automerge::new();
    doc.transact_with::<_, _, ModelError, _>(
        |_| commit_options(&by, "published", now_ms),
        |tx| Ok(reconcile(tx, &public)?),
    )
    .map_err(|f| f.error)?;
    Ok(doc)
}

/// A public practice just made.
#[derive(Debug)]
pub struct Published {
    pub id: DocumentId,
    pub document: Automerge,
}

/// A reviewer publishes an internal practice: a public practice is made from its public
/// fields under a new id, and the internal practice records the move, the comment and the
/// public id. Refused (nothing written) if the role or the state does not allow it or the
/// practice is incomplete. The caller lists the public practice in the catalogue.
pub fn publish(
    internal: &mut Automerge,
    reviewer: &Author,
    organization_name: &str,
    comment: &str,
    now_ms: i64,
) -> Result<Published, ModelError> {
    let p = Practice::load(internal)?;
    if !p.is_internal() {
        return Err(ModelError::Forbidden(
            "only an internal practice is published".into(),
        ));
    }
    transition(p.state(), ReviewAction::Publish, reviewer.role, comment)
        .map_err(|e| ModelError::Forbidden(e.to_string()))?;
    let missing = check_complete(&p);
    if !missing.is_empty() {
        return Err(ModelError::Invalid(missing));
    }
    let id = DocumentId::random();
    let document = new_public_document(
        &p,
        reviewer,
        organization_name,
        ReviewState::Published,
        now_ms,
    )?;
    record_publication(
        internal,
        reviewer,
        ReviewAction::Publish.key(),
        comment,
        ReviewState::Published,
        Some(id),
        now_ms,
    )?;
    Ok(Published { id, document })
}

/// Records a move in the internal practice: what happened (`action`, as review comments
/// name moves), the comment, its state now and which public practice, if any, it has.
fn record_publication(
    internal: &mut Automerge,
    author: &Author,
    action: &str,
    comment: &str,
    state: ReviewState,
    public: Option<DocumentId>,
    now_ms: i64,
) -> Result<(), ModelError> {
    let what = match action {
        "publish" => "published",
        "withdraw" => "withdrawn from publication",
        _ => "republished",
    };
    internal
        .transact_with::<_, _, ModelError, _>(
            |_| commit_options(author, what, now_ms),
            |tx| {
                let mut p: Practice = hydrate(tx)?;
                p.review.state = state.key().to_owned();
                p.review.comments.push(super::practice::ReviewComment {
                    author: author.name.clone(),
                    at: now_ms,
                    action: action.to_owned(),
                    text: comment.trim().to_owned(),
                });
                p.public = public.map(|id| id.url()).unwrap_or_default();
                p.provenance.updated_by = author.name.clone();
                p.provenance.updated_at = now_ms;
                Ok(reconcile(tx, &p)?)
            },
        )
        .map(|_| ())
        .map_err(|f| f.error)
}

/// Sets `text` to `value` by one splice (so nothing else typed meanwhile is lost).
fn copy_text(text: &mut Text, value: &str) {
    if let Some(splice) = text_edit::diff(text.as_str(), value) {
        splice.apply_to(text);
    }
}

/// Brings a public practice's public fields back into its internal practice (edits made
/// live after publication), leaving the internal practice's contact, review and links as
/// they are. Done before a public practice is withdrawn, so nothing written since its
/// publication is lost.
pub fn take_back(
    internal: &mut Automerge,
    public: &Automerge,
    author: &Author,
    now_ms: i64,
) -> Result<(), ModelError> {
    let from = Practice::load(public)?;
    internal
        .transact_with::<_, _, ModelError, _>(
            |_| commit_options(author, "took back the published text", now_ms),
            |tx| {
                let mut p: Practice = hydrate(tx)?;
                for field in TextField::ALL {
                    copy_text(field.of_mut(&mut p), field.of(&from).as_str());
                }
                p.translations
                    .retain(|lang, _| from.translations.contains_key(lang));
                for (lang, source) in &from.translations {
                    let target = p.translations.entry(lang.clone()).or_default();
                    for field in TextField::ALL {
                        if let (Some(dst), Some(src)) =
                            (field.of_translation(target), field.in_translation(source))
                        {
                            copy_text(dst, src.as_str());
                        }
                    }
                }
                p.city = from.city.clone();
                p.country = from.country.clone();
                p.coordinates = from.coordinates.clone();
                p.lead_organization = from.lead_organization.clone();
                p.partners = from.partners.clone();
                p.themes = from.themes.clone();
                p.gcm_objectives = from.gcm_objectives.clone();
                p.sdg_goals = from.sdg_goals.clone();
                p.target_groups = from.target_groups.clone();
                p.actor_level = from.actor_level.clone();
                p.start_date = from.start_date.clone();
                p.end_date = from.end_date.clone();
                p.evidence_level = from.evidence_level.clone();
                p.replicated_by = from.replicated_by.clone();
                p.resources = from.resources.clone();
                p.language = from.language.clone();
                Ok(reconcile(tx, &p)?)
            },
        )
        .map(|_| ())
        .map_err(|f| f.error)
}

/// Withdraws a public practice (its contact withdrew consent, or it holds a mistake to
/// erase): its public fields are taken back into the internal practice, which is then
/// either republished under a new id (`republish`; returned) or returned to draft. The
/// caller withdraws the old id in the catalogue ([`super::catalogue::withdraw`]) and lists
/// the new one.
pub fn withdraw(
    internal: &mut Automerge,
    public: &Automerge,
    author: &Author,
    organization_name: &str,
    republish: bool,
    comment: &str,
    now_ms: i64,
) -> Result<Option<Published>, ModelError> {
    if !author.role.can_review() {
        return Err(ModelError::Forbidden(format!(
            "a {} may not withdraw a published practice",
            author.role
        )));
    }
    take_back(internal, public, author, now_ms)?;
    let state = Practice::load(public)?.state();
    let republished = if republish {
        let p = Practice::load(internal)?;
        let id = DocumentId::random();
        let document = new_public_document(&p, author, organization_name, state, now_ms)?;
        Some(Published { id, document })
    } else {
        None
    };
    let (action, state) = match &republished {
        Some(_) => ("republish", state),
        None => ("withdraw", ReviewState::Draft),
    };
    record_publication(
        internal,
        author,
        action,
        comment,
        state,
        republished.as_ref().map(|p| p.id),
        now_ms,
    )?;
    Ok(republished)
}

/// The field errors of a document that claims to be a public practice of the organization
/// called `organization_name`.
pub fn validate_public(doc: &Automerge, organization_name: Option<&str>) -> Vec<FieldError> {
    match Practice::load(doc) {
        Ok(p) => {
            let mut errors = check_practice(&p);
            errors.extend(check_public(&p, organization_name));
            errors
        }
        Err(e) => vec![FieldError::new("document", e.to_string())],
    }
}

#[cfg(test)]
mod tests;
