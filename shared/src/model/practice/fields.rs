//! The fields of a practice, by kind: texts written together, single values, tag sets.

use autosurgeon::Text;

use super::{Practice, Translation};
use crate::model::TagSet;

/// The texts of a practice that people write together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextField {
    Title,
    Summary,
    Context,
    Process,
    Outcomes,
    Transferability,
    Funding,
}

impl TextField {
    pub const ALL: [TextField; 7] = [
        TextField::Title,
        TextField::Summary,
        TextField::Context,
        TextField::Process,
        TextField::Outcomes,
        TextField::Transferability,
        TextField::Funding,
    ];

    pub fn key(self) -> &'static str {
        match self {
            TextField::Title => "title",
            TextField::Summary => "summary",
            TextField::Context => "context",
            TextField::Process => "process",
            TextField::Outcomes => "outcomes",
            TextField::Transferability => "transferability",
            TextField::Funding => "funding",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }

    /// Whether translations carry this field.
    pub fn translatable(self) -> bool {
        !matches!(self, TextField::Funding)
    }

    pub fn of(self, p: &Practice) -> &Text {
        match self {
            TextField::Title => &p.title,
            TextField::Summary => &p.summary,
            TextField::Context => &p.context,
            TextField::Process => &p.process,
            TextField::Outcomes => &p.outcomes,
            TextField::Transferability => &p.transferability,
            TextField::Funding => &p.funding,
        }
    }

    pub(crate) fn of_mut(self, p: &mut Practice) -> &mut Text {
        match self {
            TextField::Title => &mut p.title,
            TextField::Summary => &mut p.summary,
            TextField::Context => &mut p.context,
            TextField::Process => &mut p.process,
            TextField::Outcomes => &mut p.outcomes,
            TextField::Transferability => &mut p.transferability,
            TextField::Funding => &mut p.funding,
        }
    }

    /// The field in a translation (funding is not translated).
    pub fn in_translation(self, t: &Translation) -> Option<&Text> {
        Some(match self {
            TextField::Title => &t.title,
            TextField::Summary => &t.summary,
            TextField::Context => &t.context,
            TextField::Process => &t.process,
            TextField::Outcomes => &t.outcomes,
            TextField::Transferability => &t.transferability,
            TextField::Funding => return None,
        })
    }

    pub(crate) fn of_translation(self, t: &mut Translation) -> Option<&mut Text> {
        Some(match self {
            TextField::Title => &mut t.title,
            TextField::Summary => &mut t.summary,
            TextField::Context => &mut t.context,
            TextField::Process => &mut t.process,
            TextField::Outcomes => &mut t.outcomes,
            TextField::Transferability => &mut t.transferability,
            TextField::Funding => return None,
        })
    }
}

/// Single-valued fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarField {
    City,
    Country,
    LeadOrganization,
    ActorLevel,
    StartDate,
    EndDate,
    EvidenceLevel,
    Language,
}

impl ScalarField {
    pub const ALL: [ScalarField; 8] = [
        ScalarField::City,
        ScalarField::Country,
        ScalarField::LeadOrganization,
        ScalarField::ActorLevel,
        ScalarField::StartDate,
        ScalarField::EndDate,
        ScalarField::EvidenceLevel,
        ScalarField::Language,
    ];

    pub fn key(self) -> &'static str {
        match self {
            ScalarField::City => "city",
            ScalarField::Country => "country",
            ScalarField::LeadOrganization => "lead_organization",
            ScalarField::ActorLevel => "actor_level",
            ScalarField::StartDate => "start_date",
            ScalarField::EndDate => "end_date",
            ScalarField::EvidenceLevel => "evidence_level",
            ScalarField::Language => "language",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }

    pub fn of(self, p: &Practice) -> &str {
        match self {
            ScalarField::City => &p.city,
            ScalarField::Country => &p.country,
            ScalarField::LeadOrganization => &p.lead_organization,
            ScalarField::ActorLevel => &p.actor_level,
            ScalarField::StartDate => &p.start_date,
            ScalarField::EndDate => &p.end_date,
            ScalarField::EvidenceLevel => &p.evidence_level,
            ScalarField::Language => &p.language,
        }
    }

    pub(super) fn of_mut(self, p: &mut Practice) -> &mut String {
        match self {
            ScalarField::City => &mut p.city,
            ScalarField::Country => &mut p.country,
            ScalarField::LeadOrganization => &mut p.lead_organization,
            ScalarField::ActorLevel => &mut p.actor_level,
            ScalarField::StartDate => &mut p.start_date,
            ScalarField::EndDate => &mut p.end_date,
            ScalarField::EvidenceLevel => &mut p.evidence_level,
            ScalarField::Language => &mut p.language,
        }
    }
}

/// Multi-valued tag fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagField {
    Themes,
    GcmObjectives,
    SdgGoals,
    TargetGroups,
}

impl TagField {
    pub const ALL: [TagField; 4] = [
        TagField::Themes,
        TagField::GcmObjectives,
        TagField::SdgGoals,
        TagField::TargetGroups,
    ];

    pub fn key(self) -> &'static str {
        match self {
            TagField::Themes => "themes",
            TagField::GcmObjectives => "gcm_objectives",
            TagField::SdgGoals => "sdg_goals",
            TagField::TargetGroups => "target_groups",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }

    pub fn of(self, p: &Practice) -> &TagSet {
        match self {
            TagField::Themes => &p.themes,
            TagField::GcmObjectives => &p.gcm_objectives,
            TagField::SdgGoals => &p.sdg_goals,
            TagField::TargetGroups => &p.target_groups,
        }
    }

    pub(super) fn of_mut(self, p: &mut Practice) -> &mut TagSet {
        match self {
            TagField::Themes => &mut p.themes,
            TagField::GcmObjectives => &mut p.gcm_objectives,
            TagField::SdgGoals => &mut p.sdg_goals,
            TagField::TargetGroups => &mut p.target_groups,
        }
    }
}
