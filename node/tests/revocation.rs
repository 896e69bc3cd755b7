//! Revocation reaches live connections: a member removed by `ibis-node user remove` (another
//! process's change to the registry), a session ended by logout, a partner removed by
//! `peer remove` — each open socket with that credential is closed, with the reason, and a
//! removed partner is no longer dialed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ibis_node::federation::NodeKey;
use ibis_node::registry::{Acl, Peer, Registry};
use ibis_node::{InitOptions, Network, RunningNode, ServeOptions};
use ibis_shared::model::Role;
use ibis_shared::protocol::{encode, Message, PeerId, PeerMetadata, PROTOCOL_V1};
use ibis_shared::DocumentId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as Ws;

const WAIT: Duration = Duration::from_secs(20);

async fn serve(dir: &std::path::Path) -> RunningNode {
    ibis_node::serve(ServeOptions {
        data_dir: dir.to_owned(),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServeOptions::default()
    })
    .await
    .unwrap()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket to `/sync` with `query`, or a cookie, joined as `peer`.
async fn joined(node: &RunningNode, query: &str, cookie: Option<&str>, peer: &str) -> Socket {
    let mut request = format!("{}?{query}", node.sync_url())
        .into_client_request()
        .unwrap();
    if let Some(cookie) = cookie {
        request.headers_mut().insert(
            "cookie",
            HeaderValue::from_str(&format!("ibis_session={cookie}")).unwrap(),
        );
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(&node.http_url()).unwrap());
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let join = encode(&Message::Join {
        sender_id: PeerId::new(peer),
        supported_protocol_versions: vec![PROTOCOL_V1.into()],
        peer_metadata: Some(PeerMetadata::default()),
    });
    socket.send(Ws::Binary(join.into())).await.unwrap();
    socket
}

/// The reason the node closed the socket with (within [`WAIT`]).
async fn closed_because(socket: &mut Socket) -> String {
    tokio::time::timeout(WAIT, async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Ws::Close(Some(frame))) => return frame.reason.to_string(),
                Ok(Ws::Close(None)) | Err(_) => return String::new(),
                Ok(_) => {}
            }
        }
        String::new()
    })
    .await
    .expect("closed in time")
}

/// POSTs JSON; returns the status line and the response.
async fn post(node: &RunningNode, path: &str, body: &str, cookie: Option<&str>) -> String {
    let mut stream = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: ibis_session={c}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{cookie}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                node.addr(),
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_member_or_logging_out_closes_their_sockets() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        ibis_node::init(&InitOptions::new(dir.path(), "IOM")).unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry
            .add_user("amy", Role::Editor, "a long enough password")
            .unwrap();
        registry
            .add_user("bob", Role::Editor, "a long enough password")
            .unwrap();
        let amy_token = registry.issue_token("amy", "script", 1).unwrap();
        let bob_token = registry.issue_token("bob", "script", 1).unwrap();
        let node = serve(dir.path()).await;
        let mut amy = joined(&node, &format!("token={amy_token}"), None, "amy").await;
        let mut bob = joined(&node, &format!("token={bob_token}"), None, "bob").await;

        // `ibis-node user remove amy`, as another process would: the registry only.
        Registry::open(dir.path())
            .unwrap()
            .remove_user("amy")
            .unwrap();
        assert_eq!(
            closed_because(&mut amy).await,
            "your session ended; log in again"
        );
        // Bob's socket goes on.
        bob.send(Ws::Ping(Vec::new().into())).await.unwrap();
        let alive = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match bob.next().await {
                    Some(Ok(Ws::Pong(_))) => return true,
                    Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return false,
                    _ => {}
                }
            }
        })
        .await
        .unwrap_or(false);
        assert!(alive, "another member's socket stays open");

        // Logging out closes the sockets that session opened, at once.
        let login = post(
            &node,
            "/api/login",
            r#"{"name":"bob","password":"a long enough password"}"#,
            None,
        )
        .await;
        let cookie = login
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: ibis_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let mut browser = joined(&node, "", Some(&cookie), "browser").await;
        let started = std::time::Instant::now();
        post(&node, "/api/logout", "", Some(&cookie)).await;
        assert_eq!(
            closed_because(&mut browser).await,
            "your session ended; log in again"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "not at the next poll"
        );
        node.shutdown().await.unwrap();
    })
    .await
    .expect("finishes in time");
}

fn peers(node: &RunningNode) -> u64 {
    node.metrics()
        .ready_peers
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// True once the node has `n` partners connected (within 20 s).
async fn wait_peers(node: &RunningNode, n: u64) -> bool {
    for _ in 0..400 {
        if peers(node) == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_partner_is_disconnected_and_no_longer_dialed() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let a_dir = dir.path().join("a");
        let b_dir = dir.path().join("b");
        let info = ibis_node::init(&InitOptions::new(&a_dir, "IOM")).unwrap();
        let mut options = InitOptions::new(&b_dir, "NLC");
        options.network = Network::Join {
            directory: DocumentId::parse_id_or_url(&info.directory).unwrap(),
        };
        let b_info = ibis_node::init(&options).unwrap();
        let b = serve(&b_dir).await;
        // A dials B; B accepts A by key.
        let a_key = NodeKey::load_or_create(&a_dir)
            .unwrap()
            .public()
            .to_string();
        let b_key = NodeKey::load_or_create(&b_dir)
            .unwrap()
            .public()
            .to_string();
        Registry::open(&b_dir)
            .unwrap()
            .add_peer(&Peer {
                name: "IOM".into(),
                url: String::new(),
                public_key: a_key,
                organization: info.organization_id.clone(),
                acl: Acl::FULL,
            })
            .unwrap();
        Registry::open(&a_dir)
            .unwrap()
            .add_peer(&Peer {
                name: "NLC".into(),
                url: b.sync_url(),
                public_key: b_key,
                organization: b_info.organization_id.clone(),
                acl: Acl::FULL,
            })
            .unwrap();
        let a = serve(&a_dir).await;
        assert!(wait_peers(&b, 1).await, "A connects to B");

        // B removes A (`ibis-node peer remove IOM` on B): A's socket closes.
        Registry::open(&b_dir).unwrap().remove_peer("IOM").unwrap();
        assert!(wait_peers(&b, 0).await, "B dropped A");
        // A removes B: A stops dialing (B sees no new attempt).
        Registry::open(&a_dir).unwrap().remove_peer("NLC").unwrap();
        let refused = b
            .metrics()
            .connections_refused
            .load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(8)).await;
        let refused_after = b
            .metrics()
            .connections_refused
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            refused_after <= refused + 1,
            "A kept dialing a removed partner ({refused} → {refused_after} refusals)"
        );
        assert_eq!(peers(&a), 0);
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    })
    .await
    .expect("finishes in time");
}
