//! The facets people filter practices by. Defined once so the app (searching its local
//! replica) and the node (searching SQLite for its HTTP API) offer the same ones with the
//! same keys and values.

use super::record::PracticeRecord;
use super::taxonomy::Lang;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Facet {
    Theme,
    Country,
    City,
    TargetGroup,
    GcmObjective,
    EvidenceLevel,
    ReviewState,
}

impl Facet {
    pub const ALL: [Facet; 7] = [
        Facet::Theme,
        Facet::Country,
        Facet::City,
        Facet::TargetGroup,
        Facet::GcmObjective,
        Facet::EvidenceLevel,
        Facet::ReviewState,
    ];

    /// The key in URLs and JSON (`?theme=housing&country=FR`).
    pub fn key(self) -> &'static str {
        match self {
            Facet::Theme => "theme",
            Facet::Country => "country",
            Facet::City => "city",
            Facet::TargetGroup => "target_group",
            Facet::GcmObjective => "gcm",
            Facet::EvidenceLevel => "evidence",
            Facet::ReviewState => "state",
        }
    }

    /// Where the facet is in [`Facet::ALL`] (and so in every per-facet array).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }

    /// The facet's values for one practice (several for tags, one or none otherwise).
    /// A practice's tags are sets, so each value is there once.
    pub fn values(self, r: &PracticeRecord) -> Vec<String> {
        let one = |s: &str| {
            if s.trim().is_empty() {
                Vec::new()
            } else {
                vec![s.trim().to_owned()]
            }
        };
        match self {
            Facet::Theme => r.themes.clone(),
            Facet::Country => one(&r.country.to_ascii_uppercase()),
            Facet::City => one(&r.city),
            Facet::TargetGroup => r.target_groups.clone(),
            Facet::GcmObjective => r.gcm_objectives.iter().map(u8::to_string).collect(),
            Facet::EvidenceLevel => one(&r.evidence_level),
            Facet::ReviewState => one(&r.review_state),
        }
    }
}

/// How a facet value reads in the interface language.
pub fn facet_label(facet: Facet, value: &str, lang: Lang) -> String {
    use super::taxonomy::{self, EVIDENCE_LEVELS, TARGET_GROUPS, THEMES};
    let term = |vocab| taxonomy::find(vocab, value).map(|t| t.label(lang).to_owned());
    let label = match facet {
        Facet::Theme => term(THEMES),
        Facet::TargetGroup => term(TARGET_GROUPS),
        Facet::EvidenceLevel => term(EVIDENCE_LEVELS),
        Facet::Country => super::countries::country_name(value).map(str::to_owned),
        Facet::GcmObjective => value
            .parse::<usize>()
            .ok()
            .and_then(|n| taxonomy::GCM_OBJECTIVES.get(n.wrapping_sub(1)))
            .map(|t| format!("{value}. {t}")),
        Facet::ReviewState => Some(crate::i18n::tr(lang, state_word(value)).to_owned()),
        Facet::City => None,
    };
    label.unwrap_or_else(|| value.to_owned())
}

/// The review state's word (a key of [`crate::i18n::tr`]).
pub fn state_word(key: &str) -> &'static str {
    match super::review::ReviewState::from_key(key) {
        Some(super::review::ReviewState::Draft) => "draft",
        Some(super::review::ReviewState::Submitted) => "submitted",
        Some(super::review::ReviewState::Published) => "published",
        Some(super::review::ReviewState::Archived) => "archived",
        None => "draft",
    }
}

/// How an actor level reads in `lang`.
pub fn actor_label(key: &str, lang: Lang) -> String {
    super::taxonomy::find(super::taxonomy::ACTOR_LEVELS, key)
        .map(|t| t.label(lang).to_owned())
        .unwrap_or_else(|| key.to_owned())
}

/// The facet's name, as the interface shows it (a key of [`crate::i18n::tr`]).
pub fn facet_title(facet: Facet) -> &'static str {
    match facet {
        Facet::Theme => "Theme",
        Facet::Country => "Country",
        Facet::City => "City",
        Facet::TargetGroup => "Target group",
        Facet::GcmObjective => "GCM objective",
        Facet::EvidenceLevel => "Evidence",
        Facet::ReviewState => "Review state",
    }
}

/// Words for full-text matching: lower case, accents removed, split on anything that is
/// not a letter or digit. "São Paulo" and "sao paulo" match alike.
pub fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        match fold(c) {
            Some(f) => word.push_str(f.as_ref()),
            None => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A character folded for matching, or `None` for a separator.
fn fold(c: char) -> Option<std::borrow::Cow<'static, str>> {
    use std::borrow::Cow;
    if !c.is_alphanumeric() {
        return None;
    }
    let base = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'a',
        'ç' | 'Ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ñ' | 'Ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ý' | 'ÿ' | 'Ý' => 'y',
        'œ' | 'Œ' => return Some(Cow::Borrowed("oe")),
        'æ' | 'Æ' => return Some(Cow::Borrowed("ae")),
        'ß' => return Some(Cow::Borrowed("ss")),
        other => {
            return Some(Cow::Owned(other.to_lowercase().collect()));
        }
    };
    Some(Cow::Owned(base.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_facet_knows_its_place_in_all() {
        for (i, facet) in Facet::ALL.into_iter().enumerate() {
            assert_eq!(facet.index(), i, "{facet:?}");
        }
    }

    #[test]
    fn labels_follow_the_language() {
        assert_eq!(facet_label(Facet::Theme, "housing", Lang::Fr), "Logement");
        assert_eq!(facet_label(Facet::Country, "BR", Lang::En), "Brazil");
        assert!(facet_label(Facet::GcmObjective, "16", Lang::En).starts_with("16. "));
        assert_eq!(facet_label(Facet::City, "Lyon", Lang::Es), "Lyon");
    }

    #[test]
    fn words_fold_case_and_accents() {
        assert_eq!(
            words("São Paulo: Éducation—œuvre!"),
            vec!["sao", "paulo", "education", "oeuvre"]
        );
        assert_eq!(words("  "), Vec::<String>::new());
    }

    #[test]
    fn facet_values() {
        let r = PracticeRecord {
            themes: vec!["housing".into(), "health".into()],
            country: "fr".into(),
            city: " Lyon ".into(),
            gcm_objectives: vec![16, 17],
            review_state: "published".into(),
            ..PracticeRecord::default()
        };
        assert_eq!(Facet::Theme.values(&r), vec!["housing", "health"]);
        assert_eq!(Facet::Country.values(&r), vec!["FR"]);
        assert_eq!(Facet::City.values(&r), vec!["Lyon"]);
        assert_eq!(Facet::GcmObjective.values(&r), vec!["16", "17"]);
        assert!(Facet::EvidenceLevel.values(&r).is_empty());
        for f in Facet::ALL {
            assert_eq!(Facet::from_key(f.key()), Some(f));
        }
    }
}
