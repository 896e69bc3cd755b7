use super::*;
use crate::store::{Durability, Store};
use ibis_shared::model::{Author, Role};
use ibis_shared::sync::StoreOp;

fn author() -> Author {
    Author {
        name: "Ana".into(),
        organization: "iom".into(),
        role: Role::Admin,
    }
}

/// A practice as the index sees it: a public practice when `state` is public, else an
/// internal draft.
fn practice(title: &str, city: &str, country: &str, themes: &[&str], state: &str) -> Automerge {
    let record = PracticeRecord {
        title: title.into(),
        summary: format!("{title} in {city}."),
        city: city.into(),
        country: country.into(),
        themes: themes.iter().map(|s| s.to_string()).collect(),
        review_state: state.into(),
        ..PracticeRecord::default()
    };
    let p = record.to_practice(&author(), 1_000).unwrap();
    if p.state().is_public() {
        ibis_shared::model::publication::new_public_document(&p, &author(), "IOM", p.state(), 1_000)
            .unwrap()
    } else {
        p.create(&author(), 1_000).unwrap()
    }
}

fn setup() -> (tempfile::TempDir, Store, PracticeIndex, Vec<DocumentId>) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), Durability::Normal).unwrap();
    let index = PracticeIndex::open(dir.path()).unwrap();
    let docs = [
        practice(
            "Guichets d'accueil",
            "Lyon",
            "FR",
            &["reception-services"],
            "published",
        ),
        practice(
            "Éducation des adultes",
            "Montréal",
            "CA",
            &["education-language"],
            "published",
        ),
        practice(
            "Housing first",
            "Lyon",
            "FR",
            &["housing", "health"],
            "published",
        ),
        practice("Unpublished idea", "Lyon", "FR", &["housing"], "draft"),
    ];
    let mut ids = Vec::new();
    let mut entries = Vec::new();
    let mut writes = Vec::new();
    for doc in &docs {
        let id = DocumentId::random();
        ids.push(id);
        entries.push(IndexEntry::of(id, doc).unwrap());
        writes.push(StoreOp::ReplaceWithSnapshot {
            document: id,
            snapshot: doc.save(),
        });
    }
    store.apply(&writes).unwrap();
    index.upsert(&entries).unwrap();
    (dir, store, index, ids)
}

fn public() -> Vec<ReviewState> {
    vec![ReviewState::Published, ReviewState::Archived]
}

fn query(text: &str, filters: &[(Facet, &str)]) -> Query {
    let mut q = Query {
        text: text.into(),
        visible: public(),
        limit: 50,
        ..Query::default()
    };
    for (f, v) in filters {
        q.filters.entry(*f).or_default().insert(v.to_string());
    }
    q
}

#[test]
fn text_search_ignores_case_and_accents_and_matches_prefixes() {
    let (_dir, _store, index, _) = setup();
    let titles = |r: SearchResult| r.results.into_iter().map(|p| p.title).collect::<Vec<_>>();
    assert_eq!(
        titles(index.search(&query("education", &[])).unwrap()),
        vec!["Éducation des adultes"]
    );
    assert_eq!(
        titles(index.search(&query("MONTREAL", &[])).unwrap()),
        vec!["Éducation des adultes"]
    );
    assert_eq!(
        titles(index.search(&query("guich", &[])).unwrap()),
        vec!["Guichets d'accueil"]
    );
    // FTS syntax in user input is just text.
    assert_eq!(index.search(&query("\"OR* NEAR(", &[])).unwrap().total, 0);
}

#[test]
fn facets_filter_and_count_and_drafts_stay_hidden() {
    let (_dir, _store, index, _) = setup();
    let all = index.search(&query("", &[])).unwrap();
    assert_eq!(all.total, 3, "the draft is not public");
    assert_eq!(
        all.facets["country"],
        vec![("FR".to_owned(), 2), ("CA".to_owned(), 1)]
    );
    let lyon = index.search(&query("", &[(Facet::City, "Lyon")])).unwrap();
    assert_eq!(lyon.total, 2);
    assert_eq!(
        lyon.facets["theme"],
        vec![
            ("health".to_owned(), 1),
            ("housing".to_owned(), 1),
            ("reception-services".to_owned(), 1)
        ]
    );
    // Two values of one facet are alternatives; two facets combine.
    let mut q = query(
        "",
        &[
            (Facet::Theme, "housing"),
            (Facet::Theme, "education-language"),
        ],
    );
    assert_eq!(index.search(&q).unwrap().total, 2);
    q.filters
        .entry(Facet::Country)
        .or_default()
        .insert("CA".into());
    assert_eq!(index.search(&q).unwrap().total, 1);

    let mut members = query("", &[(Facet::City, "Lyon")]);
    members.visible = ReviewState::ALL.to_vec();
    assert_eq!(index.search(&members).unwrap().total, 3);
}

