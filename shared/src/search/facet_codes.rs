//! Facet values as small numbers, and how facets filter and count: one definition for
//! the app's search over its replica and the node's over its index.
//!
//! Counting is what a list page pays for on every search, over every hit: with each value
//! coded once (when a practice is indexed), a count is one increment per value of a hit,
//! not a string copied, sorted or hashed (the node counts 50,000 hits in a few
//! milliseconds).

use crate::model::facets::Facet;
use crate::model::record::PracticeRecord;

/// How many facets there are.
pub const FACETS: usize = Facet::ALL.len();

/// A practice's facet values, coded: one list per facet, in [`Facet::ALL`] order.
pub type Coded = [Box<[u32]>; FACETS];

/// Every facet value seen, numbered in the order it was first seen. Codes are never
/// reused: a value no practice has any more is counted 0 times and left out of counts.
///
/// Per facet, `values` holds each value at its code and `sorted` the codes in the order
/// of their values (a binary search finds a value's code): a map type would add its own
/// code to the app, which has a size budget.
#[derive(Debug, Default)]
pub struct FacetCodes {
    values: [Vec<String>; FACETS],
    sorted: [Vec<u32>; FACETS],
}

/// What a search asks of the facets: per facet, the codes of its chosen values (any one
/// will do), or `None` where it chose none. Facets combine.
#[derive(Debug)]
pub struct Selection([Option<Vec<u32>>; FACETS]);

impl FacetCodes {
    /// A practice's facet values, coded (new values get new codes).
    pub fn code(&mut self, record: &PracticeRecord) -> Coded {
        std::array::from_fn(|f| {
            Facet::ALL[f]
                .values(record)
                .into_iter()
                .map(|value| self.code_value(f, value))
                .collect()
        })
    }

    /// The value coded `code` in the facet at `f` (its place in [`Facet::ALL`]).
    pub fn value(&self, f: usize, code: u32) -> Option<&str> {
        self.values.get(f)?.get(code as usize).map(String::as_str)
    }

    /// Where `value` is, or would go, among the facet's codes in value order.
    fn find(&self, f: usize, value: &str) -> Result<usize, usize> {
        let values = &self.values[f];
        self.sorted[f].binary_search_by(|c| values[*c as usize].as_str().cmp(value))
    }

    fn code_value(&mut self, f: usize, value: String) -> u32 {
        match self.find(f, &value) {
            Ok(at) => self.sorted[f][at],
            Err(at) => {
                let code = self.values[f].len() as u32;
                self.values[f].push(value);
                self.sorted[f].insert(at, code);
                code
            }
        }
    }

    /// The selection of the chosen `(facet, value)` pairs. A value no practice has ever
    /// had selects nothing in its facet.
    pub fn selection<'a>(&self, chosen: impl IntoIterator<Item = (Facet, &'a str)>) -> Selection {
        let mut selection: [Option<Vec<u32>>; FACETS] = Default::default();
        for (facet, value) in chosen {
            let f = facet.index();
            let codes = selection[f].get_or_insert_with(Vec::new);
            codes.extend(self.find(f, value).ok().map(|at| self.sorted[f][at]));
        }
        Selection(selection)
    }

    /// Each facet's values among `hits`, with how many hits have each, most frequent
    /// first (then by value); values no hit has are left out. In [`Facet::ALL`] order.
    pub fn count<'a>(&self, hits: impl Iterator<Item = &'a Coded>) -> Vec<Vec<(String, usize)>> {
        let mut counts: Vec<Vec<usize>> = self.values.iter().map(|v| vec![0; v.len()]).collect();
        for coded in hits {
            for (f, codes) in coded.iter().enumerate() {
                for &code in codes.iter() {
                    counts[f][code as usize] += 1;
                }
            }
        }
        counts
            .into_iter()
            .zip(&self.values)
            .map(|(counts, values)| {
                let pairs = counts
                    .into_iter()
                    .zip(values)
                    .filter(|(n, _)| *n > 0)
                    .map(|(n, value)| (value.clone(), n))
                    .collect();
                super::sorted(pairs, &|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)))
            })
            .collect()
    }
}

impl Selection {
    /// Whether a practice with these values is among the results.
    pub fn admits(&self, coded: &Coded) -> bool {
        self.0.iter().zip(coded).all(|(chosen, has)| match chosen {
            None => true,
            Some(chosen) => chosen.iter().any(|c| has.contains(c)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(themes: &[&str], country: &str) -> PracticeRecord {
        PracticeRecord {
            themes: themes.iter().map(|s| s.to_string()).collect(),
            country: country.into(),
            ..PracticeRecord::default()
        }
    }

    #[test]
    fn values_are_coded_once_and_counted_over_the_hits() {
        let mut codes = FacetCodes::default();
        let a = codes.code(&record(&["housing", "health"], "fr"));
        let b = codes.code(&record(&["housing"], "PT"));
        let c = codes.code(&record(&[], "PT"));
        assert_eq!(a[0].len(), 2);
        assert_eq!(a[0][0], b[0][0], "one code per value");
        let counts = codes.count([&a, &b, &c].into_iter());
        assert_eq!(
            counts[0],
            vec![("housing".to_owned(), 2), ("health".to_owned(), 1)]
        );
        assert_eq!(counts[1], vec![("PT".to_owned(), 2), ("FR".to_owned(), 1)]);
        let only_b = codes.count([&b].into_iter());
        assert_eq!(only_b[0], vec![("housing".to_owned(), 1)], "no zero counts");
    }

    #[test]
    fn values_of_a_facet_are_alternatives_and_facets_combine() {
        let mut codes = FacetCodes::default();
        let a = codes.code(&record(&["housing", "health"], "FR"));
        let b = codes.code(&record(&["housing"], "PT"));
        let pick = |chosen: &[(Facet, &str)]| {
            let s = codes.selection(chosen.iter().copied());
            [&a, &b].iter().filter(|c| s.admits(c)).count()
        };
        assert_eq!(pick(&[]), 2);
        assert_eq!(
            pick(&[(Facet::Theme, "health"), (Facet::Theme, "housing")]),
            2
        );
        assert_eq!(
            pick(&[(Facet::Theme, "housing"), (Facet::Country, "PT")]),
            1
        );
        assert_eq!(pick(&[(Facet::Theme, "never-seen")]), 0);
        assert_eq!(
            pick(&[(Facet::Theme, "never-seen"), (Facet::Theme, "health")]),
            1
        );
    }
}
