//! A good practice, as a document: the same shape for the internal practice (its drafts,
//! every field, review) and the public practice made from it (see
//! [`super::publication`]); the document's `type` tells them apart.

use std::collections::BTreeMap;

use automerge::Automerge;
use autosurgeon::{hydrate, reconcile, Hydrate, Reconcile, Text};

use super::review::{self, ReviewAction, ReviewState};
use super::text_edit;
use super::validation::{self, FieldError};
use super::{commit_options, Author, DocumentKind, ModelError, TagSet, SCHEMA_VERSION};

fn practice_type() -> String {
    DocumentKind::Practice.type_name().to_owned()
}

fn internal_practice_type() -> String {
    DocumentKind::InternalPractice.type_name().to_owned()
}

fn draft() -> String {
    ReviewState::Draft.key().to_owned()
}

fn english() -> String {
    "en".to_owned()
}

fn current_schema() -> u64 {
    SCHEMA_VERSION
}

#[derive(Debug, Clone, Default, PartialEq, Reconcile, Hydrate)]
pub struct Coordinates {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Contact {
    #[autosurgeon(missing = "Default::default")]
    pub name: String,
    #[autosurgeon(missing = "Default::default")]
    pub role: String,
    #[autosurgeon(missing = "Default::default")]
    pub email: String,
    #[autosurgeon(missing = "Default::default")]
    pub phone: String,
    /// The contact agreed to be shown publicly. Without it, only the home organization
    /// sees the contact details.
    #[autosurgeon(missing = "Default::default")]
    pub consent: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Resource {
    pub title: String,
    pub url: String,
}

/// A translation of the practice's texts into another language.
#[derive(Debug, Clone, Default, Reconcile, Hydrate)]
pub struct Translation {
    #[autosurgeon(missing = "Default::default")]
    pub title: Text,
    #[autosurgeon(missing = "Default::default")]
    pub summary: Text,
    #[autosurgeon(missing = "Default::default")]
    pub context: Text,
    #[autosurgeon(missing = "Default::default")]
    pub process: Text,
    #[autosurgeon(missing = "Default::default")]
    pub outcomes: Text,
    #[autosurgeon(missing = "Default::default")]
    pub transferability: Text,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Provenance {
    /// The id of the organization whose node is this practice's home.
    #[autosurgeon(missing = "Default::default")]
    pub home_organization: String,
    #[autosurgeon(missing = "Default::default")]
    pub created_by: String,
    /// Milliseconds since the Unix epoch.
    #[autosurgeon(missing = "Default::default")]
    pub created_at: i64,
    #[autosurgeon(missing = "Default::default")]
    pub updated_by: String,
    #[autosurgeon(missing = "Default::default")]
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Reconcile, Hydrate)]
pub struct ReviewComment {
    pub author: String,
    pub at: i64,
    /// The move this comment came with ("comment", "submit", "publish", "send-back", …).
    pub action: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Review {
    #[autosurgeon(missing = "draft")]
    pub state: String,
    #[autosurgeon(missing = "Default::default")]
    pub comments: Vec<ReviewComment>,
}

impl Default for Review {
    fn default() -> Self {
        Self {
            state: draft(),
            comments: Vec::new(),
        }
    }
}

/// A good practice of migrant integration.
#[derive(Debug, Clone, Reconcile, Hydrate)]
pub struct Practice {
    #[autosurgeon(rename = "type", missing = "practice_type")]
    pub kind: String,
    #[autosurgeon(missing = "current_schema")]
    pub schema: u64,
    #[autosurgeon(missing = "Default::default")]
    pub title: Text,
    #[autosurgeon(missing = "Default::default")]
    pub summary: Text,
    /// The context: the situation the practice responds to.
    #[autosurgeon(missing = "Default::default")]
    pub context: Text,
    /// The process and activities.
    #[autosurgeon(missing = "Default::default")]
    pub process: Text,
    #[autosurgeon(missing = "Default::default")]
    pub outcomes: Text,
    /// What another city needs to replicate it.
    #[autosurgeon(missing = "Default::default")]
    pub transferability: Text,
    #[autosurgeon(missing = "Default::default")]
    pub funding: Text,
    #[autosurgeon(missing = "Default::default")]
    pub city: String,
    /// ISO 3166-1 alpha-2.
    #[autosurgeon(missing = "Default::default")]
    pub country: String,
    #[autosurgeon(missing = "Default::default")]
    pub coordinates: Option<Coordinates>,
    #[autosurgeon(missing = "Default::default")]
    pub lead_organization: String,
    #[autosurgeon(missing = "Default::default")]
    pub partners: Vec<String>,
    #[autosurgeon(missing = "Default::default")]
    pub themes: TagSet,
    /// Global Compact for Migration objectives, "1" to "23".
    #[autosurgeon(missing = "Default::default")]
    pub gcm_objectives: TagSet,
    /// Sustainable Development Goals, "1" to "17".
    #[autosurgeon(missing = "Default::default")]
    pub sdg_goals: TagSet,
    #[autosurgeon(missing = "Default::default")]
    pub target_groups: TagSet,
    #[autosurgeon(missing = "Default::default")]
    pub actor_level: String,
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`; empty when unknown.
    #[autosurgeon(missing = "Default::default")]
    pub start_date: String,
    #[autosurgeon(missing = "Default::default")]
    pub end_date: String,
    #[autosurgeon(missing = "Default::default")]
    pub evidence_level: String,
    /// URLs (`automerge:…`) of practices elsewhere that replicated this one.
    #[autosurgeon(missing = "Default::default")]
    pub replicated_by: Vec<String>,
    #[autosurgeon(missing = "Default::default")]
    pub contact: Contact,
    #[autosurgeon(missing = "Default::default")]
    pub resources: Vec<Resource>,
    /// The language the record is written in (ISO 639-1).
    #[autosurgeon(missing = "english")]
    pub language: String,
    /// Translations by language code.
    #[autosurgeon(missing = "Default::default")]
    pub translations: BTreeMap<String, Translation>,
    #[autosurgeon(missing = "Default::default")]
    pub provenance: Provenance,
    #[autosurgeon(missing = "Default::default")]
    pub review: Review,
    /// In an internal practice, the `automerge:` URL of its public practice once it is
    /// published. Always empty in a public practice: nothing public points home.
    #[autosurgeon(missing = "Default::default")]
    pub public: String,
}

/// One change a person makes to a practice.
#[derive(Debug, Clone, PartialEq)]
pub enum PracticeEdit {
    /// Typing in a text field: `base` is the value the person saw, `new` what it became.
    /// `translation` names the language when editing a translation.
    Text {
        field: TextField,
        translation: Option<String>,
        base: String,
        new: String,
    },
    Scalar {
        field: ScalarField,
        value: String,
    },
    Tag {
        field: TagField,
        key: String,
        on: bool,
    },
    Coordinates(Option<Coordinates>),
    Partners(Vec<String>),
    Resources(Vec<Resource>),
    Contact(Contact),
    ReplicatedBy {
        url: String,
        on: bool,
    },
    Review {
        action: ReviewAction,
        comment: String,
    },
}

impl PracticeEdit {
    /// How the edit reads in the practice's history.
    pub fn describe(&self) -> String {
        match self {
            PracticeEdit::Text {
                field,
                translation: None,
                ..
            } => format!("edited {}", field.key()),
            PracticeEdit::Text {
                field,
                translation: Some(lang),
                ..
            } => format!("edited {} ({lang})", field.key()),
            PracticeEdit::Scalar { field, .. } => format!("set {}", field.key()),
            PracticeEdit::Tag { field, key, on } => {
                format!(
                    "{} {key} {} {}",
                    if *on { "added" } else { "removed" },
                    if *on { "to" } else { "from" },
                    field.key()
                )
            }
            PracticeEdit::Coordinates(_) => "set coordinates".into(),
            PracticeEdit::Partners(_) => "edited partners".into(),
            PracticeEdit::Resources(_) => "edited resources".into(),
            PracticeEdit::Contact(_) => "edited contact".into(),
            PracticeEdit::ReplicatedBy { .. } => "edited replications".into(),
            PracticeEdit::Review { action, .. } => match action {
                ReviewAction::Submit => "submitted for review".into(),
                ReviewAction::Publish => "published".into(),
                ReviewAction::SendBack => "sent back".into(),
                ReviewAction::Archive => "archived".into(),
                ReviewAction::Restore => "restored".into(),
                ReviewAction::Comment => "commented".into(),
            },
        }
    }
}

impl Practice {
    /// A new draft: an internal practice.
    pub fn new(title: &str, city: &str, country: &str, author: &Author, now_ms: i64) -> Self {
        Self {
            kind: internal_practice_type(),
            schema: SCHEMA_VERSION,
            title: Text::with_value(title),
            summary: Text::default(),
            context: Text::default(),
            process: Text::default(),
            outcomes: Text::default(),
            transferability: Text::default(),
            funding: Text::default(),
            city: city.to_owned(),
            country: country.to_ascii_uppercase(),
            coordinates: None,
            lead_organization: String::new(),
            partners: Vec::new(),
            themes: TagSet::new(),
            gcm_objectives: TagSet::new(),
            sdg_goals: TagSet::new(),
            target_groups: TagSet::new(),
            actor_level: String::new(),
            start_date: String::new(),
            end_date: String::new(),
            evidence_level: String::new(),
            replicated_by: Vec::new(),
            contact: Contact::default(),
            resources: Vec::new(),
            language: english(),
            translations: BTreeMap::new(),
            provenance: Provenance {
                home_organization: author.organization.clone(),
                created_by: author.name.clone(),
                created_at: now_ms,
                updated_by: author.name.clone(),
                updated_at: now_ms,
            },
            review: Review::default(),
            public: String::new(),
        }
    }

    pub fn state(&self) -> ReviewState {
        ReviewState::from_key(&self.review.state).unwrap_or_default()
    }

    /// Reads a practice, public or internal, from its document.
    pub fn load(doc: &Automerge) -> Result<Self, ModelError> {
        let practice: Practice = hydrate(doc)?;
        if practice.kind != practice_type() && practice.kind != internal_practice_type() {
            return Err(ModelError::Shape(format!(
                "expected an ibis/practice or ibis/internal-practice document, found `{}`",
                practice.kind
            )));
        }
        Ok(practice)
    }

    /// True for an internal practice (drafts, private fields; never leaves its node).
    pub fn is_internal(&self) -> bool {
        self.kind == internal_practice_type()
    }

    /// The public practice's id, once an internal practice is published.
    pub fn public_id(&self) -> Option<crate::DocumentId> {
        crate::AutomergeUrl::parse(&self.public)
            .ok()
            .map(|url| url.document_id)
    }

    /// A new document holding this practice. Refused if the practice is not valid.
    pub fn create(&self, author: &Author, now_ms: i64) -> Result<Automerge, ModelError> {
        let errors = validation::check_practice(self);
        if !errors.is_empty() {
            return Err(ModelError::Invalid(errors));
        }
        let mut doc = Automerge::new();
        doc.transact_with::<_, _, ModelError, _>(
            |_| commit_options(author, "created", now_ms),
            |tx| Ok(reconcile(tx, self)?),
        )
        .map_err(|f| f.error)?;
        Ok(doc)
    }
}

/// Applies one edit as one change, recording who made it. Refused (and nothing written) if
/// the result would not be valid or the author's role does not allow it.
pub fn apply_edit(
    doc: &mut Automerge,
    edit: &PracticeEdit,
    author: &Author,
    now_ms: i64,
) -> Result<(), ModelError> {
    doc.transact_with::<_, _, ModelError, _>(
        |_| commit_options(author, &edit.describe(), now_ms),
        |tx| {
            let mut p: Practice = hydrate(tx)?;
            edit_practice(&mut p, edit, author, now_ms)?;
            p.provenance.updated_by = author.name.clone();
            p.provenance.updated_at = now_ms;
            let errors = validation::check_practice(&p);
            if !errors.is_empty() {
                return Err(ModelError::Invalid(errors));
            }
            Ok(reconcile(tx, &p)?)
        },
    )
    .map(|_| ())
    .map_err(|f| f.error)
}

fn edit_practice(
    p: &mut Practice,
    edit: &PracticeEdit,
    author: &Author,
    now_ms: i64,
) -> Result<(), ModelError> {
    match edit {
        PracticeEdit::Text {
            field,
            translation,
            base,
            new,
        } => {
            let Some(splice) = text_edit::diff(base, new) else {
                return Ok(());
            };
            let text = match translation {
                None => field.of_mut(p),
                Some(lang) => {
                    let translation = p.translations.entry(lang.clone()).or_default();
                    field.of_translation(translation).ok_or_else(|| {
                        ModelError::Forbidden(format!("{} is not translated", field.key()))
                    })?
                }
            };
            let splice = if text.as_str() == base {
                splice
            } else {
                text_edit::rebase(&splice, base, text.as_str())
            };
            splice.apply_to(text);
        }
        PracticeEdit::Scalar { field, value } => {
            let value = if *field == ScalarField::Country {
                value.trim().to_ascii_uppercase()
            } else {
                value.trim().to_owned()
            };
            *field.of_mut(p) = value;
        }
        PracticeEdit::Tag { field, key, on } => {
            let set = field.of_mut(p);
            if *on {
                set.insert(key.clone());
            } else {
                set.remove(key);
            }
        }
        PracticeEdit::Coordinates(c) => p.coordinates = c.clone(),
        PracticeEdit::Partners(list) => p.partners = list.clone(),
        PracticeEdit::Resources(list) => p.resources = list.clone(),
        // A public practice shows a contact only with consent.
        PracticeEdit::Contact(c) if !p.is_internal() && !c.consent => {
            p.contact = Contact::default()
        }
        PracticeEdit::Contact(c) => p.contact = c.clone(),
        PracticeEdit::ReplicatedBy { url, on } => {
            p.replicated_by.retain(|u| u != url);
            if *on {
                p.replicated_by.push(url.clone());
            }
        }
        PracticeEdit::Review { action, comment } => {
            if p.is_internal() && *action == ReviewAction::Publish {
                return Err(ModelError::Forbidden(
                    "a practice is published by making its public practice (publication::publish)"
                        .into(),
                ));
            }
            if !p.is_internal() && *action == ReviewAction::Comment {
                return Err(ModelError::Forbidden(
                    "review comments go in the internal practice".into(),
                ));
            }
            let next = review::transition(p.state(), *action, author.role, comment)
                .map_err(|e| ModelError::Forbidden(e.to_string()))?;
            if matches!(next, ReviewState::Submitted | ReviewState::Published) {
                let missing = validation::check_complete(p);
                if !missing.is_empty() {
                    return Err(ModelError::Invalid(missing));
                }
            }
            p.review.state = next.key().to_owned();
            // A public practice records the move (archived, restored), not who said what.
            if !p.is_internal() {
                return Ok(());
            }
            p.review.comments.push(ReviewComment {
                author: author.name.clone(),
                at: now_ms,
                action: action.key().to_owned(),
                text: comment.trim().to_owned(),
            });
        }
    }
    Ok(())
}

/// The validation errors of a document that claims to be a practice (shape errors included).
pub fn validate_document(doc: &Automerge) -> Vec<FieldError> {
    match Practice::load(doc) {
        Ok(p) => validation::check_practice(&p),
        Err(e) => vec![FieldError::new("document", e.to_string())],
    }
}

mod fields;
#[cfg(test)]
mod tests;

pub use fields::{ScalarField, TagField, TextField};
