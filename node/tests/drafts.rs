//! Drafts stay home: after two partner nodes sync, the partner's database holds the
//! published practices and not one draft (nor the workspace) of the other organization.

use std::time::Duration;

use automerge::Automerge;
use ibis_node::{InitOptions, Network, ServeOptions};
use ibis_shared::model::{kind_of, DocumentKind, Practice};
use ibis_shared::DocumentId;

fn documents_in(dir: &std::path::Path) -> Vec<(DocumentId, Automerge)> {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("ibis.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open database");
    let mut stmt = conn
        .prepare("SELECT document, bytes FROM chunks ORDER BY document, seq")
        .expect("query");
    let mut chunks: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
    for row in stmt
        .query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .expect("rows")
    {
        let (doc, bytes) = row.expect("row");
        chunks.entry(doc).or_default().extend(bytes);
    }
    chunks
        .into_iter()
        .map(|(id, bytes)| {
            (
                DocumentId::from_slice(&id).expect("an id"),
                Automerge::load(&bytes).expect("loads"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_database_holds_no_draft_of_another_organization() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let a_dir = dir.path().join("iom");
        let b_dir = dir.path().join("nlc");
        let a = ibis_node::init(&InitOptions::new(&a_dir, "IOM")).expect("init");
        let mut options = InitOptions::new(&b_dir, "NLC");
        options.network = Network::Join {
            directory: DocumentId::parse_id_or_url(&a.directory).expect("id"),
        };
        let b = ibis_node::init(&options).expect("init");
        let file = dir.path().join("iom.json");
        std::fs::write(
            &file,
            r#"[{"title": "Published one", "summary": "S.", "city": "Geneva", "country": "CH",
                 "themes": ["health"], "review_state": "published"},
                {"title": "Draft one", "city": "Geneva", "country": "CH"},
                {"title": "Submitted one", "summary": "S.", "city": "Geneva", "country": "CH",
                 "themes": ["health"], "review_state": "submitted"}]"#,
        )
        .expect("write");
        ibis_node::import::import(&a_dir, &file, ibis_node::import::Format::Json, "t")
            .expect("import");

        let serve = |dir: std::path::PathBuf, peers: Vec<String>| {
            ibis_node::serve(ServeOptions {
                data_dir: dir,
                listen: Some("127.0.0.1:0".parse().expect("address")),
                peers,
                open: true,
                ..ServeOptions::default()
            })
        };
        let a_node = serve(a_dir.clone(), vec![]).await.expect("serve");
        let b_node = serve(b_dir.clone(), vec![a_node.sync_url()])
            .await
            .expect("serve");

        // Wait until B has A's published practice.
        let mut published_at_b = false;
        for _ in 0..200 {
            published_at_b = documents_in(&b_dir).iter().any(|(_, doc)| {
                Practice::load(doc).is_ok_and(|p| p.title.as_str() == "Published one")
            });
            if published_at_b {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(published_at_b, "the published practice reached the partner");
        // Give any (wrongly) shared drafts every chance to arrive too.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        b_node.shutdown().await.expect("shutdown");
        a_node.shutdown().await.expect("shutdown");

        let workspace_a = DocumentId::parse_id_or_url(&a.workspace).expect("id");
        for (id, doc) in documents_in(&b_dir) {
            assert_ne!(id, workspace_a, "IOM's workspace is on NLC's node");
            if kind_of(&doc) == Some(DocumentKind::Workspace) {
                let listing =
                    ibis_shared::model::catalogue::Listing::load(&doc, DocumentKind::Workspace)
                        .expect("a workspace");
                assert_eq!(
                    listing.organization, b.organization_id,
                    "a foreign workspace"
                );
            }
            if let Ok(p) = Practice::load(&doc) {
                assert!(
                    p.state().is_public() || p.provenance.home_organization == b.organization_id,
                    "NLC's node holds {}'s {} practice `{}`",
                    p.provenance.home_organization,
                    p.state(),
                    p.title.as_str()
                );
            }
        }
    })
    .await
    .expect("finishes in time");
}