#[test]
fn pages_and_single_records() {
    let (_dir, _store, index, ids) = setup();
    let mut q = query("", &[]);
    q.limit = 2;
    let first = index.search(&q).unwrap();
    q.offset = 2;
    let second = index.search(&q).unwrap();
    assert_eq!((first.results.len(), second.results.len()), (2, 1));
    assert!(index.get(&ids[0], &public()).unwrap().is_some());
    assert!(
        index.get(&ids[3], &public()).unwrap().is_none(),
        "a draft is not found"
    );
    assert!(index
        .get(&DocumentId::random(), &public())
        .unwrap()
        .is_none());
    assert_eq!(index.recently_published(10).unwrap().len(), 3);
}

#[test]
fn the_index_is_rebuilt_from_storage() {
    let (dir, _store, index, _) = setup();
    drop(index);
    let index = PracticeIndex::open(dir.path()).unwrap();
    index.with(|c| {
        c.execute_batch("DELETE FROM practice_index; DELETE FROM practice_facets; DELETE FROM practice_text;")?;
        Ok(())
    })
    .unwrap();
    assert_eq!(index.rebuild_if_stale(&Default::default()).unwrap(), 4);
    assert_eq!(index.search(&query("housing", &[])).unwrap().total, 1);
    assert_eq!(
        index.rebuild_if_stale(&Default::default()).unwrap(),
        0,
        "only once per version"
    );
}

