//! A running node under bad input: every kind gets its clear error, only the offending
//! connection is affected, other clients keep working, and stored data is unchanged.

use std::time::Duration;

use automerge::{transaction::Transactable, Automerge, ROOT};
use futures_util::{SinkExt, StreamExt};
use ibis_node::client::{wait_for, Client, ClientOptions};
use ibis_node::registry::Registry;
use ibis_node::{InitOptions, RunningNode, ServeOptions};
use ibis_shared::model::practice::{apply_edit, PracticeEdit, TagField, TextField};
use ibis_shared::model::{Author, Practice, Role};
use ibis_shared::protocol::{self, Limits, Message, PeerId, PeerMetadata};
use ibis_shared::sync::Notification;
use ibis_shared::DocumentId;
use tokio_tungstenite::tungstenite::Message as Ws;

const WAIT: Duration = Duration::from_secs(20);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw connection that has completed the handshake.
async fn joined(url: &str) -> Socket {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let join = protocol::encode(&Message::Join {
        sender_id: PeerId::new(format!("raw-{}", uuid_like())),
        supported_protocol_versions: vec!["1".into()],
        peer_metadata: Some(PeerMetadata::default()),
    });
    ws.send(Ws::Binary(join.into())).await.expect("send join");
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Ok(Ws::Binary(frame)))) => {
            let reply = protocol::decode(&frame, &Limits::default()).expect("peer message");
            assert_eq!(reply.type_name(), "peer");
        }
        other => panic!("no peer message: {other:?}"),
    }
    ws
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// Reads until the node's `error` message; returns its text and whether the node then
/// closed the connection.
async fn error_and_close(ws: &mut Socket) -> (String, bool) {
    let mut error = None;
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Ws::Binary(frame)))) => {
                if let Ok(Message::Error { message, .. }) =
                    protocol::decode(&frame, &Limits::default())
                {
                    error = Some(message);
                }
            }
            Ok(Some(Ok(Ws::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                return (error.unwrap_or_default(), true)
            }
            Ok(Some(Ok(_))) => {}
            Err(_) => return (error.unwrap_or_default(), false),
        }
    }
}

fn sync_frame(document: DocumentId, data: Vec<u8>) -> Vec<u8> {
    protocol::encode(&Message::Sync {
        sender_id: PeerId::new("raw"),
        target_id: PeerId::new("node"),
        document_id: document,
        data,
    })
}

/// A digest of every stored chunk except those of `skip`.
fn stored_digest(node_dir: &std::path::Path, skip: &[DocumentId]) -> Vec<(Vec<u8>, i64, usize)> {
    let conn = rusqlite::Connection::open_with_flags(
        node_dir.join("ibis.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open database");
    let mut stmt = conn
        .prepare("SELECT document, seq, LENGTH(bytes) FROM chunks ORDER BY document, seq")
        .expect("query");
    let skip: Vec<Vec<u8>> = skip.iter().map(|d| d.as_bytes().to_vec()).collect();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as usize))
    })
    .expect("rows")
    .filter_map(Result::ok)
    .filter(|(doc, _, _)| !skip.contains(doc))
    .collect()
}

