//! Search and facets in memory: the app's, over its local replica (instant and offline).
//!
//! Same meaning as the node's `/api/practices` (SQLite FTS5), and tested against it: every
//! word of the query must start a word of the practice's [`searchable_text`] (accents and
//! case ignored); values of one facet are alternatives, facets combine; facet counts are
//! over the current results, most frequent first; results are the most recently changed
//! first.
//!
//! How facets filter and count is [`facet_codes`], shared with the node.

use std::cmp::Ordering;
use std::sync::Arc;

mod facet_codes;
pub use facet_codes::{Coded, FacetCodes, Selection, FACETS};

use crate::model::facets::{words, Facet};
use crate::model::list_query::ListQuery;
use crate::model::record::PracticeRecord;

/// A practice record with what search needs of it, computed once per change of the
/// practice (not at every rebuild of the index: a catalogue of thousands is re-indexed
/// whenever one practice changes).
#[derive(Debug)]
pub struct Indexed {
    pub record: PracticeRecord,
    /// Distinct words of the searchable text, sorted (for prefix search).
    words: Vec<String>,
}

impl Indexed {
    pub fn new(record: PracticeRecord) -> Self {
        let mut words = words(&format!("{} {}", record.title, searchable_text(&record)));
        words.sort();
        words.dedup();
        Self { record, words }
    }
}

/// A search index over practice records.
pub struct Index {
    items: Vec<Arc<Indexed>>,
    /// Each item's facet values, coded by `codes`.
    coded: Vec<Coded>,
    codes: FacetCodes,
}

/// What to look for: the same search the node's list reads from an address.
pub type Query = ListQuery;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    /// Indices into the index's records, newest change first.
    pub hits: Vec<usize>,
    /// Per facet, in `Facet::ALL` order: (value, count) over the hits, most frequent first.
    pub facets: Vec<Vec<(String, usize)>>,
}

impl Results {
    /// A facet's (value, count) pairs over the hits.
    pub fn facet(&self, facet: Facet) -> &[(String, usize)] {
        self.facets
            .get(facet.index())
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// What a search reads of a practice besides its title, for the app and the node alike:
/// its texts, where it is (city, and the country's name), and who runs it.
pub fn searchable_text(r: &PracticeRecord) -> String {
    [
        r.summary.as_str(),
        &r.context,
        &r.process,
        &r.outcomes,
        &r.transferability,
        &r.city,
        crate::model::countries::country_name(&r.country).unwrap_or(""),
        &r.lead_organization,
        &r.partners.join(" "),
    ]
    .join("\n")
}

impl Index {
    /// Orders the practices, most recently changed first.
    pub fn new(items: Vec<Arc<Indexed>>) -> Self {
        let items = sorted(items, &|a, b| {
            b.record
                .updated_at
                .cmp(&a.record.updated_at)
                .then_with(|| a.record.id.cmp(&b.record.id))
        });
        let mut codes = FacetCodes::default();
        let coded = items.iter().map(|i| codes.code(&i.record)).collect();
        Self {
            items,
            coded,
            codes,
        }
    }

    /// The record at a hit's position.
    pub fn record(&self, i: usize) -> &PracticeRecord {
        &self.items[i].record
    }

    pub fn search(&self, q: &Query) -> Results {
        let terms = words(&q.text);
        let selection = self
            .codes
            .selection(q.filters.iter().map(|(f, v)| (*f, v.as_str())));
        let hits: Vec<usize> = self
            .items
            .iter()
            .zip(&self.coded)
            .enumerate()
            .filter(|(_, (e, coded))| {
                selection.admits(coded) && terms.iter().all(|t| has_prefix(&e.words, t))
            })
            .map(|(i, _)| i)
            .collect();
        let facets = self.codes.count(hits.iter().map(|&i| &self.coded[i]));
        Results { hits, facets }
    }
}

/// `items` in `cmp`'s order (stable). Every list the app sorts goes through here: the
/// sorting code is then in the app once (for positions), not once per kind of item.
pub fn sorted<T>(items: Vec<T>, cmp: &dyn Fn(&T, &T) -> Ordering) -> Vec<T> {
    let order = sort_positions(items.len(), &|a, b| cmp(&items[a], &items[b]));
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

fn sort_positions(n: usize, cmp: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| cmp(*a, *b));
    order
}

/// True if some word in the sorted list starts with `prefix`.
fn has_prefix(sorted: &[String], prefix: &str) -> bool {
    let i = sorted.partition_point(|w| w.as_str() < prefix);
    sorted.get(i).is_some_and(|w| w.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        title: &str,
        city: &str,
        country: &str,
        themes: &[&str],
        updated: i64,
    ) -> PracticeRecord {
        PracticeRecord {
            title: title.into(),
            city: city.into(),
            country: country.into(),
            themes: themes.iter().map(|s| s.to_string()).collect(),
            review_state: "published".into(),
            updated_at: updated,
            ..PracticeRecord::default()
        }
    }

    fn index() -> Index {
        let records = vec![
            record(
                "Guichets d'accueil",
                "Lyon",
                "FR",
                &["reception-services"],
                1,
            ),
            record(
                "Éducation des adultes",
                "Montréal",
                "CA",
                &["education-language"],
                3,
            ),
            record("Housing first", "Lyon", "FR", &["housing", "health"], 2),
        ];
        Index::new(
            records
                .into_iter()
                .map(|r| Arc::new(Indexed::new(r)))
                .collect(),
        )
    }

    fn titles(index: &Index, q: &Query) -> Vec<String> {
        index
            .search(q)
            .hits
            .iter()
            .map(|&i| index.record(i).title.clone())
            .collect()
    }

    #[test]
    fn text_matches_word_prefixes_without_accents() {
        let i = index();
        let q = |t: &str| Query {
            text: t.into(),
            ..Query::default()
        };
        assert_eq!(titles(&i, &q("educ")), vec!["Éducation des adultes"]);
        assert_eq!(
            titles(&i, &q("MONTREAL adult")),
            vec!["Éducation des adultes"]
        );
        assert_eq!(
            titles(&i, &q("lyon")),
            vec!["Housing first", "Guichets d'accueil"]
        );
        assert!(titles(&i, &q("zzz")).is_empty());
        assert_eq!(titles(&i, &q("")).len(), 3, "newest first");
    }

    #[test]
    fn facets_filter_and_count_over_the_results() {
        let i = index();
        let mut q = Query::default();
        q.toggle(Facet::Country, "FR");
        let r = i.search(&q);
        assert_eq!(r.hits.len(), 2);
        assert_eq!(
            r.facet(Facet::Theme),
            vec![
                ("health".to_owned(), 1),
                ("housing".to_owned(), 1),
                ("reception-services".to_owned(), 1)
            ]
        );
        q.toggle(Facet::Theme, "housing");
        q.toggle(Facet::Theme, "education-language");
        assert_eq!(titles(&i, &q), vec!["Housing first"]);
        q.toggle(Facet::Country, "FR");
        assert_eq!(i.search(&q).hits.len(), 2, "alternatives within a facet");
        assert!(q.is_selected(Facet::Theme, "housing"));
    }
}
