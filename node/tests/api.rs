//! The node's read-only HTTP API against a running node: search and facets, visibility by
//! who asks, CSV and Atom, and the index following live changes.

use std::time::Duration;

use ibis_node::client::{Client, ClientOptions};
use ibis_node::registry::Registry;
use ibis_node::{InitOptions, ServeOptions};
use ibis_shared::model::practice::{apply_edit, PracticeEdit, TextField};
use ibis_shared::model::publication::organization_author;
use ibis_shared::model::{Author, Role};
use ibis_shared::DocumentId;

const WAIT: Duration = Duration::from_secs(20);

mod common;

/// GET, with a member's session cookie when `token` is given; returns (status, body).
async fn get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let cookie = token.map(|t| format!("ibis_session={t}"));
    let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
    let answer = common::get(addr, path, &headers).await;
    (answer.status, answer.body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// An editor of the node's organization retitles a published practice over sync, live,
/// in the organization's name (as the app does).
async fn retitle(
    client: &Client,
    doc_id: DocumentId,
    organization: &(String, String),
    from: &str,
    to: &str,
    at: i64,
) {
    let editor = organization_author(
        &Author {
            name: "Amy".into(),
            organization: organization.0.clone(),
            role: Role::Editor,
        },
        &organization.1,
    );
    let edit = PracticeEdit::Text {
        field: TextField::Title,
        translation: None,
        base: from.into(),
        new: to.into(),
    };
    client
        .change(doc_id, move |doc| apply_edit(doc, &edit, &editor, at))
        .await
        .unwrap()
        .unwrap();
}

/// How many published practices a search for `q` finds, once it finds `want` (or after
/// ten seconds).
async fn total_when(addr: std::net::SocketAddr, q: &str, want: u64) -> u64 {
    let mut found = 0;
    for _ in 0..200 {
        found = json(&get(addr, &format!("/api/practices?q={q}"), None).await.1)["total"]
            .as_u64()
            .unwrap();
        if found == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_export_feed_and_live_updates() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        ibis_node::init(&InitOptions::new(dir.path(), "NLC")).unwrap();
        let file = dir.path().join("practices.json");
        std::fs::write(
            &file,
            serde_json::json!([
                {"title": "NewCITYzen naturalization campaign", "summary": "Cities promote naturalization.",
                 "city": "Washington", "country": "US", "themes": ["legal-status"], "review_state": "published"},
                {"title": "Welcome desks", "summary": "One-stop desks for newcomers in São Paulo.",
                 "city": "São Paulo", "country": "BR", "themes": ["reception-services"], "review_state": "published"},
                {"title": "Unfinished draft", "city": "Washington", "country": "US"},
                {"title": "", "country": "Narnia"}
            ])
            .to_string(),
        )
        .unwrap();
        let report = ibis_node::import::import(dir.path(), &file, ibis_node::import::Format::Json, "test").unwrap();
        assert_eq!(report.failed(), 1, "{:?}", ibis_node::import::describe(&report));
        let registry = Registry::open(dir.path()).unwrap();
        registry.add_user("amy", Role::Editor, "a long enough password").unwrap();
        let token = registry.issue_token("amy", "t", 1).unwrap();
        let node = ibis_node::serve(ServeOptions {
            data_dir: dir.path().to_owned(),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..ServeOptions::default()
        })
        .await
        .unwrap();
        let addr = node.addr();

        // The index is built at start, in the background.
        let mut all = json("{}");
        for _ in 0..100 {
            all = json(&get(addr, "/api/practices", None).await.1);
            if all["total"] == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(all["total"], 2, "anonymous visitors see the two published: {all}");
        assert_eq!(all["facets"]["country"], serde_json::json!([["BR", 1], ["US", 1]]));
        let members = json(&get(addr, "/api/practices", Some(&token)).await.1);
        assert_eq!(members["total"], 3, "members also see the draft");

        let sao = json(&get(addr, "/api/practices?q=sao+paulo", None).await.1);
        assert_eq!(sao["total"], 1);
        let id = sao["results"][0]["id"].as_str().unwrap().to_owned();
        let filtered = json(&get(addr, "/api/practices?country=us&theme=legal-status", None).await.1);
        assert_eq!(filtered["results"][0]["title"], "NewCITYzen naturalization campaign");

        let (status, body) = get(addr, &format!("/api/practices/{}", id.trim_start_matches("automerge:")), None).await;
        assert_eq!(status, 200);
        assert_eq!(json(&body)["city"], "São Paulo");
        let draft_id = members["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["review_state"] == "draft")
            .and_then(|r| r["id"].as_str())
            .unwrap()
            .to_owned();
        assert_eq!(get(addr, &format!("/api/practices/{draft_id}"), None).await.0, 404);
        assert_eq!(get(addr, "/api/practices?colour=red", None).await.0, 400);
        assert_eq!(get(addr, "/api/practices/not-an-id", None).await.0, 400);

        let (status, csv) = get(addr, "/api/practices.csv?country=BR", None).await;
        assert_eq!(status, 200);
        assert!(csv.starts_with("id,title,summary"));
        assert_eq!(csv.lines().count(), 2);

        let (status, feed) = get(addr, "/feed.atom", None).await;
        assert_eq!(status, 200);
        assert_eq!(feed.matches("<entry>").count(), 2);
        assert!(!feed.contains("Unfinished draft"));

        // A change over sync shows up in the API a moment later.
        let client = Client::connect(
            &format!("{}?token={token}", node.sync_url()),
            ClientOptions::default(),
            WAIT,
        )
        .await
        .unwrap();
        let doc_id = DocumentId::parse_id_or_url(&id).unwrap();
        client.open(doc_id, WAIT).await.unwrap();
        let organization = (
            node.info().organization_id.clone(),
            node.info().organization_name.clone(),
        );
        retitle(&client, doc_id, &organization, "Welcome desks", "Welcome desks in twelve languages", 5).await;
        assert_eq!(total_when(addr, "twelve", 1).await, 1, "the edit reached the index");

        // An edit the index cannot take at first (a table gone missing for a moment) is
        // indexed when it can: the indexer keeps the batch and tries again.
        let database = rusqlite::Connection::open(dir.path().join(ibis_node::store::DATABASE_FILE)).unwrap();
        database.busy_timeout(Duration::from_secs(10)).unwrap();
        database.execute_batch("ALTER TABLE practice_facets RENAME TO practice_facets_aside").unwrap();
        retitle(
            &client,
            doc_id,
            &organization,
            "Welcome desks in twelve languages",
            "Welcome desks in fourteen languages",
            6,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        database.execute_batch("ALTER TABLE practice_facets_aside RENAME TO practice_facets").unwrap();
        let found = total_when(addr, "fourteen", 1).await;
        assert_eq!(found, 1, "the edit reached the index once it could take it");
        client.close().await;
        node.shutdown().await.unwrap();
    })
    .await
    .expect("finishes in time");
}
