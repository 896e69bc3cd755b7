//! How a practice reads: its long texts under their headings and its facts, in the
//! reader's language. One definition for the app's practice page and the node's
//! server-rendered one, so that both show the same fields.

use super::facets::{actor_label, facet_label, Facet};
use super::practice::TextField;
use super::record::PracticeRecord;
use super::taxonomy::{self, Lang, EVIDENCE_LEVELS, SDG_GOALS, TARGET_GROUPS, THEMES};

/// The long texts after the summary, with their headings (keys of [`crate::i18n::tr`]).
pub const LONG_TEXTS: [(TextField, &str); 5] = [
    (TextField::Context, "Context"),
    (TextField::Process, "Process and activities"),
    (TextField::Outcomes, "Outcomes"),
    (TextField::Transferability, "Transferability"),
    (TextField::Funding, "Funding"),
];

/// A long text of a record.
pub fn long_text(r: &PracticeRecord, field: TextField) -> &str {
    match field {
        TextField::Title => &r.title,
        TextField::Summary => &r.summary,
        TextField::Context => &r.context,
        TextField::Process => &r.process,
        TextField::Outcomes => &r.outcomes,
        TextField::Transferability => &r.transferability,
        TextField::Funding => &r.funding,
    }
}

/// The practice's facts that have a value, in order: (heading, a key of
/// [`crate::i18n::tr`]; the value, in `lang`).
pub fn facts(r: &PracticeRecord, lang: Lang) -> Vec<(&'static str, String)> {
    let label = |vocab, key: &str| {
        taxonomy::find(vocab, key)
            .map(|t| t.label(lang).to_owned())
            .unwrap_or_else(|| key.to_owned())
    };
    let labels = |vocab, keys: &[String]| {
        keys.iter()
            .map(|k| label(vocab, k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows: Vec<(&'static str, String)> = vec![
        ("Lead organization", r.lead_organization.clone()),
        ("Partners", r.partners.join(", ")),
        ("Themes", labels(THEMES, &r.themes)),
        ("Target groups", labels(TARGET_GROUPS, &r.target_groups)),
        (
            "GCM objectives",
            r.gcm_objectives
                .iter()
                .map(|n| facet_label(Facet::GcmObjective, &n.to_string(), lang))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (
            "SDG goals",
            r.sdg_goals
                .iter()
                .map(|n| {
                    let title = SDG_GOALS
                        .get(usize::from(*n).wrapping_sub(1))
                        .copied()
                        .unwrap_or("");
                    format!("{n}. {title}")
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ("Actor level", actor_label(&r.actor_level, lang)),
        ("Start date", r.start_date.clone()),
        ("End date", r.end_date.clone()),
        ("Evidence level", label(EVIDENCE_LEVELS, &r.evidence_level)),
        ("Language", r.language.clone()),
    ];
    rows.retain(|(_, v)| !v.trim().is_empty());
    rows
}

/// The contact as one line (name · role · email · phone), if the record shows one.
pub fn contact_line(r: &PracticeRecord) -> Option<String> {
    let parts: Vec<&str> = [
        r.contact_name.as_str(),
        &r.contact_role,
        &r.contact_email,
        &r.contact_phone,
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect();
    (!r.contact_name.is_empty() || !r.contact_email.is_empty()).then(|| parts.join(" · "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_read_in_the_language_and_leave_out_empty_ones() {
        let r = PracticeRecord {
            themes: vec!["housing".into()],
            gcm_objectives: vec![16],
            sdg_goals: vec![10],
            evidence_level: "evaluated".into(),
            ..PracticeRecord::default()
        };
        let facts = facts(&r, Lang::Fr);
        let headings: Vec<&str> = facts.iter().map(|(h, _)| *h).collect();
        assert_eq!(
            headings,
            ["Themes", "GCM objectives", "SDG goals", "Evidence level"]
        );
        assert_eq!(facts[0].1, "Logement");
        assert!(facts[1].1.starts_with("16. "));
        assert!(facts[2].1.starts_with("10. "));
    }

    #[test]
    fn a_contact_is_shown_only_with_a_name_or_an_email() {
        let mut r = PracticeRecord {
            contact_role: "coordinator".into(),
            ..PracticeRecord::default()
        };
        assert_eq!(contact_line(&r), None);
        r.contact_name = "Ana".into();
        assert_eq!(contact_line(&r).as_deref(), Some("Ana · coordinator"));
    }
}