/// Each practice's text row sits at its practice row's rowid, one for one.
fn text_rows_follow_practice_rows(index: &PracticeIndex) {
    index
        .with(|c| {
            let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
            let stray = count(
                "SELECT count(*) FROM practice_text t LEFT JOIN practice_index p ON p.id = t.id
                 WHERE p.rowid IS NOT t.rowid",
            )?;
            assert_eq!(stray, 0, "text rows off their practice's rowid");
            assert_eq!(
                count("SELECT count(*) FROM practice_text")?,
                count("SELECT count(*) FROM practice_index")?
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn re_indexing_a_practice_replaces_its_text_and_no_one_elses() {
    let (_dir, _store, index, ids) = setup();
    // Re-index them out of order, twice, so rowids no longer follow the first insertion.
    for round in 0..2 {
        for i in [2, 0, 3, 1] {
            let title = match (i, round) {
                (2, 1) => "Shelter first",
                (2, _) => "Housing first",
                (0, _) => "Guichets d'accueil",
                (1, _) => "Éducation des adultes",
                _ => "Unpublished idea",
            };
            let state = if i == 3 { "draft" } else { "published" };
            let doc = practice(title, "Lyon", "FR", &["housing"], state);
            index
                .upsert(&[IndexEntry::of(ids[i], &doc).unwrap()])
                .unwrap();
        }
    }
    text_rows_follow_practice_rows(&index);
    assert_eq!(index.search(&query("housing first", &[])).unwrap().total, 0);
    assert_eq!(index.search(&query("shelter", &[])).unwrap().total, 1);
    assert_eq!(index.search(&query("guichets", &[])).unwrap().total, 1);
    assert_eq!(index.search(&query("adultes", &[])).unwrap().total, 1);
    index.remove(&ids[0]).unwrap();
    assert_eq!(index.search(&query("guichets", &[])).unwrap().total, 0);
    assert_eq!(index.search(&query("shelter", &[])).unwrap().total, 1);
    text_rows_follow_practice_rows(&index);
}

#[test]
fn an_index_laid_out_by_version_1_is_relaid_by_the_rebuild() {
    let (dir, _store, index, _) = setup();
    // Version 1 let FTS5 number its text rows: move them off the practice rows' rowids.
    index
        .with(|c| {
            c.execute_batch(
                "CREATE TEMP TABLE old AS SELECT rowid + 100 AS r, id, title, body FROM practice_text;
                 DELETE FROM practice_text;
                 INSERT INTO practice_text (rowid, id, title, body) SELECT r, id, title, body FROM old;
                 INSERT INTO meta (key, value) VALUES ('practice_index_version', '1')
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value;",
            )?;
            Ok(())
        })
        .unwrap();
    drop(index);
    let index = PracticeIndex::open(dir.path()).unwrap();
    assert_eq!(index.rebuild_if_stale(&Default::default()).unwrap(), 4);
    text_rows_follow_practice_rows(&index);
    assert_eq!(index.search(&query("housing", &[])).unwrap().total, 1);
}

/// The index shares its database with the store, which commits all the time. A deferred
/// transaction that read first (the practice's rowid) and then wrote failed at once with
/// "database is locked" when another connection committed in between (SQLite cannot move
/// a reader's snapshot forward into a write), and the indexer dropped that batch: during
/// an import of 10,000 practices, dozens of batches never reached search.
#[test]
fn updates_wait_for_another_writer_instead_of_failing() {
    let (dir, _store, index, ids) = setup();
    let doc = practice("Housing first", "Lyon", "FR", &["housing"], "published");
    let entries: Vec<IndexEntry> = ids
        .iter()
        .map(|id| IndexEntry::of(*id, &doc).unwrap())
        .collect();
    for update in [
        Box::new(|| index.upsert(&entries)) as Box<dyn Fn() -> Result<(), IndexError>>,
        Box::new(|| index.remove(&ids[3])),
    ] {
        // Another connection (the store, say) is in the middle of a write.
        let other = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        other
            .execute_batch(
                "BEGIN IMMEDIATE;
                 INSERT INTO meta (key, value) VALUES ('elsewhere', '1')
                 ON CONFLICT(key) DO UPDATE SET value = value + 1;",
            )
            .unwrap();
        let committer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            other.execute_batch("COMMIT").unwrap();
        });
        let outcome = update();
        committer.join().unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    assert_eq!(index.count().unwrap(), 3);
    assert_eq!(index.search(&query("housing", &[])).unwrap().total, 3);
}

#[test]
fn an_internal_practice_is_listed_for_members_until_its_public_practice_is() {
    let (_dir, _store, index, _) = setup();
    let members = ReviewState::ALL.to_vec();
    let mut internal = practice("Night school", "Lyon", "FR", &["housing"], "submitted");
    let id = DocumentId::random();
    index
        .upsert(&[IndexEntry::of(id, &internal).unwrap()])
        .unwrap();
    assert!(index.get(&id, &members).unwrap().is_some());
    assert!(
        index.get(&id, &public()).unwrap().is_none(),
        "not for visitors"
    );
    let reviewer = Author {
        role: Role::Reviewer,
        ..author()
    };
    let published =
        ibis_shared::model::publication::publish(&mut internal, &reviewer, "IOM", "", 2_000)
            .unwrap();
    assert!(IndexEntry::of(id, &internal).is_none());
    let public_id = published.id;
    index
        .update(
            &[IndexEntry::of(public_id, &published.document).unwrap()],
            &[id],
        )
        .unwrap();
    assert!(index.get(&id, &members).unwrap().is_none());
    assert!(index.get(&public_id, &public()).unwrap().is_some());
}

#[test]
fn search_follows_removals_and_reopening() {
    let (dir, _store, index, ids) = setup();
    // Montréal's practice (CA) is removed: it is neither found nor counted.
    index.remove(&ids[1]).unwrap();
    let all = index.search(&query("", &[])).unwrap();
    assert_eq!(all.total, 2);
    assert_eq!(all.facets["country"], vec![("FR".to_owned(), 2)]);
    assert_eq!(index.search(&query("montreal", &[])).unwrap().total, 0);
    let csv = index
        .records(&query("", &[(Facet::Country, "FR")]), 10)
        .unwrap();
    assert_eq!(csv.len(), 2);
    // A node that starts again lists what its index holds.
    drop(index);
    let index = PracticeIndex::open(dir.path()).unwrap();
    let again = index.search(&query("", &[])).unwrap();
    assert_eq!(
        again.results.iter().map(|r| &r.title).collect::<Vec<_>>(),
        all.results.iter().map(|r| &r.title).collect::<Vec<_>>()
    );
    assert_eq!(again.facets, all.facets);
}

#[test]
fn places_group_practices_by_city_and_find_cities_without_coordinates() {
    let (_dir, _store, index, _) = setup();
    // None of them has coordinates: each is at its city, as the gazetteer has it.
    let (places, unplaced) = index.places(&query("", &[])).unwrap();
    assert_eq!(unplaced, 0);
    let summary: Vec<(&str, &str, usize)> = places
        .iter()
        .map(|p| (p.country.as_str(), p.city.as_str(), p.practices))
        .collect();
    assert_eq!(summary, vec![("FR", "Lyon", 2), ("CA", "Montréal", 1)]);
    assert!((45.0..46.5).contains(&places[0].lat) && (4.0..5.5).contains(&places[0].lon));
    // The map follows the search.
    let (places, _) = index.places(&query("", &[(Facet::Country, "CA")])).unwrap();
    assert_eq!(places.len(), 1);
}

#[test]
fn search_sees_what_another_writer_of_the_database_wrote() {
    let (dir, _store, index, ids) = setup();
    assert_eq!(index.search(&query("shelter", &[])).unwrap().total, 0);
    // A second writer (a stopping node's last batch, another process) re-indexes a
    // practice, which moves its rows to new rowids, and adds one.
    let other = PracticeIndex::open(dir.path()).unwrap();
    let doc = practice("Shelter first", "Lyon", "FR", &["housing"], "published");
    let moved = IndexEntry::of(ids[2], &doc).unwrap();
    let new = IndexEntry::of(
        DocumentId::random(),
        &practice("Night shelter", "Lyon", "FR", &["housing"], "published"),
    )
    .unwrap();
    other.upsert(&[moved, new]).unwrap();
    let found = index.search(&query("shelter", &[])).unwrap();
    assert_eq!(found.total, 2, "{:?}", found.results);
    assert_eq!(index.search(&query("", &[])).unwrap().total, 4);
    // And its own writes after that are still followed.
    index.remove(&ids[0]).unwrap();
    assert_eq!(index.search(&query("", &[])).unwrap().total, 3);
}
