//! What a practice must satisfy, with a message per field.
//!
//! Two levels: [`check_practice`] holds for every version of every practice (types, known
//! vocabulary keys, sizes) and is enforced on every change, wherever it comes from;
//! [`check_complete`] is what a practice needs before it can be submitted or published.

use super::countries::country_name;
use super::practice::{Practice, TextField};
use super::review::ReviewState;
use super::taxonomy::{self, ACTOR_LEVELS, EVIDENCE_LEVELS, TARGET_GROUPS, THEMES};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 300;
/// Longest summary.
pub const MAX_SUMMARY_CHARS: usize = 3_000;
/// Longest long text (context, process, outcomes, transferability, funding).
pub const MAX_TEXT_CHARS: usize = 30_000;
/// Longest short field (city, names, emails…).
pub const MAX_SHORT_CHARS: usize = 200;
/// Longest URL.
pub const MAX_URL_CHARS: usize = 2_000;
/// Most entries in a list (partners, resources, replications, comments).
pub const MAX_LIST_ENTRIES: usize = 200;
/// Most translations.
pub const MAX_TRANSLATIONS: usize = 30;
/// Longest review comment.
pub const MAX_COMMENT_CHARS: usize = 5_000;
/// Largest saved document, in bytes, accepted from anyone.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// A problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's key (`title`, `contact.email`, `translations.fr.summary`…).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One line naming every problem.
pub fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

struct Checker(Vec<FieldError>);

impl Checker {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    fn max_chars(&mut self, field: impl Into<String>, value: &str, max: usize) {
        let n = value.chars().count();
        if n > max {
            self.fail(field, format!("is {n} characters long; the limit is {max}"));
        }
    }

    fn max_entries(&mut self, field: &str, n: usize) {
        if n > MAX_LIST_ENTRIES {
            self.fail(
                field,
                format!("has {n} entries; the limit is {MAX_LIST_ENTRIES}"),
            );
        }
    }

    fn url(&mut self, field: impl Into<String>, value: &str) {
        let field = field.into();
        self.max_chars(field.clone(), value, MAX_URL_CHARS);
        if !is_url(value) {
            self.fail(
                field,
                "must be a web address starting with https:// or http://",
            );
        }
    }
}

