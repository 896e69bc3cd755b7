//! The map against a running node: practices imported without coordinates are placed at
//! their city by the gazetteer the node ships, practices with coordinates keep theirs, a
//! city the gazetteer does not know is counted as not on the map, and `/map` draws the
//! world (from the map the node ships) with a point per place, linking to its list.

use std::time::Duration;

use ibis_node::InitOptions;

mod common;

use common::get;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practices_are_placed_on_the_map_by_their_coordinates_or_their_city() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        ibis_node::init(&InitOptions::new(dir.path(), "Network of Cities")).unwrap();
        let report = common::import_json(
            dir.path(),
            serde_json::json!([
                {"title": "Language cafés", "summary": "Neighbours meet.", "city": "Lyon",
                 "country": "FR", "themes": ["education-language"], "review_state": "published"},
                {"title": "Welcome desks", "summary": "One-stop desks.", "city": "Lisbon",
                 "country": "PT", "latitude": 38.7, "longitude": -9.1,
                 "themes": ["reception-services"], "review_state": "published"},
                {"title": "Island homes", "summary": "Housing first.", "city": "Atlantis",
                 "country": "FR", "themes": ["housing"], "review_state": "published"},
                {"title": "Unfinished draft", "city": "Lyon", "country": "FR"}
            ]),
        );
        assert_eq!(report.failed(), 0);
        assert_eq!(
            report.placed, 2,
            "both Lyon rows; Lisbon had its own, Atlantis is unknown"
        );
        let node = common::serve(dir.path()).await;
        let addr = node.addr();
        let api =
            common::get_when(addr, "/api/practices", |a| a.body.contains("Island homes")).await;
        let listed: serde_json::Value = serde_json::from_str(&api.body).unwrap();
        let at = |title: &str| {
            let r = listed["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["title"] == title)
                .unwrap_or_else(|| panic!("{title} is listed"));
            (r["latitude"].as_f64(), r["longitude"].as_f64())
        };
        let (lat, lon) = at("Language cafés");
        assert!(lat.is_some_and(|l| (45.0..46.5).contains(&l)), "{lat:?}");
        assert!(lon.is_some_and(|l| (4.0..5.5).contains(&l)), "{lon:?}");
        assert_eq!(
            at("Welcome desks"),
            (Some(38.7), Some(-9.1)),
            "its own coordinates"
        );
        assert_eq!(at("Island homes"), (None, None));

        let map = get(addr, "/map", &[]).await;
        assert_eq!(map.status, 200);
        let body = &map.body;
        assert!(
            body.contains("<svg") && body.contains("<title>France</title>"),
            "the world"
        );
        assert_eq!(
            body.matches("data-testid=\"place\"").count(),
            2,
            "Lyon and Lisbon"
        );
        assert!(body.contains("data-testid=\"placed\">2<"), "{body}");
        assert!(body.contains("data-testid=\"unplaced\">1<"), "Atlantis");
        assert!(!body.contains("Unfinished draft") && body.contains("Lyon, France"));
        // A point links to the list of its practices.
        assert!(
            body.contains("href=\"/?country=FR&amp;city=Lyon\""),
            "{body}"
        );
        let lyon = get(addr, "/?country=FR&city=Lyon", &[]).await;
        assert!(lyon.body.contains("Language cafés") && !lyon.body.contains("Island homes"));
        // The map follows the search, and the list links to its map.
        let housing = get(addr, "/map?theme=housing", &[]).await;
        assert_eq!(housing.body.matches("data-testid=\"place\"").count(), 0);
        assert!(housing.body.contains("data-testid=\"unplaced\">1<"));
        let list = get(addr, "/?theme=housing", &[]).await;
        assert!(
            list.body.contains("href=\"/map?theme=housing\""),
            "{}",
            list.body
        );
        // In the visitor's language, and in the sitemap.
        let fr = get(addr, "/map?lang=fr", &[]).await;
        assert!(fr.body.contains("Les pratiques sur une carte"));
        let sitemap = get(addr, "/sitemap.xml", &[]).await;
        assert!(sitemap.body.contains("/map</loc>"));

        // Where a city is, for the app: anyone may ask; a malformed question is refused.
        let lisbon = get(addr, "/api/places?country=PT&city=lisbon", &[]).await;
        assert_eq!(lisbon.status, 200, "{}", lisbon.body);
        assert!(lisbon.body.contains("\"lat\":38."), "{}", lisbon.body);
        assert_eq!(
            get(addr, "/api/places?country=PT&city=Atlantis", &[])
                .await
                .status,
            404
        );
        let long = format!("/api/places?country=PT&city={}", "a".repeat(5_000));
        for hostile in [
            "/api/places?country=PT",
            "/api/places?country=%FF%FE&city=x",
            "/api/places?country=PT&city=Lisboa&country=FR",
            "/api/places?country=PT&city=Lisboa&debug=1",
            long.as_str(),
        ] {
            let answer = get(addr, hostile, &[]).await;
            assert_eq!(answer.status, 400, "{hostile}: {}", answer.body);
        }
        node.shutdown().await.unwrap();
    })
    .await
    .expect("finishes in time");
}
