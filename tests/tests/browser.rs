//! End to end in real browsers: headless Chromium sessions on different nodes.

use std::time::Duration;

use ibis_tests::{browser_tests_enabled, Browser, Federation};

async fn open_app(node: &ibis_node::RunningNode) -> Browser {
    let browser = Browser::start().await.expect("browser");
    browser
        .goto(&format!("{}/", node.http_url()))
        .await
        .expect("goto");
    browser
        .wait_for_text("sync-status", "Online")
        .await
        .expect("the app connects to its node");
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practice_added_in_one_browser_appears_in_a_browser_on_a_partner_node() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(180), async {
        let fed = Federation::start(&["IOM", "NLC"], true)
            .await
            .expect("federation");
        let iom = open_app(&fed.nodes[0]).await;
        let nlc = open_app(&fed.nodes[1]).await;

        let title = format!("Welcome desks in Lisbon {}", std::process::id());
        iom.click("add-open").await.expect("open the form");
        iom.fill("add-title", &title).await.expect("title");
        iom.fill("add-city", "Lisbon").await.expect("city");
        iom.select("add-country", "PT").await.expect("country");
        iom.fill("add-summary", "One-stop desks for newcomers.")
            .await
            .expect("summary");
        iom.select("add-theme", "reception-services")
            .await
            .expect("theme");
        iom.click("add-submit").await.expect("save");

        // Published at once: the app shows the public practice, at its own address.
        iom.wait_for_text("practice-heading", &title)
            .await
            .expect("the published practice's page");
        let path = iom.path().await.expect("path");
        assert!(path.starts_with("/practices/"), "{path}");
        nlc.wait_for_text("practice-title", &title)
            .await
            .expect("it appears live in a browser on the partner node");
        let rows = nlc.texts("practice-row").await.expect("rows");
        let row = rows.iter().find(|r| r.contains(&title)).expect("the row");
        assert!(row.contains("Lisbon") && row.contains("PT"), "{row}");
        // Listed once where it was added too: as its public practice, not also as the
        // internal practice it was published from.
        iom.goto(&format!("{}/", fed.nodes[0].http_url()))
            .await
            .expect("the list");
        iom.wait_for_text("practice-title", &title)
            .await
            .expect("listed where it was added");
        let titles = iom.texts("practice-title").await.expect("titles");
        assert_eq!(
            titles.iter().filter(|t| **t == title).count(),
            1,
            "{titles:?}"
        );
        let link = format!("[data-testid=practice-row] a[href='{path}']");
        iom.client
            .find(fantoccini::Locator::Css(&link))
            .await
            .expect("the row links to the public practice");

        iom.close().await.expect("close");
        nlc.close().await.expect("close");
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}