pub fn is_url(value: &str) -> bool {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

pub fn is_email(value: &str) -> bool {
    match value.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !value.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` with plausible numbers.
pub fn is_partial_date(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let num = |s: &str, len: usize, lo: u32, hi: u32| {
        s.len() == len
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n))
    };
    match parts.as_slice() {
        [y] => num(y, 4, 1900, 2200),
        [y, m] => num(y, 4, 1900, 2200) && num(m, 2, 1, 12),
        [y, m, d] => num(y, 4, 1900, 2200) && num(m, 2, 1, 12) && num(d, 2, 1, 31),
        _ => false,
    }
}

fn text_limit(field: TextField) -> usize {
    match field {
        TextField::Title => MAX_TITLE_CHARS,
        TextField::Summary => MAX_SUMMARY_CHARS,
        _ => MAX_TEXT_CHARS,
    }
}

/// Problems that make a practice invalid in any state.
pub fn check_practice(p: &Practice) -> Vec<FieldError> {
    let mut c = Checker(Vec::new());
    for field in TextField::ALL {
        c.max_chars(field.key(), field.of(p).as_str(), text_limit(field));
    }
    for (key, value) in [
        ("city", &p.city),
        ("lead_organization", &p.lead_organization),
        ("contact.name", &p.contact.name),
        ("contact.role", &p.contact.role),
        ("contact.email", &p.contact.email),
        ("contact.phone", &p.contact.phone),
    ] {
        c.max_chars(key, value, MAX_SHORT_CHARS);
    }
    if !p.country.is_empty() && country_name(&p.country).is_none() {
        c.fail(
            "country",
            format!("`{}` is not an ISO 3166 country code", p.country),
        );
    }
    if let Some(coords) = &p.coordinates {
        if !(-90.0..=90.0).contains(&coords.lat) || !(-180.0..=180.0).contains(&coords.lon) {
            c.fail(
                "coordinates",
                "latitude must be within ±90 and longitude within ±180",
            );
        }
    }
    c.max_entries("partners", p.partners.len());
    for (i, partner) in p.partners.iter().enumerate() {
        c.max_chars(format!("partners.{i}"), partner, MAX_SHORT_CHARS);
    }
    for (field, vocabulary, set) in [
        ("themes", THEMES, &p.themes),
        ("target_groups", TARGET_GROUPS, &p.target_groups),
    ] {
        for key in set.iter() {
            if taxonomy::find(vocabulary, key).is_none() {
                c.fail(field, format!("`{key}` is not a known term"));
            }
        }
    }
    for (field, set, max) in [
        ("gcm_objectives", &p.gcm_objectives, 23u32),
        ("sdg_goals", &p.sdg_goals, 17u32),
    ] {
        for key in set.iter() {
            if !key.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n)) {
                c.fail(field, format!("`{key}` is not a number from 1 to {max}"));
            }
        }
    }
    for (field, vocabulary, value) in [
        ("actor_level", ACTOR_LEVELS, &p.actor_level),
        ("evidence_level", EVIDENCE_LEVELS, &p.evidence_level),
    ] {
        if !value.is_empty() && taxonomy::find(vocabulary, value).is_none() {
            c.fail(field, format!("`{value}` is not a known term"));
        }
    }
    for (field, value) in [("start_date", &p.start_date), ("end_date", &p.end_date)] {
        if !value.is_empty() && !is_partial_date(value) {
            c.fail(
                field,
                "must be a year, year-month or date (YYYY, YYYY-MM, YYYY-MM-DD)",
            );
        }
    }
    if !p.start_date.is_empty()
        && !p.end_date.is_empty()
        && is_partial_date(&p.start_date)
        && is_partial_date(&p.end_date)
        && p.end_date < p.start_date
    {
        c.fail("end_date", "is before the start date");
    }
    if !p.contact.email.is_empty() && !is_email(&p.contact.email) {
        c.fail("contact.email", "is not an email address");
    }
    c.max_entries("resources", p.resources.len());
    for (i, r) in p.resources.iter().enumerate() {
        c.max_chars(format!("resources.{i}.title"), &r.title, MAX_SHORT_CHARS);
        c.url(format!("resources.{i}.url"), &r.url);
    }
    c.max_entries("replicated_by", p.replicated_by.len());
    for (i, url) in p.replicated_by.iter().enumerate() {
        if crate::AutomergeUrl::parse(url).is_err() {
            c.fail(
                format!("replicated_by.{i}"),
                "is not an automerge: URL of a practice",
            );
        }
    }
    if p.language.len() != 2 || !p.language.bytes().all(|b| b.is_ascii_lowercase()) {
        c.fail(
            "language",
            "must be a two-letter ISO 639-1 code such as en, fr, es",
        );
    }
    if p.translations.len() > MAX_TRANSLATIONS {
        c.fail(
            "translations",
            format!(
                "has {} languages; the limit is {MAX_TRANSLATIONS}",
                p.translations.len()
            ),
        );
    }
    for (lang, t) in &p.translations {
        if lang.len() != 2 || !lang.bytes().all(|b| b.is_ascii_lowercase()) {
            c.fail(
                format!("translations.{lang}"),
                "must be keyed by a two-letter language code",
            );
        }
        for (field, text) in [
            (TextField::Title, &t.title),
            (TextField::Summary, &t.summary),
            (TextField::Context, &t.context),
            (TextField::Process, &t.process),
            (TextField::Outcomes, &t.outcomes),
            (TextField::Transferability, &t.transferability),
        ] {
            c.max_chars(
                format!("translations.{lang}.{}", field.key()),
                text.as_str(),
                text_limit(field),
            );
        }
    }
    if ReviewState::from_key(&p.review.state).is_none() {
        c.fail(
            "review.state",
            format!("`{}` is not a review state", p.review.state),
        );
    }
    c.max_entries("review.comments", p.review.comments.len());
    for (i, comment) in p.review.comments.iter().enumerate() {
        c.max_chars(
            format!("review.comments.{i}"),
            &comment.text,
            MAX_COMMENT_CHARS,
        );
    }
    c.0
}

/// What a public practice must also satisfy, beyond [`check_practice`]: it is published
/// or archived, carries no review comments and no link home, shows a contact only with
/// the contact's consent, and names an organization, not a person, as its author
/// (`organization_name`, when the checker knows it).
pub fn check_public(p: &Practice, organization_name: Option<&str>) -> Vec<FieldError> {
    let mut c = Checker(Vec::new());
    if p.is_internal() {
        c.fail("type", "an internal practice is not a public one");
    }
    if !ReviewState::from_key(&p.review.state).is_some_and(ReviewState::is_public) {
        c.fail(
            "review.state",
            format!(
                "a public practice is published or archived, not `{}`",
                p.review.state
            ),
        );
    }
    if !p.review.comments.is_empty() {
        c.fail(
            "review.comments",
            "review comments stay in the internal practice",
        );
    }
    let contact = &p.contact;
    let has_contact = [&contact.name, &contact.role, &contact.email, &contact.phone]
        .iter()
        .any(|v| !v.is_empty());
    if has_contact && !contact.consent {
        c.fail(
            "contact",
            "contact details are public only with the contact's consent",
        );
    }
    if !p.public.is_empty() {
        c.fail("public", "a public practice does not point to another");
    }
    if let Some(name) = organization_name {
        for (field, value) in [
            ("provenance.created_by", &p.provenance.created_by),
            ("provenance.updated_by", &p.provenance.updated_by),
        ] {
            if value != name {
                c.fail(
                    field,
                    format!("names `{value}`; only the organization is named"),
                );
            }
        }
    }
    c.0
}

/// What is missing before a practice can be submitted or published.
pub fn check_complete(p: &Practice) -> Vec<FieldError> {
    let mut c = Checker(Vec::new());
    if p.title.as_str().trim().is_empty() {
        c.fail("title", "is required");
    }
    if p.summary.as_str().trim().is_empty() {
        c.fail("summary", "is required");
    }
    if p.city.trim().is_empty() {
        c.fail("city", "is required");
    }
    if p.country.trim().is_empty() {
        c.fail("country", "is required");
    }
    if p.themes.is_empty() {
        c.fail("themes", "choose at least one theme");
    }
    c.0
}
