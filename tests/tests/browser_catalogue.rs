//! The catalogue in real browsers: collaborative editing, offline editing, search and
//! facets at scale, draft visibility, accessibility. (Publishing, withdrawing and logging
//! out: `browser_publication.rs`.)

use std::collections::BTreeMap;
use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::Locator;
use ibis_node::client::{Client, ClientOptions};
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::Role;
use ibis_tests::{axe, browser_tests_enabled, eventually, Browser, Federation, WAIT};

/// Saves a screenshot under `IBIS_SCREENSHOTS` when that is set (for docs/). A relative
/// directory is taken from the workspace root (tests run in `tests/`).
async fn screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("IBIS_SCREENSHOTS") {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let path = root.join(dir).join(format!("{name}.png"));
        if let Err(e) = browser.screenshot(&path).await {
            eprintln!("screenshot {name}: {e}");
        }
    }
}

async fn open_app(node: &ibis_node::RunningNode) -> Browser {
    let browser = Browser::start().await.expect("browser");
    browser
        .goto(&format!("{}/", node.http_url()))
        .await
        .expect("goto");
    browser
        .wait_for_text("sync-status", "Online")
        .await
        .expect("online");
    browser
}

/// Adds a practice through the form; returns the id of its page: its public practice's,
/// where the app goes when it is published at once, or else its draft's (from the list).
async fn add_practice(browser: &Browser, title: &str, summary: &str, publish: bool) -> String {
    browser.click("add-open").await.expect("open the form");
    browser.fill("add-title", title).await.expect("title");
    browser.fill("add-city", "Lisbon").await.expect("city");
    browser.select("add-country", "PT").await.expect("country");
    browser.fill("add-summary", summary).await.expect("summary");
    browser
        .select("add-theme", "reception-services")
        .await
        .expect("theme");
    if !publish {
        browser.click("add-publish").await.expect("uncheck publish");
    }
    browser.click("add-submit").await.expect("save");
    if publish {
        browser
            .wait_for_text("practice-heading", title)
            .await
            .expect("the published practice's page");
        let path = browser
            .wait_for_path("a practice's page", |p| p.starts_with("/practices/"))
            .await
            .expect("path");
        return path.trim_start_matches("/practices/").to_owned();
    }
    browser
        .wait_for_text("practice-title", title)
        .await
        .expect("listed");
    practice_id(browser, title).await
}

async fn practice_id(browser: &Browser, title: &str) -> String {
    for row in browser
        .client
        .find_all(Locator::Css("[data-testid=practice-row]"))
        .await
        .expect("rows")
    {
        if row.text().await.unwrap_or_default().contains(title) {
            let href = row
                .find(Locator::Css("a"))
                .await
                .expect("link")
                .attr("href")
                .await
                .expect("href")
                .expect("an href");
            return href.rsplit('/').next().unwrap_or_default().to_owned();
        }
    }
    panic!("no row for {title}");
}

async fn open_practice(browser: &Browser, node: &ibis_node::RunningNode, id: &str) {
    browser
        .goto(&format!("{}/practices/{id}", node.http_url()))
        .await
        .expect("goto");
    browser
        .wait_for("practice-heading")
        .await
        .expect("the practice page");
}

/// Opens the practice in two browsers on one node, and waits until each shows the other as
/// here now (presence: ephemeral messages, sent on opening the page and every 10 s).
async fn open_on_both(a: &Browser, b: &Browser, node: &ibis_node::RunningNode, id: &str) {
    open_practice(a, node, id).await;
    open_practice(b, node, id).await;
    a.wait_for_text("presence", "Also here now")
        .await
        .expect("the other reader shown");
    b.wait_for_text("presence", "Also here now")
        .await
        .expect("the other reader shown");
}

async fn wait_for_value(browser: &Browser, testid: &str, wanted: &str) {
    let found = eventually(WAIT, &format!("`{wanted}` in {testid}"), || async {
        let v = browser.prop(testid, "value").await.ok()?;
        (v == wanted).then_some(v)
    })
    .await;
    if let Err(e) = found {
        let seen = browser.prop(testid, "value").await.unwrap_or_default();
        panic!("{e}; the field holds `{seen}`");
    }
}

