//! The public clearinghouse in real browsers: the node's pages read and navigate with
//! JavaScript off (list, search, facets, paging, a practice, an organization, an event,
//! languages) and pass axe-core; with JavaScript on, the app takes over the node's page
//! without a blank page, keeps what it showed, and is live.

use std::time::Duration;

use fantoccini::Locator;
use ibis_node::client::{Client, ClientOptions};
use ibis_shared::model::catalogue::{set_entry, Entry};
use ibis_shared::model::event::Event;
use ibis_shared::model::practice::{apply_edit, PracticeEdit, TextField};
use ibis_shared::model::publication::organization_author;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::{Author, DocumentKind, Role};
use ibis_shared::DocumentId;
use ibis_tests::{
    axe, browser_tests_enabled, eventually, get_json, wait_listed, Browser, Federation, WAIT,
};

/// 25 published practices (two pages of the node's list), 5 in Brazil.
fn practices() -> Vec<PracticeRecord> {
    (0..25)
        .map(|i| {
            let (city, country) = if i % 5 == 0 {
                ("Recife", "BR")
            } else {
                ("Lyon", "FR")
            };
            PracticeRecord {
                title: format!("Practice {i:02}: welcome in {city}"),
                summary: format!("Neighbours welcome newcomers, story {i}."),
                city: city.into(),
                country: country.into(),
                themes: vec![if i % 2 == 0 { "housing" } else { "employment" }.into()],
                review_state: "published".into(),
                ..PracticeRecord::default()
            }
        })
        .collect()
}

/// Two organizations' nodes, the first holding the practices; a member of each.
async fn federation() -> Federation {
    let fed = Federation::start_with(&["Lyon", "Recife"], false, |i, dir| {
        if i == 0 {
            let file = dir.join("practices.json");
            std::fs::write(&file, serde_json::to_vec(&practices())?)?;
            let report =
                ibis_node::import::import(dir, &file, ibis_node::import::Format::Json, "test")?;
            anyhow::ensure!(report.failed() == 0, "import");
        }
        Ok(())
    })
    .await
    .expect("federation");
    for i in 0..2 {
        fed.add_user(i, "amy", Role::Editor, "a long enough password")
            .expect("user");
    }
    fed
}

/// A sync client acting for node `i`'s editor amy.
async fn member(fed: &Federation, i: usize) -> (Client, Author) {
    let token = fed.token(i, "amy").expect("token");
    let node = &fed.nodes[i];
    let client = Client::connect(
        &format!("{}?token={token}", node.sync_url()),
        ClientOptions::default(),
        WAIT,
    )
    .await
    .expect("client");
    let author = organization_author(
        &Author {
            name: "amy".into(),
            organization: node.info().organization_id.clone(),
            role: Role::Editor,
        },
        &node.info().organization_name,
    );
    (client, author)
}

/// Waits until node `i` lists `n` practices to visitors.
async fn css_texts(browser: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for el in browser
        .client
        .find_all(Locator::Css(css))
        .await
        .expect("find")
    {
        out.push(el.text().await.unwrap_or_default());
    }
    out
}

