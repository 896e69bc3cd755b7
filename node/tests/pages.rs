//! The server-rendered public pages against a running node, read as a visitor with
//! JavaScript off, a search engine and a link preview would: every page readable and
//! linked, its head complete (title, description, Open Graph, hreflang, JSON-LD that
//! parses with the expected type), the sitemap, real 404s, nothing private rendered, and
//! HTTP caching.

use std::time::Duration;

use ibis_node::client::{Client, ClientOptions};
use ibis_node::registry::Registry;
use ibis_node::{InitOptions, ServeOptions};
use ibis_shared::model::catalogue::{set_entry, Entry};
use ibis_shared::model::event::Event;
use ibis_shared::model::publication::organization_author;
use ibis_shared::model::{Author, DocumentKind, Role};
use ibis_shared::DocumentId;

mod common;

use common::get;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_pages_read_without_javascript() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().unwrap();
        // The node knows its public address: canonical links, og:url and the sitemap are
        // absolute under it.
        let mut options = InitOptions::new(dir.path(), "Network of Cities");
        options.public_url = "https://ibis.example.org".into();
        ibis_node::init(&options).unwrap();
        let file = dir.path().join("practices.json");
        std::fs::write(
            &file,
            serde_json::json!([
                {"title": "Welcome desks </script><script>alert(1)</script>",
                 "summary": "One-stop desks for newcomers in São Paulo.",
                 "context": "Newcomers did not know where to start.",
                 "city": "São Paulo", "country": "BR", "themes": ["reception-services"],
                 "evidence_level": "evaluated",
                 "contact_name": "Hidden Person", "contact_email": "hidden@example.org",
                 "contact_consent": false,
                 "resources": [{"title": "Evaluation report", "url": "https://example.org/report.pdf"}],
                 "review_state": "published"},
                {"title": "Language cafés", "summary": "Neighbours meet to practise French.",
                 "city": "Lyon", "country": "FR", "themes": ["education-language"],
                 "contact_name": "Shown Person", "contact_email": "shown@example.org",
                 "contact_consent": true, "review_state": "published"},
                {"title": "Unfinished draft", "city": "Lyon", "country": "FR"}
            ])
            .to_string(),
        )
        .unwrap();
        let report = ibis_node::import::import(dir.path(), &file, ibis_node::import::Format::Json, "test").unwrap();
        assert_eq!(report.failed(), 0, "{:?}", ibis_node::import::describe(&report));
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

        // The list: both published practices, not the draft, and a real head.
        let mut list = get(addr, "/", &[]).await;
        for _ in 0..100 {
            if list.body.contains("Language cafés") && list.body.contains("Welcome desks") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            list = get(addr, "/", &[]).await;
        }
        assert_eq!(list.status, 200);
        assert!(list.body.contains("Language cafés"), "{}", list.body);
        assert!(!list.body.contains("Unfinished draft"), "drafts are never rendered");
        assert!(list.body.contains("data-total=\"2\""));
        assert!(list.body.contains("<html lang=\"en\">"));
        assert!(list.title().contains("Good practices for migrant integration"));
        assert!(list.meta("name", "description").unwrap().starts_with("2 practices"));
        assert_eq!(list.meta("property", "og:type").as_deref(), Some("website"));
        for lang in ["en", "fr", "es", "x-default"] {
            assert!(list.body.contains(&format!("hreflang=\"{lang}\" href=\"https://ibis.example.org/")), "{lang}");
        }
        assert_eq!(list.json_ld()["@type"], "WebSite");
        assert!(!list.body.contains("<script>alert(1)</script>"), "titles are escaped");
        // Without JavaScript the search is a form, facets and pages are links.
        assert!(list.body.contains("<form class=\"search\" role=\"search\" method=\"get\" action=\"/\">"));
        assert!(list.body.contains("href=\"/?country=BR\""), "a facet is a link");

        // Search and facets are query parameters: a filtered view is a link.
        let found = get(addr, "/?q=newcomers", &[]).await;
        assert!(found.body.contains("data-total=\"1\""));
        assert!(found.body.contains("Welcome desks"));
        assert_eq!(found.meta("name", "robots").as_deref(), Some("noindex"));
        let by_country = get(addr, "/?country=fr&utm_source=newsletter", &[]).await;
        assert_eq!(by_country.status, 200);
        assert!(by_country.body.contains("data-total=\"1\""));
        assert!(by_country.body.contains("Language cafés"));
        assert!(by_country.body.contains("class=\"facet-option on\" aria-current=\"true\" href=\"/\""), "the chosen facet shows, and its link takes it away");

        // The visitor's language: the address, then Accept-Language.
        let french = get(addr, "/?lang=fr", &[]).await;
        assert!(french.body.contains("<html lang=\"fr\">"));
        assert!(french.body.contains("Pratiques"));
        assert!(french.body.contains("href=\"/events?lang=fr\""), "links keep a chosen language");
        assert_eq!(french.header("content-language").as_deref(), Some("fr"));
        let spanish = get(addr, "/", &[("Accept-Language", "es-MX,es;q=0.9,en;q=0.5")]).await;
        assert!(spanish.body.contains("<html lang=\"es\">"));
        assert!(spanish.body.contains("Prácticas"));
        assert!(spanish.header("vary").unwrap().contains("Accept-Language"));

        // One practice: every public field, the head a link preview reads, no private
        // contact, no script links.
        let href_start = list.body.find("href=\"/practices/").expect("a practice link") + 6;
        let hrefs: Vec<String> = list.body[href_start - 6..]
            .split("href=\"")
            .filter_map(|s| s.split('"').next())
            .filter(|s| s.starts_with("/practices/"))
            .map(str::to_owned)
            .collect();
        let mut desks = None;
        let mut cafes = None;
        for href in &hrefs {
            let page = get(addr, href, &[]).await;
            assert_eq!(page.status, 200, "{href}");
            if page.body.contains("One-stop desks") {
                desks = Some((href.clone(), page));
            } else if page.body.contains("Neighbours meet") {
                cafes = Some((href.clone(), page));
            }
        }
        let (desks_path, desks) = desks.expect("the desks page");
        let (_, cafes) = cafes.expect("the cafés page");
        assert_eq!(
            desks.title(),
            "Welcome desks </script><script>alert(1)</script> — ibis"
        );
        assert_eq!(desks.meta("property", "og:type").as_deref(), Some("article"));
        assert_eq!(
            desks.meta("property", "og:description").as_deref(),
            Some("One-stop desks for newcomers in São Paulo.")
        );
        assert_eq!(
            desks.meta("property", "og:url"),
            Some(format!("https://ibis.example.org{desks_path}"))
        );
        assert_eq!(desks.meta("name", "twitter:card").as_deref(), Some("summary"));
        let ld = desks.json_ld();
        assert_eq!(ld["@type"], "Article");
        assert_eq!(ld["name"], "Welcome desks </script><script>alert(1)</script>");
        assert_eq!(ld["spatialCoverage"]["address"]["addressCountry"], "BR");
        assert!(desks.body.contains("Newcomers did not know where to start."), "long texts");
        assert!(desks.body.contains("Evaluated"), "facts");
        assert!(!desks.body.contains("Hidden Person") && !desks.body.contains("hidden@example.org"));
        assert!(desks.body.contains("href=\"https://example.org/report.pdf\""), "resources are links");
        assert!(cafes.body.contains("shown@example.org"), "a consented contact is shown");

        // Real 404s: a draft, an id that is none, an address that is no page.
        let members = serde_json::from_str::<serde_json::Value>(
            &get(addr, "/api/practices", &[("Cookie", &format!("ibis_session={token}"))]).await.body,
        )
        .unwrap();
        let draft = members["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["review_state"] == "draft")
            .and_then(|r| r["id"].as_str())
            .unwrap()
            .trim_start_matches("automerge:")
            .to_owned();
        for path in [format!("/practices/{draft}"), "/practices/nothing".into(), "/no/such/page".into()] {
            let page = get(addr, &path, &[]).await;
            assert_eq!(page.status, 404, "{path}");
            assert!(page.body.contains("Not found"), "{path}");
            assert!(!page.body.contains("Unfinished draft"));
        }

        // HTTP caching: a shared cache may keep public pages; the same page again is 304.
        assert!(desks.header("cache-control").unwrap().starts_with("public"));
        let etag = desks.header("etag").expect("an ETag");
        let again = get(addr, &desks_path, &[("If-None-Match", &etag)]).await;
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());

        // An organization and an event, as the app makes them.
        let client = Client::connect(
            &format!("{}?token={token}", node.sync_url()),
            ClientOptions::default(),
            WAIT,
        )
        .await
        .unwrap();
        let organization = node.info().organization_id.clone();
        let author = organization_author(
            &Author {
                name: "amy".into(),
                organization: organization.clone(),
                role: Role::Editor,
            },
            &node.info().organization_name,
        );
        let mut event = Event::new("Study visit to São Paulo", "study-visit", "2027-03-14", &author);
        event.place = "São Paulo city hall".into();
        let event_id = client.create(event.create(&author, 1).unwrap()).await.unwrap();
        let catalogue = DocumentId::parse_id_or_url(&node.info().catalogue).unwrap();
        client.open(catalogue, WAIT).await.unwrap();
        let by = author.clone();
        client
            .change(catalogue, move |doc| {
                set_entry(doc, DocumentKind::Catalogue, Entry::Event, event_id, true, &by, 2)
            })
            .await
            .unwrap()
            .unwrap();
        let mut events = get(addr, "/events", &[]).await;
        for _ in 0..100 {
            if events.body.contains("Study visit") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            events = get(addr, "/events", &[]).await;
        }
        assert!(events.body.contains("Study visit to São Paulo"), "{}", events.body);
        let event_page = get(addr, &format!("/events/{event_id}"), &[]).await;
        assert_eq!(event_page.status, 200);
        let ld = event_page.json_ld();
        assert_eq!(ld["@type"], "Event");
        assert_eq!(ld["startDate"], "2027-03-14");
        assert_eq!(ld["location"]["name"], "São Paulo city hall");
        assert_eq!(get(addr, &format!("/events/{}", DocumentId::random()), &[]).await.status, 404);

        let organizations = get(addr, "/organizations", &[]).await;
        assert!(organizations.body.contains("Network of Cities"), "{}", organizations.body);
        let org_page = get(addr, &format!("/organizations/{organization}"), &[]).await;
        assert_eq!(org_page.status, 200);
        assert_eq!(org_page.json_ld()["@type"], "Organization");
        assert!(org_page.body.contains("Study visit to São Paulo"));
        assert_eq!(get(addr, "/organizations/nobody", &[]).await.status, 404);

        // The sitemap lists every public page and no draft; robots.txt points to it.
        let sitemap = get(addr, "/sitemap.xml", &[]).await;
        assert_eq!(sitemap.status, 200);
        assert!(sitemap.header("content-type").unwrap().starts_with("application/xml"));
        assert!(sitemap.body.contains(&format!("<loc>https://ibis.example.org{desks_path}</loc>")));
        assert_eq!(sitemap.body.matches("<loc>https://ibis.example.org/practices/").count(), 2);
        assert!(!sitemap.body.contains(&draft));
        assert!(sitemap.body.contains(&format!("/events/{event_id}</loc>")));
        let robots = get(addr, "/robots.txt", &[]).await;
        assert!(robots.body.contains("Disallow: /api/"));
        assert!(robots.body.contains("Sitemap: https://ibis.example.org/sitemap.xml"));

        client.close().await;
        node.shutdown().await.unwrap();
    })
    .await
    .expect("in time");
}
