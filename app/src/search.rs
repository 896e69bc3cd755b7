//! Search and facets over the local replica: instant and offline.
//!
//! Same meaning as the node's `/api/practices`: every word of the query must start a word
//! of the practice (accents and case ignored); values of one facet are alternatives, facets
//! combine; facet counts are over the current results.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ibis_shared::model::facets::{words, Facet};
use ibis_shared::model::record::PracticeRecord;

/// A practice record with what search needs of it, computed once per change of the
/// practice (not at every rebuild of the index: a catalogue of thousands is re-indexed
/// whenever one practice changes).
#[derive(Debug)]
pub struct Indexed {
    pub record: PracticeRecord,
    /// Distinct words of the searchable text, sorted (for prefix search).
    words: Vec<String>,
    facets: BTreeMap<Facet, Vec<String>>,
}

impl Indexed {
    pub fn new(record: PracticeRecord) -> Self {
        let mut words = words(&searchable(&record));
        words.sort();
        words.dedup();
        let facets = Facet::ALL.iter().map(|f| (*f, f.values(&record))).collect();
        Self {
            record,
            words,
            facets,
        }
    }
}

/// A search index over practice records.
pub struct Index {
    items: Vec<Arc<Indexed>>,
}

/// What to look for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub text: String,
    pub filters: BTreeMap<Facet, BTreeSet<String>>,
}

impl Query {
    pub fn toggle(&mut self, facet: Facet, value: &str) {
        let set = self.filters.entry(facet).or_default();
        if !set.remove(value) {
            set.insert(value.to_owned());
        }
        if set.is_empty() {
            self.filters.remove(&facet);
        }
    }

    pub fn is_selected(&self, facet: Facet, value: &str) -> bool {
        self.filters.get(&facet).is_some_and(|s| s.contains(value))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    /// Indices into the index's records, newest change first.
    pub hits: Vec<usize>,
    /// Per facet: (value, count) over the hits, most frequent first.
    pub facets: BTreeMap<Facet, Vec<(String, usize)>>,
}

fn searchable(r: &PracticeRecord) -> String {
    [
        r.title.as_str(),
        &r.summary,
        &r.context,
        &r.process,
        &r.outcomes,
        &r.transferability,
        &r.city,
        &r.country,
        ibis_shared::model::countries::country_name(&r.country).unwrap_or(""),
        &r.lead_organization,
        &r.partners.join(" "),
    ]
    .join(" ")
}

impl Index {
    /// Orders the practices, most recently changed first.
    pub fn new(mut items: Vec<Arc<Indexed>>) -> Self {
        items.sort_by(|a, b| {
            b.record
                .updated_at
                .cmp(&a.record.updated_at)
                .then_with(|| a.record.title.cmp(&b.record.title))
        });
        Self { items }
    }

    /// The record at a hit's position.
    pub fn record(&self, i: usize) -> &PracticeRecord {
        &self.items[i].record
    }

    pub fn search(&self, q: &Query) -> Results {
        let terms = words(&q.text);
        let hits: Vec<usize> = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, e)| terms.iter().all(|t| has_prefix(&e.words, t)))
            .filter(|(_, e)| {
                q.filters.iter().all(|(facet, wanted)| {
                    e.facets
                        .get(facet)
                        .is_some_and(|values| values.iter().any(|v| wanted.contains(v)))
                })
            })
            .map(|(i, _)| i)
            .collect();
        let mut facets: BTreeMap<Facet, BTreeMap<String, usize>> = BTreeMap::new();
        for &i in &hits {
            for (facet, values) in &self.items[i].facets {
                let counts = facets.entry(*facet).or_default();
                for v in values {
                    *counts.entry(v.clone()).or_default() += 1;
                }
            }
        }
        let facets = facets
            .into_iter()
            .map(|(f, counts)| {
                let mut v: Vec<(String, usize)> = counts.into_iter().collect();
                v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                (f, v)
            })
            .collect();
        Results { hits, facets }
    }
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
            r.facets[&Facet::Theme],
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
