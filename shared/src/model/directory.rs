//! The network directory: one document listing the member organizations, where their nodes
//! are and which document is each one's catalogue. Every node holds it; each organization
//! edits its own entry.

use std::collections::BTreeMap;

use automerge::Automerge;
use autosurgeon::{hydrate, reconcile, Hydrate, Reconcile};

use super::validation::{is_url, FieldError, MAX_SHORT_CHARS, MAX_URL_CHARS};
use super::{commit_options, countries, genesis, taxonomy, Author, DocumentKind, ModelError};
use crate::DocumentId;

#[derive(Debug, Clone, Default, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Organization {
    pub name: String,
    /// A key of [`taxonomy::ORGANIZATION_KINDS`].
    #[autosurgeon(missing = "Default::default")]
    pub kind: String,
    #[autosurgeon(missing = "Default::default")]
    pub city: String,
    #[autosurgeon(missing = "Default::default")]
    pub country: String,
    #[autosurgeon(missing = "Default::default")]
    pub website: String,
    /// Where its node serves the app (`https://ibis.example.org/`).
    #[autosurgeon(missing = "Default::default")]
    pub node_url: String,
    /// The document id of its published catalogue.
    #[autosurgeon(missing = "Default::default")]
    pub catalogue: String,
}

impl Organization {
    pub fn catalogue_id(&self) -> Option<DocumentId> {
        DocumentId::parse(&self.catalogue).ok()
    }

    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push(FieldError::new("name", "is required"));
        }
        for (field, value) in [("name", &self.name), ("city", &self.city)] {
            if value.chars().count() > MAX_SHORT_CHARS {
                errors.push(FieldError::new(field, "is too long"));
            }
        }
        if !self.kind.is_empty()
            && taxonomy::find(taxonomy::ORGANIZATION_KINDS, &self.kind).is_none()
        {
            errors.push(FieldError::new(
                "kind",
                format!("`{}` is not a known kind", self.kind),
            ));
        }
        if !self.country.is_empty() && countries::country_name(&self.country).is_none() {
            errors.push(FieldError::new(
                "country",
                "is not an ISO 3166 country code",
            ));
        }
        for (field, value) in [("website", &self.website), ("node_url", &self.node_url)] {
            if !value.is_empty() && (!is_url(value) || value.len() > MAX_URL_CHARS) {
                errors.push(FieldError::new(field, "must be an http(s) address"));
            }
        }
        if !self.catalogue.is_empty() && self.catalogue_id().is_none() {
            errors.push(FieldError::new("catalogue", "is not a document id"));
        }
        errors
    }
}

#[derive(Debug, Clone, Default, PartialEq, Reconcile, Hydrate)]
pub struct Directory {
    #[autosurgeon(rename = "type")]
    pub kind: String,
    pub schema: u64,
    #[autosurgeon(missing = "Default::default")]
    pub name: String,
    /// Member organizations by organization id.
    #[autosurgeon(missing = "Default::default")]
    pub organizations: BTreeMap<String, Organization>,
}

impl Directory {
    pub fn load(doc: &Automerge) -> Result<Self, ModelError> {
        let directory: Directory = hydrate(doc)?;
        if directory.kind != DocumentKind::Directory.type_name() {
            return Err(ModelError::Shape(format!(
                "expected an ibis/directory document, found `{}`",
                directory.kind
            )));
        }
        Ok(directory)
    }
}

/// The directory of a new network. Any replica creating the directory for the same
/// document id writes the same first change, so replicas that start apart merge cleanly.
pub fn new_directory(id: DocumentId) -> Result<Automerge, ModelError> {
    genesis(
        id.as_bytes(),
        &Directory {
            kind: DocumentKind::Directory.type_name().to_owned(),
            schema: super::SCHEMA_VERSION,
            name: String::new(),
            organizations: BTreeMap::new(),
        },
    )
}

/// Adds or updates an organization's entry (each organization edits only its own).
pub fn register(
    doc: &mut Automerge,
    organization_id: &str,
    organization: &Organization,
    author: &Author,
    now_ms: i64,
) -> Result<(), ModelError> {
    let errors = organization.validate();
    if !errors.is_empty() {
        return Err(ModelError::Invalid(errors));
    }
    doc.transact_with::<_, _, ModelError, _>(
        |_| commit_options(author, &format!("updated {}", organization.name), now_ms),
        |tx| {
            let mut directory: Directory = hydrate(tx)?;
            directory
                .organizations
                .insert(organization_id.to_owned(), organization.clone());
            Ok(reconcile(tx, &directory)?)
        },
    )
    .map(|_| ())
    .map_err(|f| f.error)
}

/// Sets the network's name.
pub fn set_name(
    doc: &mut Automerge,
    name: &str,
    author: &Author,
    now_ms: i64,
) -> Result<(), ModelError> {
    doc.transact_with::<_, _, ModelError, _>(
        |_| commit_options(author, "renamed the network", now_ms),
        |tx| {
            let mut directory: Directory = hydrate(tx)?;
            directory.name = name.to_owned();
            Ok(reconcile(tx, &directory)?)
        },
    )
    .map(|_| ())
    .map_err(|f| f.error)
}
