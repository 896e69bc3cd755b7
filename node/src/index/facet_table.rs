//! What the node's search filters, orders and counts, held in memory: for each indexed
//! practice its row, review state, when it last changed and its coded facet values (a
//! few dozen bytes each; the records and their text stay in SQLite).
//!
//! Filtering and counting are the shared [`FacetCodes`] and [`Selection`], the app's
//! own: the node and the app cannot count a facet differently. SQL did the same with one
//! grouped query per facet over the matching rows, 350–540 ms for 50,000 practices.

use std::collections::HashMap;
use std::sync::Arc;

use ibis_shared::model::facets::Facet;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::review::ReviewState;
use ibis_shared::search::{Coded, FacetCodes, Selection};

/// One indexed practice.
#[derive(Debug)]
pub(super) struct Row {
    /// Its `practice_index` rowid (and its text row's).
    pub rowid: i64,
    pub id: String,
    state: Option<ReviewState>,
    updated_at: i64,
    coded: Coded,
    /// Where it is (latitude, longitude), if its record says.
    point: Option<(f32, f32)>,
}

#[derive(Debug, Default)]
pub(super) struct FacetTable {
    /// The index's write count this table follows (see `GENERATION_KEY`).
    pub generation: i64,
    codes: FacetCodes,
    by_id: HashMap<String, Arc<Row>>,
    /// Every row, most recently changed first (then by id), or `None` until the next
    /// search after a change sorts them again.
    ordered: Option<Vec<Arc<Row>>>,
}

/// Practices at one place (a city of a country) on the map.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Place {
    pub country: String,
    pub city: String,
    /// The mean of its practices' coordinates.
    pub lat: f64,
    pub lon: f64,
    pub practices: usize,
}

/// The rows a search selects, in order, and the facet counts over all of them.
pub(super) struct Hits {
    pub rows: Vec<Arc<Row>>,
    pub facets: Vec<Vec<(String, usize)>>,
}

impl FacetTable {
    /// Adds a practice, replacing what was listed under its id.
    pub fn put(&mut self, rowid: i64, id: String, record: &PracticeRecord) {
        let row = Row {
            rowid,
            state: ReviewState::from_key(&record.review_state),
            updated_at: record.updated_at,
            coded: self.codes.code(record),
            point: record
                .latitude
                .zip(record.longitude)
                .map(|(lat, lon)| (lat as f32, lon as f32)),
            id: id.clone(),
        };
        self.by_id.insert(id, Arc::new(row));
        self.ordered = None;
    }

    pub fn remove(&mut self, id: &str) {
        if self.by_id.remove(id).is_some() {
            self.ordered = None;
        }
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    fn ordered(&mut self) -> &[Arc<Row>] {
        self.ordered.get_or_insert_with(|| {
            let rows: Vec<Arc<Row>> = self.by_id.values().cloned().collect();
            ibis_shared::search::sorted(rows, &|a, b| {
                b.updated_at
                    .cmp(&a.updated_at)
                    .then_with(|| a.id.cmp(&b.id))
            })
        })
    }

    /// The rows in a visible state, among `text` (rowids, ascending; `None` for no text
    /// condition), that the chosen facet values admit; newest change first.
    pub fn hits<'a>(
        &mut self,
        visible: &[ReviewState],
        text: Option<&[i64]>,
        chosen: impl IntoIterator<Item = (Facet, &'a str)>,
    ) -> Hits {
        let selection: Selection = self.codes.selection(chosen);
        let rows: Vec<Arc<Row>> = self
            .ordered()
            .iter()
            .filter(|r| r.state.is_some_and(|s| visible.contains(&s)))
            .filter(|r| text.is_none_or(|t| t.binary_search(&r.rowid).is_ok()))
            .filter(|r| selection.admits(&r.coded))
            .cloned()
            .collect();
        let facets = self.codes.count(rows.iter().map(|r| &r.coded));
        Hits { rows, facets }
    }
}

impl FacetTable {
    /// The places of `rows` (by country and city): those of rows with coordinates,
    /// most practices first, and those of rows without, each with its number of rows
    /// (their coordinates are `NaN`).
    pub fn places(&self, rows: &[Arc<Row>]) -> (Vec<Place>, Vec<Place>) {
        let (country, city) = (facet_at(Facet::Country), facet_at(Facet::City));
        let mut at: PlaceSums = HashMap::new();
        let mut unplaced: PlaceSums = HashMap::new();
        for row in rows {
            let key = (
                row.coded[country].first().copied(),
                row.coded[city].first().copied(),
            );
            let Some((lat, lon)) = row.point else {
                unplaced.entry(key).or_insert((f64::NAN, f64::NAN, 0)).2 += 1;
                continue;
            };
            let sum = at.entry(key).or_default();
            *sum = (sum.0 + f64::from(lat), sum.1 + f64::from(lon), sum.2 + 1);
        }
        let value = |f: usize, code: Option<u32>| {
            code.and_then(|c| self.codes.value(f, c))
                .unwrap_or_default()
                .to_owned()
        };
        let list = |groups: PlaceSums| -> Vec<Place> {
            groups
                .into_iter()
                .map(|((co, ci), (lat, lon, n))| Place {
                    country: value(country, co),
                    city: value(city, ci),
                    lat: lat / n as f64,
                    lon: lon / n as f64,
                    practices: n,
                })
                .collect()
        };
        let mut places = list(at);
        sort_places(&mut places);
        (places, list(unplaced))
    }
}

/// Per place (country and city codes): the sums of its practices' latitudes and
/// longitudes, and their number.
type PlaceSums = HashMap<(Option<u32>, Option<u32>), (f64, f64, usize)>;

fn facet_at(facet: Facet) -> usize {
    Facet::ALL
        .iter()
        .position(|f| *f == facet)
        .unwrap_or_default()
}

/// Most practices first, then by country and city.
pub fn sort_places(places: &mut [Place]) {
    places.sort_by(|a, b| {
        b.practices
            .cmp(&a.practices)
            .then_with(|| (&a.country, &a.city).cmp(&(&b.country, &b.city)))
    });
}
