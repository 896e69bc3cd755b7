//! Interop with the JavaScript automerge-repo 2.5.6: JS clients creating, finding,
//! watching and messaging through ibis nodes; an ibis node syncing through a JS server.

use std::time::Duration;

use automerge::{transaction::Transactable, Automerge, ReadDoc, ROOT};
use ibis_node::client::{wait_for, Client, ClientOptions};
use ibis_shared::presence::Presence;
use ibis_shared::sync::Notification;
use ibis_shared::DocumentId;
use ibis_tests::{js_tests_enabled, Federation, JsPeer, WAIT};

/// A string field, whether a scalar (as Rust writes it) or a text object (as JS automerge
/// writes plain strings).
fn string(doc: &Automerge, key: &str) -> Option<String> {
    match doc.get(ROOT, key).ok().flatten()? {
        (automerge::Value::Object(automerge::ObjType::Text), obj) => doc.text(&obj).ok(),
        (value, _) => value.into_string().ok(),
    }
}

fn id_of(url: &str) -> DocumentId {
    DocumentId::parse_id_or_url(url).expect("an automerge URL")
}

/// Document `url` as a new ibis client on `node` reads it, and its `n`.
async fn read_with_ibis(node: &str, url: &str) -> (Automerge, Option<String>) {
    let ibis = Client::connect(node, ClientOptions::default(), WAIT)
        .await
        .expect("connect");
    let doc = ibis.open(id_of(url), WAIT).await.expect("open");
    ibis.close().await;
    let n = doc
        .get(ROOT, "n")
        .ok()
        .flatten()
        .map(|(v, _)| v.to_string());
    (doc, n)
}

