//! Publishing in real browsers: a published practice is a public document of its own,
//! edited live in its organization's name; withdrawing it (an admin's erase, a contact's
//! withdrawn consent) reaches every browser; logging out leaves nothing private behind.

use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::Locator;
use ibis_shared::model::Role;
use ibis_tests::{browser_tests_enabled, Browser, Federation};

const PASSWORD: &str = "a long enough password";

async fn open_app(node: &ibis_node::RunningNode, path: &str) -> Browser {
    let browser = Browser::start().await.expect("browser");
    browser
        .goto(&format!("{}{path}", node.http_url()))
        .await
        .expect("goto");
    browser
        .wait_for_text("sync-status", "Online")
        .await
        .expect("online");
    browser
}

/// Two nodes whose people log in; `who` is a member of the first, IOM.
async fn federation(who: &str, role: Role) -> Federation {
    let fed = Federation::start(&["IOM", "NLC"], false)
        .await
        .expect("federation");
    fed.add_user(0, who, role, PASSWORD).expect("user");
    fed
}

/// A member of IOM, logged in, on the list.
async fn member(fed: &Federation, who: &str) -> Browser {
    let browser = open_app(&fed.nodes[0], "/").await;
    browser.log_in(who, PASSWORD).await.expect("log in");
    browser
        .wait_for_text("sync-status", "Online")
        .await
        .expect("online again");
    browser
}