/// Whether the page shows an element with this `data-testid` now.
async fn shows(browser: &Browser, testid: &str) -> bool {
    let css = format!("[data-testid={testid}]");
    browser
        .client
        .find_all(Locator::Css(&css))
        .await
        .is_ok_and(|found| !found.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_typing_in_one_published_summary_both_keep_their_words_and_a_partner_sees_them()
{
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(240), async {
        let fed = Federation::start(&["IOM", "NLC"], true)
            .await
            .expect("federation");
        let amy = open_app(&fed.nodes[0]).await;
        let ben = open_app(&fed.nodes[0]).await;
        let nlc = open_app(&fed.nodes[1]).await;
        let title = "Welcome desks (typing)";
        let id = add_practice(&amy, title, "One-stop desks for newcomers.", true).await;
        nlc.wait_for_text("practice-title", title)
            .await
            .expect("on the partner");
        // Made in the browser, it was placed by its city, as an import places one.
        let url = format!("{}/api/practices/{id}", fed.nodes[0].http_url());
        let record = eventually(WAIT, "the practice in the node's API", || {
            let url = url.clone();
            async move {
                ibis_tests::get_json(&url)
                    .await
                    .filter(|r| r["title"] == title)
            }
        })
        .await
        .expect("indexed");
        let lat = record["latitude"].as_f64().expect("a latitude");
        let lon = record["longitude"].as_f64().expect("a longitude");
        assert!(
            (38.5..39.0).contains(&lat) && (-9.5..-9.0).contains(&lon),
            "Lisbon is at {lat}, {lon}"
        );

        open_on_both(&amy, &ben, &fed.nodes[0], &id).await;
        amy.click("edit").await.expect("edit");
        ben.click("edit").await.expect("edit");
        wait_for_value(&amy, "edit-summary", "One-stop desks for newcomers.").await;
        wait_for_value(&ben, "edit-summary", "One-stop desks for newcomers.").await;
        screenshot(&amy, "editor").await;

        // The partner's people read it, and may not edit it (it is IOM's).
        open_practice(&nlc, &fed.nodes[1], &id).await;
        nlc.wait_for_text("field-summary", "One-stop desks")
            .await
            .expect("the partner's page");
        assert!(
            !shows(&nlc, "edit").await,
            "a partner may edit IOM's practice"
        );

        let at_start = format!("{}Municipal ", char::from(Key::Home));
        let at_end = format!("{} in twelve languages", char::from(Key::End));
        let (a, b) = tokio::join!(
            amy.type_text("edit-summary", &at_start),
            ben.type_text("edit-summary", &at_end),
        );
        a.expect("typing (Amy)");
        b.expect("typing (Ben)");

        let both = "Municipal One-stop desks for newcomers. in twelve languages";
        wait_for_value(&amy, "edit-summary", both).await;
        wait_for_value(&ben, "edit-summary", both).await;
        nlc.wait_for_text("field-summary", both)
            .await
            .expect("live at the partner");
        for b in [amy, ben, nlc] {
            b.close().await.expect("close");
        }
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_edit_survives_a_reload_and_merges_with_a_concurrent_edit() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(300), async {
        let mut fed = Federation::start(&["IOM", "NLC"], true)
            .await
            .expect("federation");
        let amy = open_app(&fed.nodes[0]).await;
        let ben = open_app(&fed.nodes[0]).await;
        let nlc = open_app(&fed.nodes[1]).await;
        let title = "Library welcome desks (offline)";
        let id = add_practice(&amy, title, "Desks.", true).await;
        open_on_both(&amy, &ben, &fed.nodes[0], &id).await;
        amy.click("edit").await.expect("edit");
        ben.click("edit").await.expect("edit");
        wait_for_value(&amy, "edit-summary", "Desks.").await;
        wait_for_value(&ben, "edit-summary", "Desks.").await;

        // IOM's node goes away: each browser keeps working from its own copy.
        fed.stop(0).await.expect("stop IOM's node");
        for b in [&amy, &ben] {
            b.wait_for_text("sync-status", "Offline")
                .await
                .expect("offline");
        }
        amy.type_text(
            "edit-summary",
            &format!("{} Open on Saturdays.", char::from(Key::End)),
        )
        .await
        .expect("type offline");
        amy.wait_for_text("sync-status", "changes waiting")
            .await
            .expect("changes waiting");
        screenshot(&amy, "offline").await;

        // Meanwhile someone else edits the same text, offline too.
        ben.type_text(
            "edit-summary",
            &format!("{}Since 2010: ", char::from(Key::Home)),
        )
        .await
        .expect("type (Ben)");
        wait_for_value(&ben, "edit-summary", "Since 2010: Desks.").await;

        // Reload while offline: the app starts from its cache and IndexedDB.
        amy.refresh().await.expect("reload");
        amy.wait_for("practice-heading")
            .await
            .expect("the page, offline");
        amy.wait_for_text("sync-status", "Offline")
            .await
            .expect("still offline");
        amy.click("edit").await.expect("edit");
        wait_for_value(&amy, "edit-summary", "Desks. Open on Saturdays.").await;

        // Back online: both edits survive, everywhere.
        fed.restart(0).await.expect("restart IOM's node");
        for b in [&amy, &ben] {
            b.wait_for_text("sync-status", "all changes saved")
                .await
                .expect("synced");
        }
        let merged = "Since 2010: Desks. Open on Saturdays.";
        wait_for_value(&amy, "edit-summary", merged).await;
        wait_for_value(&ben, "edit-summary", merged).await;
        open_practice(&nlc, &fed.nodes[1], &id).await;
        nlc.wait_for_text("field-summary", merged)
            .await
            .expect("merged at the partner");
        for b in [amy, ben, nlc] {
            b.close().await.expect("close");
        }
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

const CITIES: [(&str, &str); 8] = [
    ("Lyon", "FR"),
    ("Paris", "FR"),
    ("Lisbon", "PT"),
    ("Porto", "PT"),
    ("Toronto", "CA"),
    ("Chicago", "US"),
    ("Denver", "US"),
    ("São Paulo", "BR"),
];
const THEMES: [&str; 5] = ["housing", "health", "employment", "youth", "women"];
const WORDS: [&str; 4] = ["desks", "mentoring", "classes", "councils"];

fn generated(n: usize) -> Vec<PracticeRecord> {
    (0..n)
        .map(|i| {
            let (city, country) = CITIES[i * 7 % CITIES.len()];
            let mut themes = vec![THEMES[i % THEMES.len()].to_owned()];
            if i % 3 == 0 {
                themes.push("education-language".into());
            }
            PracticeRecord {
                title: format!("Practice {i}: community {}", WORDS[i % WORDS.len()]),
                summary: "A generated practice.".into(),
                city: city.into(),
                country: country.into(),
                themes,
                review_state: "published".into(),
                ..PracticeRecord::default()
            }
        })
        .collect()
}

/// One open node holding `n` generated practices (imported before it starts).
async fn with_generated(n: usize) -> Federation {
    Federation::start_with(&["IOM"], true, |_, dir| {
        let file = dir.join("generated.json");
        std::fs::write(&file, serde_json::to_vec(&generated(n))?)?;
        let report =
            ibis_node::import::import(dir, &file, ibis_node::import::Format::Json, "generator")?;
        anyhow::ensure!(report.failed() == 0, "generated records import");
        Ok(())
    })
    .await
    .expect("federation")
}

/// (value, count) of a facet as the page shows it.
async fn facet_counts(browser: &Browser, facet: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let sel = format!("[data-testid=facet-{facet}] [data-testid=facet-option]");
    for el in browser
        .client
        .find_all(Locator::Css(&sel))
        .await
        .expect("options")
    {
        let value = el
            .attr("data-value")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let count = el
            .attr("data-count")
            .await
            .ok()
            .flatten()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        out.insert(value, count);
    }
    out
}

/// The result count the list shows, and where its results come from (`node` until the
/// replica holds the whole catalogue, then `replica`).
async fn answered(browser: &Browser) -> Option<(u64, String)> {
    let v = browser
        .script(
            "const list = document.querySelector('[data-testid=practice-list]');
             const count = document.querySelector('[data-testid=result-count]');
             return [list && list.dataset.source, count && count.textContent];",
        )
        .await
        .ok()?;
    let count = v[1].as_str()?.split_whitespace().next()?.parse().ok()?;
    Some((count, v[0].as_str()?.to_owned()))
}

/// The result count of the local replica's search (0 while the node answers).
async fn result_count(browser: &Browser) -> u64 {
    match answered(browser).await {
        Some((n, source)) if source == "replica" => n,
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_facet_counts_match_a_thousand_practices_from_the_first_second() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(400), async {
        const N: usize = 1_000;
        let records = generated(N);
        let mentoring = records
            .iter()
            .filter(|r| r.title.contains("mentoring"))
            .count() as u64;
        let mut fed = with_generated(N).await;
        // A first visit whose replica cannot load yet: the node takes one sync connection,
        // and a client holds it. (Here a replica would otherwise hold a thousand short
        // practices within a second, too soon to see the node answer.)
        fed.stop(0).await.expect("stop");
        fed.restart_with_max_connections(0, Some(1))
            .await
            .expect("restart");
        ibis_tests::wait_listed(&fed.nodes[0], N as u64).await;
        let holder = Client::connect(&fed.nodes[0].sync_url(), ClientOptions::default(), WAIT)
            .await
            .expect("the one connection");
        let browser = Browser::start().await.expect("browser");
        // As soon as the app has taken the node's page over, a search covers the whole
        // catalogue, because the node answers it.
        browser
            .goto(&format!("{}/", fed.nodes[0].http_url()))
            .await
            .expect("goto");
        eventually(WAIT, "the app takes over", || async {
            let gone = browser
                .client
                .find_all(Locator::Css("#ssr"))
                .await
                .ok()?
                .is_empty();
            gone.then_some(())
        })
        .await
        .expect("taken over");
        browser.fill("search", "mentor").await.expect("search");
        let (_, source) = eventually(WAIT, "the whole catalogue searched", || async {
            answered(&browser).await.filter(|(n, _)| *n == mentoring)
        })
        .await
        .expect("every mentoring practice found");
        assert_eq!(source, "node", "the replica cannot load yet");
        assert!(
            facet_counts(&browser, "theme").await.values().sum::<u64>() >= mentoring,
            "the node's facet counts"
        );
        // Once the replica can load and holds them, it answers the same search alike.
        holder.close().await;
        eventually(Duration::from_secs(240), "the replica answers", || async {
            (result_count(&browser).await == mentoring).then_some(())
        })
        .await
        .expect("the replica's answer");
        // Erased as a person would (keystrokes, so the app hears them).
        let erase: String =
            std::iter::repeat_n(char::from(Key::Backspace), "mentor".len()).collect();
        browser
            .type_text("search", &erase)
            .await
            .expect("clear the search");
        eventually(
            Duration::from_secs(240),
            "all practices in the browser",
            || async { (result_count(&browser).await == N as u64).then_some(()) },
        )
        .await
        .expect("the whole catalogue arrives");
        screenshot(&browser, "list").await;

        let mut themes: BTreeMap<String, u64> = BTreeMap::new();
        let mut countries: BTreeMap<String, u64> = BTreeMap::new();
        for r in &records {
            for t in &r.themes {
                *themes.entry(t.clone()).or_default() += 1;
            }
            *countries.entry(r.country.clone()).or_default() += 1;
        }
        assert_eq!(facet_counts(&browser, "theme").await, themes);
        assert_eq!(facet_counts(&browser, "country").await, countries);

        // Full-text search: every word must start a word of the practice.
        browser.fill("search", "mentor").await.expect("search");
        eventually(WAIT, "the search results", || async {
            (result_count(&browser).await == mentoring).then_some(())
        })
        .await
        .expect("search count");
        // A facet on top of the search: counts follow the results.
        let country = records
            .iter()
            .find(|r| r.title.contains("mentoring"))
            .map(|r| r.country.clone())
            .expect("a mentoring practice");
        let sel = format!(
            "[data-testid=facet-country] [data-testid=facet-option][data-value={country}] input"
        );
        browser
            .client
            .find(Locator::Css(&sel))
            .await
            .expect("the country")
            .click()
            .await
            .expect("click");
        let expected = records
            .iter()
            .filter(|r| r.title.contains("mentoring") && r.country == country)
            .count() as u64;
        eventually(WAIT, "the filtered results", || async {
            (result_count(&browser).await == expected).then_some(())
        })
        .await
        .expect("filtered count");
        let mut themes_now: BTreeMap<String, u64> = BTreeMap::new();
        for r in records
            .iter()
            .filter(|r| r.title.contains("mentoring") && r.country == country)
        {
            for t in &r.themes {
                *themes_now.entry(t.clone()).or_default() += 1;
            }
        }
        assert_eq!(facet_counts(&browser, "theme").await, themes_now);
        browser.close().await.expect("close");
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

/// Rows the list shows now.
async fn row_count(browser: &Browser) -> usize {
    browser
        .client
        .find_all(Locator::Css("[data-testid=practice-row]"))
        .await
        .map(|rows| rows.len())
        .unwrap_or(0)
}

/// The path of the page the browser shows.
async fn path(browser: &Browser) -> String {
    let url = browser.current_url().await.expect("url");
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(&url);
    rest.find('/')
        .map(|i| rest[i..].to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_back_and_show_more_move_around_without_reloading_the_app() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(300), async {
        const N: usize = 120;
        let fed = with_generated(N).await;
        let browser = open_app(&fed.nodes[0]).await;
        eventually(Duration::from_secs(120), "all practices listed", || async {
            (result_count(&browser).await == N as u64).then_some(())
        })
        .await
        .expect("the catalogue arrives");
        // The list shows 50 rows at a time.
        assert_eq!(row_count(&browser).await, 50);
        browser.click("show-more").await.expect("show more");
        eventually(WAIT, "100 rows", || async {
            (row_count(&browser).await == 100).then_some(())
        })
        .await
        .expect("a second page of rows");

        // A page that reloads loses this marker.
        browser
            .script("window.ibisTestMarker = 'still here'; return null;")
            .await
            .expect("marker");
        let marker = || async {
            browser
                .script("return window.ibisTestMarker || null;")
                .await
                .expect("read marker")
        };
        let first = browser
            .client
            .find(Locator::Css("[data-testid=practice-row] a"))
            .await
            .expect("a practice link");
        let href = first.attr("href").await.expect("href").expect("an href");
        first.click().await.expect("open the practice");
        browser
            .wait_for("practice-heading")
            .await
            .expect("the practice page");
        assert_eq!(path(&browser).await, href);
        assert_eq!(
            marker().await,
            serde_json::json!("still here"),
            "the app reloaded"
        );
        browser
            .client
            .find(Locator::LinkText("Events"))
            .await
            .expect("the Events link")
            .click()
            .await
            .expect("open events");
        browser
            .wait_for("event-open")
            .await
            .expect("the events page");
        assert_eq!(path(&browser).await, "/events");
        assert_eq!(
            marker().await,
            serde_json::json!("still here"),
            "the app reloaded"
        );

        browser.client.back().await.expect("back");
        browser
            .wait_for("practice-heading")
            .await
            .expect("back on the practice");
        assert_eq!(path(&browser).await, href);
        browser.client.back().await.expect("back");
        eventually(WAIT, "the list again", || async {
            (result_count(&browser).await == N as u64).then_some(())
        })
        .await
        .expect("back on the list");
        assert_eq!(path(&browser).await, "/");
        assert_eq!(
            marker().await,
            serde_json::json!("still here"),
            "the app reloaded"
        );
        browser.close().await.expect("close");
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

async fn open_app_at(browser: &Browser, node: &ibis_node::RunningNode, path: &str) {
    browser
        .goto(&format!("{}{path}", node.http_url()))
        .await
        .expect("goto");
}

async fn log_in(browser: &Browser, name: &str, password: &str) {
    browser.fill("login-name", name).await.expect("name");
    browser
        .fill("login-password", password)
        .await
        .expect("password");
    browser.click("login-submit").await.expect("log in");
    browser.wait_for("user").await.expect("logged in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_is_invisible_to_partners_and_anonymous_visitors_until_published() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(240), async {
        let fed = Federation::start(&["IOM", "NLC"], false)
            .await
            .expect("federation");
        fed.add_user(0, "rita", Role::Reviewer, "a long enough password")
            .expect("user");
        let rita = open_app(&fed.nodes[0]).await;
        log_in(&rita, "rita", "a long enough password").await;
        rita.wait_for_text("sync-status", "Online")
            .await
            .expect("online again");
        let title = "Mentoring for newcomer entrepreneurs (draft)";
        let id = add_practice(&rita, title, "Volunteer mentors.", false).await;

        let visitor = open_app(&fed.nodes[0]).await;
        let partner = open_app(&fed.nodes[1]).await;
        // Give a leak every chance to happen.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for (who, browser) in [
            ("an anonymous visitor", &visitor),
            ("the partner node", &partner),
        ] {
            let titles = browser.texts("practice-title").await.expect("titles");
            assert!(
                !titles.iter().any(|t| t.contains(title)),
                "{who} sees the draft"
            );
        }

        open_practice(&rita, &fed.nodes[0], &id).await;
        rita.click("review-publish").await.expect("publish");
        // Publishing makes the public practice, a document of its own: the app goes there.
        let public = rita
            .wait_for_path("the public practice's page", |p| {
                p.starts_with("/practices/") && !p.ends_with(&id)
            })
            .await
            .expect("a new address");
        rita.wait_for_text("field-state", "published")
            .await
            .expect("published");
        rita.wait_for_text("practice-heading", title)
            .await
            .expect("its page");
        partner
            .wait_for_text("practice-title", title)
            .await
            .expect("the partner gets it");
        visitor.refresh().await.expect("reload");
        visitor
            .wait_for_text("practice-title", title)
            .await
            .expect("visitors see it");
        // The draft's own address stays the organization's: visitors find nothing there.
        open_app_at(&visitor, &fed.nodes[0], &format!("/practices/{id}")).await;
        visitor
            .wait_for("not-found")
            .await
            .expect("the internal practice is not served to visitors");
        open_app_at(&visitor, &fed.nodes[0], &public).await;
        visitor
            .wait_for_text("practice-heading", title)
            .await
            .expect("the public practice is");
        for b in [rita, visitor, partner] {
            b.close().await.expect("close");
        }
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_practice_and_editor_pages_have_no_serious_accessibility_violations() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(180), async {
        let fed = Federation::start(&["IOM"], true).await.expect("federation");
        let browser = open_app(&fed.nodes[0]).await;
        let id = add_practice(
            &browser,
            "Accessible practice",
            "Checked with axe-core.",
            true,
        )
        .await;
        open_app_at(&browser, &fed.nodes[0], "/").await;
        browser
            .wait_for_text("practice-title", "Accessible practice")
            .await
            .expect("listed");
        let list = axe(&browser).await;
        assert!(list.is_empty(), "list page: {list:#?}");
        open_practice(&browser, &fed.nodes[0], &id).await;
        screenshot(&browser, "practice").await;
        let page = axe(&browser).await;
        assert!(page.is_empty(), "practice page: {page:#?}");
        browser.click("edit").await.expect("edit");
        browser.wait_for("edit-summary").await.expect("editor");
        let editor = axe(&browser).await;
        assert!(editor.is_empty(), "editor: {editor:#?}");
        browser.close().await.expect("close");
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}
