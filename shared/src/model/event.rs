//! Events: webinars, roundtables, city-to-city exchanges and study visits, linked to the
//! practices they discuss. Each is its own document, listed in its organizer's catalogue.

use automerge::Automerge;
use autosurgeon::{hydrate, reconcile, Hydrate, Reconcile, Text};

use super::validation::{is_partial_date, is_url, FieldError, MAX_SHORT_CHARS, MAX_TEXT_CHARS};
use super::{commit_options, taxonomy, Author, DocumentKind, ModelError, TagSet, SCHEMA_VERSION};
use crate::DocumentId;

fn event_type() -> String {
    DocumentKind::Event.type_name().to_owned()
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
pub struct Event {
    #[autosurgeon(rename = "type", missing = "event_type")]
    pub kind: String,
    #[autosurgeon(missing = "Default::default")]
    pub schema: u64,
    #[autosurgeon(missing = "Default::default")]
    pub title: Text,
    /// A key of [`taxonomy::EVENT_KINDS`].
    #[autosurgeon(missing = "Default::default")]
    pub event_kind: String,
    /// `YYYY-MM-DD`.
    #[autosurgeon(missing = "Default::default")]
    pub date: String,
    /// A physical place ("UN Headquarters, New York"), if any.
    #[autosurgeon(missing = "Default::default")]
    pub place: String,
    /// An online link, if any.
    #[autosurgeon(missing = "Default::default")]
    pub online_link: String,
    #[autosurgeon(missing = "Default::default")]
    pub organizers: Vec<String>,
    /// Where to watch it afterwards.
    #[autosurgeon(missing = "Default::default")]
    pub recording: String,
    #[autosurgeon(missing = "Default::default")]
    pub description: Text,
    /// Practice document ids discussed at the event.
    #[autosurgeon(missing = "Default::default")]
    pub related_practices: TagSet,
    /// The organization whose node is the event's home.
    #[autosurgeon(missing = "Default::default")]
    pub home_organization: String,
}

impl Event {
    pub fn new(title: &str, event_kind: &str, date: &str, author: &Author) -> Self {
        Self {
            kind: event_type(),
            schema: SCHEMA_VERSION,
            title: Text::with_value(title),
            event_kind: event_kind.to_owned(),
            date: date.to_owned(),
            place: String::new(),
            online_link: String::new(),
            organizers: Vec::new(),
            recording: String::new(),
            description: Text::default(),
            related_practices: TagSet::new(),
            home_organization: author.organization.clone(),
        }
    }

    pub fn load(doc: &Automerge) -> Result<Self, ModelError> {
        let event: Event = hydrate(doc)?;
        if event.kind != event_type() {
            return Err(ModelError::Shape(format!(
                "expected an ibis/event document, found `{}`",
                event.kind
            )));
        }
        Ok(event)
    }

    pub fn related_ids(&self) -> impl Iterator<Item = DocumentId> + '_ {
        self.related_practices
            .iter()
            .filter_map(|s| DocumentId::parse(s).ok())
    }

    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let title = self.title.as_str();
        if title.trim().is_empty() {
            errors.push(FieldError::new("title", "is required"));
        }
        if title.chars().count() > MAX_SHORT_CHARS * 2 {
            errors.push(FieldError::new("title", "is too long"));
        }
        if self.description.as_str().chars().count() > MAX_TEXT_CHARS {
            errors.push(FieldError::new("description", "is too long"));
        }
        if taxonomy::find(taxonomy::EVENT_KINDS, &self.event_kind).is_none() {
            errors.push(FieldError::new("event_kind", "choose a kind of event"));
        }
        if !is_partial_date(&self.date) || self.date.len() != 10 {
            errors.push(FieldError::new("date", "must be a date (YYYY-MM-DD)"));
        }
        for (field, value) in [
            ("online_link", &self.online_link),
            ("recording", &self.recording),
        ] {
            if !value.is_empty() && !is_url(value) {
                errors.push(FieldError::new(field, "must be an http(s) address"));
            }
        }
        if self.place.chars().count() > MAX_SHORT_CHARS {
            errors.push(FieldError::new("place", "is too long"));
        }
        for id in self.related_practices.iter() {
            if DocumentId::parse(id).is_err() {
                errors.push(FieldError::new(
                    "related_practices",
                    format!("`{id}` is not a document id"),
                ));
            }
        }
        errors
    }

    /// A new document holding this event.
    pub fn create(&self, author: &Author, now_ms: i64) -> Result<Automerge, ModelError> {
        let errors = self.validate();
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
