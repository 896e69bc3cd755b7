//! A practice as a flat record: the one format for JSON and CSV import and export, the
//! node's HTTP API and the app's downloads.

use serde::{Deserialize, Serialize};

use super::practice::{Contact, Coordinates, Practice, Resource};
use super::review::ReviewState;
use super::validation::{self, FieldError};
use super::{Author, TagSet};
use crate::DocumentId;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PracticeRecord {
    /// `automerge:<id>`; absent for records being imported as new practices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub title: String,
    pub summary: String,
    pub context: String,
    pub process: String,
    pub outcomes: String,
    pub transferability: String,
    pub funding: String,
    pub city: String,
    pub country: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    pub lead_organization: String,
    pub partners: Vec<String>,
    pub themes: Vec<String>,
    pub gcm_objectives: Vec<u8>,
    pub sdg_goals: Vec<u8>,
    pub target_groups: Vec<String>,
    pub actor_level: String,
    pub start_date: String,
    pub end_date: String,
    pub evidence_level: String,
    pub replicated_by: Vec<String>,
    pub contact_name: String,
    pub contact_role: String,
    pub contact_email: String,
    pub contact_phone: String,
    pub contact_consent: bool,
    pub resources: Vec<RecordLink>,
    pub language: String,
    pub review_state: String,
    pub home_organization: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_by: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordLink {
    pub title: String,
    pub url: String,
}

impl PracticeRecord {
    /// The record of a practice. Contact details are left out unless the contact consented
    /// to be shown or `include_private_contact` is set (the home organization's own export).
    pub fn from_practice(
        id: Option<DocumentId>,
        p: &Practice,
        include_private_contact: bool,
    ) -> Self {
        let show_contact = p.contact.consent || include_private_contact;
        let contact = if show_contact {
            p.contact.clone()
        } else {
            Contact::default()
        };
        let numbers = |set: &TagSet| {
            let mut v: Vec<u8> = set.iter().filter_map(|k| k.parse().ok()).collect();
            v.sort_unstable();
            v
        };
        Self {
            id: id.map(|id| id.url()),
            title: p.title.as_str().to_owned(),
            summary: p.summary.as_str().to_owned(),
            context: p.context.as_str().to_owned(),
            process: p.process.as_str().to_owned(),
            outcomes: p.outcomes.as_str().to_owned(),
            transferability: p.transferability.as_str().to_owned(),
            funding: p.funding.as_str().to_owned(),
            city: p.city.clone(),
            country: p.country.clone(),
            latitude: p.coordinates.as_ref().map(|c| c.lat),
            longitude: p.coordinates.as_ref().map(|c| c.lon),
            lead_organization: p.lead_organization.clone(),
            partners: p.partners.clone(),
            themes: p.themes.iter().map(str::to_owned).collect(),
            gcm_objectives: numbers(&p.gcm_objectives),
            sdg_goals: numbers(&p.sdg_goals),
            target_groups: p.target_groups.iter().map(str::to_owned).collect(),
            actor_level: p.actor_level.clone(),
            start_date: p.start_date.clone(),
            end_date: p.end_date.clone(),
            evidence_level: p.evidence_level.clone(),
            replicated_by: p.replicated_by.clone(),
            contact_name: contact.name,
            contact_role: contact.role,
            contact_email: contact.email,
            contact_phone: contact.phone,
            contact_consent: p.contact.consent,
            resources: p
                .resources
                .iter()
                .map(|r| RecordLink {
                    title: r.title.clone(),
                    url: r.url.clone(),
                })
                .collect(),
            language: p.language.clone(),
            review_state: p.review.state.clone(),
            home_organization: p.provenance.home_organization.clone(),
            created_by: p.provenance.created_by.clone(),
            created_at: p.provenance.created_at,
            updated_by: p.provenance.updated_by.clone(),
            updated_at: p.provenance.updated_at,
        }
    }

    /// A new practice from an imported record. Provenance names the importer; the review
    /// state is taken from the record when it is valid (an importing admin vouches for it),
    /// otherwise draft. Field errors name what to fix.
    pub fn to_practice(&self, author: &Author, now_ms: i64) -> Result<Practice, Vec<FieldError>> {
        let mut p = Practice::new(&self.title, &self.city, &self.country, author, now_ms);
        p.summary = self.summary.as_str().into();
        p.context = self.context.as_str().into();
        p.process = self.process.as_str().into();
        p.outcomes = self.outcomes.as_str().into();
        p.transferability = self.transferability.as_str().into();
        p.funding = self.funding.as_str().into();
        p.coordinates = match (self.latitude, self.longitude) {
            (Some(lat), Some(lon)) => Some(Coordinates { lat, lon }),
            (None, None) => None,
            _ => {
                return Err(vec![FieldError::new(
                    "latitude",
                    "latitude and longitude go together",
                )])
            }
        };
        p.lead_organization = self.lead_organization.clone();
        p.partners = self.partners.clone();
        p.themes = self.themes.iter().cloned().collect();
        p.gcm_objectives = self.gcm_objectives.iter().map(u8::to_string).collect();
        p.sdg_goals = self.sdg_goals.iter().map(u8::to_string).collect();
        p.target_groups = self.target_groups.iter().cloned().collect();
        p.actor_level = self.actor_level.clone();
        p.start_date = self.start_date.clone();
        p.end_date = self.end_date.clone();
        p.evidence_level = self.evidence_level.clone();
        p.replicated_by = self.replicated_by.clone();
        p.contact = Contact {
            name: self.contact_name.clone(),
            role: self.contact_role.clone(),
            email: self.contact_email.clone(),
            phone: self.contact_phone.clone(),
            consent: self.contact_consent,
        };
        p.resources = self
            .resources
            .iter()
            .map(|r| Resource {
                title: r.title.clone(),
                url: r.url.clone(),
            })
            .collect();
        if !self.language.is_empty() {
            p.language = self.language.clone();
        }
        let mut errors = validation::check_practice(&p);
        if !self.review_state.is_empty() {
            match ReviewState::from_key(&self.review_state) {
                Some(state) => {
                    if state != ReviewState::Draft {
                        errors.extend(validation::check_complete(&p));
                    }
                    p.review.state = state.key().to_owned();
                }
                None => errors.push(FieldError::new(
                    "review_state",
                    format!("`{}` is not a review state", self.review_state),
                )),
            }
        }
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }
}

/// The CSV columns, in order. Lists are joined with `; `.
pub const CSV_COLUMNS: [&str; 31] = [
    "id",
    "title",
    "summary",
    "city",
    "country",
    "latitude",
    "longitude",
    "lead_organization",
    "partners",
    "themes",
    "gcm_objectives",
    "sdg_goals",
    "target_groups",
    "actor_level",
    "start_date",
    "end_date",
    "evidence_level",
    "context",
    "process",
    "outcomes",
    "transferability",
    "funding",
    "contact_name",
    "contact_role",
    "contact_email",
    "contact_phone",
    "contact_consent",
    "resources",
    "language",
    "review_state",
    "home_organization",
];

const LIST_SEPARATOR: &str = "; ";

/// What a spreadsheet takes for the start of a formula in a cell (OWASP's list).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `-12.5`, `+3`, `7`: a number, which a spreadsheet reads as one and which cannot carry a
/// formula (coordinates west and south are negative).
fn is_plain_number(cell: &str) -> bool {
    let digits = cell.strip_prefix(['-', '+']).unwrap_or(cell);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `text`, after any apostrophes it starts with, starts like a formula.
fn formula_like(text: &str) -> bool {
    text.trim_start_matches('\'').starts_with(FORMULA_STARTS)
}

/// A cell a spreadsheet will show as text: one that starts like a formula gets a leading
/// `'` (so does one that already starts with apostrophes before such a start, so that
/// [`from_cell`] gives back exactly what was written). Numbers stay as they are.
fn to_cell(text: String) -> String {
    if formula_like(&text) && !is_plain_number(&text) {
        format!("'{text}")
    } else {
        text
    }
}

/// A cell's text without the `'` [`to_cell`] added (or a person typed to the same end).
fn from_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if formula_like(rest) => rest,
        _ => cell,
    }
}