/// Clicks the element `css` finds and waits for the page it leads to.
async fn click_css(browser: &Browser, css: &str) {
    let before = browser.current_url().await.expect("url");
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
    eventually(WAIT, "the next page", || async {
        let now = browser.current_url().await.ok()?;
        (now != before).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{css} led nowhere: {e}"));
}

async fn path_and_query(browser: &Browser) -> String {
    let url = browser.current_url().await.expect("url");
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_owned())
}

/// axe-core's serious and critical violations on each of these node pages, read with
/// scripts on (axe is a script) but the app kept from loading, so that what is checked is
/// the node's page with its stylesheet.
async fn no_serious_violations(pages: &[String]) {
    let browser = Browser::start().await.expect("browser");
    browser
        .block_urls(&["*.wasm", "*/ibis-app-*.js"])
        .await
        .expect("keep the app out");
    for page in pages {
        browser.goto(page).await.expect("goto");
        assert!(
            browser
                .client
                .find_all(Locator::Css("#ssr"))
                .await
                .unwrap()
                .len()
                == 1,
            "{page}: the node's page"
        );
        let violations = axe(&browser).await;
        assert!(violations.is_empty(), "{page}: {violations:#?}");
    }
    browser.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_pages_read_and_link_without_javascript() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(180), async {
        let fed = federation().await;
        wait_listed(&fed.nodes[0], 25).await;
        // An event, listed in Lyon's catalogue, about the first practice.
        let (client, author) = member(&fed, 0).await;
        let mut event = Event::new(
            "Study visit to Recife",
            "study-visit",
            "2027-03-14",
            &author,
        );
        event.place = "Recife city hall".into();
        let event_id = client
            .create(event.create(&author, 1).unwrap())
            .await
            .unwrap();
        let catalogue = DocumentId::parse_id_or_url(&fed.nodes[0].info().catalogue).unwrap();
        client.open(catalogue, WAIT).await.unwrap();
        client
            .change(catalogue, move |doc| {
                set_entry(
                    doc,
                    DocumentKind::Catalogue,
                    Entry::Event,
                    event_id,
                    true,
                    &author,
                    2,
                )
            })
            .await
            .unwrap()
            .unwrap();

        let browser = Browser::without_javascript().await.expect("browser");
        // Every kind of page visited, for axe-core at the end.
        let mut checked: Vec<String> = Vec::new();
        let base = fed.nodes[0].http_url();
        browser.goto(&format!("{base}/")).await.unwrap();
        assert!(
            browser
                .client
                .find_all(Locator::Css("#app"))
                .await
                .unwrap()
                .is_empty(),
            "no script ran: the app never started"
        );
        assert_eq!(
            css_texts(&browser, "li.practice").await.len(),
            20,
            "the first page"
        );
        assert!(css_texts(&browser, ".count").await[0].starts_with("25 "));
        checked.push(browser.current_url().await.unwrap().to_string());

        // Paging is a link.
        click_css(&browser, "a[rel=next]").await;
        assert_eq!(path_and_query(&browser).await, "/?page=2");
        assert_eq!(css_texts(&browser, "li.practice").await.len(), 5);
        click_css(&browser, "a[rel=prev]").await;
        assert_eq!(css_texts(&browser, "li.practice").await.len(), 20);

        // A facet is a link; choosing it again takes it away.
        click_css(&browser, "a.facet-option[href='/?country=BR']").await;
        assert_eq!(path_and_query(&browser).await, "/?country=BR");
        let rows = css_texts(&browser, "li.practice").await;
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().all(|r| r.contains("Recife")), "{rows:?}");

        // The search is a form; it keeps the chosen facet.
        let input = browser.client.find(Locator::Css("#ssr-q")).await.unwrap();
        input.send_keys("story 10").await.unwrap();
        click_css(&browser, "form.search button[type=submit]").await;
        let at = path_and_query(&browser).await;
        assert!(
            at.contains("country=BR") && at.contains("q=story+10"),
            "{at}"
        );
        let rows = css_texts(&browser, "li.practice").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        checked.push(browser.current_url().await.unwrap().to_string());

        // A practice.
        click_css(&browser, "li.practice a").await;
        assert!(path_and_query(&browser).await.starts_with("/practices/"));
        let heading = css_texts(&browser, "h1").await;
        assert_eq!(heading, vec!["Practice 10: welcome in Recife"]);
        checked.push(browser.current_url().await.unwrap().to_string());

        // Languages: a link per language, which the links then keep.
        click_css(&browser, "nav.languages a[hreflang=fr]").await;
        let html_lang = browser
            .client
            .find(Locator::Css("html"))
            .await
            .unwrap()
            .attr("lang")
            .await
            .unwrap();
        assert_eq!(html_lang.as_deref(), Some("fr"));
        click_css(&browser, "nav[aria-label=main] a[href='/?lang=fr']").await;
        assert!(css_texts(&browser, ".count").await[0].ends_with("pratiques"));

        // Organizations and an organization.
        browser
            .goto(&format!("{base}/organizations"))
            .await
            .unwrap();
        checked.push(browser.current_url().await.unwrap().to_string());
        click_css(&browser, "a[href='/organizations/lyon']").await;
        assert_eq!(css_texts(&browser, "h1").await, vec!["Lyon"]);
        assert_eq!(css_texts(&browser, "ul.practices li").await.len(), 25);
        checked.push(browser.current_url().await.unwrap().to_string());

        // Events and an event.
        browser.goto(&format!("{base}/events")).await.unwrap();
        checked.push(browser.current_url().await.unwrap().to_string());
        click_css(&browser, &format!("a[href='/events/{event_id}']")).await;
        assert_eq!(
            css_texts(&browser, "h1").await,
            vec!["Study visit to Recife"]
        );
        checked.push(browser.current_url().await.unwrap().to_string());

        // The map: a point per city, and its places listed, each linking to its list.
        browser.goto(&format!("{base}/")).await.unwrap();
        click_css(&browser, "nav[aria-label=main] a[href='/map']").await;
        assert_eq!(css_texts(&browser, "h1").await, vec!["Practices on a map"]);
        let points = browser
            .client
            .find_all(Locator::Css("svg.world circle"))
            .await
            .unwrap();
        assert_eq!(points.len(), 2, "Lyon and Recife");
        checked.push(browser.current_url().await.unwrap().to_string());
        click_css(&browser, "ul.places a[href='/?country=BR&city=Recife']").await;
        let rows = css_texts(&browser, "ul.practices li").await;
        assert_eq!(rows.len(), 5, "{rows:?}");
        assert!(rows.iter().all(|r| r.contains("Recife")), "{rows:?}");

        // An address that is no page.
        browser
            .goto(&format!("{base}/practices/nothing"))
            .await
            .unwrap();
        assert_eq!(css_texts(&browser, "h1").await, vec!["Not found"]);
        checked.push(browser.current_url().await.unwrap().to_string());

        client.close().await;
        browser.close().await.expect("close");
        no_serious_violations(&checked).await;
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_takes_over_the_nodes_page_keeps_it_and_is_live() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(180), async {
        let fed = federation().await;
        // The visitor is at Recife's node, which holds Lyon's practices as a partner.
        wait_listed(&fed.nodes[1], 25).await;
        let browser = Browser::start().await.expect("browser");
        browser
            .goto(&format!("{}/?country=BR&q=neighbours", fed.nodes[1].http_url()))
            .await
            .unwrap();
        // The node's page is there at once; the app replaces it when it can show as much.
        eventually(WAIT, "the app takes over", || async {
            let gone = browser.client.find_all(Locator::Css("#ssr")).await.ok()?.is_empty();
            gone.then_some(())
        })
        .await
        .expect("taken over");
        let timing = browser
            .script(
                "const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                 const took = performance.getEntriesByName('ibis:app-took-over')[0];
                 return [fcp ? fcp.startTime : null, took ? took.startTime : null];",
            )
            .await
            .expect("timing");
        let (painted, took_over) = (timing[0].as_f64(), timing[1].as_f64());
        assert!(
            painted.is_some() && took_over.is_some() && painted < took_over,
            "the node's page was painted before the app took over: {timing}"
        );
        // What the page showed, the app shows: the search, the facet, the rows.
        assert_eq!(browser.prop("search", "value").await.unwrap(), "neighbours");
        let rows = browser.texts("practice-title").await.unwrap();
        assert_eq!(rows.len(), 5, "{rows:?}");
        let checked = browser
            .script("return [...document.querySelectorAll('[data-testid=facet-country] [data-value=BR] input')].map(i => i.checked)")
            .await
            .unwrap();
        assert_eq!(checked, serde_json::json!([true]));
        // The app follows the search in the address.
        browser.fill("search", "story 5").await.unwrap();
        eventually(WAIT, "the address follows", || async {
            let at = path_and_query(&browser).await;
            // (`%20` or `+`: the node reads both.)
            let at = at.replace("%20", "+");
            (at.contains("q=story+5") && at.contains("country=BR")).then_some(())
        })
        .await
        .expect("address");
        // Live: Lyon's editor retitles a practice at Lyon; it reaches this page through
        // Recife without a reload.
        let (client, author) = member(&fed, 0).await;
        let id = get_json(&format!("{}/api/practices?q=story+5", fed.nodes[0].http_url()))
            .await
            .and_then(|v| v["results"][0]["id"].as_str().map(str::to_owned))
            .expect("the practice's id");
        let id = DocumentId::parse_id_or_url(&id).unwrap();
        client.open(id, WAIT).await.unwrap();
        let edit = PracticeEdit::Text {
            field: TextField::Title,
            translation: None,
            base: "Practice 05: welcome in Recife".into(),
            new: "Practice 05: a warm welcome in Recife".into(),
        };
        client
            .change(id, move |doc| apply_edit(doc, &edit, &author, 3))
            .await
            .unwrap()
            .unwrap();
        browser
            .wait_for_text("practice-title", "a warm welcome")
            .await
            .expect("the edit arrives live");
        let errors = browser.console_errors().await.expect("the console's log");
        assert!(errors.is_empty(), "nothing went wrong in the page: {errors:#?}");
        client.close().await;
        browser.close().await.expect("close");
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_opened_ibis_once_reloads_it_offline() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(180), async {
        let mut fed = federation().await;
        wait_listed(&fed.nodes[0], 25).await;
        let browser = Browser::start().await.expect("browser");
        // One page load.
        browser
            .goto(&format!("{}/", fed.nodes[0].http_url()))
            .await
            .unwrap();
        eventually(WAIT, "the app's replica holds the catalogue", || async {
            let n = browser
                .client
                .find_all(Locator::Css(
                    "[data-testid=practice-list][data-source=replica] [data-testid=practice-title]",
                ))
                .await
                .ok()?
                .len();
            (n == 25).then_some(())
        })
        .await
        .expect("25 practices");
        browser
            .script_async(
                "const done = arguments[arguments.length - 1];
                 navigator.serviceWorker.ready.then(() => done(true));",
            )
            .await
            .expect("the service worker is installed");
        // The node goes away; a reload still has the app and what it held.
        fed.stop(0).await.expect("stop the node");
        browser.refresh().await.expect("reload");
        browser
            .wait_for_text("sync-status", "Offline")
            .await
            .expect("the app, offline");
        eventually(WAIT, "the practices, offline", || async {
            let n = browser.texts("practice-title").await.ok()?.len();
            (n == 25).then_some(())
        })
        .await
        .expect("25 practices offline");
        // The map is the node's page: offline, the app says so (and links to the list).
        let url = browser.client.current_url().await.expect("url");
        let map = url.join("/map").expect("the map's address");
        browser.goto(map.as_str()).await.expect("the map, offline");
        browser
            .wait_for_text("map-offline", "node")
            .await
            .expect("the app explains the map needs the node");
        browser.close().await.expect("close");
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

/// The texts of the elements `css` finds in the page, trimmed.
async fn all_texts(browser: &Browser, css: &str) -> Vec<String> {
    css_texts(browser, css)
        .await
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_practice_page_and_the_apps_show_the_same_fields() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(180), async {
        let fed = Federation::start_with(&["Lyon"], false, |_, dir| {
            let record = PracticeRecord {
                title: "Welcome desks in every library".into(),
                summary: "One-stop desks for newcomers.".into(),
                context: "Newcomers did not know where to start.".into(),
                process: "Librarians trained with the city's services.".into(),
                outcomes: "Most visitors found what they came for.".into(),
                transferability: "Any city with a library network.".into(),
                funding: "City budget.".into(),
                city: "Lyon".into(),
                country: "FR".into(),
                lead_organization: "City of Lyon".into(),
                partners: vec!["UNHCR".into()],
                themes: vec!["reception-services".into(), "housing".into()],
                gcm_objectives: vec![16],
                sdg_goals: vec![10],
                target_groups: vec!["refugees".into()],
                actor_level: "city".into(),
                start_date: "2019".into(),
                evidence_level: "evaluated".into(),
                contact_name: "Ana".into(),
                contact_email: "ana@example.org".into(),
                contact_consent: true,
                review_state: "published".into(),
                ..PracticeRecord::default()
            };
            let file = dir.join("one.json");
            std::fs::write(&file, serde_json::to_vec(&[record])?)?;
            let report =
                ibis_node::import::import(dir, &file, ibis_node::import::Format::Json, "test")?;
            anyhow::ensure!(
                report.failed() == 0,
                "import: {:?}",
                ibis_node::import::describe(&report)
            );
            Ok(())
        })
        .await
        .expect("federation");
        wait_listed(&fed.nodes[0], 1).await;
        let id = get_json(&format!("{}/api/practices", fed.nodes[0].http_url()))
            .await
            .and_then(|v| v["results"][0]["id"].as_str().map(str::to_owned))
            .expect("the practice's id");
        let url = format!(
            "{}/practices/{}",
            fed.nodes[0].http_url(),
            id.trim_start_matches("automerge:")
        );
        let fields = "article h1, article h2, article dt, article dd";
        // The node's page, the app kept out.
        let server = Browser::start().await.expect("browser");
        server
            .block_urls(&["*.wasm", "*/ibis-app-*.js"])
            .await
            .expect("keep the app out");
        server.goto(&url).await.unwrap();
        let on_server = all_texts(
            &server,
            &format!("#ssr {}", fields.replace(", ", ", #ssr ")),
        )
        .await;
        server.close().await.expect("close");
        // The app's page, once it took over.
        let app = Browser::start().await.expect("browser");
        app.goto(&url).await.unwrap();
        app.wait_for_text("practice-heading", "Welcome desks")
            .await
            .expect("the app's page");
        let in_app = all_texts(&app, fields).await;
        app.close().await.expect("close");
        assert!(on_server.len() >= 20, "{on_server:#?}");
        let missing: Vec<&String> = on_server.iter().filter(|t| !in_app.contains(t)).collect();
        assert!(
            missing.is_empty(),
            "the node's page shows what the app does not: {missing:#?}\nthe app: {in_app:#?}"
        );
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}