/// Creates a document with a JS client on `node` (done once a second JS client can read
/// it back through the node): its URL.
async fn create_with_js(node: &str, json: &str) -> String {
    let mut created = JsPeer::spawn("client.mjs", &[node, "create", json]).expect("spawn");
    let url = created.next().await.expect("created")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    created.finish().await.expect("create finished");
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_clients_create_find_watch_and_message_through_ibis() {
    if !js_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        // Two ibis nodes: JS clients on each side.
        let fed = Federation::start(&["IOM", "NLC"], true)
            .await
            .expect("federation");
        let a = fed.nodes[0].sync_url();
        let b = fed.nodes[1].sync_url();

        let url = create_with_js(&a, r#"{"title":"from JS","n":1}"#).await;

        let mut found = JsPeer::spawn("client.mjs", &[&b, "find", &url]).expect("spawn");
        let doc = found.next().await.expect("found");
        assert_eq!(
            doc["doc"]["title"], "from JS",
            "a second JS client, on another node, reads it"
        );

        // Live changes: a JS watcher on node B sees a JS change made on node A.
        let mut watcher = JsPeer::spawn("client.mjs", &[&b, "watch", &url, "1"]).expect("spawn");
        assert_eq!(watcher.next().await.expect("ready")["ready"], true);
        let mut change =
            JsPeer::spawn("client.mjs", &[&a, "change", &url, r#"{"n":2}"#]).expect("spawn");
        change.next().await.expect("changed");
        let seen = watcher.next().await.expect("change event");
        assert_eq!(seen["doc"]["n"], 2);

        // And an ibis client sees what the JS clients wrote.
        let ibis = Client::connect(&b, ClientOptions::default(), WAIT)
            .await
            .expect("connect");
        let doc = ibis.open(id_of(&url), WAIT).await.expect("open");
        assert_eq!(
            doc.get(ROOT, "n")
                .ok()
                .flatten()
                .map(|(v, _)| v.to_string()),
            Some("2".into())
        );

        // Ephemeral messages: JS → JS across both nodes, JS → ibis, ibis → JS.
        let mut listener =
            JsPeer::spawn("client.mjs", &[&b, "ephemeral-listen", &url]).expect("spawn");
        assert_eq!(listener.next().await.expect("listening")["listening"], true);
        let mut events = ibis.subscribe();
        // A JS app's presence, in the shape the ibis app reads (`ibis_shared::presence`).
        let mut sender = JsPeer::spawn(
            "client.mjs",
            &[
                &a,
                "ephemeral-send",
                &url,
                r#"{"name":"Ricardo","field":"summary","session":"js-1","cursor":7}"#,
            ],
        )
        .expect("spawn");
        sender.next().await.expect("sending");
        let heard = listener.next().await.expect("heard");
        assert_eq!(heard["message"]["cursor"], 7);
        let heard_at_ibis = wait_for(
            &mut events,
            WAIT,
            "the JS presence at the ibis client",
            |n| matches!(n, Notification::Ephemeral { document, .. } if *document == id_of(&url)),
        )
        .await
        .expect("ibis client hears JS");
        let Notification::Ephemeral { data, .. } = heard_at_ibis else {
            panic!("not an ephemeral message: {heard_at_ibis:?}");
        };
        assert_eq!(
            Presence::decode(&data),
            Ok(Presence {
                name: "Ricardo".into(),
                field: "summary".into(),
                session: "js-1".into(),
            })
        );
        drop(sender);

        let mut listener =
            JsPeer::spawn("client.mjs", &[&a, "ephemeral-listen", &url]).expect("spawn");
        assert_eq!(listener.next().await.expect("listening")["listening"], true);
        // The ibis app's presence, as a JS app receives it (decoded with cbor-x).
        let payload = Presence {
            name: "Amy".into(),
            field: String::new(),
            session: "ibis-1".into(),
        }
        .encode();
        let mut heard = None;
        for _ in 0..50 {
            ibis.send_ephemeral(id_of(&url), payload.clone())
                .await
                .expect("send");
            if let Ok(v) = tokio::time::timeout(Duration::from_millis(300), listener.next()).await {
                heard = Some(v.expect("heard"));
                break;
            }
        }
        let heard = heard.expect("JS hears ibis");
        assert_eq!(heard["message"]["name"], "Amy");
        assert_eq!(heard["message"]["session"], "ibis-1");
        ibis.close().await;
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ibis_node_syncs_through_a_js_server_it_dials() {
    if !js_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        let storage = tempfile::tempdir().expect("tempdir");
        let mut server =
            JsPeer::spawn("server.mjs", &["0", &storage.path().to_string_lossy()]).expect("spawn");
        let port = server.next().await.expect("listening")["port"]
            .as_u64()
            .expect("port");
        let js_url = format!("ws://127.0.0.1:{port}");

        // A JS client creates a document on the JS server.
        let mut created = JsPeer::spawn(
            "client.mjs",
            &[&js_url, "create", r#"{"title":"on the JS server"}"#],
        )
        .expect("spawn");
        let url = created.next().await.expect("created")["url"]
            .as_str()
            .expect("url")
            .to_owned();

        // An ibis node dials the JS server as a plain automerge-repo peer.
        let dir = tempfile::tempdir().expect("tempdir");
        ibis_node::init(&ibis_node::InitOptions::new(dir.path(), "IOM")).expect("init");
        let node = ibis_node::serve(ibis_node::ServeOptions {
            data_dir: dir.path().to_owned(),
            listen: Some("127.0.0.1:0".parse().expect("address")),
            peers: vec![js_url.clone()],
            open: true,
            ..ibis_node::ServeOptions::default()
        })
        .await
        .expect("serve");
        let ibis = Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
            .await
            .expect("connect");
        let doc = ibis_tests::eventually(WAIT, "the document through the JS server", || async {
            ibis.open(id_of(&url), Duration::from_secs(3)).await.ok()
        })
        .await
        .expect("fetched through the JS server");
        assert_eq!(string(&doc, "title").as_deref(), Some("on the JS server"));

        // A document written through ibis reaches JS clients of the JS server.
        let mut mine = Automerge::new();
        mine.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "title", "from ibis")?;
            Ok(())
        })
        .expect("write");
        let id = ibis.create(mine).await.expect("create");
        ibis.wait_synced(id, WAIT).await.expect("the node has it");
        let found =
            ibis_tests::eventually(WAIT, "the JS side to have the ibis document", || async {
                let mut peer = JsPeer::spawn("client.mjs", &[&js_url, "find", &id.url()]).ok()?;
                let v = peer.next().await.ok()?;
                (v["doc"]["title"] == "from ibis").then_some(v)
            })
            .await
            .expect("JS sees it");
        assert_eq!(found["doc"]["title"], "from ibis");
        ibis.close().await;
        node.shutdown().await.expect("shutdown");
        drop(server);
    })
    .await
    .expect("finishes in time");
}

/// A JS client with nothing of a stored document is answered straight from the node's
/// snapshot (`sync::stored_answer`, no load): automerge-repo takes that answer, acknowledges it, and
/// its later change is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_client_takes_a_document_served_from_the_stored_snapshot() {
    if !js_tests_enabled() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut fed = Federation::start(&["IOM"], true).await.expect("federation");
        let node = fed.nodes[0].sync_url();
        let url = create_with_js(&node, r#"{"title":"Welcome desks","n":1}"#).await;

        // Restarted, the node holds the document only in storage, as one snapshot.
        fed.stop(0).await.expect("stop");
        fed.restart(0).await.expect("restart");
        let mut found = JsPeer::spawn("client.mjs", &[&node, "find", &url]).expect("spawn");
        let doc = found.next().await.expect("found");
        assert_eq!(doc["doc"]["title"], "Welcome desks");
        assert_eq!(doc["doc"]["n"], 1);
        ibis_tests::served_unloaded(&fed.nodes[0], 1)
            .await
            .expect("served without a load");

        // A JS change through the node is kept: a fresh ibis client reads it.
        let mut change =
            JsPeer::spawn("client.mjs", &[&node, "change", &url, r#"{"n":2}"#]).expect("spawn");
        change.next().await.expect("changed");
        let (doc, n) = read_with_ibis(&node, &url).await;
        assert_eq!(n.as_deref(), Some("2"));
        assert_eq!(string(&doc, "title").as_deref(), Some("Welcome desks"));

        // Restarted again, the node holds the snapshot and the change after it as an
        // increment: served unloaded too, and JS loads the two as one document.
        fed.stop(0).await.expect("stop");
        fed.restart(0).await.expect("restart");
        let mut found = JsPeer::spawn("client.mjs", &[&node, "find", &url]).expect("spawn");
        let doc = found.next().await.expect("found");
        assert_eq!(doc["doc"]["title"], "Welcome desks");
        assert_eq!(doc["doc"]["n"], 2);
        ibis_tests::served_unloaded(&fed.nodes[0], 1)
            .await
            .expect("served without a load");
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}