impl PracticeRecord {
    /// The record's CSV fields, in [`CSV_COLUMNS`] order. A cell that a spreadsheet would
    /// take for a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return)
    /// starts with an added `'`, which [`from_csv_fields`](Self::from_csv_fields) removes.
    pub fn csv_fields(&self) -> Vec<String> {
        let join = |v: &[String]| v.join(LIST_SEPARATOR);
        let nums = |v: &[u8]| {
            v.iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(LIST_SEPARATOR)
        };
        let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        vec![
            self.id.clone().unwrap_or_default(),
            self.title.clone(),
            self.summary.clone(),
            self.city.clone(),
            self.country.clone(),
            opt(self.latitude),
            opt(self.longitude),
            self.lead_organization.clone(),
            join(&self.partners),
            join(&self.themes),
            nums(&self.gcm_objectives),
            nums(&self.sdg_goals),
            join(&self.target_groups),
            self.actor_level.clone(),
            self.start_date.clone(),
            self.end_date.clone(),
            self.evidence_level.clone(),
            self.context.clone(),
            self.process.clone(),
            self.outcomes.clone(),
            self.transferability.clone(),
            self.funding.clone(),
            self.contact_name.clone(),
            self.contact_role.clone(),
            self.contact_email.clone(),
            self.contact_phone.clone(),
            if self.contact_consent { "yes" } else { "no" }.to_owned(),
            self.resources
                .iter()
                .map(|r| format!("{} <{}>", r.title, r.url))
                .collect::<Vec<_>>()
                .join(LIST_SEPARATOR),
            self.language.clone(),
            self.review_state.clone(),
            self.home_organization.clone(),
        ]
        .into_iter()
        .map(to_cell)
        .collect()
    }

