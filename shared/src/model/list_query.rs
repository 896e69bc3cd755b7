//! A search of the catalogue as an address writes it (`/?q=housing&country=FR&page=2`):
//! one definition for the node's server-rendered list and the app's, so that a filtered
//! view is a link one can share and both read it alike.

use super::facets::Facet;

/// Longest search text read from an address.
pub const MAX_TEXT_CHARS: usize = 200;
/// Highest page number an address may ask for (further results are reached by narrowing
/// the search).
pub const MAX_PAGE: usize = 500;
/// Most filters read from one address.
const MAX_FILTERS: usize = 32;
/// Longest facet value read from an address.
const MAX_VALUE_BYTES: usize = 200;

/// What to look for, and which page of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub text: String,
    /// The facet values chosen: values of one facet are alternatives, facets combine.
    pub filters: Vec<(Facet, String)>,
    /// From 1.
    pub page: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            text: String::new(),
            filters: Vec::new(),
            page: 1,
        }
    }
}

impl ListQuery {
    /// Reads the parameters a search has (`q`, facet keys, `page`); others (`lang`, a
    /// campaign's `utm_source`) are left alone, and values that cannot be meant are
    /// dropped or bounded.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut query = Self::default();
        for (key, value) in pairs.into_iter().take(64) {
            let value = value.trim();
            match key {
                "q" => query.text = value.chars().take(MAX_TEXT_CHARS).collect(),
                "page" => query.page = value.parse::<usize>().unwrap_or(1).clamp(1, MAX_PAGE),
                key => {
                    let Some(facet) = Facet::from_key(key) else {
                        continue;
                    };
                    if value.is_empty()
                        || value.len() > MAX_VALUE_BYTES
                        || query.filters.len() >= MAX_FILTERS
                    {
                        continue;
                    }
                    let value = if facet == Facet::Country {
                        value.to_ascii_uppercase()
                    } else {
                        value.to_owned()
                    };
                    if !query.is_selected(facet, &value) {
                        query.filters.push((facet, value));
                    }
                }
            }
        }
        query
    }

    /// The parameters of this search, in a stable order (page 1 is not written).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = self.search_pairs();
        if self.page > 1 {
            out.push(("page", self.page.to_string()));
        }
        out
    }

    /// The parameters of the search itself, without its page: what a link to the same
    /// search elsewhere carries (the map shows every result, the app more rows).
    pub fn search_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.text.is_empty() {
            out.push(("q", self.text.clone()));
        }
        for (facet, value) in &self.filters {
            out.push((facet.key(), value.clone()));
        }
        out
    }

    /// Whether the search asks for anything (text or filters).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.filters.is_empty()
    }

    /// Chooses `value` of `facet`, or takes it away if it was chosen; back to page 1.
    pub fn toggle(&mut self, facet: Facet, value: &str) {
        let before = self.filters.len();
        self.filters.retain(|(f, v)| *f != facet || v != value);
        if self.filters.len() == before {
            self.filters.push((facet, value.to_owned()));
        }
        self.page = 1;
    }

    pub fn is_selected(&self, facet: Facet, value: &str) -> bool {
        self.filters.iter().any(|(f, v)| *f == facet && v == value)
    }

    /// The values chosen for `facet`.
    pub fn selected(&self, facet: Facet) -> impl Iterator<Item = &String> {
        self.filters
            .iter()
            .filter(move |(f, _)| *f == facet)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_the_search_and_back() {
        let query = ListQuery::from_pairs([
            ("q", " housing "),
            ("country", "fr"),
            ("theme", "housing"),
            ("page", "3"),
            ("utm_source", "newsletter"),
            ("theme", "housing"),
        ]);
        assert_eq!(query.text, "housing");
        assert_eq!(query.page, 3);
        assert_eq!(
            query.filters,
            vec![
                (Facet::Country, "FR".to_owned()),
                (Facet::Theme, "housing".to_owned())
            ]
        );
        let pairs = query.to_pairs();
        let back = ListQuery::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        assert_eq!(back, query);
        let mut without = query.clone();
        without.toggle(Facet::Country, "FR");
        assert_eq!(without.page, 1);
        assert_eq!(without.filters, vec![(Facet::Theme, "housing".to_owned())]);
    }

    #[test]
    fn what_an_address_cannot_mean_is_bounded() {
        assert_eq!(ListQuery::from_pairs([("page", "0")]).page, 1);
        assert_eq!(ListQuery::from_pairs([("page", "99999999")]).page, MAX_PAGE);
        assert_eq!(ListQuery::from_pairs([("page", "x")]).page, 1);
        let long = "x".repeat(1000);
        assert_eq!(
            ListQuery::from_pairs([("q", long.as_str())]).text.len(),
            MAX_TEXT_CHARS
        );
        let many: Vec<String> = (0..100).map(|i| format!("city{i}")).collect();
        let query = ListQuery::from_pairs(many.iter().map(|c| ("city", c.as_str())));
        assert_eq!(query.filters.len(), 32);
    }
}
