//! `deploy/nginx-cache.conf` in a real nginx in front of a node: what every visitor gets
//! alike is served from the cache, a request with a session never is, and a member's
//! answer (the API shows members drafts) never reaches a visitor from the cache.
//!
//! Skipped when nginx is not installed, except under `CI=true` (`cargo xtask setup`
//! installs it).

use std::time::Duration;

use ibis_node::registry::Registry;
use ibis_node::{InitOptions, ServeOptions};
use ibis_shared::model::Role;
use ibis_tests::{http_get, nginx_available, Answer, Nginx};

/// `GET path` from `addr`; the test fails on a connection error.
async fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    http_get(addr, path, headers).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_get_cached_public_answers_and_never_a_members() {
    if !nginx_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is missing (cargo xtask setup installs it)"
        );
        eprintln!("skipping: no nginx");
        return;
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("node");
        ibis_node::init(&InitOptions::new(&data, "Cities")).unwrap();
        let file = dir.path().join("practices.json");
        std::fs::write(
            &file,
            serde_json::json!([
                {"title": "Welcome desks", "summary": "One-stop desks for newcomers.", "city": "Lyon",
                 "country": "FR", "themes": ["reception-services"], "review_state": "published"},
                {"title": "A draft in progress", "city": "Lyon", "country": "FR"}
            ])
            .to_string(),
        )
        .unwrap();
        let report =
            ibis_node::import::import(&data, &file, ibis_node::import::Format::Json, "test").unwrap();
        assert_eq!(report.failed(), 0, "{:?}", ibis_node::import::describe(&report));
        let registry = Registry::open(&data).unwrap();
        registry.add_user("amy", Role::Editor, "a long enough password").unwrap();
        let token = registry.issue_token("amy", "t", 1).unwrap();
        let node = ibis_node::serve(ServeOptions {
            data_dir: data.clone(),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..ServeOptions::default()
        })
        .await
        .unwrap();
        // The index is built in the background: wait for both practices.
        let member = format!("ibis_session={token}");
        let mut indexed = false;
        for _ in 0..400 {
            let mine = get(node.addr(), "/api/practices", &[("Cookie", &member)]).await.body;
            let theirs = get(node.addr(), "/api/practices", &[]).await.body;
            if mine.contains("\"total\":2") && theirs.contains("\"total\":1") {
                indexed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !indexed {
            let mine = get(node.addr(), "/api/practices", &[("Cookie", &member)]).await.body;
            let theirs = get(node.addr(), "/api/practices", &[]).await.body;
            panic!("not indexed: member {mine}\nvisitor {theirs}");
        }

        let cache_dir = dir.path().join("nginx");
        std::fs::create_dir_all(&cache_dir).unwrap();
        let nginx = Nginx::start(&cache_dir, node.addr(), 1).await.unwrap();
        let proxy = nginx.addr();
        let status = |a: &Answer| a.header("x-cache-status").unwrap_or_default().to_owned();

        // A page: the second visitor is served from the cache.
        let first = get(proxy, "/", &[]).await;
        assert_eq!(first.status, 200);
        assert_eq!(status(&first), "MISS");
        let second = get(proxy, "/", &[]).await;
        assert_eq!(status(&second), "HIT");
        assert_eq!(second.body, first.body);

        // A member, with a session, goes past the cache, and sees the draft.
        let api = "/api/practices";
        let visitor = get(proxy, api, &[]).await;
        assert_eq!(status(&visitor), "MISS");
        assert!(!visitor.body.contains("A draft in progress"));
        let mine = get(proxy, api, &[("Cookie", &member)]).await;
        assert_eq!(status(&mine), "BYPASS");
        assert!(mine.body.contains("A draft in progress"), "{}", mine.body);
        assert!(mine.header("cache-control").unwrap().starts_with("private"));
        // A token in the address, too.
        let by_token = get(proxy, &format!("{api}?token={token}"), &[]).await;
        assert_eq!(status(&by_token), "BYPASS");
        // The visitor after the member gets the visitors' answer, from the cache.
        let after = get(proxy, api, &[]).await;
        assert_eq!(status(&after), "HIT");
        assert!(!after.body.contains("A draft in progress"));
        assert!(after.body.contains("Welcome desks"), "{}", after.body);
        // A member's page view is not stored either.
        let page = get(proxy, "/organizations", &[("Cookie", &member)]).await;
        assert_eq!(status(&page), "BYPASS");
        assert_eq!(status(&get(proxy, "/organizations", &[]).await), "MISS");

        node.shutdown().await.unwrap();
    })
    .await
    .expect("in time");
}
