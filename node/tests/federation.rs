//! Two nodes in one process: a document written through one is read through the other,
//! and still there after the second node restarts from its data dir.

use std::time::Duration;

use automerge::{transaction::Transactable, Automerge, ReadDoc, ROOT};
use ibis_node::client::{Client, ClientOptions};
use ibis_node::{InitOptions, Network, RunningNode, ServeOptions};
use ibis_shared::DocumentId;

const WAIT: Duration = Duration::from_secs(20);

async fn start(dir: &std::path::Path, peers: Vec<String>) -> RunningNode {
    ibis_node::serve(ServeOptions {
        data_dir: dir.to_owned(),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        peers,
        open: true,
        ..ServeOptions::default()
    })
    .await
    .unwrap()
}

/// Waits until the node has this many peers past the handshake.
async fn wait_for_peers(node: &RunningNode, n: u64) {
    for _ in 0..400 {
        if node
            .metrics()
            .ready_peers
            .load(std::sync::atomic::Ordering::Relaxed)
            >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never had {n} peers", node.http_url());
}

fn text(doc: &Automerge) -> Option<String> {
    doc.get(ROOT, "title")
        .ok()
        .flatten()
        .and_then(|(v, _)| v.as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_through_one_node_read_through_another_even_after_a_restart() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let a_dir = dir.path().join("a");
        let b_dir = dir.path().join("b");
        let a_info = ibis_node::init(&InitOptions::new(&a_dir, "IOM")).unwrap();
        let mut b_options = InitOptions::new(&b_dir, "NLC");
        b_options.network = Network::Join {
            directory: DocumentId::parse_id_or_url(&a_info.directory).unwrap(),
        };
        ibis_node::init(&b_options).unwrap();

        let a = start(&a_dir, vec![]).await;
        let b = start(&b_dir, vec![a.sync_url()]).await;
        wait_for_peers(&b, 1).await;

        // Write through A.
        let writer = Client::connect(&a.sync_url(), ClientOptions::default(), WAIT)
            .await
            .unwrap();
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "title", "Welcome desks in Lisbon")?;
            Ok(())
        })
        .unwrap();
        let id = writer.create(doc).await.unwrap();
        writer.wait_synced(id, WAIT).await.unwrap();

        // Read through B: B asks A (its replica) for the document it does not have yet.
        let reader = Client::connect(&b.sync_url(), ClientOptions::default(), WAIT)
            .await
            .unwrap();
        let read = reader.open(id, WAIT).await.unwrap();
        assert_eq!(text(&read).as_deref(), Some("Welcome desks in Lisbon"));

        // A live change through A reaches the reader on B.
        writer
            .change(id, |d| {
                d.transact::<_, _, automerge::AutomergeError>(|tx| {
                    tx.put(ROOT, "title", "Welcome desks in Lisbon and Porto")?;
                    Ok(())
                })
                .unwrap();
            })
            .await
            .unwrap();
        reader
            .wait_until(id, WAIT, |d| {
                text(d).as_deref() == Some("Welcome desks in Lisbon and Porto")
            })
            .await
            .unwrap();
        reader.close().await;
        writer.close().await;

        // Restart B alone, without A: it still serves what it stored.
        b.shutdown().await.unwrap();
        a.shutdown().await.unwrap();
        let b = start(&b_dir, vec![]).await;
        let reader = Client::connect(&b.sync_url(), ClientOptions::default(), WAIT)
            .await
            .unwrap();
        let read = reader.open(id, WAIT).await.unwrap();
        assert_eq!(
            text(&read).as_deref(),
            Some("Welcome desks in Lisbon and Porto")
        );
        reader.close().await;
        b.shutdown().await.unwrap();
    })
    .await
    .expect("the test finishes within a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_document_is_unavailable() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let dir = tempfile::tempdir().unwrap();
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).unwrap();
        let node = start(dir.path(), vec![]).await;
        let client = Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
            .await
            .unwrap();
        let missing = DocumentId::random();
        assert!(matches!(
            client.open(missing, WAIT).await,
            Err(ibis_node::client::ClientError::Unavailable(id)) if id == missing
        ));
        client.close().await;
        node.shutdown().await.unwrap();
    })
    .await
    .expect("the test finishes in time");
}
