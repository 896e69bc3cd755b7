//! Interop with `samod`, the Rust automerge-repo: samod clients syncing through an ibis
//! node, and an ibis node dialing a samod server and syncing through it.

use std::time::Duration;

use automerge::{transaction::Transactable, Automerge, ReadDoc, ROOT};
use futures::StreamExt;
use ibis_node::client::{Client, ClientOptions};
use ibis_node::{InitOptions, RunningNode, ServeOptions};
use ibis_shared::DocumentId;
use samod::{BackoffConfig, Repo};

const WAIT: Duration = Duration::from_secs(20);

async fn ibis_node(dir: &std::path::Path, peers: Vec<String>) -> RunningNode {
    ibis_node::init(&InitOptions::new(dir, "IOM")).expect("init");
    ibis_node::serve(ServeOptions {
        data_dir: dir.to_owned(),
        listen: Some("127.0.0.1:0".parse().expect("address")),
        peers,
        open: true,
        ..ServeOptions::default()
    })
    .await
    .expect("serve")
}

async fn samod_client(url: &str) -> Repo {
    let repo = Repo::build_tokio().load().await;
    let dialer = repo
        .dial_websocket(url::Url::parse(url).expect("url"), BackoffConfig::default())
        .expect("dial");
    tokio::time::timeout(WAIT, dialer.established())
        .await
        .expect("connects in time")
        .expect("handshake");
    repo
}

fn doc_with(key: &str, value: &str) -> Automerge {
    let mut doc = Automerge::new();
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(ROOT, key, value)?;
        Ok(())
    })
    .expect("write");
    doc
}

fn string(doc: &Automerge, key: &str) -> Option<String> {
    doc.get(ROOT, key)
        .ok()
        .flatten()
        .and_then(|(v, _)| v.into_string().ok())
}