async fn start(dir: &std::path::Path, max_connections: usize) -> RunningNode {
    ibis_node::serve(ServeOptions {
        data_dir: dir.to_owned(),
        listen: Some("127.0.0.1:0".parse().expect("address")),
        max_connections: Some(max_connections),
        ..ServeOptions::default()
    })
    .await
    .expect("serve")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_input_gets_its_error_and_harms_nobody() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let info = ibis_node::init(&InitOptions::new(dir.path(), "IOM")).expect("init");
        let registry = Registry::open(dir.path()).expect("registry");
        registry.add_user("amy", Role::Editor, "a long enough password").expect("user");
        let token = registry.issue_token("amy", "test", 1).expect("token");
        let expired = registry.issue_token("amy", "old", 1).expect("token");
        registry.expire(&expired).expect("expire");
        let node = start(dir.path(), 12).await;
        let url = node.sync_url();
        let as_amy = format!("{url}?token={token}");

        // Amy has a draft practice on the node; a bystander watches it the whole time.
        let amy = Client::connect(&as_amy, ClientOptions::default(), WAIT).await.expect("amy");
        let editor = Author {
            name: "Amy".into(),
            organization: info.organization_id.clone(),
            role: Role::Editor,
        };
        let mut draft = Practice::new("Welcome desks", "Lisbon", "PT", &editor, 1)
            .create(&editor, 1)
            .expect("create");
        for edit in [
            PracticeEdit::Text { field: TextField::Summary, translation: None, base: String::new(), new: "Desks.".into() },
            PracticeEdit::Tag { field: TagField::Themes, key: "housing".into(), on: true },
        ] {
            apply_edit(&mut draft, &edit, &editor, 2).expect("edit");
        }
        let practice = amy.create(draft).await.expect("create");
        amy.wait_synced(practice, WAIT).await.expect("stored");
        let bystander = Client::connect(&as_amy, ClientOptions::default(), WAIT).await.expect("bystander");
        bystander.open(practice, WAIT).await.expect("open");
        let before = stored_digest(dir.path(), &[]);

        // Frames that break the protocol: an error naming the problem, then the close.
        let cases: Vec<(&str, Ws, &str)> = vec![
            ("random bytes", Ws::Binary(vec![0xde, 0xad, 0xbe, 0xef, 0x01].into()), "invalid message: "),
            ("a text frame", Ws::Text("{\"type\":\"sync\"}".into()), "text frames are not part of the protocol"),
            ("CBOR that is not a map", Ws::Binary(vec![0x83, 1, 2, 3].into()), "invalid message: message is not a CBOR map"),
            ("an unknown type", Ws::Binary(cbor_map_type("teleport").into()), "invalid message: unknown message type `teleport`"),
            ("an invalid sync payload", Ws::Binary(sync_frame(practice, vec![0x99, 0, 1]).into()), "invalid sync message for"),
        ];
        for (what, frame, expected) in cases {
            let mut ws = joined(&as_amy).await;
            ws.send(frame).await.expect("send");
            let (error, closed) = error_and_close(&mut ws).await;
            assert!(error.contains(expected), "{what}: got `{error}`");
            assert!(closed, "{what}: the connection is closed");
        }

        // An oversized frame is refused by the WebSocket layer before it is buffered.
        let mut ws = joined(&as_amy).await;
        let big = vec![0u8; Limits::default().max_frame_bytes + 1];
        let _ = ws.send(Ws::Binary(big.into())).await;
        let closed = tokio::time::timeout(WAIT, async {
            loop {
                match ws.next().await {
                    Some(Ok(Ws::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
        .expect("closed in time");
        assert!(matches!(closed, Some(1009) | None), "oversized: {closed:?}");

        // Changes that are well-formed but not allowed: refused with the reason; the
        // connection stays, nothing is stored or relayed.
        let mut events = amy.subscribe();
        amy.change(practice, |doc| {
            doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                tx.put(ROOT, "country", "Atlantis")?;
                Ok(())
            })
            .expect("write");
        })
        .await
        .expect("change");
        wait_for(&mut events, WAIT, "the schema refusal", |n| {
            matches!(n, Notification::PeerError { message, .. } if message.contains("rejected: invalid practice: country"))
        })
        .await
        .expect("schema-invalid change refused");

        let second = Client::connect(&as_amy, ClientOptions::default(), WAIT).await.expect("connect");
        let mut events = second.subscribe();
        second.open(practice, WAIT).await.expect("open");
        second
            .change(practice, |doc| {
                doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                    let review = match automerge::ReadDoc::get(tx, ROOT, "review")? {
                        Some((_, id)) => id,
                        None => return Err(automerge::AutomergeError::Fail),
                    };
                    tx.put(&review, "state", "published")?;
                    Ok(())
                })
                .expect("write");
            })
            .await
            .expect("change");
        wait_for(&mut events, WAIT, "the role refusal", |n| {
            matches!(n, Notification::PeerError { message, .. } if message.contains("a editor may not move a practice from draft to published"))
        })
        .await
        .expect("role-violating change refused");

        // Anonymous writes are refused; bad and expired credentials never get in.
        let anonymous = Client::connect(&url, ClientOptions::default(), WAIT).await.expect("anonymous");
        let mut events = anonymous.subscribe();
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "spam", "yes")?;
            Ok(())
        })
        .expect("write");
        anonymous.create(doc).await.expect("create locally");
        wait_for(&mut events, WAIT, "the anonymous refusal", |n| {
            matches!(n, Notification::PeerError { message, .. } if message.contains("anonymous visitors cannot change documents"))
        })
        .await
        .expect("anonymous write refused");
        for bad in [format!("{url}?token=ibis_forged"), format!("{url}?token={expired}")] {
            match tokio_tungstenite::connect_async(&bad).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
                other => panic!("expected 401, got {:?}", other.map(|_| ())),
            }
        }

        // Too many connections: the excess are refused with 503 until some close.
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..20 {
            match tokio_tungstenite::connect_async(&url).await {
                Ok((ws, _)) => held.push(ws),
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                    assert_eq!(r.status().as_u16(), 503);
                    refused += 1;
                }
                Err(e) => panic!("unexpected: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused > 0, "the connection limit applies");
        drop(held);

        // Through all of it the node kept serving, and nothing bad was stored.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let doc = bystander.document(practice).await.expect("still there");
        assert_eq!(Practice::load(&doc).expect("a practice").country, "PT");
        let fresh = Client::connect(&as_amy, ClientOptions::default(), WAIT).await.expect("connect after");
        let stored = fresh.open(practice, WAIT).await.expect("open after");
        assert_eq!(Practice::load(&stored).expect("a practice").state().key(), "draft");
        let after = stored_digest(dir.path(), &[]);
        assert_eq!(before, after, "stored data unchanged");
        for c in [fresh, anonymous, second, bystander, amy] {
            c.close().await;
        }
        node.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}

fn cbor_map_type(t: &str) -> Vec<u8> {
    let mut out = vec![0xa2, 0x64];
    out.extend(b"type");
    out.push(0x60 + t.len() as u8);
    out.extend(t.as_bytes());
    out.push(0x68);
    out.extend(b"senderId");
    out.push(0x61);
    out.push(b'x');
    out
}
