//! Items 4g, 8, 9: the HTTP edge: a login flood, a formula in a CSV cell, and a page of
//! another origin opening a socket to an open node.

use std::time::Duration;

use ibis_shared::model::record::CSV_COLUMNS;
use ibis_shared::protocol::Message;

use crate::harness::{eventually, report, within, DataDir, Node, PASSWORD};
use crate::peers::{client, publish_at, token_query, Witness};
use crate::wire::{get, http, made_up, metric, upgrade, Raw, ELSEWHERE, HERE};

fn login_body(name: &str, password: &str) -> String {
    serde_json::json!({ "name": name, "password": password }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flood() {
    within(Duration::from_secs(150), async {
        const ATTEMPTS: usize = 300;
        let root = tempfile::tempdir().expect("tempdir");
        let iom = DataDir::init(root.path(), "iom", "IOM", "iom", None);
        iom.add_user("amy", "editor");
        let token = iom.token("amy");
        let node = Node::start(&iom, false).await;
        let query = token_query(&token);
        let witness = Witness::start(&node, &query, &query).await;
        let addr = node.addr;

        let meter = node.measure();
        let checking = witness.keep_checking();
        let flood: Vec<_> = (0..ATTEMPTS)
            .map(|_| {
                tokio::spawn(async move {
                    let body = login_body(&made_up("nobody"), "not the password");
                    http(HERE, addr, "POST", "/api/login", &[], &body).await
                })
            })
            .collect();
        let (mut wrong, mut locked, mut busy) = (0, 0, 0);
        for reply in flood {
            let reply = reply.await.expect("a login");
            let error = reply.json()["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match reply.status {
                401 => {
                    wrong += 1;
                    assert_eq!(error, "wrong name or password");
                }
                429 => {
                    locked += 1;
                    assert_eq!(
                        error,
                        "too many failed logins from this address; try again in 15 minutes"
                    );
                }
                503 => {
                    busy += 1;
                    assert_eq!(error, "the node is busy; try again in a few seconds");
                }
                other => panic!("login answered {other}: {}", reply.body),
            }
        }
        // The flooder tries amy's name next: its address is locked out, whatever the name...
        let guess = http(
            HERE,
            addr,
            "POST",
            "/api/login",
            &[],
            &login_body("amy", "guess"),
        )
        .await;
        assert_eq!(guess.status, 429, "{}", guess.body);
        let right = http(
            HERE,
            addr,
            "POST",
            "/api/login",
            &[],
            &login_body("amy", PASSWORD),
        )
        .await;
        assert_eq!(right.status, 429, "{}", right.body);
        // ...and amy, from her own address, logs in and syncs with her session.
        let amy = http(
            ELSEWHERE,
            addr,
            "POST",
            "/api/login",
            &[],
            &login_body("amy", PASSWORD),
        )
        .await;
        assert_eq!(amy.status, 200, "{}", amy.body);
        assert_eq!(amy.json()["name"], "amy");
        let cookie = amy
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        assert!(cookie.starts_with("ibis_session="), "{cookie}");
        let spent = meter.finish();
        let (ws, _) = upgrade(ELSEWHERE, addr, "/sync", &[("Cookie", &cookie)])
            .await
            .expect("amy's session opens a socket");
        let mut session = Raw::handshake(ws, &made_up("amy-browser"), None).await;
        let doc = witness.doc;
        session.send(session.request(doc)).await;
        session
            .expect(
                "amy's document",
                |m| matches!(m, Message::Sync { document_id, .. } if *document_id == doc),
            )
            .await;
        let (checks, slowest) = checking.stop().await;
        witness.check().await.expect("syncing after the attack");
        let most_hashes = metric(&node, "ibis_login_hashes_max").await;
        assert!(most_hashes <= 2, "{most_hashes} password hashes at once");
        assert!(wrong >= 1, "some logins were checked");
        // The unfixed node hashed all 300 at once: 300 x 19 MiB, 5.7 GB. Today at most two
        // run at once, and their 19 MiB buffers go back to the system when freed (the node
        // fixes glibc's mmap threshold): two hashes' worth above the baseline.
        assert!(
            spent.peak_mb < 150.0,
            "peak RSS {:.1} MB for {ATTEMPTS} concurrent logins",
            spent.peak_mb
        );
        witness.finish().await;
        report(
            "login_flood",
            &spent,
            &format!(
                "{ATTEMPTS} concurrent failed logins: {wrong}x 401, {locked}x 429, {busy}x 503, at \
                 most {most_hashes} hashes at once; the flooder's address locked for amy too; \
                 amy logged in from 127.0.0.2 and synced; witness {checks} checks ok, slowest \
                 {slowest:?}"
            ),
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_formula() {
    within(Duration::from_secs(120), async {
        let title = "=HYPERLINK(\"http://evil\",\"click\")";
        let root = tempfile::tempdir().expect("tempdir");
        let iom = DataDir::init(root.path(), "iom", "IOM", "iom", None);
        iom.add_user("rita", "reviewer");
        let token = iom.token("rita");
        let node = Node::start(&iom, false).await;
        let query = token_query(&token);
        let witness = Witness::start(&node, &query, &query).await;

        let meter = node.measure();
        let rita = client(&node, &query).await;
        let published = publish_at(rita.host(), &iom.info, title).await;
        rita.close().await;
        let csv = eventually("the practice in /api/practices.csv", || async {
            let reply = get(node.addr, "/api/practices.csv").await;
            (reply.status == 200 && reply.body.lines().count() > 1).then_some(reply.body)
        })
        .await;
        let spent = meter.finish();
        spent.assert_peak_below(150.0, "publishing and exporting a formula");

        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let columns: Vec<String> = reader
            .headers()
            .expect("a header row")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(columns, CSV_COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
        assert_eq!(rows.len(), 1, "{csv}");
        let cell = |name: &str| {
            rows[0]
                .get(columns.iter().position(|c| c == name).expect("a column"))
                .expect("a cell")
                .to_owned()
        };
        assert_eq!(cell("title"), format!("'{title}"));
        for field in rows[0].iter() {
            assert!(
                !field.starts_with(['=', '+', '@', '\t', '\r']),
                "a live formula in the export: {field}"
            );
        }
        // Stored as written: the quote is the export's, not the practice's.
        let one = get(node.addr, &format!("/api/practices/{}", published.public)).await;
        assert_eq!(one.status, 200, "{}", one.body);
        assert_eq!(one.json()["title"], title);
        witness.check().await.expect("syncing after the export");
        witness.finish().await;
        report(
            "csv_formula",
            &spent,
            &format!(
                "a practice titled `{title}` exported as the cell `{}`; the API still reads the title as written",
                cell("title")
            ),
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_socket() {
    within(Duration::from_secs(120), async {
        let root = tempfile::tempdir().expect("tempdir");
        let iom = DataDir::init(root.path(), "iom", "IOM", "iom", None);
        // Open mode: a socket without credentials acts as an admin.
        let node = Node::start(&iom, true).await;
        let witness = Witness::start(&node, "", "").await;
        let own = format!("http://{}", node.addr);

        let meter = node.measure();
        let checking = witness.keep_checking();
        let refused = match upgrade(
            HERE,
            node.addr,
            "/sync",
            &[("Origin", "https://evil.example")],
        )
        .await
        {
            Ok(_) => panic!("a page of another origin opened an admin socket"),
            Err(refused) => refused,
        };
        assert_eq!(refused.status, 403, "{refused:?}");
        assert_eq!(
            refused.body,
            "cross-origin WebSocket refused: https://evil.example"
        );
        let (ws, _) = upgrade(HERE, node.addr, "/sync", &[("Origin", &own)])
            .await
            .expect("the node's own page opens a socket");
        let mut own_page = Raw::handshake(ws, &made_up("own-page"), None).await;
        let doc = witness.doc;
        own_page.send(own_page.request(doc)).await;
        own_page
            .expect(
                "the document, on the node's own page",
                |m| matches!(m, Message::Sync { document_id, .. } if *document_id == doc),
            )
            .await;
        let spent = meter.finish();
        spent.assert_peak_below(150.0, "a cross-origin socket");
        let (checks, slowest) = checking.stop().await;
        witness.check().await.expect("syncing after the attack");
        let cross_origin = metric(&node, "ibis_connections_refused_cross_origin_total").await;
        assert_eq!(cross_origin, 1);
        witness.finish().await;
        report(
            "cross_origin_socket",
            &spent,
            &format!(
                "Origin https://evil.example: {} `{}`; Origin {own}: 101 and synced; witness \
                 {checks} checks ok, slowest {slowest:?}",
                refused.status, refused.body
            ),
        );
    })
    .await;
}