    /// A record from CSV fields keyed by column name (unknown columns are an error, missing
    /// ones are empty). The `'` that [`csv_fields`](Self::csv_fields) puts before text that
    /// starts like a formula is taken off.
    pub fn from_csv_fields(fields: &[(String, String)]) -> Result<Self, Vec<FieldError>> {
        let mut r = PracticeRecord::default();
        let mut errors = Vec::new();
        let list = |v: &str| -> Vec<String> {
            v.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        for (column, value) in fields {
            let value = from_cell(value.trim());
            let number = |field: &str| -> Result<Option<f64>, FieldError> {
                if value.is_empty() {
                    Ok(None)
                } else {
                    value
                        .parse()
                        .map(Some)
                        .map_err(|_| FieldError::new(field, "is not a number"))
                }
            };
            let numbers = |field: &str| -> Result<Vec<u8>, FieldError> {
                list(value)
                    .iter()
                    .map(|n| {
                        n.parse()
                            .map_err(|_| FieldError::new(field, format!("`{n}` is not a number")))
                    })
                    .collect()
            };
            let result: Result<(), FieldError> = (|| {
                match column.as_str() {
                    "id" => r.id = (!value.is_empty()).then(|| value.to_owned()),
                    "title" => r.title = value.to_owned(),
                    "summary" => r.summary = value.to_owned(),
                    "city" => r.city = value.to_owned(),
                    "country" => r.country = value.to_owned(),
                    "latitude" => r.latitude = number("latitude")?,
                    "longitude" => r.longitude = number("longitude")?,
                    "lead_organization" => r.lead_organization = value.to_owned(),
                    "partners" => r.partners = list(value),
                    "themes" => r.themes = list(value),
                    "gcm_objectives" => r.gcm_objectives = numbers("gcm_objectives")?,
                    "sdg_goals" => r.sdg_goals = numbers("sdg_goals")?,
                    "target_groups" => r.target_groups = list(value),
                    "actor_level" => r.actor_level = value.to_owned(),
                    "start_date" => r.start_date = value.to_owned(),
                    "end_date" => r.end_date = value.to_owned(),
                    "evidence_level" => r.evidence_level = value.to_owned(),
                    "context" => r.context = value.to_owned(),
                    "process" => r.process = value.to_owned(),
                    "outcomes" => r.outcomes = value.to_owned(),
                    "transferability" => r.transferability = value.to_owned(),
                    "funding" => r.funding = value.to_owned(),
                    "contact_name" => r.contact_name = value.to_owned(),
                    "contact_role" => r.contact_role = value.to_owned(),
                    "contact_email" => r.contact_email = value.to_owned(),
                    "contact_phone" => r.contact_phone = value.to_owned(),
                    "contact_consent" => {
                        r.contact_consent = match value.to_ascii_lowercase().as_str() {
                            "yes" | "true" | "1" => true,
                            "" | "no" | "false" | "0" => false,
                            _ => {
                                return Err(FieldError::new("contact_consent", "must be yes or no"))
                            }
                        }
                    }
                    "resources" => {
                        r.resources = list(value)
                            .into_iter()
                            .map(|item| match item.rsplit_once('<') {
                                Some((title, url)) => RecordLink {
                                    title: title.trim().to_owned(),
                                    url: url.trim_end_matches('>').trim().to_owned(),
                                },
                                None => RecordLink {
                                    title: String::new(),
                                    url: item,
                                },
                            })
                            .collect()
                    }
                    "language" => r.language = value.to_owned(),
                    "review_state" => r.review_state = value.to_owned(),
                    "home_organization" => r.home_organization = value.to_owned(),
                    other => {
                        return Err(FieldError::new(other, "is not a known column"));
                    }
                }
                Ok(())
            })();
            if let Err(e) = result {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(r)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    fn author() -> Author {
        Author {
            name: "Importer".into(),
            organization: "nlc".into(),
            role: Role::Admin,
        }
    }

    fn record() -> PracticeRecord {
        PracticeRecord {
            title: "NewCITYzen naturalization campaign".into(),
            summary: "Cities promote naturalization.".into(),
            city: "Washington".into(),
            country: "US".into(),
            themes: vec!["legal-status".into()],
            gcm_objectives: vec![16],
            contact_name: "Amanda".into(),
            contact_consent: false,
            resources: vec![RecordLink {
                title: "Guide".into(),
                url: "https://www.nlc.org/".into(),
            }],
            review_state: "published".into(),
            ..PracticeRecord::default()
        }
    }

    #[test]
    fn record_to_practice_and_back() {
        let p = record().to_practice(&author(), 5).unwrap();
        assert_eq!(p.state(), ReviewState::Published);
        let back = PracticeRecord::from_practice(None, &p, true);
        assert_eq!(back.title, record().title);
        assert_eq!(back.gcm_objectives, vec![16]);
        assert_eq!(back.contact_name, "Amanda");
        assert_eq!(back.home_organization, "nlc");
        // Without consent, contact details stay private.
        let public = PracticeRecord::from_practice(None, &p, false);
        assert_eq!(public.contact_name, "");
    }

    #[test]
    fn csv_round_trip() {
        let r = record();
        let fields: Vec<(String, String)> = CSV_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .zip(r.csv_fields())
            .collect();
        assert_eq!(PracticeRecord::from_csv_fields(&fields).unwrap(), r);
    }

    fn through_csv(r: &PracticeRecord) -> (Vec<String>, PracticeRecord) {
        let cells = r.csv_fields();
        let fields: Vec<(String, String)> = CSV_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .zip(cells.iter().cloned())
            .collect();
        (cells, PracticeRecord::from_csv_fields(&fields).unwrap())
    }

    #[test]
    fn formulas_leave_as_text_and_come_back_as_they_were() {
        let mut r = record();
        r.title = "=HYPERLINK(\"http://evil\",\"click\")".into();
        r.summary = "+cmd|' /C calc'!A0".into();
        r.context = "-2+3".into();
        r.process = "@SUM(A1:A9)".into();
        r.outcomes = "\tindented".into();
        r.funding = "\r=1".into();
        r.city = "'=already quoted".into();
        r.lead_organization = "''-two quotes".into();
        r.transferability = "'plain quote".into();
        r.partners = vec!["=evil".into(), "fine".into()];
        r.latitude = Some(-33.5);
        r.longitude = Some(-70.25);
        r.contact_phone = "+41 22 717 91 11".into();
        let (cells, back) = through_csv(&r);
        let cell = |name: &str| &cells[CSV_COLUMNS.iter().position(|c| *c == name).unwrap()];
        assert_eq!(cell("title"), "'=HYPERLINK(\"http://evil\",\"click\")");
        assert_eq!(cell("summary"), "'+cmd|' /C calc'!A0");
        assert_eq!(cell("context"), "'-2+3");
        assert_eq!(cell("process"), "'@SUM(A1:A9)");
        assert_eq!(cell("outcomes"), "'\tindented");
        assert_eq!(cell("funding"), "'\r=1");
        assert_eq!(cell("city"), "''=already quoted");
        assert_eq!(cell("lead_organization"), "'''-two quotes");
        assert_eq!(cell("transferability"), "'plain quote");
        assert_eq!(cell("partners"), "'=evil; fine");
        assert_eq!(cell("contact_phone"), "'+41 22 717 91 11");
        // A number cannot carry a formula; it stays a number.
        assert_eq!(cell("latitude"), "-33.5");
        assert_eq!(cell("longitude"), "-70.25");
        for c in &cells {
            assert!(!c.starts_with(['=', '+', '@', '\t', '\r']), "{c:?}");
            assert!(!c.starts_with('-') || c.parse::<f64>().is_ok(), "{c:?}");
        }
        assert_eq!(back, r, "export, then import, gives the record back");
        // A quote someone typed before a formula in their own spreadsheet is taken off too.
        let imported = PracticeRecord::from_csv_fields(&[
            ("title".into(), "'=1+1".into()),
            ("latitude".into(), "'-12.5".into()),
        ])
        .unwrap();
        assert_eq!(imported.title, "=1+1");
        assert_eq!(imported.latitude, Some(-12.5));
    }

    #[test]
    fn bad_records_name_their_fields() {
        let mut r = record();
        r.country = "USA".into();
        r.summary.clear();
        let errors = r.to_practice(&author(), 5).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["country", "summary"]);
        let errors = PracticeRecord::from_csv_fields(&[
            ("latitude".into(), "north".into()),
            ("colour".into(), "blue".into()),
        ])
        .unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(serde_json::from_str::<PracticeRecord>(r#"{"titel": "typo"}"#).is_err());
    }
}
