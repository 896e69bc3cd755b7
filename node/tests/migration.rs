//! A data dir made by the previous version (schema 2, committed in
//! `tests/fixtures/data-dir-v2`, written by that version's own code) opens and is
//! migrated: practices split into internal and public documents, the old documents (whose
//! history holds a private contact, a send-back comment and a deleted draft sentence)
//! erased and withdrawn, links moved to the public ids, everything else kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use automerge::Automerge;
use ibis_node::client::{Client, ClientOptions};
use ibis_node::registry::Registry;
use ibis_node::{Config, ServeOptions};
use ibis_shared::model::catalogue::Listing;
use ibis_shared::model::event::Event;
use ibis_shared::model::{kind_of, written_strings, DocumentKind, Practice};
use ibis_shared::DocumentId;

const WAIT: Duration = Duration::from_secs(20);

/// What must never reach anyone outside the organization.
const PRIVATE: [&str; 5] = [
    "PRIVATE-CONTACT",
    "private-contact@example.org",
    "SENDBACK-COMMENT",
    "DRAFT-SENTENCE",
    "DRAFT-ONLY-night-school",
];

fn copy_fixture(to: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-dir-v2");
    let dir = to.join("node");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

fn old(n: u8) -> DocumentId {
    DocumentId::from_bytes([n; 16])
}

fn leaks(doc: &Automerge) -> Vec<String> {
    written_strings(doc)
        .into_iter()
        .filter(|w| PRIVATE.iter().any(|m| w.contains(m)))
        .collect()
}

async fn listing(client: &Client, id: DocumentId, kind: DocumentKind) -> Listing {
    let doc = client.open(id, WAIT).await.unwrap();
    Listing::load(&doc, kind).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_2_data_dir_is_migrated_and_nothing_private_is_public() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_fixture(tmp.path());
        let config = Config::load(&dir).unwrap();
        let node = ibis_node::serve(ServeOptions {
            data_dir: dir.clone(),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..ServeOptions::default()
        })
        .await
        .unwrap();

        // The schema version is recorded, the old practices remembered as erased.
        {
            let conn = rusqlite::Connection::open(dir.join("ibis.sqlite3")).unwrap();
            let version: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(version, ibis_node::store::SCHEMA_VERSION);
            let erased: Vec<Vec<u8>> = conn
                .prepare("SELECT document FROM erased_documents ORDER BY document")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let expected: Vec<Vec<u8>> = [0x11, 0x22, 0x33].iter().map(|n| vec![*n; 16]).collect();
            assert_eq!(erased, expected);
        }

        // An anonymous visitor: the catalogue lists the new public practices, which never
        // held anything private; the old ids are gone.
        let visitor = Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
            .await
            .unwrap();
        let catalogue = listing(
            &visitor,
            config.documents.catalogue,
            DocumentKind::Catalogue,
        )
        .await;
        let public: Vec<DocumentId> = catalogue.practice_ids().collect();
        assert_eq!(public.len(), 2, "the published and the archived practice");
        let withdrawn: Vec<(DocumentId, Option<DocumentId>)> = catalogue.withdrawn_ids().collect();
        assert_eq!(withdrawn.len(), 2);
        for (was, now) in &withdrawn {
            assert!([old(0x11), old(0x33)].contains(was));
            assert!(public.contains(&now.unwrap()));
        }
        let mut titles = Vec::new();
        for id in &public {
            let doc = visitor.open(*id, WAIT).await.unwrap();
            assert_eq!(kind_of(&doc), Some(DocumentKind::Practice));
            assert_eq!(leaks(&doc), Vec::<String>::new(), "{id} leaks");
            titles.push(Practice::load(&doc).unwrap().title.as_str().to_owned());
        }
        titles.sort();
        assert_eq!(
            titles,
            vec![
                "Sports clubs for newcomers",
                "Welcome desks in 12 languages"
            ]
        );
        for n in [0x11, 0x22, 0x33] {
            assert!(
                visitor.open(old(n), Duration::from_secs(3)).await.is_err(),
                "old id {n:x} is still served"
            );
        }
        // Untouched: the partner's practice, the document of another application.
        visitor.open(old(0x44), WAIT).await.unwrap();
        // The event discusses the new public practice.
        let event = Event::load(&visitor.open(old(0x55), WAIT).await.unwrap()).unwrap();
        let related: Vec<&str> = event.related_practices.iter().collect();
        assert_eq!(related.len(), 1);
        let welcome_public = DocumentId::parse(related[0]).unwrap();
        assert!(public.contains(&welcome_public));
        visitor.close().await;

        // A member (the token made by the old version still works): the workspace lists
        // the internal practices, which keep their history.
        let token = std::fs::read_to_string(dir.join("amy.token")).unwrap();
        let amy = Client::connect(
            &node.sync_url(),
            ClientOptions {
                query: format!("token={}", token.trim()),
                ..ClientOptions::default()
            },
            WAIT,
        )
        .await
        .unwrap();
        let workspace = listing(&amy, config.documents.workspace, DocumentKind::Workspace).await;
        let internal: Vec<DocumentId> = workspace.practice_ids().collect();
        assert_eq!(internal.len(), 3);
        let mut published_internally = 0;
        for id in internal {
            let doc = amy.open(id, WAIT).await.unwrap();
            assert_eq!(kind_of(&doc), Some(DocumentKind::InternalPractice));
            let p = Practice::load(&doc).unwrap();
            if let Some(public_id) = p.public_id() {
                assert!(public.contains(&public_id));
                published_internally += 1;
            }
            if p.title.as_str() == "Welcome desks in 12 languages" {
                assert_eq!(p.contact.email, "private-contact@example.org");
                assert_eq!(p.public_id(), Some(welcome_public));
                assert!(!leaks(&doc).is_empty(), "the history stays home");
            }
        }
        assert_eq!(published_internally, 2);
        amy.close().await;

        // The partner registered before is now a relay (no organization known).
        let peers = Registry::open(&dir).unwrap().peers().unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].organization, "");
        node.shutdown().await.unwrap();

        // Opening it again migrates nothing more.
        let again = ibis_node::serve(ServeOptions {
            data_dir: dir.clone(),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..ServeOptions::default()
        })
        .await
        .unwrap();
        again.shutdown().await.unwrap();
    })
    .await
    .expect("finishes in time");
}

#[test]
fn a_data_dir_from_a_newer_version_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_fixture(tmp.path());
    let conn = rusqlite::Connection::open(dir.join("ibis.sqlite3")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = ibis_node::store::Store::open(&dir, ibis_node::Durability::Full)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("made by a newer ibis-node"), "{err}");
}
