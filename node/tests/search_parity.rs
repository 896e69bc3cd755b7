//! The node's search (SQLite FTS5, what its pages and `/api/practices` answer) and the
//! app's (in memory, over its replica) give the same results for the same query: the
//! same ids in the same order, and the same facet counts, over one catalogue.

use std::sync::Arc;

use ibis_node::index::{IndexEntry, PracticeIndex, Query};
use ibis_shared::model::facets::Facet;
use ibis_shared::model::list_query::ListQuery;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::review::ReviewState;
use ibis_shared::search::{Index, Indexed};
use ibis_shared::DocumentId;

const CITIES: [(&str, &str); 6] = [
    ("São Paulo", "BR"),
    ("Lyon", "FR"),
    ("Montréal", "CA"),
    ("Kraków", "PL"),
    ("Zürich", "CH"),
    ("Recife", "BR"),
];
const THEMES: [&str; 4] = ["housing", "employment", "health", "education-language"];
const WORDS: [&str; 8] = [
    "welcome",
    "guichet",
    "naïve",
    "l'accueil",
    "mentoring",
    "cafés",
    "one-stop",
    "Ñandú",
];

fn catalogue() -> Vec<PracticeRecord> {
    (0..120)
        .map(|i| {
            let (city, country) = CITIES[i % CITIES.len()];
            PracticeRecord {
                id: Some(DocumentId::random().url()),
                title: format!("Practice {i}: {} {}", WORDS[i % 8], WORDS[(i / 8) % 8]),
                summary: format!("A story of {} in {city}.", WORDS[(i * 3) % 8]),
                context: if i % 4 == 0 {
                    "Newcomers did not know where to start.".into()
                } else {
                    String::new()
                },
                city: city.into(),
                country: country.into(),
                lead_organization: if i % 5 == 0 {
                    "Ville de Lyon".into()
                } else {
                    "IOM".into()
                },
                partners: if i % 7 == 0 {
                    vec!["UNHCR".into()]
                } else {
                    Vec::new()
                },
                // Tags are sets in a practice, so a record has each once.
                themes: if i % 4 == (i / 4) % 4 {
                    vec![THEMES[i % 4].into()]
                } else {
                    vec![THEMES[i % 4].into(), THEMES[(i / 4) % 4].into()]
                },
                gcm_objectives: vec![(i % 23) as u8 + 1],
                target_groups: if i % 3 == 0 {
                    vec!["refugees".into()]
                } else {
                    Vec::new()
                },
                evidence_level: ["anecdotal", "monitored", "evaluated"][i % 3].into(),
                review_state: if i % 10 == 0 { "archived" } else { "published" }.into(),
                // Ties on purpose: both order by id among practices changed at once.
                updated_at: (i / 3) as i64,
                ..PracticeRecord::default()
            }
        })
        .collect()
}

#[test]
fn the_node_and_the_app_find_the_same_practices_and_count_the_same_facets() {
    let dir = tempfile::tempdir().unwrap();
    // The index shares the store's database.
    let _store =
        ibis_node::store::Store::open(dir.path(), ibis_node::store::Durability::Normal).unwrap();
    let node = PracticeIndex::open(dir.path()).unwrap();
    let records = catalogue();
    let entries: Vec<IndexEntry> = records
        .iter()
        .map(|r| IndexEntry {
            id: DocumentId::parse_id_or_url(r.id.as_deref().unwrap()).unwrap(),
            record: r.clone(),
            published_at: Some(r.updated_at),
        })
        .collect();
    node.upsert(&entries).unwrap();
    let app = Index::new(
        records
            .into_iter()
            .map(|r| Arc::new(Indexed::new(r)))
            .collect(),
    );

    let queries: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("q", "welcome")],
        vec![("q", "WELC")],
        vec![("q", "naive")],
        vec![("q", "cafe")],
        vec![("q", "laccueil")],
        vec![("q", "accueil")],
        vec![("q", "one stop")],
        vec![("q", "nandu")],
        vec![("q", "sao paulo")],
        vec![("q", "brazil")],
        vec![("q", "BR")],
        // A country is found by its name, not its code (which the app alone once indexed).
        vec![("q", "pl")],
        vec![("q", "poland")],
        vec![("q", "unhcr mentoring")],
        vec![("q", "ville lyon")],
        vec![("q", "newcomers start")],
        vec![("q", "zurich"), ("theme", "housing")],
        vec![("country", "BR")],
        vec![("country", "br"), ("country", "FR")],
        vec![("country", "BR"), ("theme", "health")],
        vec![
            ("theme", "housing"),
            ("theme", "employment"),
            ("evidence", "evaluated"),
        ],
        vec![("gcm", "16"), ("q", "story")],
        vec![("target_group", "refugees"), ("state", "archived")],
        vec![("q", "nothing-matches-this")],
    ];
    for pairs in queries {
        let query = ListQuery::from_pairs(pairs.iter().copied());
        let mut q = Query {
            text: query.text.clone(),
            visible: vec![ReviewState::Published, ReviewState::Archived],
            limit: ibis_node::index::MAX_PAGE,
            ..Query::default()
        };
        for (facet, value) in &query.filters {
            q.filters.entry(*facet).or_default().insert(value.clone());
        }
        let at_node = node.search(&q).unwrap();
        let at_app = app.search(&query);
        let node_ids: Vec<Option<String>> = at_node.results.iter().map(|r| r.id.clone()).collect();
        let app_ids: Vec<Option<String>> = at_app
            .hits
            .iter()
            .map(|&i| app.record(i).id.clone())
            .collect();
        assert_eq!(at_node.total, at_app.hits.len(), "{pairs:?}: how many");
        assert_eq!(node_ids, app_ids, "{pairs:?}: which, in which order");
        for facet in Facet::ALL {
            let node_counts = at_node.facets.get(facet.key()).cloned().unwrap_or_default();
            let app_counts: Vec<(String, usize)> = at_app
                .facet(facet)
                .iter()
                .take(node_counts.len().max(1))
                .cloned()
                .collect();
            let app_counts = if node_counts.is_empty() {
                Vec::new()
            } else {
                app_counts
            };
            assert_eq!(node_counts, app_counts, "{pairs:?}: {} counts", facet.key());
        }
    }
}
