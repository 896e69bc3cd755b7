//! Item 1: a compressed change chunk that inflates a 1 MB frame to 1 GiB.

use std::time::Duration;

use ibis_shared::bounds::hostile::compressed_zeros_message;
use ibis_shared::model::review::ReviewState;
use ibis_shared::model::Practice;
use ibis_shared::protocol::Message;

use crate::harness::{report, within, DataDir, Node};
use crate::peers::{client, publish_at, token_query, Witness};
use crate::wire::{made_up, Raw, HERE};

/// The anonymous visitors' frame limit (`limits::ANONYMOUS`).
const ANONYMOUS_FRAME_BYTES: usize = 256 * 1024;

/// A node of IOM with a reviewer, Rita, who has published a practice; and a witness.
async fn node_with_a_practice(
    root: &std::path::Path,
) -> (DataDir, Node, String, ibis_shared::DocumentId) {
    let data = DataDir::init(root, "iom", "IOM", "iom", None);
    data.add_user("rita", "reviewer");
    let token = data.token("rita");
    let node = Node::start(&data, false).await;
    let rita = client(&node, &token_query(&token)).await;
    let practice = publish_at(rita.host(), &data.info, "Welcome desks").await;
    rita.close().await;
    (data, node, token, practice.public)
}

/// The practice as an anonymous visitor reads it from the node: heads and state.
async fn read_practice(
    node: &Node,
    id: ibis_shared::DocumentId,
) -> (Vec<automerge::ChangeHash>, ReviewState, String) {
    let visitor = client(node, "").await;
    let doc = visitor
        .open(id, crate::harness::WAIT)
        .await
        .expect("the practice");
    visitor.close().await;
    let practice = Practice::load(&doc).expect("a practice");
    let mut heads = doc.get_heads();
    heads.sort();
    (
        heads,
        practice.state(),
        practice.provenance.home_organization,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_chunk_bomb_from_a_visitor() {
    within(Duration::from_secs(120), async {
        let root = tempfile::tempdir().expect("tempdir");
        let (data, node, token, practice) = node_with_a_practice(root.path()).await;
        let query = token_query(&token);
        let witness = Witness::start(&node, &query, &query).await;
        let before = read_practice(&node, practice).await;

        let meter = node.measure();
        let checking = witness.keep_checking();
        let mut visitor = Raw::join(HERE, node.addr, "/sync", &made_up("visitor"), None).await;
        // 240 MiB of zeros, compressed into a frame within the visitor's frame limit:
        // refused for who sent it, before anything is inflated; the visitor stays.
        let small = visitor.sync(practice, compressed_zeros_message(240));
        let small_bytes = small.len();
        assert!(small_bytes < ANONYMOUS_FRAME_BYTES, "{small_bytes} bytes");
        visitor.send(small).await;
        let refusal = visitor
            .expect("the refusal", |m| matches!(m, Message::Error { .. }))
            .await;
        let Message::Error { message, .. } = refusal else {
            unreachable!()
        };
        assert_eq!(
            message,
            format!(
                "change to {practice} rejected: anonymous visitors cannot change documents; log in first"
            )
        );
        // Still connected, and still served.
        let catalogue = data.info.catalogue_id();
        visitor.send(visitor.request(catalogue)).await;
        visitor
            .expect("the catalogue", |m| {
                matches!(m, Message::Sync { document_id, .. } if *document_id == catalogue)
            })
            .await;
        // The 1 GiB bomb: a 1 MB frame, over the visitor's frame limit (256 KiB), which the
        // WebSocket itself enforces since the upgrade: the frame is never read whole, and
        // the connection ends with the reason.
        let bomb = visitor.sync(practice, compressed_zeros_message(1024));
        let bomb_bytes = bomb.len();
        assert!(bomb_bytes > ANONYMOUS_FRAME_BYTES);
        visitor.send(bomb).await;
        let closing = visitor.expect_close().await;
        assert!(closing.errors.is_empty(), "{closing:?}");
        assert_eq!(
            closing.reason.as_deref(),
            Some(format!("connection error: Space limit exceeded: Message too long: {bomb_bytes} > 262144").as_str()),
            "{closing:?}"
        );
        let spent = meter.finish();

        let (checks, slowest) = checking.stop().await;
        witness.check().await.expect("syncing after the attack");
        assert_eq!(
            read_practice(&node, practice).await,
            before,
            "the practice is unchanged"
        );
        spent.assert_peak_below(200.0, "a frame that would inflate to 1 GiB");
        report(
            "compressed_chunk_bomb_from_a_visitor",
            &spent,
            &format!(
                "240 MiB bomb ({} kB) refused unread: `{message}`, visitor kept; 1 GiB bomb \
                 ({} kB) cut off at the WebSocket's 256 KiB limit, connection closed with a \
                 bare close frame (no reason given); witness {checks} checks ok, slowest {:?}",
                small_bytes / 1000,
                bomb_bytes / 1000,
                slowest
            ),
        );
        witness.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_chunk_bomb_from_a_member() {
    within(Duration::from_secs(120), async {
        let root = tempfile::tempdir().expect("tempdir");
        let (_, node, token, practice) = node_with_a_practice(root.path()).await;
        let query = token_query(&token);
        let witness = Witness::start(&node, &query, &query).await;
        let before = read_practice(&node, practice).await;

        let meter = node.measure();
        let checking = witness.keep_checking();
        let mut member = Raw::join(
            HERE,
            node.addr,
            &format!("/sync?{query}"),
            &made_up("member"),
            None,
        )
        .await;
        let bomb = member.sync(practice, compressed_zeros_message(1024));
        let bomb_bytes = bomb.len();
        member.send(bomb).await;
        let closing = member.expect_close().await;
        let spent = meter.finish();

        // 32 MiB is the most one sync message may inflate to (64 times its size, capped).
        let expected = format!(
            "sync message for {practice} refused: a compressed change inflates the input to more than 33554432 bytes"
        );
        assert_eq!(closing.errors.len(), 1, "{closing:?}");
        assert!(closing.errors[0].starts_with(&expected), "{closing:?}");
        let reason = closing.reason.clone().unwrap_or_default();
        assert!(
            !reason.is_empty() && closing.errors[0].starts_with(&reason),
            "the close reason is the error, cut to 123 bytes: {closing:?}"
        );

        let (checks, slowest) = checking.stop().await;
        witness.check().await.expect("syncing after the attack");
        assert_eq!(
            read_practice(&node, practice).await,
            before,
            "the practice is unchanged"
        );
        spent.assert_peak_below(200.0, "a frame that would inflate to 1 GiB");
        report(
            "compressed_chunk_bomb_from_a_member",
            &spent,
            &format!(
                "1 GiB bomb ({} kB frame) closed: `{}`; witness {checks} checks ok, slowest {:?}",
                bomb_bytes / 1000,
                closing.errors[0],
                slowest
            ),
        );
        witness.finish().await;
    })
    .await;
}