/// `find` until the document is there (the peer may not have it yet when first asked).
async fn find_eventually(repo: &Repo, id: samod::DocumentId) -> samod::DocHandle {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(Some(handle)) = repo.find(id.clone()).await {
            return handle;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "document {id} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samod_clients_sync_through_an_ibis_node() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = ibis_node(dir.path(), vec![]).await;
        let alice = samod_client(&node.sync_url()).await;
        let bob = samod_client(&node.sync_url()).await;

        let created = alice
            .create(doc_with("title", "PLURAL+ youth video festival"))
            .await
            .expect("create");
        let id = created.document_id().clone();
        let found = find_eventually(&bob, id.clone()).await;
        assert_eq!(
            found.with_document(|d| string(d, "title")).as_deref(),
            Some("PLURAL+ youth video festival")
        );

        // Live changes flow from alice to bob through the node.
        let mut changes = found.changes();
        created.with_document(|d| {
            d.transact::<_, _, automerge::AutomergeError>(|tx| {
                tx.put(ROOT, "city", "New York")?;
                Ok(())
            })
            .expect("change");
        });
        let deadline = tokio::time::Instant::now() + WAIT;
        while found.with_document(|d| string(d, "city")).is_none() {
            tokio::time::timeout_at(deadline, changes.next())
                .await
                .expect("the change arrives in time");
        }

        // Ephemeral messages are relayed both ways.
        let mut at_bob = found.ephemera();
        created.broadcast(b"alice is here".to_vec());
        let got = tokio::time::timeout(WAIT, at_bob.next())
            .await
            .expect("ephemeral arrives")
            .expect("stream open");
        assert_eq!(got, b"alice is here");
        let mut at_alice = created.ephemera();
        found.broadcast(b"bob too".to_vec());
        let got = tokio::time::timeout(WAIT, at_alice.next())
            .await
            .expect("ephemeral arrives")
            .expect("stream open");
        assert_eq!(got, b"bob too");

        // And an ibis client sees the same document.
        let ibis = Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
            .await
            .expect("connect");
        let ours = DocumentId::parse(&id.to_string()).expect("same id format");
        let doc = ibis.open(ours, WAIT).await.expect("open");
        assert_eq!(string(&doc, "city").as_deref(), Some("New York"));
        ibis.close().await;
        alice.stop().await;
        bob.stop().await;
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

/// A samod repo serving WebSockets on 127.0.0.1, like a sync server.
async fn samod_server() -> (Repo, String, tokio::task::JoinHandle<()>) {
    use axum::extract::ws::WebSocketUpgrade;
    let repo = Repo::build_tokio().load().await;
    let acceptor = repo
        .make_acceptor(url::Url::parse("ws://127.0.0.1/").expect("url"))
        .expect("acceptor");
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move |ws: WebSocketUpgrade| {
            let acceptor = acceptor.clone();
            async move {
                // samod drives the connection on its own tasks from here.
                ws.on_upgrade(move |socket| async move {
                    let _ = acceptor.accept_axum(socket, None);
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (repo, url, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ibis_node_syncs_through_a_samod_server_it_dials() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let (server, server_url, server_task) = samod_server().await;

        // Someone creates a document on the samod server.
        let author = samod_client(&server_url).await;
        let created = author
            .create(doc_with("title", "Welcome desks"))
            .await
            .expect("create");
        let id = created.document_id().clone();
        find_eventually(&server, id.clone()).await;

        // The ibis node dials the samod server as a peer; an ibis client finds the
        // document through it.
        let dir = tempfile::tempdir().expect("tempdir");
        let node = ibis_node(dir.path(), vec![server_url.clone()]).await;
        let ibis = Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
            .await
            .expect("connect");
        let ours = DocumentId::parse(&id.to_string()).expect("same id format");
        let deadline = tokio::time::Instant::now() + WAIT;
        let doc = loop {
            match ibis.open(ours, Duration::from_secs(5)).await {
                Ok(doc) => break doc,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!("the node never got the document: {e}"),
            }
        };
        assert_eq!(string(&doc, "title").as_deref(), Some("Welcome desks"));

        // A document written through ibis reaches the samod side.
        let written = ibis
            .create(doc_with("title", "Youth participation webinar"))
            .await
            .expect("create");
        let theirs: samod::DocumentId = written.to_string().parse().expect("same id format");
        let handle = find_eventually(&author, theirs).await;
        assert_eq!(
            handle.with_document(|d| string(d, "title")).as_deref(),
            Some("Youth participation webinar")
        );
        ibis.close().await;
        node.shutdown().await.expect("shutdown");
        author.stop().await;
        server.stop().await;
        server_task.abort();
    })
    .await
    .expect("finishes in time");
}

/// A samod client with nothing of a stored document is answered straight from the node's
/// snapshot (`sync::stored_answer`, no load), takes it, and its later change is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_samod_client_takes_a_document_served_from_the_stored_snapshot() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = ibis_node(dir.path(), vec![]).await;
        let alice = samod_client(&node.sync_url()).await;
        let created = alice
            .create(doc_with("title", "Welcome desks"))
            .await
            .expect("create");
        let id = created.document_id().clone();
        let ours = DocumentId::parse(&id.to_string()).expect("same id format");
        // Stored once the node has it: an ibis client reads it back (asking again while
        // alice's sync with the node may still be under way).
        let ibis = Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
            .await
            .expect("connect");
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Err(e) = ibis.open(ours, WAIT).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the node never got alice's document: {e}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ibis.close().await;
        alice.stop().await;
        node.shutdown().await.expect("shutdown");

        // Restarted, the node holds the document only in storage, as one snapshot.
        let node = ibis_node_again(dir.path()).await;
        let carol = samod_client(&node.sync_url()).await;
        let found = find_eventually(&carol, id.clone()).await;
        assert_eq!(
            found.with_document(|d| string(d, "title")).as_deref(),
            Some("Welcome desks")
        );
        ibis_tests::served_unloaded(&node, 1)
            .await
            .expect("served without a load");

        found.with_document(|d| {
            d.transact::<_, _, automerge::AutomergeError>(|tx| {
                tx.put(ROOT, "city", "Lyon")?;
                Ok(())
            })
            .expect("change");
        });
        let ibis = Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
            .await
            .expect("connect");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let doc = ibis.open(ours, WAIT).await.expect("open");
            if string(&doc, "city").as_deref() == Some("Lyon") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "carol's change never reached the node"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ibis.close().await;
        carol.stop().await;
        node.shutdown().await.expect("shutdown");

        // Restarted again, the node holds the snapshot and carol's change after it: served
        // unloaded too, and samod loads the two as one document.
        let node = ibis_node_again(dir.path()).await;
        let dave = samod_client(&node.sync_url()).await;
        let found = find_eventually(&dave, id.clone()).await;
        assert_eq!(
            found.with_document(|d| string(d, "city")).as_deref(),
            Some("Lyon")
        );
        ibis_tests::served_unloaded(&node, 1)
            .await
            .expect("served without a load");
        dave.stop().await;
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

/// The node of [`ibis_node`] started again on its data dir.
async fn ibis_node_again(dir: &std::path::Path) -> RunningNode {
    ibis_node::serve(ServeOptions {
        data_dir: dir.to_owned(),
        listen: Some("127.0.0.1:0".parse().expect("address")),
        open: true,
        ..ServeOptions::default()
    })
    .await
    .expect("serve")
}