/// Adds a practice through the form; returns its page's id: the public practice's when
/// `publish`, else the draft's.
async fn add_practice(browser: &Browser, title: &str, publish: bool) -> String {
    browser.click("add-open").await.expect("open the form");
    browser.fill("add-title", title).await.expect("title");
    browser.fill("add-city", "Porto").await.expect("city");
    browser.select("add-country", "PT").await.expect("country");
    browser
        .fill("add-summary", "Desks in every library.")
        .await
        .expect("summary");
    browser
        .select("add-theme", "reception-services")
        .await
        .expect("theme");
    // Reviewers may publish at once (and do by default); editors only draft.
    if !publish && shows(browser, "add-publish").await {
        browser.click("add-publish").await.expect("uncheck publish");
    }
    browser.click("add-submit").await.expect("save");
    if !publish {
        browser
            .wait_for_text("practice-title", title)
            .await
            .expect("listed");
        let link = browser
            .client
            .find(Locator::XPath(&format!(
                "//li[@data-testid='practice-row'][.//*[text()='{title}']]//a"
            )))
            .await
            .expect("its row")
            .attr("href")
            .await
            .expect("href")
            .expect("a link");
        return link.rsplit('/').next().unwrap_or_default().to_owned();
    }
    browser
        .wait_for_text("practice-heading", title)
        .await
        .expect("the published practice's page");
    let path = browser
        .wait_for_path("a practice's page", |p| p.starts_with("/practices/"))
        .await
        .expect("path");
    path.trim_start_matches("/practices/").to_owned()
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

/// Whether the page shows an element with this `data-testid` now.
async fn shows(browser: &Browser, testid: &str) -> bool {
    let css = format!("[data-testid={testid}]");
    browser
        .client
        .find_all(Locator::Css(&css))
        .await
        .is_ok_and(|found| !found.is_empty())
}

/// Whether this browser's IndexedDB holds anything of the document.
async fn holds(browser: &Browser, id: &str) -> bool {
    let stored = browser.stored_documents().await.expect("IndexedDB");
    stored.values().any(|ids| ids.iter().any(|i| i == id))
}

/// The page's text, hidden parts included (`<details>`).
async fn text_content(browser: &Browser, testid: &str) -> String {
    let js = format!(
        "const e = document.querySelector('[data-testid={testid}]'); return e ? e.textContent : '';"
    );
    let value = browser.script(&js).await.expect("script");
    value.as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_live_edit_reaches_visitors_and_an_admins_erase_withdraws_it_everywhere() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(300), async {
        let fed = federation("ada", Role::Admin).await;
        let ada = member(&fed, "ada").await;
        let title = "Library welcome desks (live)";
        let id = add_practice(&ada, title, true).await;

        // Anonymous visitors, on IOM's node and on its partner's.
        let visitor = open_app(&fed.nodes[0], "/").await;
        let afar = open_app(&fed.nodes[1], "/").await;
        open_practice(&visitor, &fed.nodes[0], &id).await;
        open_practice(&afar, &fed.nodes[1], &id).await;
        for b in [&visitor, &afar] {
            b.wait_for_text("practice-heading", title)
                .await
                .expect("the practice");
            assert!(!shows(b, "edit").await, "a visitor may edit");
            assert!(
                !shows(b, "review-comments").await,
                "a visitor sees the review"
            );
        }

        // Ada types; both visitors read it as it is typed.
        ada.click("edit").await.expect("edit");
        ada.type_text(
            "edit-summary",
            &format!("{} Open on Saturdays.", char::from(Key::End)),
        )
        .await
        .expect("type");
        for b in [&visitor, &afar] {
            b.wait_for_text(
                "field-summary",
                "Desks in every library. Open on Saturdays.",
            )
            .await
            .expect("the edit, live");
        }
        // The public practice names the organization, never the person.
        let history = text_content(&visitor, "history").await;
        assert!(history.contains("IOM"), "{history}");
        assert!(!history.contains("ada"), "{history}");

        // The review stays inside IOM: a comment, and archiving, which the public practice
        // records (the move, not the comment).
        ada.click("edit").await.expect("done editing");
        ada.fill("review-text", "Checked with the library network")
            .await
            .expect("comment");
        ada.click("review-comment").await.expect("comment");
        ada.wait_for_text("review-comments", "Checked with the library network")
            .await
            .expect("the comment");
        ada.click("review-archive").await.expect("archive");
        visitor
            .wait_for_text("field-state", "archived")
            .await
            .expect("archived, for visitors too");
        ada.click("review-restore").await.expect("restore");
        visitor
            .wait_for_text("field-state", "published")
            .await
            .expect("restored");
        let public_text = text_content(&visitor, "practice-page").await;
        assert!(
            !public_text.contains("library network"),
            "a review comment reached a visitor"
        );

        // Ada erases it: withdrawn everywhere; it is a draft again, at IOM only.
        ada.click("erase").await.expect("erase");
        ada.click("erase-confirm").await.expect("confirm");
        let draft = ada
            .wait_for_path("the draft's page", |p| {
                p.starts_with("/practices/") && !p.ends_with(&id)
            })
            .await
            .expect("the draft");
        ada.wait_for_text("field-state", "draft")
            .await
            .expect("a draft again");
        for b in [&visitor, &afar] {
            b.wait_for("withdrawn").await.expect("withdrawn, said so");
            assert!(!holds(b, &id).await, "a visitor's browser keeps it");
        }
        assert!(!holds(&ada, &id).await, "the admin's browser keeps it");

        afar.goto(&format!("{}/", fed.nodes[1].http_url()))
            .await
            .expect("the list");
        afar.wait_for("result-count").await.expect("the list");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let titles = afar.texts("practice-title").await.expect("titles");
        assert!(
            !titles.iter().any(|t| t == title),
            "still listed: {titles:?}"
        );
        assert!(draft.starts_with("/practices/"));
        for b in [ada, visitor, afar] {
            b.close().await.expect("close");
        }
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_practice_is_a_draft_at_its_node_too() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(180), async {
        let fed = federation("ada", Role::Admin).await;
        let ada = member(&fed, "ada").await;
        let id = add_practice(&ada, "Library welcome desks (erased)", true).await;
        ada.click("erase").await.expect("erase");
        ada.click("erase-confirm").await.expect("confirm");
        let draft = ada
            .wait_for_path("the draft's page", |p| {
                p.starts_with("/practices/") && !p.ends_with(&id)
            })
            .await
            .expect("the draft");
        // Another browser of the organization's gets the practice from the node.
        let again = member(&fed, "ada").await;
        open_practice(
            &again,
            &fed.nodes[0],
            draft.trim_start_matches("/practices/"),
        )
        .await;
        again
            .wait_for_text("field-state", "draft")
            .await
            .expect("a draft at the node too");
        for b in [ada, again] {
            b.close().await.expect("close");
        }
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawing_a_contacts_consent_republishes_the_practice_at_a_new_address() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(300), async {
        let fed = federation("rita", Role::Reviewer).await;
        let rita = member(&fed, "rita").await;
        let title = "Mentoring circles (contact)";
        let old = add_practice(&rita, title, true).await;
        rita.click("edit").await.expect("edit");
        rita.fill("edit-contact-name", "Maria Silva")
            .await
            .expect("contact");
        rita.fill("edit-contact-email", "maria@example.org")
            .await
            .expect("email");
        rita.click("edit-consent").await.expect("consent");

        let visitor = open_app(&fed.nodes[0], "/").await;
        open_practice(&visitor, &fed.nodes[0], &old).await;
        visitor
            .wait_for_text("field-contact", "Maria Silva")
            .await
            .expect("a consented contact is public");

        // Before unchecking, the page says what it will do.
        rita.wait_for_text("consent-note", "new address")
            .await
            .expect("the note");
        rita.click("edit-consent").await.expect("withdraw consent");
        let new = rita
            .wait_for_path("the republished practice", |p| {
                p.starts_with("/practices/") && !p.ends_with(&old)
            })
            .await
            .expect("a new address");
        rita.wait_for_text("practice-heading", title)
            .await
            .expect("the new page");
        // The organization still has the contact; the public no longer does.
        rita.wait_for_text("field-contact", "Maria Silva")
            .await
            .expect("members still see the contact");

        visitor
            .wait_for_path("the visitor follows to the new address", |p| p == new)
            .await
            .expect("redirected");
        visitor
            .wait_for_text("practice-heading", title)
            .await
            .expect("the new page");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !shows(&visitor, "field-contact").await,
            "the contact is still public"
        );
        assert!(
            !holds(&visitor, &old).await,
            "the visitor keeps the old document"
        );
        for b in [rita, visitor] {
            b.close().await.expect("close");
        }
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_leaves_no_draft_or_workspace_in_the_browser() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(240), async {
        let fed = federation("rita", Role::Reviewer).await;
        let rita = member(&fed, "rita").await;
        let title = "Neighbourhood language cafés (draft)";
        let draft = add_practice(&rita, title, false).await;
        open_practice(&rita, &fed.nodes[0], &draft).await;
        rita.wait_for_text("field-state", "draft")
            .await
            .expect("the draft");
        let node = rita
            .script_async(
                "const done = arguments[arguments.length - 1];
                 fetch('/api/node').then(r => r.json()).then(done, () => done(null));",
            )
            .await
            .expect("/api/node");
        let workspace = node["workspace"]
            .as_str()
            .expect("members have a workspace")
            .trim_start_matches("automerge:")
            .to_owned();
        assert!(holds(&rita, &draft).await, "the draft is stored");
        assert!(holds(&rita, &workspace).await, "the workspace is stored");

        rita.click("logout").await.expect("log out");
        rita.wait_for("login-name").await.expect("a visitor again");
        rita.wait_for_text("sync-status", "Online")
            .await
            .expect("online");
        assert!(!holds(&rita, &draft).await, "the draft stays in IndexedDB");
        assert!(!holds(&rita, &workspace).await, "the workspace stays");
        rita.goto(&format!("{}/", fed.nodes[0].http_url()))
            .await
            .expect("the list");
        rita.wait_for("result-count").await.expect("the list");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let titles = rita.texts("practice-title").await.expect("titles");
        assert!(
            !titles.iter().any(|t| t == title),
            "still listed: {titles:?}"
        );
        assert!(!holds(&rita, &draft).await, "the draft came back");
        rita.close().await.expect("close");
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_reviewers_keep_published_practices_editors_edit_only_drafts() {
    if !browser_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(180), async {
        let fed = Federation::start_with(&["IOM"], false, |_, dir| {
            let mut config = ibis_node::Config::load(dir)?;
            config.organization.published_edits = ibis_node::config::PublishedEdits::Reviewers;
            config.save(dir)?;
            Ok(())
        })
        .await
        .expect("federation");
        fed.add_user(0, "rita", Role::Reviewer, PASSWORD)
            .expect("reviewer");
        fed.add_user(0, "eddie", Role::Editor, PASSWORD)
            .expect("editor");
        let rita = member(&fed, "rita").await;
        let published = add_practice(&rita, "Welcome walks (reviewed)", true).await;
        rita.wait_for("edit").await.expect("reviewers edit it");

        let eddie = member(&fed, "eddie").await;
        let draft = add_practice(&eddie, "Welcome walks (draft)", false).await;
        open_practice(&eddie, &fed.nodes[0], &draft).await;
        eddie.wait_for("edit").await.expect("editors edit drafts");
        open_practice(&eddie, &fed.nodes[0], &published).await;
        eddie
            .wait_for_text("practice-heading", "Welcome walks (reviewed)")
            .await
            .expect("the published practice");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !shows(&eddie, "edit").await,
            "an editor may edit a published practice here"
        );
        for b in [rita, eddie] {
            b.close().await.expect("close");
        }
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}
